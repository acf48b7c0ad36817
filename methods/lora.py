"""LoRA (Hu et al., ICLR 2022) on the attention projections of a timm ViT.

``W' = W + (alpha/r)·B·A`` with A (r×d_in) kaiming-uniform and B (d_out×r) zero: exact identity at init.
timm fuses q, k, v into one ``attn.qkv`` Linear (3d×d). ``targets``:
- ``qkv``: one low-rank update of the fused 3d×d weight (A r×d, B 3d×r), as vision PETL suites do;
- ``q,v``: separate updates of the q and v row-slices only (the paper's choice for GPT/RoBERTa).
Both have ``4·d·r`` params per block (ViT-B/16, r=8: 294,912). ``finalize`` merges the update into the
base weight and restores a plain ``nn.Linear``: inference costs exactly the base model.

BERT layers (separate ``query``/``key``/``value`` Linears): ``bert_targets`` picks them, each with its own A, B;
the default ``q,v`` is the paper's choice for (Ro)BERTa (Hu et al. 2022, Sec. 7.1). BERT-base, r=8:
12 × 2 × 2·768·8 = 294,912. ``targets`` applies to fused qkv Linears. The projections are the kind's
(``models.layout``): on METER those of the self- and the cross-attention of its 12 co-attention layers. On ViLT and
METER the defaults are the APT paper's LoRA baseline (``APT_REPO``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from petlbench.config.method_config import Range
from petlbench.methods.base import Method, MethodConfig, MethodModule, layout_of
from petlbench.methods.recipe import vlp_recipe
from petlbench.models.layout import Layout, Projection
from petlbench.registry import register

BERT_TARGETS = {"q,v": ("query", "value"), "q,k,v": ("query", "key", "value")}


class LoRALinear(MethodModule):
    """A frozen Linear plus low-rank updates of row-slices of its weight.

    Holds the original ``weight``/``bias`` Parameters under the same names (so ``attn.qkv.weight`` keeps its
    name) and one pair ``lora_A[i]`` (r×d_in), ``lora_B[i]`` (rows×r) per slice ``slices[i] = (start, end)``.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float, slices: list[tuple[int, int]],
                 dropout: float = 0.0, init: str = "kaiming") -> None:
        super().__init__()
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight  # frozen backbone tensors, shared (not copied)
        self.bias = base.bias
        self.slices = [tuple(s) for s in slices]
        self.scaling = alpha / rank
        dd = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.ParameterList(nn.Parameter(torch.empty(rank, self.in_features, **dd)) for _ in slices)
        self.lora_B = nn.ParameterList(nn.Parameter(torch.zeros(e - s, rank, **dd)) for s, e in slices)
        for a in self.lora_A:
            if init == "gaussian":  # N(0, 1), the APT repository's ``nn.init.normal_(self.lora_A)``
                nn.init.normal_(a)
            else:
                nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # as the official loralib
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight, self.bias)
        xd = self.drop(x)
        for (s, e), a, b in zip(self.slices, self.lora_A, self.lora_B, strict=True):
            delta = F.linear(F.linear(xd, a), b) * self.scaling  # (..., e - s): low-rank path, no d×d product
            if (s, e) != (0, self.out_features):
                delta = F.pad(delta, (s, self.out_features - e))  # zeros on the rows LoRA does not adapt
            out = out + delta
        return out

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """A plain Linear with ``W + scaling·B·A`` folded in (frozen, like the backbone)."""
        lin = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                        device=self.weight.device, dtype=self.weight.dtype)
        w = self.weight.detach().clone()
        for (s, e), a, b in zip(self.slices, self.lora_A, self.lora_B, strict=True):
            w[s:e] += (b @ a).to(w.dtype) * self.scaling
        lin.weight.copy_(w)
        if self.bias is not None:
            lin.bias.copy_(self.bias)
        lin.requires_grad_(False)
        return lin

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, slices={self.slices}, scaling={self.scaling}"


# The APT paper's LoRA baseline on the VL-pretrained kinds (official DoubtedSteam/APT ViLT/vilt/modules/
# vision_transformer_lora.py ``lora``, METER/meter/modules/bert_model_lora.py): updates of q and v of every self- and
# (METER) cross-attention, A ~ N(0, 1), B = 0, dropout 0.1 on the input, no scaling (``* self.scaling`` is commented
# out: alpha = r). Rank 4 gives the README's counts, ViLT-B/32 12 x 2 x 2 x 768 x 4 = 147,456 (0.15M) and METER
# 12 x 4 x 2 x 768 x 4 = 294,912 (0.29M); the released files instantiate rank 204 (ViLT, line 340) and 27 (METER,
# line 255), which give 7.52M and 1.99M (docs/methods.md, deviations).
APT_REPO = {"rank": 4, "alpha": 4.0, "dropout": 0.1, "init": "gaussian", "targets": "q,v", "bert_targets": "q,v"}


@dataclass
class LoRAConfig(MethodConfig):
    """LoRA keys; the training recipe is petlbench's shared VTAB-1k recipe (inherited from ``MethodConfig``:
    NOAH's values, with the differences documented there), which NOAH used for its LoRA baseline."""

    # bert_targets at its default is left out of a run's identity (results stored before it existed keep theirs)
    NEUTRAL: ClassVar[dict[str, Any]] = {**MethodConfig.NEUTRAL, "bert_targets": "q,v", "init": "kaiming"}

    rank: Annotated[int, Range(ge=1)] = 8  # r; r=8 is the VTAB-1k setting of NOAH's LoRA baseline (294,912 params on ViT-B/16)
    alpha: Annotated[float, Range(gt=0)] = 8.0  # scaling alpha/r = 1; the paper sets alpha to the first r tried and does not tune it
    # qkv (default): adapt timm's fused qkv Linear as one 3d×d matrix, as vision PETL suites (NOAH,
    # V-PETL Bench) do, so it is the comparable number; q,v adapts only the q and v slices (paper, Sec. 7.1).
    targets: Literal["qkv", "q,v"] = "qkv"
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.0  # dropout on the LoRA input (loralib option); 0 as in NOAH's VTAB LoRA baseline
    # VL model only: which BERT attention Linears get an update; q,v = the paper's (Ro)BERTa choice (Sec. 7.1)
    bert_targets: Literal[tuple(BERT_TARGETS)] = "q,v"
    init: Literal["kaiming", "gaussian"] = "kaiming"  # A: kaiming-uniform (loralib) | N(0, 1) (the APT repository)

    @classmethod
    def for_task(cls, task: Any, builtin: bool, kind: str | None = None) -> dict[str, Any]:
        return {**vlp_recipe(kind, task), **(APT_REPO if kind in ("vilt", "meter") else {})}


@register
class LoRA(Method):
    name = "lora"
    description = "LoRA: low-rank updates of the attention qkv weights, merged into them after training."
    Config = LoRAConfig
    supports = frozenset({"blocks", "projections"})

    def _names(self, layout: Layout) -> tuple[str, ...]:
        """The projections adapted: ``targets`` on a fused qkv (pre-norm blocks), ``bert_targets`` on BERT layers."""
        if layout.layer == "vit":
            return ("query", "key", "value") if self.cfg.targets == "qkv" else ("query", "value")
        return BERT_TARGETS[self.cfg.bert_targets]

    def apply(self, model: nn.Module, layout: Layout) -> nn.Module:
        c = self.cfg
        for block in layout.blocks(model):
            for owner, attr, slices in linears(layout.projections(block), self._names(layout)):
                setattr(owner, attr, LoRALinear(getattr(owner, attr), c.rank, c.alpha, slices, c.dropout, c.init))
        return model

    def finalize(self, model: nn.Module) -> nn.Module:
        layout = layout_of(model)
        for block in layout.blocks(model):
            for owner, attr, _ in linears(layout.projections(block), ("query", "key", "value")):
                if isinstance(lin := getattr(owner, attr), LoRALinear):
                    setattr(owner, attr, lin.merged())
        return model


def linears(projections: dict[str, list[Projection]], names: tuple[str, ...]) -> list[tuple[nn.Module, str, list]]:
    """(owner, attribute, row slices) of every Linear holding one of the ``names`` projections, once each; adjacent
    rows merge (timm's fused q, k, v all adapted: one update of the 3d x d weight, as vision PETL suites do)."""
    found: dict[tuple[int, str], tuple[nn.Module, str, list]] = {}
    for name in names:
        for owner, attr, rows in projections[name]:
            entry = found.setdefault((id(owner), attr), (owner, attr, []))
            entry[2].append(rows or (0, getattr(owner, attr).out_features))
    return [(owner, attr, _merge(sorted(rows))) for owner, attr, rows in found.values()]


def _merge(rows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out = [rows[0]]
    for s, e in rows[1:]:
        out[-1:] = [(out[-1][0], e)] if s == out[-1][1] else [out[-1], (s, e)]
    return out
