"""APT: Approximated Prompt Tuning (Wu et al., 2023, arXiv 2306.15706).

Instead of appending p prompt tokens to every attention layer (VPT-deep: the prompts join the
global attention, cost grows with N·p·d per projection and per score), APT approximates their
effect by an independent "information diffusion" step in the attention's output space:

    P~  = P + (P W1) W2                 # P ~ N(0, 0.02) (p×d), W1 ~ N(0, 1) (d×r), W2 = 0 (r×d)
    A   = Dropout(ReLU(LN1(x) P~ᵀ))     # B×N×p: ReLU replaces the softmax, no q/k/v projections
    e   = A P                           # B×N×d: note the value side uses P, not P~
    m   = stopgrad(max_k A)             # B×N×1: stands in for the softmax share prompts would take
    out = (Attn(LN1 x) + m ⊙ e)·exp(s)  # s: a scalar per layer, init 0

``APTCore`` is the per-layer module; it only needs the attention's (normed) input and its
output, so it is independent of timm and can be hooked into a BERT-style encoder as well
(there: after the attention-output dense layer). Dropout is applied to A before both the diffusion and the
max, as in the official code (``approximate_prompt`` in DoubtedSteam/APT, ViLT/vilt/modules/
vision_transformer_apt.py), with the host attention's dropout rate (0.0 in its ViT). ``attach_apt`` patches a timm ``Attention``
instance so ``blocks.i.attn(LN1 x)`` returns APT's output; backbone parameter names stay
unchanged and the new ones are ``blocks.i.attn.apt.{prompt,w1,w2,log_scale}``.
Parameters per layer: p·d + 2·d·r + 1 (ViT-B/16, p=200, r=4: 159,745; 12 layers: 1,916,940).
APT is not identity at init (e ≠ 0 since P ≠ 0); only s starts at 0.

VL model (post-LN BERT layers): the core sits after each layer's attention output dense, before its dropout,
residual and LayerNorm, as in the official APT BertSelfOutput; it is fed ``x_norm`` = the layer input (what the
attention read) and ``attn_out`` = the dense output (``methods/_bert.py``). BERT-base: the same 1,916,940.
METER: one core in the self- and one in the cross-attention output of each of the 12 co-attention layers, none in
the text encoder (official ``bert_model_apt.py``: APT in every ``BertSelfOutput`` of ``BertCrossLayer``):
24 × 159,745 = 3,833,880 (APT README's METER row: 3.83M). ViLT: as on a ViT (its blocks are timm blocks).
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from petlbench.config.method_config import Range
from petlbench.errors import UserError
from petlbench.methods._bert import add_output_branches
from petlbench.methods._modules import factory_kwargs, resolve_indices
from petlbench.methods.base import Method, MethodConfig, MethodModule, layout_of
from petlbench.methods.recipe import vlp_recipe
from petlbench.models.layout import Layout
from petlbench.registry import register


@dataclass
class APTConfig(MethodConfig):
    """APT keys. The training recipe (AdamW, lr 1e-3, wd 1e-4, 100 epochs) is the shared VTAB-1k default."""

    num_prompts: Annotated[int, Range(ge=1)] = 200  # p; the spec's reference setting (p=200, r=4); the official ViLT code uses 50
    rank: Annotated[int, Range(ge=1)] = 4  # r of the low-rank update W1 W2 of P; official code (hidden 4) and spec
    layers: tuple[int, ...] | None = None  # block indices to adapt (negative = from the end); None = all
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.0  # on A, before the diffusion and the max; official: the host attention's attn_drop = 0.0
    # approximated (APT) | conventional: the prompt tuning APT approximates, as the official APT repository's METER
    # baseline (meter_module_prompt.py): num_prompts tokens prepended to the keys / values of each co-attention
    # layer's cross-attention; METER only (on a ViT, the vpt method is conventional deep prompting)
    prompting: Literal["approximated", "conventional"] = "approximated"
    # whether the output scale s trains: the official ViLT code trains every 'APT' parameter, the official METER code
    # only the 'mm' ones (meter_module_apt.py trainable = [..., 'mm']: P and W1 W2; s stays 0)
    train_scale: bool = True

    NEUTRAL: ClassVar[dict[str, Any]] = {**MethodConfig.NEUTRAL, "prompting": "approximated", "train_scale": True}

    @classmethod
    def for_task(cls, task: Any, builtin: bool, kind: str | None = None) -> dict[str, Any]:
        return {**vlp_recipe(kind, task), **({"train_scale": False} if kind == "meter" else {})}

    def __post_init__(self) -> None:
        if self.layers is not None:
            self.layers = tuple(self.layers)
            if not self.layers:
                raise ValueError("layers is empty; give block indices (e.g. --set layers=0,1,2) or none for all")
            if len(set(self.layers)) != len(self.layers):
                raise ValueError(f"layers has duplicates ({self.layers}); list each block once")


class APTCore(MethodModule):
    """One layer's approximated prompts: ``forward(x_norm, attn_out) -> adapted attn_out``.

    ``x_norm``: the normed input the attention saw (B×N×d); ``attn_out``: its output (B×N×d).
    """

    def __init__(self, dim: int, num_prompts: int, rank: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.prompt = nn.Parameter(torch.randn(num_prompts, dim) * 0.02)  # P ~ N(0, 0.02²)
        self.w1 = nn.Parameter(torch.randn(dim, rank))  # W1 ~ N(0, 1)
        self.w2 = nn.Parameter(torch.zeros(rank, dim))  # W2 = 0: P~ = P at init
        self.log_scale = nn.Parameter(torch.zeros(()))  # s: output scaled by exp(s), init 1
        self.drop = nn.Dropout(dropout)

    def prompt_keys(self) -> torch.Tensor:
        """P~ = P + (P W1) W2 (p×d): the prompts as seen by the scores A."""
        return self.prompt + (self.prompt @ self.w1) @ self.w2

    def forward(self, x_norm: torch.Tensor, attn_out: torch.Tensor) -> torch.Tensor:
        prompt = self.prompt.to(x_norm.dtype)
        a = self.drop(F.relu(x_norm @ self.prompt_keys().to(x_norm.dtype).t()))  # B×N×p
        e = a @ prompt  # B×N×d
        m = a.detach().amax(dim=-1, keepdim=True)  # B×N×1, stop-gradient, after the dropout (official)
        return (attn_out + m * e) * self.log_scale.exp()


def _apt_attention_forward(self: nn.Module, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """Forward of an attention module patched by ``attach_apt``: class forward (its output dropout moved out),
    APT, then that dropout."""
    out = type(self).forward(self, x, *args, **kwargs)
    return self.apt_drop(self.apt(x, out))


def attach_apt(attn: nn.Module, core: APTCore) -> None:
    """Patch a timm ``Attention`` (called as ``attn(LN1 x, ...) -> tensor``) so it returns
    ``proj_drop(core(LN1 x, proj(...)))``: APT between the output projection and its dropout, the official order
    (vision_transformer_apt.py ``Attention.forward``: ``x = self.proj(x); x = self.APT(x, res); x = self.proj_drop(x)``).

    ``core`` becomes ``attn.apt`` and the dropout ``attn.apt_drop``; the patch is per instance (deep copies rebind
    it).
    """
    if getattr(attn, "apt", None) is not None:
        raise ValueError("attention module already has an APT core")
    attn.apt = core
    attn.apt_drop, attn.proj_drop = attn.proj_drop, nn.Identity()
    attn.forward = types.MethodType(_apt_attention_forward, attn)


def _deep_prompt_block_forward(self: nn.Module, x: torch.Tensor, attn_mask: torch.Tensor | None = None,
                               **kwargs: Any) -> torch.Tensor:
    """A pre-norm block with deep prompts (official ViLT vilt_module_deep_prompt.py / vision_transformer_deep_prompt.py):
    the prompts join the normed sequence as keys and values only; the residual and the MLP run on the sequence."""
    b, n, _ = x.shape
    h = self.norm1(torch.cat([x, self.context_prompt.to(x.dtype).expand(b, -1, -1)], 1))
    if attn_mask is not None:
        attn_mask = torch.cat([attn_mask, attn_mask.new_ones(*attn_mask.shape[:-1], self.context_prompt.shape[0])], -1)
    x = x + self.drop_path1(self.ls1(_keys_values_attention(self.attn, h, n, attn_mask)))
    return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


def _keys_values_attention(attn: nn.Module, h: torch.Tensor, n: int, mask: torch.Tensor | None) -> torch.Tensor:
    """A timm ``Attention`` over ``h`` with queries for its first ``n`` tokens only (qkv over all, as the official)."""
    b, total, _ = h.shape
    qkv = attn.qkv(h).reshape(b, total, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q, k = attn.q_norm(q[:, :, :n]), attn.k_norm(k)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=attn.attn_drop.p if attn.training else 0.0)
    return attn.proj_drop(attn.proj(attn.norm(out.transpose(1, 2).reshape(b, n, -1))))


def attach_deep_prompt(block: nn.Module, prompt: nn.Parameter) -> None:
    """Give a timm ``Block`` deep prompts (``block.context_prompt``); the patch is per instance."""
    block.context_prompt = prompt
    block.forward = types.MethodType(_deep_prompt_block_forward, block)


@register
class APT(Method):
    name = "apt"
    description = "Approximated Prompt Tuning: prompt effect as a cheap per-layer diffusion step (Wu et al. 2023)."
    Config = APTConfig
    supports = frozenset({"blocks", "attention_outputs"})

    def apply(self, model: nn.Module, layout: Layout) -> nn.Module:
        cfg: APTConfig = self.cfg  # type: ignore[assignment]
        if cfg.prompting == "conventional":
            return self._apply_conventional(model, layout)
        blocks, d = layout.blocks(model), layout.width(model)
        for i in resolve_indices(cfg.layers, len(blocks), "layers"):
            for out in layout.attention_outputs(blocks[i]):  # every attention of the layer (METER: self and cross)
                core = APTCore(d, cfg.num_prompts, cfg.rank, cfg.dropout)
                core.log_scale.requires_grad_(cfg.train_scale)
                if layout.layer == "bert":  # after the output dense, before its dropout (official BertSelfOutput)
                    add_output_branches(out, apt=core)
                else:
                    attach_apt(out, core)
        return model

    def _apply_conventional(self, model: nn.Module, layout: Layout) -> nn.Module:
        """The prompt tuning APT approximates, as the official APT repository's baselines: ``num_prompts`` prompts
        joining the keys / values of each co-attention layer's cross-attention where the kind has one (METER,
        meter_module_prompt.py), else of each pre-norm block's self-attention (ViLT, vilt_module_deep_prompt.py: 200
        per block, queries only for the sequence's own tokens). Official init: VPT's uniform ±sqrt(6 / (3·16·16 + d))."""
        cfg: APTConfig = self.cfg  # type: ignore[assignment]
        if not self._has_conventional(layout):
            raise UserError(f"prompting=conventional is the official APT baseline on ViLT and METER; {layout.kind} "
                            "backbones have none here (on a ViT the vpt method is conventional deep prompting)")
        layers, d = layout.blocks(model), layout.width(model)
        bound = math.sqrt(6.0 / (3 * 16 * 16 + d))
        for i in resolve_indices(cfg.layers, len(layers), "layers"):
            for host in self._prompt_hosts(layout)(layers[i]):
                prompt = nn.Parameter(torch.empty(cfg.num_prompts, d, **factory_kwargs(host)).uniform_(-bound, bound))
                if layout.cross_attentions:
                    host.context_prompt = prompt
                else:
                    attach_deep_prompt(host, prompt)
        return model

    @staticmethod
    def _prompt_hosts(layout: Layout) -> Callable[[nn.Module], list[nn.Module]]:
        """Where a layer's conventional prompts live: its cross-attentions (METER), else the block itself (ViLT)."""
        return layout.cross_attentions or (lambda layer: [layer])

    @staticmethod
    def _has_conventional(layout: Layout) -> bool:
        """Conventional prompts in cross-attention, or deep prompts in pre-norm blocks of a kind without an image
        token stream (a timm ViT's is the vpt method's)."""
        return layout.cross_attentions is not None or (layout.layer == "vit" and not layout.tokens)

    def counterpart(self, model: nn.Module) -> dict[str, Any] | None:
        """Approximated prompts are measured against the conventional prompt tuning they approximate, where it is
        defined (METER, ViLT)."""
        return ({"prompting": "conventional"} if self.cfg.prompting == "approximated"
                and self._has_conventional(layout_of(model)) else None)

    @staticmethod
    def _cores(model: nn.Module) -> list[tuple[int, APTCore]]:
        """(layer index, core) of every adapted layer."""
        layout = layout_of(model)
        found = [(i, getattr(out, "apt", None)) for i, layer in enumerate(layout.blocks(model))
                 for out in layout.attention_outputs(layer)]
        return [(i, c) for i, c in found if c is not None]

    def stats(self, model: nn.Module) -> dict[str, object]:
        if self.cfg.prompting == "conventional":
            layout = layout_of(model)
            hosts = self._prompt_hosts(layout)
            prompted = [i for i, layer in enumerate(layout.blocks(model))
                        if any(getattr(h, "context_prompt", None) is not None for h in hosts(layer))]
            return {"prompt_layers": prompted}
        cores = self._cores(model)
        return {
            "apt_layers": [i for i, _ in cores],
            "apt_scale": [round(float(c.log_scale.detach().exp()), 6) for _, c in cores],  # exp(s) per layer
        }
