"""Bottleneck adapters (Houlsby et al., ICML 2019; Pfeiffer et al., EACL 2021), sequential in each block.

houlsby:  two adapters per block, on the attention output and on the MLP output, before the residual add:
          ``h <- h + s·Up(act(Down(h)))`` with ``h = Attn(LN1 x)`` resp. ``h = MLP(LN2 x)``.
pfeiffer: one adapter per block, on the MLP output.
Near-identity init: random Down, zero Up (not both zero: then only the up-bias would get a gradient).
Params per adapter ``2·d·r + r + d``; ViT-B/16 r=8: houlsby 313,536, pfeiffer 156,768.

VL model (post-LN BERT layers): the same adapters on the attention-output and FFN-output sublayers, after
dense + dropout and before the residual add and LayerNorm, ``LN(x + h + Adapter(h))`` (Houlsby 2019 Fig. 2;
the adapter-transformers "houlsby" config); pfeiffer = the FFN output only. See ``methods/_bert.py``.
BERT-base, bottleneck 96: 24 × 148,320 = 3,559,680. The insertion points are the kind's (``models.layout``): on
METER every self- and cross-attention output and FFN output of its 12 co-attention layers. On ViLT and METER the
defaults are the APT paper's adapter baseline (``APT_REPO_BY_KIND``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from torch import nn

from petlbench.config.method_config import Range
from petlbench.methods._bert import add_output_branches
from petlbench.methods._modules import Activation, Bottleneck, DownInit, UpInit, add_branches, factory_kwargs
from petlbench.methods.base import Method, MethodConfig
from petlbench.methods.recipe import vlp_recipe
from petlbench.models.layout import Layout
from petlbench.registry import register

# The APT paper's adapter baseline on the VL-pretrained kinds (official DoubtedSteam/APT): ViLT/vilt/modules/prompt.py
# ``Adapter`` (down 96, ReLU, up; both weights plain N(0, 1e-2), zero biases, the residual added inside) after the
# attention and MLP outputs of every block (vision_transformer_adapter.py ``Block.forward``: adapter0 / adapter1);
# METER/meter/modules/bert_model_adapter.py: the same module in every ``BertSelfOutput`` (self- and cross-attention)
# and ``BertOutput`` of the co-attention layers, after the output dense and before its dropout. ViLT-B/32: 24 x
# 148,320 = 3,559,680 (README 3.56M); METER: 36 x 148,320 = 5,339,520 (README 5.34M).
APT_REPO = {"bottleneck": 96, "act": "relu", "down_init": "gaussian", "up_init": "gaussian", "init_std": 1e-2}
APT_REPO_BY_KIND = {"vilt": APT_REPO, "meter": {**APT_REPO, "before_dropout": True}}


@dataclass
class AdapterConfig(MethodConfig):
    """Adapter keys; the training recipe is petlbench's shared VTAB-1k recipe (inherited from
    ``MethodConfig``: NOAH's values, with the differences documented there), which NOAH used for its Adapter
    baseline. On ViLT and METER the APT paper's adapter baseline (``APT_REPO_BY_KIND``) and the backbone's official
    fine-tuning recipe."""

    NEUTRAL: ClassVar[dict[str, Any]] = {**MethodConfig.NEUTRAL, "before_dropout": False}

    style: Literal["houlsby", "pfeiffer"] = "houlsby"  # houlsby (2 per block) | pfeiffer (1 per block, after the MLP); Houlsby 2019 Fig. 2
    bottleneck: Annotated[int, Range(ge=1)] = 8  # r; r=8 is the VTAB-1k setting of NOAH / VPT's adapter baseline tables
    scale: float = 1.0  # s multiplying the adapter output; the papers use none (= 1)
    act: Activation = "relu"  # the papers leave the non-linearity open; ReLU as in Pfeiffer 2021 / AdaptFormer
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.0  # dropout inside the bottleneck; not used in the papers
    down_init: DownInit = "xavier"  # kaiming | xavier | normal (N(0, init_std) truncated, Houlsby) | gaussian (untruncated)
    up_init: UpInit = "zero"  # zero (exact identity at init) | normal (Houlsby: near-identity) | gaussian (untruncated)
    init_std: Annotated[float, Range(gt=0)] = 1e-2  # std of the normal inits; Houlsby 2019 Sec. 3.6
    # post-LN (BERT) layers: right after the sublayer's output dense, before its dropout (the APT repo's METER adapter)
    # instead of after the dropout (Houlsby 2019 Fig. 2; adapter-transformers' houlsby config)
    before_dropout: bool = False

    @classmethod
    def for_task(cls, task: Any, builtin: bool, kind: str | None = None) -> dict[str, Any]:
        return {**vlp_recipe(kind, task), **APT_REPO_BY_KIND.get(kind, {})}


@register
class Adapter(Method):
    name = "adapter"
    description = "Sequential bottleneck adapters after attention and MLP (Houlsby) or after the MLP (Pfeiffer)."
    Config = AdapterConfig
    supports = frozenset({"blocks", "attention_outputs", "ffn_outputs"})

    def _make(self, d: int, dd: dict) -> Bottleneck:
        c = self.cfg
        return Bottleneck(d, c.bottleneck, act=c.act, dropout=c.dropout, scale=c.scale,
                          down_init=c.down_init, up_init=c.up_init, init_std=c.init_std, **dd)

    def apply(self, model: nn.Module, layout: Layout) -> nn.Module:
        d, dd, houlsby = layout.width(model), factory_kwargs(model), self.cfg.style == "houlsby"
        slot = "pre_drop_adapter" if self.cfg.before_dropout else "seq_adapter"
        for block in layout.blocks(model):
            if layout.layer == "vit":  # a pre-norm block: on its attention and MLP outputs
                add_branches(block, attn_seq=self._make(d, dd) if houlsby else None, mlp_seq=self._make(d, dd))
                continue
            outputs = [*(layout.attention_outputs(block) if houlsby else []), *layout.ffn_outputs(block)]
            for out in outputs:  # post-LN: inside each sublayer's output module
                add_output_branches(out, **{slot: self._make(d, dd)})
        return model
