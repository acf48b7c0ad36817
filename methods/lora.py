"""LoRA (Hu et al., ICLR 2022) on the attention projections of a timm ViT.

``W' = W + (alpha/r)·B·A`` with A (r×d_in) kaiming-uniform and B (d_out×r) zero: exact identity at init.
timm fuses q, k, v into one ``attn.qkv`` Linear (3d×d). ``targets``:
- ``qkv``: one low-rank update of the fused 3d×d weight (A r×d, B 3d×r), as vision PETL suites do;
- ``q,v``: separate updates of the q and v row-slices only (the paper's choice for GPT/RoBERTa).
Both have ``4·d·r`` params per block (ViT-B/16, r=8: 294,912). ``finalize`` merges the update into the
base weight and restores a plain ``nn.Linear``: inference costs exactly the base model.

VL model (BERT layers, separate ``query``/``key``/``value`` Linears): ``bert_targets`` picks them, each with its
own A, B; the default ``q,v`` is the paper's choice for (Ro)BERTa (Hu et al. 2022, Sec. 7.1). BERT-base, r=8:
12 × 2 × 2·768·8 = 294,912. ``targets`` applies to timm ViTs only. On METER the same, in the self-attention of its
12 co-attention layers (where APT and DAS sit; the encoders and the cross-attention get none: ours).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from petlbench.config.method_config import Range
from petlbench.methods._bert import (
    attention_projection,
    bert_layers,
    has_bert_layers,
    set_attention_projection,
)
from petlbench.methods._modules import vit_blocks
from petlbench.methods.base import Method, MethodConfig, MethodModule
from petlbench.registry import register

BERT_TARGETS = {"q,v": ("query", "value"), "q,k,v": ("query", "key", "value")}


class LoRALinear(MethodModule):
    """A frozen Linear plus low-rank updates of row-slices of its weight.

    Holds the original ``weight``/``bias`` Parameters under the same names (so ``attn.qkv.weight`` keeps its
    name) and one pair ``lora_A[i]`` (r×d_in), ``lora_B[i]`` (rows×r) per slice ``slices[i] = (start, end)``.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float, slices: list[tuple[int, int]],
                 dropout: float = 0.0) -> None:
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


@dataclass
class LoRAConfig(MethodConfig):
    """LoRA keys; the training recipe is petlbench's shared VTAB-1k recipe (inherited from ``MethodConfig``:
    NOAH's values, with the differences documented there), which NOAH used for its LoRA baseline."""

    # bert_targets at its default is left out of a run's identity (results stored before it existed keep theirs)
    NEUTRAL: ClassVar[dict[str, Any]] = {**MethodConfig.NEUTRAL, "bert_targets": "q,v"}

    rank: Annotated[int, Range(ge=1)] = 8  # r; r=8 is the VTAB-1k setting of NOAH's LoRA baseline (294,912 params on ViT-B/16)
    alpha: Annotated[float, Range(gt=0)] = 8.0  # scaling alpha/r = 1; the paper sets alpha to the first r tried and does not tune it
    # qkv (default): adapt timm's fused qkv Linear as one 3d×d matrix, as vision PETL suites (NOAH,
    # V-PETL Bench) do, so it is the comparable number; q,v adapts only the q and v slices (paper, Sec. 7.1).
    targets: Literal["qkv", "q,v"] = "qkv"
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.0  # dropout on the LoRA input (loralib option); 0 as in NOAH's VTAB LoRA baseline
    # VL model only: which BERT attention Linears get an update; q,v = the paper's (Ro)BERTa choice (Sec. 7.1)
    bert_targets: Literal[tuple(BERT_TARGETS)] = "q,v"


@register
class LoRA(Method):
    name = "lora"
    description = "LoRA: low-rank updates of the attention qkv weights, merged into them after training."
    Config = LoRAConfig
    supports = frozenset({"vit", "vl", "vilt", "meter"})

    def apply(self, model: nn.Module) -> nn.Module:
        c = self.cfg
        if has_bert_layers(model):
            return self._apply_bert(model)
        for block in vit_blocks(model):
            qkv = getattr(getattr(block, "attn", None), "qkv", None)
            if not isinstance(qkv, nn.Linear):
                raise ValueError(f"{type(block).__name__} has no fused attn.qkv Linear: LoRA here needs a timm ViT")
            d_out = qkv.out_features
            if c.targets == "qkv":
                slices = [(0, d_out)]
            else:
                if d_out % 3:
                    raise ValueError(f"attn.qkv has {d_out} outputs, not 3 equal q/k/v slices; use --set targets=qkv")
                d = d_out // 3  # timm's row order is [q; k; v]
                slices = [(0, d), (2 * d, 3 * d)]
            block.attn.qkv = LoRALinear(qkv, c.rank, c.alpha, slices, c.dropout)
        return model

    def _apply_bert(self, model: nn.Module) -> nn.Module:
        c = self.cfg
        for layer in bert_layers(model):
            for name in BERT_TARGETS[c.bert_targets]:
                lin = attention_projection(layer, name)
                set_attention_projection(layer, name, LoRALinear(lin, c.rank, c.alpha, [(0, lin.out_features)], c.dropout))
        return model

    def finalize(self, model: nn.Module) -> nn.Module:
        if has_bert_layers(model):
            for layer in bert_layers(model):
                for name in ("query", "key", "value"):
                    if isinstance(lin := attention_projection(layer, name), LoRALinear):
                        set_attention_projection(layer, name, lin.merged())
            return model
        for block in vit_blocks(model):
            if isinstance(block.attn.qkv, LoRALinear):
                block.attn.qkv = block.attn.qkv.merged()
        return model
