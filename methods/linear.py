"""Linear probe: the backbone stays frozen, only the classifier head trains."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from petlbench.methods.base import Method, MethodConfig
from petlbench.registry import register


@dataclass
class LinearConfig(MethodConfig):
    """VTAB-1k linear-probe recipe (VPT, Jia et al. 2022, Table 13 style): AdamW, 100 epochs.

    lr 1e-2 (a head on frozen features tolerates a larger step than in-backbone methods).
    """

    lr: float = 1e-2
    weight_decay: float = 1e-4


@register
class Linear(Method):
    name = "linear"
    description = "Linear probe: frozen backbone, train only the classifier head."
    Config = LinearConfig
    supports = frozenset({"vit", "cnn"})

    def apply(self, model: nn.Module) -> nn.Module:
        return model  # the backbone arrives frozen with a trainable head
