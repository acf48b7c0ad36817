"""A few optimizer steps the way the loop takes them (cross-entropy + the method's extra loss, ``on_step``),
for tests that check what training does to a method's model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from petlbench.engine.loop import fit
from petlbench.engine.optim import constant
from petlbench.methods.base import MethodConfig


def train_steps(method, model, make_batch: Callable[[int], tuple[Any, torch.Tensor]], steps: int = 3,
                lr: float = 1e-2, frozen_backbone_mode: str = "eval") -> list[float]:
    """``steps`` AdamW steps (constant ``lr``, torch's default weight decay 0.01) on ``make_batch(step)``
    (1-based); the losses."""

    def loss(batch: tuple[Any, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(model(x), y)
        extra = method.extra_loss(model)
        return loss if extra is None else loss + extra

    return fit(model, loss, (make_batch(step) for step in range(1, steps + 1)), MethodConfig(lr=lr, weight_decay=1e-2),
               steps=steps, schedule=constant, frozen_backbone_mode=frozen_backbone_mode,
               on_step=lambda step, total: method.on_step(model, step, total))
