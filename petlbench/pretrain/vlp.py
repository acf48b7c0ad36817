"""The VL pretraining objective both micro VL-pretrained models share (``vl_scenes``: the micro ViLT;
``vl_scenes_meter``: the micro METER): ViLT's objectives (Kim et al. 2021, Sec. 3.2) on scene-caption pairs
(``pretrain.captions``). ``VLPRecipe`` is their common recipe; each model's recipe adds what it builds and saves.

Objectives: masked language modelling (``mask_prob`` of the caption's tokens, BERT's 80/10/10 replacement, the
softmax over the captions' words only, see ``PretrainHeads``) on the true pairs, and image-text matching (the
caption replaced by another scene's with probability 0.5; ViLT replaces the image, ``false_image_0``) in a second
forward; the loss is their sum. Both heads are dropped after pretraining. ``model.forward_features`` gives both models'
states in one layout, [text ; image class token ; patches], and ``model.pool`` what their task heads read, so the
objectives are written once. The recipe: the pretraining loop (``pretrain.base``), lr 5e-4, batch 64, 1,500 steps
(two passes per step, 2.4 epochs of 40,000 pairs; ours).

Research options, all off in the bundled recipes (measured in docs/vl.md; ``--set KEY=VALUE``):

* ``patch_loss`` > 0: the scene encoder's objective is kept as a third loss (× the weight): the true pairs' patch
  tokens predict their object's shape, colour and centre (``pretrain.scenes.patch_labels``; a linear head each). ITM +
  MLM alone wipe out the patch tokens' shape information (``benchmarks/perf/vlp_patch_probe.py``: 98.0% -> 45.4%).
* ``itm_own_pooler``: ITM reads [CLS] through a pooler of its own, dropped with the heads, so the model's pooler
  (which the task heads read) is saved as initialised.
* ``wpa`` > 0: ViLT's word-patch alignment (``objectives.compute_itm_wpa``, weight 0.1 in ViLT): the optimal-transport
  distance between the text and patch tokens (IPOT, UNITER's β = 0.5, 50 iterations) pulled down on true pairs and
  pushed up on false ones.
* ``region_captions`` > 0: that share of the captions are region descriptions (``pretrain.captions.region``); an ITM
  negative that is true of the image is redrawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from petlbench.config.method_config import Range
from petlbench.pretrain.base import Objective, Recipe, RecipeConfig
from petlbench.pretrain.captions import CAPTION_STREAM, caption_vocabulary, scene_captions
from petlbench.pretrain.scenes import LABEL_HEADS
from petlbench.vl.models.vilt import Pooler

# how the provenance names ``scene_captions``: the committed files' label (module since renamed), kept so that the
# recipes rebuild the committed bytes
LABEL = "vl.vlp_pretrain.scene_captions"
IPOT_BETA, IPOT_ITERATIONS = 0.5, 50  # UNITER's, as ViLT's compute_itm_wpa (Kim et al. 2021, Sec. 3.2)


@dataclass(frozen=True)
class VLPConfig(RecipeConfig):
    steps: Annotated[int, Range(ge=1)] = 1500  # ours: the models start from pretrained parts
    lr: Annotated[float, Range(gt=0)] = 5e-4  # ours: half the micro ViTs'
    held_out: Annotated[int | None, Range(ge=1)] = 1_000  # held-out pairs scored
    pool: Annotated[int, Range(ge=1)] = 40_000  # generated scene-caption pairs
    mask_prob: Annotated[float, Range(gt=0, lt=1)] = 0.15  # BERT's, as ViLT's MLM
    patch_loss: Annotated[float, Range(ge=0)] = 0.0  # weight of the scene encoder's patch labels (ours; 0 = off)
    itm_own_pooler: bool = False  # ITM through a pooler of its own, dropped after (ours)
    wpa: Annotated[float, Range(ge=0)] = 0.0  # weight of word-patch alignment (ViLT: 0.1; 0 = off)
    region_captions: Annotated[float, Range(ge=0, le=1)] = 0.0  # share of region descriptions (ours; 0 = off)


class PretrainHeads(nn.Module):
    """ViLT's MLM head (dense + GELU + LayerNorm, decoder tied to the word embeddings, own bias; METER's: a decoder
    of its own) and ITM head. The MLM softmax runs over ``vocab`` (the pretraining captions' word ids; ours): with all
    30,522 rows every word the captions never use (the questions' "what", "how", "many") gets only the softmax's
    push-down, and those rows collapse onto one direction (measured on the first bundled model: cosine 0.8-0.9
    between "what", "color", "circles", "?"), so fine-tuning starts unable to tell the questions apart. Rows outside
    ``vocab`` keep their initialisation (N(0, 0.02), as ViLT's text embeddings)."""

    def __init__(self, model: nn.Module, vocab: torch.Tensor, vocab_size: int, words: nn.Embedding | None,
                 cfg: VLPConfig) -> None:
        super().__init__()
        d, self.tied = model.spec.hidden_size, words is not None
        self.transform = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.LayerNorm(d, eps=model.spec.layer_norm_eps))
        if self.tied:
            self.bias = nn.Parameter(torch.zeros(len(vocab)))
        else:  # METER's MLM head has a decoder of its own (its word embeddings are the frozen text encoder's)
            self.decoder = nn.Linear(d, len(vocab))
        pooled = d if self.tied else 2 * d  # METER's ITM head reads both poolers (official ITMHead(hidden * 2))
        self.itm = nn.Sequential(Pooler(d), nn.Linear(d, 2)) if cfg.itm_own_pooler else nn.Linear(pooled, 2)
        if cfg.patch_loss:
            self.patches = nn.ModuleList(nn.Linear(d, k) for k in LABEL_HEADS.values())
        if self.tied:
            self.words = words  # tied, not owned
        self.register_buffer("vocab", vocab, persistent=False)
        index = torch.full((vocab_size,), -100, dtype=torch.long)
        index[vocab] = torch.arange(len(vocab))
        self.register_buffer("index", index, persistent=False)  # word id -> position in ``vocab``

    def mlm(self, text_states: torch.Tensor) -> torch.Tensor:
        """Logits over ``vocab``; ``self.index[ids]`` are the matching targets."""
        if not self.tied:
            return self.decoder(self.transform(text_states))
        return self.transform(text_states) @ self.words.weight[self.vocab].t() + self.bias


def mask_tokens(ids: torch.Tensor, attn: torch.Tensor, tokenizer: Any, rng: np.random.Generator,
                vocab: torch.Tensor, prob: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked ids, labels with -100 where not predicted): BERT's ``prob`` with 80% [MASK], 10% a random word of
    ``vocab``, 10% kept."""
    special = torch.as_tensor(np.isin(ids.numpy(), tokenizer.all_special_ids))
    u = torch.from_numpy(rng.random(tuple(ids.shape)))
    chosen = (u < prob) & attn.bool() & ~special
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    r = torch.from_numpy(rng.random(tuple(ids.shape)))
    out = ids.clone()
    out[chosen & (r < 0.8)] = tokenizer.mask_token_id
    rand = chosen & (r >= 0.8) & (r < 0.9)
    out[rand] = vocab[torch.from_numpy(rng.integers(0, len(vocab), int(rand.sum())))]
    return out, labels


@dataclass
class Pairs:
    """A pool of scene-caption pairs and what batches of them are made with."""

    images: np.ndarray
    texts: list[str]
    labels: np.ndarray  # patch labels
    truths: list[frozenset[str]]
    tokenize: Any  # texts -> input ids + attention mask
    tokenizer: Any
    prep: Any  # images -> pixel values

    def batch(self, idx: np.ndarray, texts: list[str]) -> dict[str, torch.Tensor]:
        return {**self.tokenize(texts), "pixel_values": self.prep(self.images[idx])}

    def others(self, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """For each index another index of the pool (the ITM negative's caption), redrawn while its caption is a
        region description true of the index's scene (never the case without region captions: no extra draws)."""
        n = len(self.texts)
        other = (idx + rng.integers(1, n, len(idx))) % n
        while bad := [k for k, (i, j) in enumerate(zip(idx, other, strict=True)) if self.texts[j] in self.truths[i]]:
            other[bad] = (idx[bad] + rng.integers(1, n, len(bad))) % n
        return other


def losses(model: nn.Module, heads: PretrainHeads, pairs: Pairs, idx: np.ndarray, rng: np.random.Generator,
           cfg: VLPConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """(the summed loss, accuracies %) on the pairs ``idx``: MLM on the true pairs (+ the patch-label loss × its
    weight), then ITM against a caption of another scene per sample (+ word-patch alignment × its weight)."""
    from petlbench.engine.loop import to_device

    dev, other = heads.vocab.device, pairs.others(idx, rng)  # batches are built and masked on the CPU
    texts = [pairs.texts[i] for i in idx]
    true = pairs.batch(idx, texts)
    ids, labels = mask_tokens(true["input_ids"], true["attention_mask"], pairs.tokenizer, rng, heads.vocab.cpu(),
                              cfg.mask_prob)
    hidden = model.forward_features(to_device({**true, "input_ids": ids}, dev))
    loss, acc = _mlm(heads, hidden, labels.to(dev), ids.shape[1])
    if cfg.patch_loss:
        patch, acc["patch_shape"] = _patch_loss(heads, hidden[:, ids.shape[1] + 1:], pairs.labels[idx], dev)
        loss = loss + cfg.patch_loss * patch
    match = torch.from_numpy(rng.random(len(idx)) >= 0.5)
    mixed = [a if m else pairs.texts[b] for a, b, m in zip(texts, other, match.tolist(), strict=True)]
    pair, match = to_device(pairs.batch(idx, mixed), dev), match.to(dev)
    states = model.forward_features(pair)
    itm_logits = heads.itm(states[:, 0] if cfg.itm_own_pooler else model.pool(states, pair["input_ids"].shape[1]))
    acc["itm"] = 100.0 * (itm_logits.argmax(-1) == match.long()).float().mean().item()
    loss = loss + F.cross_entropy(itm_logits, match.long())
    if cfg.wpa:
        distance = alignment_distance(states, pair["attention_mask"])
        loss = loss + cfg.wpa * (distance[match].sum() - distance[~match].sum()) / len(distance)
    return loss, acc


def _mlm(heads: PretrainHeads, hidden: torch.Tensor, labels: torch.Tensor, t: int) -> tuple[torch.Tensor, dict]:
    chosen = labels != -100
    logits, target = heads.mlm(hidden[:, :t][chosen]), heads.index[labels[chosen]]  # only masked positions scored
    acc = {"mlm": 100.0 * (logits.argmax(-1) == target).float().mean().item() if len(target) else 0.0}
    return F.cross_entropy(logits, target), acc


def _patch_loss(heads: PretrainHeads, patches: torch.Tensor, labels: np.ndarray, dev) -> tuple[torch.Tensor, float]:
    """The patch-label loss on the patch tokens (after the image's [class] token) and the shape head's accuracy on
    the patches an object covers."""
    y = torch.from_numpy(labels).flatten(2).to(dev)  # B×3×G², in LABEL_HEADS order
    out = [h(patches) for h in heads.patches]
    loss = sum(F.cross_entropy(o.flatten(0, 1), y[:, i].flatten()) for i, o in enumerate(out))
    obj = y[:, 0] > 0
    return loss, 100.0 * (out[0].argmax(-1)[obj] == y[:, 0][obj]).float().mean().item()


def alignment_distance(states: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
    """ViLT's word-patch alignment distance per pair (``compute_itm_wpa``): the optimal-transport cost, by IPOT
    (Xie et al. 2018; the plan computed without gradient), between the text tokens (without [CLS] and the final
    [SEP]) and the patch tokens (without the image's [class] token) under cosine distance, each side uniform."""
    t = text_mask.shape[1]
    words = text_mask.bool().clone()
    words[torch.arange(len(words)), words.sum(1) - 1] = False
    words[:, 0] = False
    cost = 1 - F.normalize(states[:, :t].float(), dim=-1) @ F.normalize(states[:, t + 1:].float(), dim=-1).transpose(1, 2)
    plan = ipot(cost.detach(), words)
    return (cost * plan).sum((1, 2))


@torch.no_grad()
def ipot(cost: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
    """The IPOT transport plan (B×M×N) between ``words`` (B×M valid text positions, mass 1/m each) and all N
    patches (mass 1/N each): proximal point iterations with one Sinkhorn step each, as ViLT's ``ipot``."""
    m, n = words.sum(1, keepdim=True).clamp_min(1).to(cost.dtype), cost.shape[2]  # no words: an all-zero plan
    kernel = torch.exp(-cost / IPOT_BETA) * words[:, :, None]
    plan, sigma = torch.ones_like(cost) * words[:, :, None], words.to(cost.dtype) / m
    for _ in range(IPOT_ITERATIONS):
        q = kernel * plan
        delta = 1 / (n * (q * sigma[:, :, None]).sum(1)).clamp_min(1e-30)  # B×N
        sigma = torch.where(words, 1 / (m * (q * delta[:, None, :]).sum(2)).clamp_min(1e-30), 0)
        plan = sigma[:, :, None] * q * delta[:, None, :]
    return plan


@torch.no_grad()
def evaluate(model: nn.Module, heads: PretrainHeads, pairs: Pairs, seed: int, cfg: VLPConfig) -> dict[str, float]:
    """Held-out image-text matching, masked-word and (with ``patch_loss``) patch-shape accuracy (dropout off), on
    pairs never trained on."""
    model.eval()
    rng = np.random.default_rng(seed + 1)
    n, total = len(pairs.texts), {}
    for start in range(0, n, 250):
        idx = np.arange(start, min(n, start + 250))
        _, acc = losses(model, heads, pairs, idx, rng, cfg)
        for k, v in acc.items():
            total[k] = total.get(k, 0.0) + v * len(idx)
    model.train()
    return {**{f"eval_{k}_acc": round(v / n, 2) for k, v in total.items()}, "eval_pairs": n}


class VLPRecipe(Recipe):
    """The scene-caption pretraining of a micro VL-pretrained model; a subclass builds the model, names the word
    embeddings the MLM head ties to (None: a decoder of its own), says how it was initialised and what it saves."""

    Config, devices = VLPConfig, True
    init = ""  # the provenance's "init" (how the model starts)

    def words(self, model: nn.Module) -> nn.Embedding | None:
        return None

    def vocab_size(self, model: nn.Module) -> int:
        raise NotImplementedError

    def objective(self, model, prep, cfg, rng):
        from petlbench.vl.data.raw import tokenizer_for
        from petlbench.vl.models.text import OFFLINE_TEXT, text_tokenizer

        tokenize, tokenizer = tokenizer_for(OFFLINE_TEXT, model.max_text_len), text_tokenizer(OFFLINE_TEXT)
        patch, dev = model.spec.patch_size, next(model.parameters()).device
        train = Pairs(*scene_captions(cfg.pool, cfg.seed, patch, cfg.region_captions), tokenize, tokenizer, prep)
        heads = PretrainHeads(model, caption_vocabulary(train.texts, tokenizer), self.vocab_size(model),
                              self.words(model), cfg).to(dev)

        def step(rng: np.random.Generator) -> tuple[torch.Tensor, float]:
            loss, acc = losses(model, heads, train, rng.integers(0, cfg.pool, cfg.batch_size), rng, cfg)
            return loss, acc["itm"]

        def scores() -> dict[str, float]:
            held_out = scene_captions(cfg.held_out, cfg.seed + 1, patch, cfg.region_captions)
            return evaluate(model, heads, Pairs(*held_out, tokenize, tokenizer, prep), cfg.seed, cfg)

        return Objective(nn.ModuleList([model, heads]), step, scores, cfg.pool, "itm_acc", self.facts(cfg), train.texts)

    def facts(self, cfg: VLPConfig) -> dict[str, Any]:
        own_pooler = ", its own pooler" if cfg.itm_own_pooler else ""
        patches = f" + {cfg.patch_loss} x the scene encoder's patch labels" if cfg.patch_loss else ""
        return {"objectives": f"masked language modelling ({cfg.mask_prob:.0%}, 80/10/10) + image-text matching "
                              f"(p = 0.5{own_pooler}){patches}",
                "init": self.init + ("; the pooler is saved as initialised (no pretraining gradient)"
                                     if cfg.itm_own_pooler else ""),
                "data": f"{cfg.pool} generated scene-caption pairs ({LABEL}, seed {cfg.seed}, "
                        f"stream {CAPTION_STREAM}; disjoint from the VL task splits)"
                        + (f"; {cfg.region_captions:.0%} of the captions region descriptions"
                           if cfg.region_captions else "")}
