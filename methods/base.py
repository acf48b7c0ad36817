"""The method plug-in contract.

A method is a typed config dataclass (every field documents its default and source) and a
``Method`` subclass registered with ``@register``. The loop calls, in this order:

1. ``apply(model, layout)``   once, on a frozen backbone whose classifier head is trainable, with its kind's table
                              of insertion points (``models.layout.Layout``);
2. ``search(model, ctx)``     optional architecture/placement search, timed apart (DAS, DVP);
3. ``extra_loss(model)``      every training step, added to the task loss (``None`` = nothing);
4. ``on_step(model, step, total)`` after every optimizer step (pruning schedules, gates);
5. ``finalize(model)``        once after training, before test evaluation and measurement
                              (merge LoRA, apply pruning masks, drop skipped blocks);
6. ``stats(model)``           method-specific numbers stored in the result's ``method_stats``.

A method states what it needs in ``supports`` (names of ``models.layout.POINTS``: ``blocks``, ``attention_outputs``,
``projections`` ...), never which kinds: it runs on every kind whose table offers them, and finds its insertion points
through the table (``layout_of(model)`` in the hooks after ``apply``).

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

import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from petlbench.methods.recipe import MethodConfig, Optimizer  # noqa: F401  (re-exported)
from petlbench.models.layout import Layout

S = TypeVar("S", bound=nn.Module)


class SearchDiverged(Exception):
    """A search's training loss went non-finite: the run ends with status 'diverged', as in training."""


@dataclass
class SearchContext:
    """What a ``search`` hook gets from the loop. Batches arrive on ``device``."""

    train_batches: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]  # one epoch per call
    val_batches: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]  # held-out batches, endless
    device: torch.device
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    autocast: Callable[[], AbstractContextManager]
    # (params, model=None, lr=None): the recipe's optimizer; the head of ``model`` (a search's copy; default the
    # run's model) at its lr multiplier, ``lr`` instead of the recipe's
    make_optimizer: Callable[..., torch.optim.Optimizer]
    steps_per_epoch: int
    log: Callable[[str], None]
    # (optimizer, steps) -> an lr scheduler: the recipe's warm-up and decay over ``steps`` (None: a constant lr)
    schedule: Callable[[torch.optim.Optimizer, int], Any] | None = None

    @staticmethod
    def step(opt: torch.optim.Optimizer, loss: torch.Tensor, where: str) -> float:
        """One optimizer step of a search on ``loss``; returns the loss. A non-finite loss raises
        ``SearchDiverged`` (naming ``where``) before it reaches the weights."""
        value = float(loss.detach())
        if not math.isfinite(value):
            raise SearchDiverged(f"non-finite loss in the {where}; lower its lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return value


class MethodModule(nn.Module):
    """Base class (a marker) for every module a method adds to the backbone."""


def unfreeze(*items: nn.Module | nn.Parameter) -> None:
    """Make existing backbone tensors trainable: the only sanctioned way to do it."""
    for item in items:
        params = item.parameters() if isinstance(item, nn.Module) else [item]
        for p in params:
            p.requires_grad_(True)


def layout_of(model: nn.Module) -> Layout:
    """The kind table a model was adapted with (``tracks.apply_method`` keeps it on the model)."""
    layout = getattr(model, "petl_layout", None)
    if not isinstance(layout, Layout):
        raise ValueError("model has no kind table: apply the method through tracks.apply_method")
    return layout


def state_of(model: nn.Module, attr: str, cls: type[S], method: str) -> S:
    """The state ``method``'s ``apply`` attached to ``model`` as ``model.<attr>`` (a module of type ``cls``);
    ValueError when the method was not applied."""
    state = getattr(model, attr, None)
    if not isinstance(state, cls):
        raise ValueError(f"model has no {method} state: apply the {method} method to it first")
    return state


class Method:
    """Base class of every PETL method. Subclasses set ``name``, ``description``, ``Config``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    # shown with every run of the method, e.g. "re-implementation: no official code"
    note: ClassVar[str] = ""
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    # the insertion points it needs (``models.layout.POINTS``); the empty set: it runs on every kind
    supports: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, cfg: MethodConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else self.Config()

    def apply(self, model: nn.Module, layout: Layout) -> nn.Module:
        raise NotImplementedError

    def search(self, model: nn.Module, ctx: SearchContext) -> None:
        """Optional search stage; the loop only calls (and times) it when overridden."""

    def search_cost(self) -> str:
        """What the search stage costs and how to cut it, said with the recipe before training ("" = no search)."""
        return ""

    def extra_loss(self, model: nn.Module) -> torch.Tensor | None:
        return None

    def on_step(self, model: nn.Module, step: int, total_steps: int) -> None:
        """Called after each optimizer step; ``step`` counts from 1."""

    def finalize(self, model: nn.Module) -> nn.Module:
        return model

    def counterpart(self, model: nn.Module) -> dict[str, Any] | None:
        """Config overrides that give the conventional method this one makes cheaper on ``model`` (APT on METER:
        conventional prompt tuning), whose additional compute ``inspect`` compares against; None: none."""
        return None

    def stats(self, model: nn.Module) -> dict[str, Any]:
        return {}

    @classmethod
    def has_search(cls) -> bool:
        return cls.search is not Method.search
