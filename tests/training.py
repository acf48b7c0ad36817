"""A few optimizer steps the way the loop takes them (cross-entropy + the method's extra loss, ``on_step``),
for tests that check what training does to a method's model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from petlbench.engine.loop import set_train_mode


def train_steps(method, model, make_batch: Callable[[int], tuple[Any, torch.Tensor]], steps: int = 3,
                lr: float = 1e-2, frozen_backbone_mode: str = "eval") -> list[float]:
    """``steps`` AdamW steps on ``make_batch(step)``; the losses."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for step in range(1, steps + 1):
        set_train_mode(model, frozen_backbone_mode)
        x, y = make_batch(step)
        loss = F.cross_entropy(model(x), y)
        extra = method.extra_loss(model)
        if extra is not None:
            loss = loss + extra
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.on_step(model, step, steps)
        losses.append(loss.item())
    return losses
