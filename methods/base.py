"""The method plug-in contract.

A method is a typed config dataclass (every field documents its default and source) and a
``Method`` subclass registered with ``@register``. The loop calls, in this order:

1. ``apply(model)``           once, on a frozen backbone whose classifier head is trainable;
2. ``search(model, ctx)``     optional architecture/placement search, timed apart (DAS, DVP);
3. ``extra_loss(model)``      every training step, added to the task loss (``None`` = nothing);
4. ``on_step(model, step, total)`` after every optimizer step (pruning schedules, gates);
5. ``finalize(model)``        once after training, before test evaluation and measurement
                              (merge LoRA, apply pruning masks, drop skipped blocks);
6. ``stats(model)``           method-specific numbers stored in the result's ``method_stats``.

Rules the loop relies on:
- parameters a method creates are trainable by default; existing (frozen) tensors become
  trainable only through an explicit ``unfreeze(...)`` call;
- all state lives in the model (parameters, buffers, module attributes), never in the Method
  object, which holds only its immutable config;
- modules a method adds subclass ``MethodModule`` so the frozen-backbone eval policy leaves
  their dropout in training mode;
- a parameter ``w`` with a sibling buffer ``w_mask`` (same module) counts as
  ``w_mask.count_nonzero()`` trainable parameters (lottery-ticket pruning).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import torch
from torch import nn

from petlbench.config import Flag, Range

Optimizer = Literal["adamw", "sgd"]  # the loop's optimizers (type alias for configs that change the default)


@dataclass
class MethodConfig:
    """Training recipe every method carries; method configs subclass this and add their keys.

    petlbench's shared VTAB-1k recipe takes its values from NOAH (Zhang et al. 2022, Sec. 4.1; also used by
    AdaptFormer and V-PETL Bench): AdamW, lr 1e-3, weight decay 1e-4, batch 64, 100 epochs with 10 linear
    warm-up epochs, cosine decay. It differs from NOAH's training code in three documented choices of ours:
    the frozen backbone runs in eval mode (NOAH keeps drop-path 0.1 active in it), weight decay applies to
    every trainable tensor (NOAH, through timm's optimizer factory, exempts biases and norm weights), and
    the cosine schedule steps per optimizer step down to 0 (NOAH's timm scheduler steps per epoch down to
    a floor of 1e-8). Every field can be overridden with ``--set key=value`` (or ``--lr``/``--epochs``/...).
    Built-in offline tasks apply a compact epoch budget unless ``epochs`` is set explicitly.
    ``grad_clip`` (max global gradient norm over the trainable parameters, 0 = off) is off in the
    common recipe; keys listed in ``NEUTRAL`` are left out of a run's identity while they hold their
    neutral value, so results stored before the key existed keep their config hash.
    """

    NEUTRAL: ClassVar[dict[str, Any]] = {"grad_clip": 0.0, "adam_beta2": 0.999, "decay": "cosine",
                                          "head_lr_mult": 1.0, "wd_bias_norm": True}

    optimizer: Optimizer = "adamw"  # adamw | sgd (momentum 0.9)
    lr: Annotated[float, Range(gt=0), Flag("override the recipe's learning rate")] = 1e-3
    weight_decay: Annotated[float, Range(ge=0), Flag("override the recipe's weight decay")] = 1e-4
    epochs: Annotated[int, Range(ge=1), Flag("override the recipe's epochs")] = 100
    warmup_epochs: Annotated[int, Range(ge=0)] = 10
    batch_size: Annotated[int, Range(ge=1), Flag("override the recipe's batch size")] = 64
    # clip the global grad norm of the trainable parameters to this; 0 = off
    grad_clip: Annotated[float, Range(ge=0)] = 0.0
    # The next four are neutral in the shared recipe (torch's AdamW β2, cosine, one lr, decay on every tensor)
    # and exist for recipes that publish otherwise (DVP: ViLT's optimizer, see methods/dvp.py).
    adam_beta2: Annotated[float, Range(gt=0, lt=1)] = 0.999  # AdamW β2 (β1 = 0.9)
    decay: Literal["cosine", "linear"] = "cosine"  # lr decay to 0 after the warm-up, per optimizer step
    # lr multiplier of the classifier head; None = by task (ViLT/DVP configs: ×10 on VQA tasks, ×1 otherwise)
    head_lr_mult: Annotated[float | None, Range(gt=0)] = 1.0
    wd_bias_norm: bool = True  # False: no weight decay on biases and norm weights (every 1-D tensor)


@dataclass
class SearchContext:
    """What a ``search`` hook gets from the loop. Batches arrive on ``device``."""

    train_batches: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]  # one epoch per call
    val_batches: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]  # held-out batches, endless
    device: torch.device
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    autocast: Callable[[], AbstractContextManager]
    make_optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
    steps_per_epoch: int
    log: Callable[[str], None]


class MethodModule(nn.Module):
    """Base class (a marker) for every module a method adds to the backbone."""


def unfreeze(*items: nn.Module | nn.Parameter) -> None:
    """Make existing backbone tensors trainable: the only sanctioned way to do it."""
    for item in items:
        params = item.parameters() if isinstance(item, nn.Module) else [item]
        for p in params:
            p.requires_grad_(True)


class Method:
    """Base class of every PETL method. Subclasses set ``name``, ``description``, ``Config``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    # shown with every run of the method, e.g. "re-implementation: no official code"
    note: ClassVar[str] = ""
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    # backbone kinds it can adapt: "vit" (timm ViT), "cnn" (other timm models), "vl" (petlbench.vl.VLModel)
    supports: ClassVar[frozenset[str]] = frozenset({"vit"})

    def __init__(self, cfg: MethodConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else self.Config()

    def apply(self, model: nn.Module) -> nn.Module:
        raise NotImplementedError

    def search(self, model: nn.Module, ctx: SearchContext) -> None:
        """Optional search stage; the loop only calls (and times) it when overridden."""

    def extra_loss(self, model: nn.Module) -> torch.Tensor | None:
        return None

    def on_step(self, model: nn.Module, step: int, total_steps: int) -> None:
        """Called after each optimizer step; ``step`` counts from 1."""

    def finalize(self, model: nn.Module) -> nn.Module:
        return model

    def stats(self, model: nn.Module) -> dict[str, Any]:
        return {}

    @classmethod
    def has_search(cls) -> bool:
        return cls.search is not Method.search
