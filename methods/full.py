"""Full fine-tuning: every parameter trains (on a VL model, BERT-family or T5: the whole language model; the
visual encoder stays frozen, see ``petlbench.vl.models.bert``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from petlbench.methods.base import Method, MethodConfig, unfreeze
from petlbench.methods.recipe import vlp_recipe
from petlbench.models.layout import Layout
from petlbench.registry import register


@dataclass
class FullConfig(MethodConfig):
    """Full fine-tuning recipe (AdamW, 100 epochs, 10 warm-up). lr 1e-4: full fine-tuning on
    1k images is very lr-sensitive; VTAB papers grid-search it per task (V-PETL Bench)."""

    lr: float = 1e-4
    weight_decay: float = 0.05

    @classmethod
    def for_task(cls, task: Any, builtin: bool, kind: str | None = None) -> dict[str, Any]:
        """On ViLT / METER the official fine-tuning recipe (``recipe.VLP_RECIPES``); on ViLT at ViLT's own lr 1e-4
        (dandelin/ViLT config.py ``task_finetune_vqa_randaug``), on METER at METER's (its config's 2.5e-5)."""
        return vlp_recipe(kind, task, lr={"vilt": 1e-4})


@register
class Full(Method):
    name = "full"
    description = "Full fine-tuning: every backbone parameter and the head train."
    Config = FullConfig
    supports = frozenset()  # every kind: what its table calls adaptable trains (a VL pair: its language model)

    def apply(self, model: nn.Module, layout: Layout) -> nn.Module:
        unfreeze(layout.adaptable(model))
        return model
