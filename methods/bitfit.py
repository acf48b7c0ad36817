"""BitFit (Ben Zaken et al., ACL 2022): train only the bias terms (and the head).

Structural selection: every module's own ``bias`` parameter (Linear, Conv, LayerNorm, BatchNorm, ...)
is unfrozen; no name matching; of the part the kind's table calls adaptable (``models.layout``). ViT-B/16: 102,912
params excluding the head. On the VL pair only the language model's biases (the visual encoder stays frozen, see
``petlbench.vl.models.bert``); BERT-base: 102,144. On ViLT and METER every bias of the model (both of METER's
encoders too, as ``full`` trains them).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from petlbench.methods.base import Method, MethodConfig, unfreeze
from petlbench.models.layout import Layout
from petlbench.registry import register


@dataclass
class BitFitConfig(MethodConfig):
    """BitFit has no keys of its own. Recipe: petlbench's shared VTAB-1k recipe (inherited from
    ``MethodConfig``: NOAH's values, with the differences documented there); NOAH's Table 1 reports BitFit."""


@register
class BitFit(Method):
    name = "bitfit"
    description = "BitFit: train only the bias terms (incl. normalization biases) and the head."
    Config = BitFitConfig
    supports = frozenset({"biases"})

    def apply(self, model: nn.Module, layout: Layout) -> nn.Module:
        for module in layout.adaptable(model).modules():
            bias = module._parameters.get("bias")  # the module's own bias, not its children's
            if isinstance(bias, nn.Parameter):
                unfreeze(bias)
        return model
