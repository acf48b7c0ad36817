"""AdaptFormer (Chen et al., NeurIPS 2022): one bottleneck branch parallel to each block's MLP.

``x = x + MLP(LN2 x) + s·Up(Dropout(ReLU(Down x)))``: the branch reads the residual stream *before*
LN2 and is added outside drop-path / layer-scale (as in the official block). Down kaiming-uniform, Up zero,
biases zero, so the model is exactly the frozen backbone at init. Params ``L·(2·d·r + r + d)``;
ViT-B/16: r=8 -> 156,768, r=64 -> 1,189,632. Extra MACs per token and block: ``2·d·r``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from torch import nn

from petlbench.config.method_config import Range
from petlbench.methods._modules import Bottleneck, add_branches, factory_kwargs
from petlbench.methods.base import Method, MethodConfig
from petlbench.models.layout import Layout
from petlbench.registry import register


@dataclass
class AdaptFormerConfig(MethodConfig):
    """AdaptFormer keys; the training recipe is petlbench's shared VTAB-1k recipe (inherited from
    ``MethodConfig``: NOAH's values, with the differences documented there); NOAH reports AdaptFormer r=8
    on VTAB-1k with it."""

    bottleneck: Annotated[int, Range(ge=1)] = 64  # r; AdaptFormer's default (paper Sec. 4.1/Table 5: r=64); NOAH's VTAB table uses 8
    scale: float = 0.1  # s; AdaptFormer paper, Sec. 4.1 ("scaling factor s is set to 0.1")
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.1  # dropout inside the branch (official code's default adapter dropout 0.1)


@register
class AdaptFormer(Method):
    name = "adaptformer"
    description = "AdaptFormer: scaled bottleneck branch parallel to each MLP, fed the pre-LN residual stream."
    Config = AdaptFormerConfig
    supports = frozenset({"blocks", "ffn_outputs", "layers:vit"})  # a branch parallel to a pre-norm MLP

    def apply(self, model: nn.Module, layout: Layout) -> nn.Module:
        d, c, dd = layout.width(model), self.cfg, factory_kwargs(model)
        for block in layout.blocks(model):
            branch = Bottleneck(d, c.bottleneck, act="relu", dropout=c.dropout, scale=c.scale,
                                down_init="kaiming", up_init="zero", **dd)
            add_branches(block, mlp_par=branch)
        return model
