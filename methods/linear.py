"""Linear probe: the backbone stays frozen, only the classifier head trains.

On the VL model the new fusion layers (visual projection, modality embedding) train with the head: they are
part of the frozen VL backbone's trainable task layers (see ``petlbench.vl.models.bert``).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from petlbench.methods.base import Method, MethodConfig
from petlbench.models.layout import Layout
from petlbench.registry import register


@dataclass
class LinearConfig(MethodConfig):
    """Linear-probe recipe: AdamW, 100 epochs with 10 warm-up (the shared VTAB-1k schedule).

    lr 0.1: a head on frozen final-norm features tolerates a much larger step than in-backbone
    methods; chosen on the val split of the offline default task among {0.01, 0.03, 0.1}
    (val top-1 54.0 / 57.0 / 60.0), never on test. VPT grid-searches it per task.
    """

    lr: float = 0.1
    weight_decay: float = 1e-4


@register
class Linear(Method):
    name = "linear"
    description = "Linear probe: frozen backbone, train only the classifier head."
    Config = LinearConfig
    supports = frozenset()  # every kind: the head on the frozen backbone

    def apply(self, model: nn.Module, layout: Layout) -> nn.Module:
        return model  # the backbone arrives frozen with a trainable head
