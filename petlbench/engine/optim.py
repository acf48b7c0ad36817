"""The recipe's optimizer, lr schedule and optimizer step, shared by the loop and its small ``fit`` entry point."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection

import torch
from torch import nn

from petlbench.data.types import Task
from petlbench.methods.base import MethodConfig


def head_lr_mult(mcfg: MethodConfig, task: Task) -> float:
    """The head's lr multiplier: the recipe's ``head_lr_mult``; None = the task's (``Task.head_lr_mult``)."""
    return mcfg.head_lr_mult if mcfg.head_lr_mult is not None else task.head_lr_mult


def make_optimizer(params: list[nn.Parameter], mcfg: MethodConfig, head: Collection[int] = (),
                   head_mult: float = 1.0, no_decay: Collection[int] = (),
                   fusion: Collection[int] = ()) -> torch.optim.Optimizer:
    """AdamW (β = (0.9, ``adam_beta2``)) or SGD (momentum 0.9) over ``params`` in groups: the head's parameters (ids
    in ``head``) at lr × ``head_mult``, the backbone's fusion parameters (ids in ``fusion``) at lr ×
    ``fusion_lr_mult``, and without weight decay: unless ``wd_bias_norm``, biases and norm weights (1-D tensors), and
    always the parameters whose ids are in ``no_decay`` (pretraining's position embedding and class token). Groups
    come in the order of their first parameter. With the shared recipe's neutral values this is one group."""
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for p in params:
        decays = (mcfg.wd_bias_norm or p.ndim > 1) and id(p) not in no_decay
        mult = head_mult if id(p) in head else mcfg.fusion_lr_mult if id(p) in fusion else 1.0
        groups.setdefault((mult, decays), []).append(p)
    spec = [{"params": ps, "lr": mcfg.lr * mult, "weight_decay": mcfg.weight_decay if decays else 0.0}
            for (mult, decays), ps in groups.items()]
    if mcfg.optimizer == "adamw":
        return torch.optim.AdamW(spec, lr=mcfg.lr, betas=(0.9, mcfg.adam_beta2),
                                 weight_decay=mcfg.weight_decay)
    return torch.optim.SGD(spec, lr=mcfg.lr, momentum=0.9, weight_decay=mcfg.weight_decay)


def warmup_then_decay(total_steps: int, warmup_steps: int, decay: str = "cosine") -> Callable[[int], float]:
    """lr multiplier: linear warm-up to 1, then ``cosine`` or ``linear`` decay to 0 (per optimizer step)."""

    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 1.0 - progress if decay == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return f


def constant(step: int) -> float:
    """The lr multiplier of a constant lr (no warm-up, no decay)."""
    return 1.0


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor, params: list[nn.Parameter],
                   grad_clip: float = 0.0) -> None:
    """One optimizer step on ``loss``: zero the gradients, back-propagate, clip the global gradient norm of
    ``params`` to ``grad_clip`` (0 = off), step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    opt.step()
