"""DVP: Dynamic Visual Prompting (Huang et al., "Adapting Pre-trained Language Models to Vision-Language Tasks
via Dynamic Visual Prompting", arXiv 2306.00409), with its KAB-APP placement search. VL models only: a BERT-family
language model (``VLModel``, below) or T5 (``VLT5Model``: the prompt enters the decoder, ``methods._t5``).

A language model alone classifies; a frozen visual encoder only supplies keys/values for ONE prompt token::

    v  = ViT(pixel_values)                    # B×Nv×dv: all tokens of the last block, before the final norm
    h  = BERT.embeddings(text)                # B×T×d   (text only: no visual token, no fusion layer)
    h  = layers[0..K-1](h, text mask)         # text only: DVP's compute saving
    p  = CrossAttn(q = h[:, :1], k = v = v)   # B×1×d: the text [CLS] (input of layer K) queries the visual tokens
    h' = [h + E_type[0] ; p + E_type[1]]      # B×(T+1)×d, a fresh 2-entry token-type embedding
    h' = layers[K..L-1](h', [text mask ; 1])
    logits = head(h'[:, 0])                   # the text [CLS]

Facts from the official code (github.com/hsb1357173526/Dynamic_Visual_Prompting, ``dvp/modules/bert_module.py``,
``dvp/config.py``), re-implemented here:
- ``Cross_Attention``: q/k/v/merge Linear maps of the LM width with bias (PyTorch's default init), 12 heads
  (``num_heads``), softmax(q kᵀ/√dh) with dropout 0.1 (``drop_rate``) on the attention map, no mask.
  BERT-base: 4 × (768² + 768) = 2,362,368 parameters.
- Keys/values are the CLIP ViT-B/16's ``transformer`` output (after ``ln_pre``, before ``ln_post``/``proj``) fed
  straight into ``linear_k``/``linear_v``: the BERT code has NO separate projection (CLIP width = BERT width =
  768); its LLaMA code, where the widths differ, gives k/v maps ``Linear(768, ·)``. So here k/v read the visual
  tokens at their own width dv (``Linear(dv, d)``; identical to the official module when dv = d) and the VL
  model's fusion layers ``vis_proj``/``vis_type`` are not used: ``apply`` REMOVES them (they would be counted
  and trained, never run).
- ``token_type_embeddings = nn.Embedding(2, d)`` (PyTorch default init N(0, 1)): entry 0 is added to every text
  hidden state at layer K, entry 1 to the prompt. BERT-base: 1,536 parameters. (``token_type_std``: our option
  to draw it N(0, std) instead.)
- The prompt is concatenated BEFORE the text (``cat([visual_prompt, text])``) and the classifier reads
  index 1. We append it after the text instead, so the text [CLS] stays at index 0 where ``VLModel.forward``
  reads it: BERT layers are permutation-equivariant (positions were added in the embeddings; the prompt has
  none), so this is the same function (a test checks it against a prepending forward).
- Adapter variant (``use_adapter``): embeddings frozen, encoder frozen except every ``LayerNorm``, and two
  adapters per layer, ``x + Up(ReLU(Down(x)))`` with d→d/8→d (768→96→768), weights N(0, 0.01), biases 0,
  placed on each sublayer's output after dense + dropout, inside the residual + LayerNorm:
  ``LN(r + A(h))`` with ``A(h) = h + Up(ReLU(Down h))`` = ``_bert``'s ``seq_adapter`` slot (Houlsby placement).
  BERT-base: 24 × 148,320 = 3,559,680 adapter + 36,864 encoder-LayerNorm parameters; with the DVP module
  5,960,448 trainable parameters without the classifier.
- KAB-APP (``search_stage``): one cross-attention/token-type pair per layer K in 0..L-1; preferences α = 0
  (``layer_alphas``), π = softmax(α). Each training step inserts at a K drawn uniformly (``random.randint``); after
  EVERY optimizer step one fresh held-out batch scores ``search_sample`` = 5 arms drawn from π (with
  replacement), without gradients, S in percent (accuracy ×100; VQA: the VQA score of the argmax answer ×100), and
  ``α_K += 0.005 · (S − mean S) · π_K (1 − π_K)`` per arm (π from before the update); the held-out batches are
  ``batch_size // 2`` and the arms are scored in training mode (LM dropout on). The official search is a separate
  run (2 epochs on VQAv2/GQA, 1 on SNLI-VE, constant lr, no warm-up, the whole LM fine-tuned without adapters: the
  search configs never set ``use_adapter``) that prints K = argmax π (first on ties); training then starts again
  from the pre-trained model with one module at K. Here the search trains a copy of the model (``search_trains``:
  the whole LM without adapters, or what the variant trains) for ``search_updates`` preference updates, and the
  model gets a fresh module at K; the loop then trains it normally.
- Recipe per task and language model (``TASK_RECIPE``, ``OFFICIAL_LR``), the classifier Linear(d, 2d),
  LayerNorm, GELU, Linear(2d, C) (``head=official``), texts truncated and padded to 16 tokens (``max_text_len``).

GMACs: ``petlbench.vl.vl_gmacs`` counts this forward as it runs: ``gmacs_text`` = the DVP module + the LM over
T tokens before K and T + 1 from K + the head, against the VL baseline's visual projection + LM over T + Nv
tokens + head (``benchmarks/perf/dvp_gmacs.py``; BERT-base + CLIP ViT-B/16, 16 text tokens: 1.68 GMACs at K = 0,
1.60 at K = 11, 19.04 for all 197 visual tokens).

Deviations (labelled at the keys below): rewards come from petlbench's held-out split (the official code reads
the VQAv2 val / GQA testdev / SNLI-VE val split, which it also reports on); the warm-up is whole epochs; built-in
offline tasks search ``BUILTIN_SEARCH_UPDATES`` times (a cost choice) instead of the official count.
"""

from __future__ import annotations

import copy
import math
import types
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from petlbench.config.method_config import Range
from petlbench.data.batching import map_tensors
from petlbench.errors import UserError
from petlbench.methods._bert import add_output_branches
from petlbench.methods._modules import Bottleneck, factory_kwargs, scoring_mode
from petlbench.methods._t5 import (
    add_sublayer_adapters,
    dvp_features,
    layer_norms,
    remove_sublayer_adapters,
)
from petlbench.methods.base import (
    Method,
    MethodConfig,
    MethodModule,
    SearchContext,
    layout_of,
    state_of,
    unfreeze,
)
from petlbench.models.heads import vilt_head
from petlbench.models.layout import Layout
from petlbench.registry import register

TRACE_POINTS = 50  # reward-trace entries kept in method_stats (evenly subsampled)


# The official recipe per language model and task (github hsb1357173526/Dynamic_Visual_Prompting ``dvp/config.py``,
# named configs ``dvp_adaption_{bert,t5}_{vqa,gqa,snli_ve}`` and ``dvp_search_*``; DVP_adp's lr from the README,
# "Parameter-Efficient Transfer Learning": BERT 1e-3 on VQA2.0, 5e-4 on GQA and SNLI-VE; T5 3e-4 everywhere).
# task -> (max_epoch, warm-up epochs = warmup_steps × max_epoch (0.1 × 10, 0.2 × 5), preference updates of the
#          search = the search config's max_epoch × batches of 256 in the official training set); the head's lr_mult
#          (10 on VQAv2 / GQA, 1 on SNLI-VE) is the task's (``VLTask.head_lr_mult``)
# Search updates: VQAv2 2 epochs of ViLT's train + val minus 1,000 val images (443,757 + 214,354 − ~5,300
# questions ≈ 652,800 -> 2,550 batches; ``dvp/utils/write_vqa.py``), GQA 2 epochs of the balanced train set
# (943,000 questions, Hudson & Manning 2019 -> 3,684 batches), SNLI-VE 1 epoch (529,527 pairs, Xie et al. 2019 ->
# 2,069 batches); ``optimizer_step`` makes one preference update per optimizer step.
TASK_RECIPE: dict[str, tuple[int, int, int]] = {"vqav2": (10, 1, 5100), "gqa": (10, 1, 7368), "snli-ve": (5, 1, 2069)}
# (language model, task) -> lr of (the full variant, the adp variant, the search); config ``learning_rate``
OFFICIAL_LR: dict[tuple[str, str], tuple[float, float, float]] = {
    ("bert", "vqav2"): (1e-4, 1e-3, 1e-4), ("bert", "gqa"): (1e-4, 5e-4, 1e-4), ("bert", "snli-ve"): (1e-4, 5e-4, 1e-4),
    ("t5", "vqav2"): (2e-4, 3e-4, 2e-4), ("t5", "gqa"): (2e-4, 3e-4, 2e-4), ("t5", "snli-ve"): (2e-4, 3e-4, 2e-4)}
# Built-in offline tasks (800 training samples): the preference updates of their compact budget, reusing the
# training batches. Our cost choice (0.4-1 s per update on one CPU core), not a convergence result: on shapes-vqa no
# layer is better and π stays near uniform; on shapes-bind the search model stays at the answer prior with the
# official token-type init, and with token_type_std = 0.02 it converges on the best layer, K = 5, on every seed in
# 3,000 updates (π(5) 0.95-0.98; on 2 seeds of 3 in 1,500) (docs/methods.md "DVP search").
BUILTIN_SEARCH_UPDATES = 600


@dataclass
class DVPConfig(MethodConfig):
    """DVP keys; defaults from the official code (``dvp/config.py``, per task: ``TASK_RECIPE``) unless noted.

    Recipe: the official optimizer (ViLT's ``set_schedule`` in ``dvp_utils.py``): AdamW betas (0.9, 0.98), eps 1e-8,
    wd 0.01 except biases and LayerNorms, batch 256, linear warm-up then linear decay to 0 (``decay_power = 1``,
    ``end_lr = 0``), the head's lr ×10 on VQA tasks (``lr_mult``; ``head_lr_mult`` None = the task's); per task
    (``recipe``: the data's published task, ``VLTask.published``) the epochs, warm-up and search budget of
    ``TASK_RECIPE``, and per language model and task the lr
    (``OFFICIAL_LR``; None = resolved in ``apply``, where the language model is known). The search runs at
    ``search_lr`` (None = the official search config's) without schedule (``decay_power = 'constant'``, no warm-up),
    training the whole language model (``search_trains="lm"``) as the official search configs, which never set
    ``use_adapter``. Built-in offline tasks override epochs / batch size like every method and search
    ``BUILTIN_SEARCH_UPDATES`` times. Remaining deviation: the warm-up is whole epochs (1 of 10 = the official 10%).
    """

    NEUTRAL: ClassVar[dict[str, Any]] = {**MethodConfig.NEUTRAL, "search_train_layer": None, "token_type_std": None}

    recipe: Literal["vqav2", "gqa", "snli-ve"] = "vqav2"  # which official per-task recipe (set from the data)
    lr: Annotated[float | None, Range(gt=0)] = None  # None = OFFICIAL_LR by language model, task and variant
    weight_decay: float = 0.01  # official weight_decay
    epochs: int = 10  # official max_epoch (by task: TASK_RECIPE)
    warmup_epochs: int = 1  # official warmup_steps 0.1 of 10 epochs (SNLI-VE: 0.2 of 5)
    batch_size: int = 256  # official batch_size
    adam_beta2: float = 0.98  # official AdamW betas (0.9, 0.98)
    decay: Literal["cosine", "linear"] = "linear"  # official decay_power = 1 (polynomial of power 1), end_lr 0
    head_lr_mult: float | None = None  # by task: official lr_mult 10 on VQAv2 / GQA, 1 (default) on SNLI-VE
    wd_bias_norm: bool = False  # official no_decay list: biases and LayerNorm weights
    head: Literal["official", "linear"] = "official"  # official: Linear(d,2d)-LN-GELU-Linear(2d,C), BERT init
    max_text_len: Annotated[int | None, Range(ge=2)] = 16  # official max_text_len (truncate + pad); None = model max

    variant: Literal["full", "adp"] = "full"  # full: the whole LM fine-tunes (the paper's DVP); adp: DVP_adp
    insert_layer: Annotated[int | None, Range(ge=0)] = None  # K; set = no search (official insert_layer).
    # None = KAB-APP search; without a search (inspect, search_updates=0) K = 0, the official default
    heads: Annotated[int | None, Range(ge=1)] = None  # cross-attention heads; None = the LM's (12 on BERT-base = official num_heads)
    attn_dropout: Annotated[float, Range(ge=0, lt=1)] = 0.1  # on the cross-attention map (official drop_rate)
    # init std of the prompt's 2-entry token-type embedding; None = N(0, 1) (official: nn.Embedding's default).
    # Our option: 0.02 (BERT's initializer_range) lets the search train on the offline pair, where the official
    # N(0, 1) (norm ≈ 20 on d = 384, against hidden-state norms of 7-11) stalls it (docs/methods.md "DVP search")
    token_type_std: Annotated[float | None, Range(gt=0)] = None
    adapter_bottleneck: Annotated[int | None, Range(ge=1)] = None  # None = d/8 (official reduction_factor 8: 96 on d=768)
    adapter_init_std: Annotated[float, Range(gt=0)] = 1e-2  # N(0, std) Down/Up weights (official Adapter)
    # KAB-APP preference updates (one per search training step, training batches reused); 0 = no search
    search_updates: Annotated[int, Range(ge=0)] = 5100  # official VQAv2 search (TASK_RECIPE); by task / built-in
    search_lr: Annotated[float | None, Range(gt=0)] = None  # None = the official search config's lr (OFFICIAL_LR)
    search_trains: Literal["lm", "variant"] = "lm"  # lm: the whole LM, no adapters (official); variant: what trains after
    # the layer whose module each search training step trains; None = a uniform draw per step (official
    # ``random.randint``). An int is our diagnostic: it checks the rewards and updates on a search model that has
    # learned one arm (docs/methods.md "DVP search")
    search_train_layer: Annotated[int | None, Range(ge=0)] = None
    search_arms: Annotated[int, Range(ge=2)] = 5  # arms drawn from π per update (official search_sample = 5)
    pref_lr: Annotated[float, Range(gt=0)] = 0.005  # step of the preference update (official constant 0.005)
    # False = score the arms in training mode (dropout on), as the official code (it samples inside the
    # training step); True = eval mode (our option, less noisy rewards)
    reward_eval_mode: bool = False

    @classmethod
    def for_task(cls, task: Any, builtin: bool, kind: str | None = None) -> dict[str, Any]:
        """The official recipe of the data's published task (``TASK_RECIPE``); built-in tasks search
        ``BUILTIN_SEARCH_UPDATES`` times."""
        published = getattr(task, "published", None)
        if published not in TASK_RECIPE:
            return {}
        epochs, warmup, updates = TASK_RECIPE[published]
        return {"recipe": published, "epochs": epochs, "warmup_epochs": warmup,
                "search_updates": BUILTIN_SEARCH_UPDATES if builtin else updates}


# ------------------------------------------------------------------------------------------ modules


class CrossAttention(MethodModule):
    """Multi-head cross-attention: B×Nq×d queries over B×Nv×dv tokens -> B×Nq×d (official ``Cross_Attention``:
    q/k/v/merge Linear with bias, dropout on the attention map, no mask)."""

    def __init__(self, dim: int, kv_dim: int, heads: int, dropout: float = 0.1, **dd: Any) -> None:
        super().__init__()
        if dim % heads:
            raise UserError(f"DVP cross-attention: width {dim} is not divisible by heads={heads}; pick a divisor")
        self.heads, self.dropout = heads, dropout
        self.query = nn.Linear(dim, dim, **dd)
        self.key = nn.Linear(kv_dim, dim, **dd)
        self.value = nn.Linear(kv_dim, dim, **dd)
        self.merge = nn.Linear(dim, dim, **dd)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.heads, d // self.heads).transpose(1, 2)  # B×heads×n×dh

    def forward(self, query: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(self.query(query)), self._split(self.key(tokens)), self._split(self.value(tokens))
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        b, _, n, _ = out.shape
        return self.merge(out.transpose(1, 2).reshape(b, n, -1))


class VisualPrompt(MethodModule):
    """One DVP module (for one insertion layer): the cross-attention and the 2-entry token-type embedding."""

    def __init__(self, dim: int, kv_dim: int, heads: int, dropout: float, type_std: float | None = None,
                 **dd: Any) -> None:
        super().__init__()
        self.cross_attn = CrossAttention(dim, kv_dim, heads, dropout, **dd)
        self.token_type = nn.Embedding(2, dim, **dd)  # 0 = text, 1 = prompt; N(0, 1) init as the official code
        if type_std is not None:  # DVPConfig.token_type_std
            nn.init.normal_(self.token_type.weight, std=type_std)

    def forward(self, h: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        """B×T×d text hidden states (the input of layer K) + B×Nv×dv visual tokens -> B×(T+1)×d."""
        prompt = self.cross_attn(h[:, :1], visual) + self.token_type.weight[1]  # query: the text [CLS]
        return torch.cat([h + self.token_type.weight[0], prompt], 1)


class DVPState(MethodModule):
    """The DVP modules (one per candidate layer during the search, else one) and the search's bookkeeping.

    ``active`` (a python int, read every forward without a device sync) is the layer the forward inserts at;
    the buffer ``insert_layer`` is the chosen K. ``reward_trace``: mean arm score per preference update."""

    def __init__(self, depth: int, k: int, prompt: VisualPrompt) -> None:
        super().__init__()
        self.prompts = nn.ModuleDict({str(k): prompt})
        self.register_buffer("alpha", torch.zeros(depth))  # α per layer, π = softmax(α)
        self.register_buffer("insert_layer", torch.tensor(k))
        self.register_buffer("searched", torch.zeros((), dtype=torch.bool))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.active = k
        self.reward_trace: list[float] = []

    def use(self, k: int) -> None:
        """Insert at layer ``k`` in the next forwards (its module must exist)."""
        if str(k) not in self.prompts:
            raise ValueError(f"no DVP module for layer {k} (have {sorted(map(int, self.prompts))})")
        self.active = k

    def commit(self, k: int, prompt: VisualPrompt) -> None:
        """Keep a single module, ``prompt``, at layer ``k``."""
        self.prompts = nn.ModuleDict({str(k): prompt})
        self.insert_layer.fill_(k)
        self.active = k


def remove_adapters(model: nn.Module) -> None:
    """Empty DVP_adp's adapter slots (the model then computes what it did before ``apply`` added them)."""
    layout = layout_of(model)
    if layout.layer == "t5":
        remove_sublayer_adapters(model)
        return
    for layer in layout.blocks(model):
        for out in [*layout.attention_outputs(layer), *layout.ffn_outputs(layer)]:
            add_output_branches(out, seq_adapter=None)


def dvp_state(model: nn.Module) -> DVPState:
    return state_of(model, "dvp", DVPState, "dvp")


def _dvp_forward_features(self: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Forward of a DVP-patched ``VLModel``: B×(T+1)×d final hidden states, text first, then the prompt."""
    h, mask = self.text_embeddings(inputs)
    k = self.dvp.active
    h = self.encode(h, mask, 0, k)  # layers before K: text only
    h = self.dvp.prompts[str(k)](h, self.visual_features(inputs["pixel_values"]))
    mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], 1)
    return self.encode(h, mask, k)


def _dvp_t5_forward_features(self: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Forward of a DVP-patched ``VLT5Model``: B×2×d final decoder states, prompt first, the decoder token last
    (the official ``DVP_T5.infer``: ``methods._t5.dvp_features``)."""
    k = self.dvp.active
    return dvp_features(self, inputs, k, self.dvp.prompts[str(k)])


# ------------------------------------------------------------------------------------------ search maths


def score_percent(logits: torch.Tensor, target: torch.Tensor) -> float:
    """KAB-APP's arm score S in percent: accuracy for class-index targets (B); for soft-score targets (B×C,
    VQA) the mean target score of the argmax answer (the official ``calculate_vqa_score`` ×100)."""
    pred = logits.argmax(-1)
    if target.is_floating_point() and target.dim() == 2:
        return 100.0 * float(target.gather(1, pred[:, None]).mean())
    return 100.0 * float((pred == target).float().mean())


def preference_update(alpha: torch.Tensor, arms: list[int], scores: list[float], lr: float) -> torch.Tensor:
    """``α_K += lr · (S_j − mean S) · π_K (1 − π_K)`` for each arm j at layer K (π from before the update)."""
    pi = torch.softmax(alpha, 0)
    mean = sum(scores) / len(scores)
    new = alpha.clone()
    for k, s in zip(arms, scores, strict=True):
        new[k] += lr * (s - mean) * pi[k] * (1 - pi[k])
    return new


def score_arm(model: nn.Module, k: int, inputs: Any, target: torch.Tensor, ctx: SearchContext) -> float:
    """S of inserting at layer ``k`` on one batch (no gradients; the caller sets the mode)."""
    dvp_state(model).use(k)
    with torch.no_grad(), ctx.autocast():
        logits = model(inputs).float()
    return score_percent(logits, target) if bool(torch.isfinite(logits).all()) else float("nan")


def pi_entropy(alpha: torch.Tensor) -> float:
    """Entropy of π = softmax(α) in nats (ln L for a uniform π over L layers, 0 for a decided one)."""
    pi = torch.softmax(alpha.float().cpu(), 0)
    return float(-(pi * pi.clamp_min(1e-30).log()).sum())


def _half(batch: tuple[Any, torch.Tensor]) -> tuple[Any, torch.Tensor]:
    """The first half of a held-out batch: the official KAB-APP loader's batch is ``batch_size // 2``."""
    x, y = batch
    n = max(1, len(y) // 2)
    return map_tensors(x, lambda t: t[:n]), y[:n]


def _subsample(trace: list[float], n: int = TRACE_POINTS) -> list[list[float]]:
    """[[update index (1-based), mean S], ...] at most ``n`` evenly spaced entries (the last one included)."""
    if not trace:
        return []
    m = min(n, len(trace))
    idx = sorted({round(i * (len(trace) - 1) / max(1, m - 1)) for i in range(m)})
    return [[i + 1, round(trace[i], 4)] for i in idx]


# ------------------------------------------------------------------------------------------ method


@register
class DVP(Method):
    name = "dvp"
    description = "Dynamic Visual Prompting: one cross-attention visual prompt at a bandit-searched LM layer."
    Config = DVPConfig
    supports = frozenset({"language_model", "blocks"})  # a language model reading visual tokens; K is one of its blocks

    def _prompt(self, model: nn.Module) -> VisualPrompt:
        """A freshly initialised DVP module for ``model`` (on its device and dtype)."""
        cfg: DVPConfig = self.cfg  # type: ignore[assignment]
        text = model.text
        heads = cfg.heads or int(text.config.num_attention_heads)
        return VisualPrompt(layout_of(model).width(model), int(model.vision.embed_dim), heads, cfg.attn_dropout,
                            cfg.token_type_std, **factory_kwargs(text))

    def _adapter(self, model: nn.Module) -> Bottleneck:
        cfg: DVPConfig = self.cfg  # type: ignore[assignment]
        d, std = layout_of(model).width(model), cfg.adapter_init_std
        a = Bottleneck(d, cfg.adapter_bottleneck or max(1, d // 8), act="relu", **factory_kwargs(model.text))
        with torch.no_grad():  # official init: plain (untruncated) N(0, std) weights, zero biases
            nn.init.normal_(a.down.weight, std=std)
            nn.init.normal_(a.up.weight, std=std)
        return a

    def apply(self, model: nn.Module, layout: Layout) -> nn.Module:
        cfg: DVPConfig = self.cfg  # type: ignore[assignment]
        t5 = layout.layer == "t5"  # T5: K is a decoder block, adapters on every T5 sublayer (methods._t5)
        if getattr(model, "vision", None) is None:
            raise UserError("DVP needs a VL model with a visual encoder (a TEXT+VISION model, modality 'both')")
        depth = len(layout.blocks(model))
        k = 0 if cfg.insert_layer is None else cfg.insert_layer
        for key, value in (("insert_layer", k), ("search_train_layer", cfg.search_train_layer or 0)):
            if value >= depth:
                lm = "block T5 decoder" if t5 else "layer language model"
                raise UserError(f"{key}={value} out of range for a {depth}-{lm}; use 0..{depth - 1}")
        model.vis_proj = None  # the VL track's fusion layers: DVP never runs them (module docstring)
        model.vis_type = None
        if cfg.variant == "full":
            unfreeze(model.text)
        elif t5:  # official use_adapter: every LayerNorm trains, 2 adapters per encoder and 3 per decoder block
            unfreeze(*layer_norms(model))
            add_sublayer_adapters(model, lambda: self._adapter(model))
        else:
            for layer in layout.blocks(model):
                for out in [*layout.attention_outputs(layer), *layout.ffn_outputs(layer)]:
                    unfreeze(out.LayerNorm)
                for out in [*layout.attention_outputs(layer), *layout.ffn_outputs(layer)]:
                    add_output_branches(out, seq_adapter=self._adapter(model))
        model.dvp = DVPState(depth, k, self._prompt(model)).to(next(model.text.parameters()).device)
        model.forward_features = types.MethodType(_dvp_t5_forward_features if t5 else _dvp_forward_features, model)
        self._recipe(model)
        return model

    def _recipe(self, model: nn.Module) -> None:
        """The official head (``head``), text length and learning rates of this language model on the recipe's task."""
        cfg: DVPConfig = self.cfg  # type: ignore[assignment]
        if cfg.head == "official":
            d, classes = int(model.text.config.hidden_size), model.head.out_features
            model.head = vilt_head(d, classes, **factory_kwargs(model.head))
        model.max_text_len = cfg.max_text_len
        full, adp, search = OFFICIAL_LR[(layout_of(model).layer, cfg.recipe)]
        cfg.lr = cfg.lr or (full if cfg.variant == "full" else adp)
        cfg.search_lr = cfg.search_lr or (search if cfg.search_trains == "lm" else cfg.lr)

    def search_cost(self) -> str:
        cfg: DVPConfig = self.cfg  # type: ignore[assignment]
        if not self._searches():
            return ""
        return (f"search: {cfg.search_updates} preference updates before training, whatever --limit or --epochs "
                "(--set search_updates=N cuts it; --set insert_layer=K skips it)")

    def _searches(self) -> bool:
        cfg: DVPConfig = self.cfg  # type: ignore[assignment]
        return cfg.insert_layer is None and cfg.search_updates > 0

    def _search_model(self, model: nn.Module) -> nn.Module:
        """What the search trains: a copy of ``model`` (the official search is a separate run, the model trained
        afterwards starts from the pre-trained weights) with one DVP module per candidate layer; with
        ``search_trains="lm"`` the whole language model trains and DVP_adp's adapters are removed, as the official
        search configs (no ``use_adapter``)."""
        cfg: DVPConfig = self.cfg  # type: ignore[assignment]
        searched = copy.deepcopy(model)
        state = dvp_state(searched)
        state.prompts = nn.ModuleDict({str(k): self._prompt(searched) for k in range(int(state.alpha.numel()))})
        if cfg.search_trains == "lm" and cfg.variant == "adp":
            remove_adapters(searched)
            unfreeze(searched.text)
        return searched

    def search(self, model: nn.Module, ctx: SearchContext) -> None:
        """KAB-APP (module docstring) on a copy of the model; ``model`` gets one fresh module at K = argmax π."""
        cfg: DVPConfig = self.cfg  # type: ignore[assignment]
        if not self._searches():
            ctx.log(f"dvp: no search (insert_layer set or search_updates=0); inserting at layer "
                    f"{dvp_state(model).active}")
            return
        searched = self._search_model(model)
        state = dvp_state(searched)
        gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))  # from the run's seeded RNG
        opt = ctx.make_optimizer([p for p in searched.parameters() if p.requires_grad], model=searched,
                                 lr=cfg.search_lr)
        val, depth, losses, fixed = ctx.val_batches(), int(state.alpha.numel()), [], cfg.search_train_layer
        while int(state.updates) < cfg.search_updates:  # training batches reused epoch after epoch
            for x, y in ctx.train_batches():  # the training step's K: uniform (official) or search_train_layer
                state.use(fixed if fixed is not None else int(torch.randint(depth, (1,), generator=gen)))
                with ctx.autocast():
                    loss = ctx.loss_fn(searched(x).float(), y)
                losses.append(ctx.step(opt, loss, "DVP search (search_lr)"))
                self._update(searched, ctx, _half(next(val)), gen)
                if int(state.updates) % max(1, cfg.search_updates // 10) == 0:
                    self._progress(ctx, state, losses)
                if int(state.updates) >= cfg.search_updates:
                    break
        chosen = int(torch.argmax(state.alpha.float().cpu()))  # first on ties, as the official np.argmax
        mine = dvp_state(model)
        for name in ("alpha", "updates"):
            getattr(mine, name).copy_(getattr(state, name))
        mine.reward_trace = state.reward_trace
        mine.commit(chosen, self._prompt(model))
        mine.searched.fill_(True)
        ctx.log(f"dvp: inserting the visual prompt at layer {chosen} (π entropy {pi_entropy(state.alpha):.3f} nats)")

    def _progress(self, ctx: SearchContext, state: Any, losses: list[float], window: int = 50) -> None:
        """Log the search: updates, the mean training loss and arm reward over the last ``window`` steps, π."""
        recent = losses[-window:]
        rewards = state.reward_trace[-window:]
        ctx.log(f"dvp search: {int(state.updates)}/{self.cfg.search_updates} updates, loss "
                f"{sum(recent) / len(recent):.3f}, reward {sum(rewards) / max(1, len(rewards)):.1f}, π = "
                + " ".join(f"{v:.3f}" for v in torch.softmax(state.alpha.float(), 0).tolist()))

    def _update(self, model: nn.Module, ctx: SearchContext, batch: tuple[Any, torch.Tensor],
                gen: torch.Generator) -> None:
        """Score ``search_arms`` layers drawn from π on one held-out batch; update α (a non-finite score skips the
        update and is not counted)."""
        cfg: DVPConfig = self.cfg  # type: ignore[assignment]
        state = dvp_state(model)
        alpha = state.alpha.float().cpu()
        arms = torch.multinomial(torch.softmax(alpha, 0), cfg.search_arms, replacement=True, generator=gen).tolist()
        with scoring_mode(model, cfg.reward_eval_mode):
            scores = [score_arm(model, k, *batch, ctx) for k in arms]
        if not all(math.isfinite(s) for s in scores):
            ctx.log("dvp: non-finite arm score, preference update skipped")
            return
        state.alpha.copy_(preference_update(alpha, arms, scores, cfg.pref_lr).to(state.alpha))
        state.updates += 1
        state.reward_trace.append(sum(scores) / len(scores))

    def stats(self, model: nn.Module) -> dict[str, Any]:
        cfg: DVPConfig = self.cfg  # type: ignore[assignment]
        state = dvp_state(model)
        alpha = state.alpha.float().cpu()
        return {
            "dvp_variant": cfg.variant,
            "dvp_insert_layer": int(state.insert_layer),
            "dvp_searched": bool(state.searched),
            "dvp_updates": int(state.updates),
            "dvp_pi": [round(v, 6) for v in torch.softmax(alpha, 0).tolist()],
            "dvp_pi_entropy": round(pi_entropy(alpha), 6),  # nats; uniform = ln(layers)
            "dvp_alpha": [round(v, 6) for v in alpha.tolist()],
            "dvp_reward_trace": _subsample(state.reward_trace),
        }
