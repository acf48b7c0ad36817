"""VPT: Visual Prompt Tuning (Jia et al., ECCV 2022) on a timm ViT.

Sequence at the input of block 1: ``[prefix (CLS, registers), P, patches]``; P (p×d) is inserted after
the positional embedding (prompts get none) and after ``norm_pre``, i.e. at the input of the first block.
- shallow: one prompt set, at the input of block 1 only;
- deep: before every block i >= 2 the p prompt slots are overwritten by a fresh learnable set (L sets).
Prompt outputs are dropped after the last block, before the final norm; ``forward_features`` then has the
backbone's usual shape, so timm's ``forward_head`` pools exactly as without prompts: ``token`` pooling
reads CLS (index 0) and ``avg`` pooling averages patch tokens only (prompts already removed).
Init uniform(-v, v), v = sqrt(6 / (3·ph·pw + d)) (xavier-uniform of a patch-sized projection; VPT Sec. 3).
Params: shallow p·d, deep L·p·d (ViT-B/16: deep p=10 -> 92,160; shallow p=100 -> 76,800).
Cost: the sequence grows by p tokens in every block, at inference too (p=50 on ViT-B/16: ~1.25x MACs).
Only ``forward_features`` (hence ``forward``) sees prompts; ``forward_intermediates`` does not.
"""

from __future__ import annotations

import math
import types
from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn

from petlbench.config.method_config import Range
from petlbench.methods._modules import factory_kwargs
from petlbench.methods.base import Method, MethodConfig, MethodModule, Optimizer
from petlbench.models.layout import Layout
from petlbench.registry import register


class VPTPrompts(MethodModule):
    """The prompt sets ``prompts`` (S×p×d; S = L deep, 1 shallow) and prompt dropout."""

    def __init__(self, sets: int, num_tokens: int, dim: int, patch_size: tuple[int, int], dropout: float,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.prompts = nn.Parameter(torch.empty(sets, num_tokens, dim, device=device, dtype=dtype))
        v = math.sqrt(6.0 / float(3 * patch_size[0] * patch_size[1] + dim))
        nn.init.uniform_(self.prompts, -v, v)
        self.dropout = dropout

    def prompt(self, i: int, batch: int) -> torch.Tensor:
        """Prompt set ``i`` for a batch: (B, p, d), after dropout (a mask per sample, as in official VPT)."""
        # a plain method, not forward(): a view of a Parameter taken under no_grad still reports
        # requires_grad=True, which trips FlopCounterMode's module hooks on a module's inputs/outputs
        return F.dropout(self.prompts[i].unsqueeze(0).expand(batch, -1, -1), self.dropout, self.training)


def _vpt_forward_features(self: nn.Module, x: torch.Tensor, attn_mask=None, is_causal: bool = False) -> torch.Tensor:
    """timm ViT ``forward_features`` with prompts (replaces it per instance)."""
    if attn_mask is not None or is_causal:
        raise ValueError("VPT does not support attention masks")
    x = self.patch_embed(x)
    x = self._pos_embed(x)
    x = self.patch_drop(x)
    x = self.norm_pre(x)  # (B, n0 + N, d), n0 = prefix tokens (CLS, registers)
    n0, p, vpt = self.num_prefix_tokens, self.vpt.prompts.shape[1], self.vpt
    b = x.shape[0]
    for i, blk in enumerate(self.blocks):
        if i == 0:
            x = torch.cat([x[:, :n0], vpt.prompt(0, b).to(x.dtype), x[:, n0:]], dim=1)  # (B, n0 + p + N, d)
        elif i < vpt.prompts.shape[0]:  # deep: overwrite the prompt slots with set i
            # slice_scatter, not cat of slices: one copy forward and one backward (cat's slices each
            # allocate a zero-filled full-size gradient); same values (benchmarks/perf/step_bench.py)
            x = torch.slice_scatter(x, vpt.prompt(i, b).to(x.dtype), dim=1, start=n0, end=n0 + p)
        x = blk(x)
    x = torch.cat([x[:, :n0], x[:, n0 + p:]], dim=1)  # drop prompt outputs -> (B, n0 + N, d)
    return self.norm(x)


@dataclass
class VPTConfig(MethodConfig):
    """VPT keys and its own VTAB-1k recipe (Jia et al. 2022, Appendix A, Table 6): SGD momentum 0.9,
    cosine decay, 10 warm-up of 100 epochs, batch 64; lr and weight decay are grid-searched per task
    (lr in {50, 25, 10, 5, 2.5, 1, 0.5, 0.25, 0.1, 0.05} x batch/256, wd in {1e-2, 1e-3, 1e-4, 0})."""

    num_tokens: Annotated[int, Range(ge=1)] = 10  # p; VPT-deep's typical VTAB-1k choice (searched per task, Table 13)
    deep: bool = True  # VPT-deep (the paper's main variant); false = VPT-shallow
    # prompt dropout; none = as the official VPT configs: 0.1 for deep, 0.0 for shallow (resolved below)
    dropout: Annotated[float | None, Range(ge=0, lt=1)] = None
    optimizer: Optimizer = "sgd"  # VPT Appendix A
    lr: float = 0.25  # = 1.0 (a grid value) x 64/256; the paper picks lr per task on val
    weight_decay: float = 1e-4  # one value of the paper's grid
    # epochs 100, warmup_epochs 10, batch_size 64: inherited, as in VPT Appendix A

    def __post_init__(self) -> None:
        if self.dropout is None:
            self.dropout = 0.1 if self.deep else 0.0


@register
class VPT(Method):
    name = "vpt"
    description = "VPT: learnable prompt tokens after CLS at the input (shallow) or before every block (deep)."
    Config = VPTConfig
    supports = frozenset({"tokens", "blocks"})  # the image token stream of a timm ViT; deep: one set per block

    def apply(self, model: nn.Module, layout: Layout) -> nn.Module:
        blocks = layout.blocks(model)
        if not hasattr(model, "num_prefix_tokens") or not hasattr(model, "_pos_embed"):
            raise ValueError(f"{type(model).__name__} is not a timm VisionTransformer; VPT needs one")
        patch = tuple(getattr(model.patch_embed, "patch_size", (16, 16)))
        sets = len(blocks) if self.cfg.deep else 1
        model.vpt = VPTPrompts(sets, self.cfg.num_tokens, layout.width(model), patch, self.cfg.dropout,
                               **factory_kwargs(model))
        model.forward_features = types.MethodType(_vpt_forward_features, model)
        return model
