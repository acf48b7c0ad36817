"""Bottleneck adapters (Houlsby et al., ICML 2019; Pfeiffer et al., EACL 2021), sequential in each block.

houlsby:  two adapters per block, on the attention output and on the MLP output, before the residual add:
          ``h <- h + s·Up(act(Down(h)))`` with ``h = Attn(LN1 x)`` resp. ``h = MLP(LN2 x)``.
pfeiffer: one adapter per block, on the MLP output.
Near-identity init: random Down, zero Up (not both zero: then only the up-bias would get a gradient).
Params per adapter ``2·d·r + r + d``; ViT-B/16 r=8: houlsby 313,536, pfeiffer 156,768.

VL model (post-LN BERT layers): the same adapters on the attention-output and FFN-output sublayers, after
dense + dropout and before the residual add and LayerNorm, ``LN(x + h + Adapter(h))`` (Houlsby 2019 Fig. 2;
the adapter-transformers "houlsby" config); pfeiffer = the FFN output only. See ``methods/_bert.py``.
BERT-base, bottleneck 96: 24 × 148,320 = 3,559,680. On METER the same on its 12 co-attention layers'
self-attention and FFN outputs (where APT and DAS sit; the encoders and the cross-attention output get none: ours).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from torch import nn

from petlbench.config.method_config import Range
from petlbench.methods._bert import (
    add_output_branches,
    attn_output,
    bert_layers,
    ffn_output,
    has_bert_layers,
    text_dim,
)
from petlbench.methods._modules import (
    Activation,
    Bottleneck,
    DownInit,
    UpInit,
    add_branches,
    embed_dim,
    factory_kwargs,
    vit_blocks,
)
from petlbench.methods.base import Method, MethodConfig
from petlbench.registry import register


@dataclass
class AdapterConfig(MethodConfig):
    """Adapter keys; the training recipe is petlbench's shared VTAB-1k recipe (inherited from
    ``MethodConfig``: NOAH's values, with the differences documented there), which NOAH used for its Adapter
    baseline."""

    style: Literal["houlsby", "pfeiffer"] = "houlsby"  # houlsby (2 per block) | pfeiffer (1 per block, after the MLP); Houlsby 2019 Fig. 2
    bottleneck: Annotated[int, Range(ge=1)] = 8  # r; r=8 is the VTAB-1k setting of NOAH / VPT's adapter baseline tables
    scale: float = 1.0  # s multiplying the adapter output; the papers use none (= 1)
    act: Activation = "relu"  # the papers leave the non-linearity open; ReLU as in Pfeiffer 2021 / AdaptFormer
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.0  # dropout inside the bottleneck; not used in the papers
    down_init: DownInit = "xavier"  # kaiming | xavier | normal (N(0, init_std), Houlsby's near-identity init)
    up_init: UpInit = "zero"  # zero (exact identity at init) | normal (Houlsby: N(0, init_std), near-identity)
    init_std: Annotated[float, Range(gt=0)] = 1e-2  # std of the "normal" inits, truncated at 2 std; Houlsby 2019 Sec. 3.6


@register
class Adapter(Method):
    name = "adapter"
    description = "Sequential bottleneck adapters after attention and MLP (Houlsby) or after the MLP (Pfeiffer)."
    Config = AdapterConfig
    supports = frozenset({"vit", "vl", "vilt", "meter"})

    def _make(self, d: int, dd: dict) -> Bottleneck:
        c = self.cfg
        return Bottleneck(d, c.bottleneck, act=c.act, dropout=c.dropout, scale=c.scale,
                          down_init=c.down_init, up_init=c.up_init, init_std=c.init_std, **dd)

    def apply(self, model: nn.Module) -> nn.Module:
        if has_bert_layers(model):
            return self._apply_bert(model)
        d, dd = embed_dim(model), factory_kwargs(model)
        for block in vit_blocks(model):
            if self.cfg.style == "houlsby":
                add_branches(block, attn_seq=self._make(d, dd), mlp_seq=self._make(d, dd))
            else:
                add_branches(block, mlp_seq=self._make(d, dd))
        return model

    def _apply_bert(self, model: nn.Module) -> nn.Module:
        d, dd = text_dim(model), factory_kwargs(model)
        for layer in bert_layers(model):
            if self.cfg.style == "houlsby":
                add_output_branches(attn_output(layer), seq_adapter=self._make(d, dd))
            add_output_branches(ffn_output(layer), seq_adapter=self._make(d, dd))
        return model
