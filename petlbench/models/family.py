"""The backbone-family interface between the engine and the model code of each track.

A family owns a set of ``--model`` names, builds them frozen with a fresh head, and answers what the engine asks
of a model it built: its backbone kind (what methods declare in ``supports``), the data config its inputs are
prepared with, an example input, what its GMACs are counted on, and a frozen input encoder's GMACs reported
apart. Families are registered in ``petlbench.tracks.FAMILIES`` (the vision family in ``models.backbones``, the
vision-language pairs in ``vl.models.bert``); a new kind of backbone is one module with a family plus its registration.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from torch import nn

from petlbench.models.layout import Layout


class BackboneFamily(ABC):
    """One family of backbones. ``layouts``: the backbone kinds it builds, each with its table of insertion points
    (``models.layout.Layout``); ``track``: the results track its models run on; ``default_model``: its model when a
    run on its track names none (None: the family picks)."""

    name: str = ""
    track: str = "vision"
    layouts: dict[str, Layout] = {}
    default_model: str | None = None
    model_hint: str = ""  # what its models are called, for a message asking for one (e.g. "a TEXT+VISION pair")
    # what ``--frozen-backbone-mode auto`` resolves to on this family's models: "eval" = dropout / drop-path off in
    # every module that does not learn (``engine.loop.set_train_mode``), "train" = ``model.train()`` as the
    # family's official training code runs it (a model keeps its own frozen parts in eval in its ``train``)
    frozen_mode: str = "eval"

    @abstractmethod
    def owns(self, model: str | None) -> bool:
        """Whether ``--model`` names one of this family's models."""

    @abstractmethod
    def create(self, name: str | None, num_classes: int, *, weights: str | None = None, pretrained: bool = True,
               modality: str = "both", **kwargs: Any) -> tuple[nn.Module, dict[str, Any]]:
        """The backbone with a ``num_classes`` head, every parameter frozen except the head's, and its provenance
        ``{"model", "weights_source", "weights_sha256"}``; UserError for a name or option it cannot build."""

    @property
    def kinds(self) -> frozenset[str]:
        """The backbone kinds it builds."""
        return frozenset(self.layouts)

    @abstractmethod
    def kind(self, model: nn.Module) -> str:
        """The backbone kind of a model this family built (one of ``kinds``)."""

    def layout(self, model: nn.Module) -> Layout:
        """The insertion points of a model this family built (its kind's table)."""
        return self.layouts[self.kind(model)]

    @abstractmethod
    def data_config(self, model: nn.Module) -> dict[str, Any]:
        """How inputs are prepared for ``model`` (``input_size``, ``mean``, ``std``; a text side's ``tokenizer``)."""

    @abstractmethod
    def count_size(self, model: nn.Module, data_cfg: dict[str, Any], train: Any = None,
                   text_len: int = 16) -> tuple[int, ...]:
        """What GMACs are counted on: the input size; a family with a text side, the text length of the prepared
        ``train`` split (``text_len`` without one, as ``inspect --text-len``)."""

    @abstractmethod
    def example(self, model: nn.Module, size: tuple[int, ...] | None = None) -> Any:
        """One random input (batch of one) in ``model``'s format, at ``size`` (``count_size``) or its default."""

    def kind_of_name(self, name: str | None) -> str | None:
        """The backbone kind ``name`` builds when the name alone tells (a method's recipe may depend on it), else
        None (known once built: ``kind``)."""
        return None

    def encoder_gmacs(self, model: nn.Module, data_cfg: dict[str, Any]) -> float:
        """GMACs of a frozen input encoder reported apart from the model's (included in them); NaN for none."""
        return math.nan

    def fusion_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        """The parameters trained at ``fusion_lr_mult`` (a VL-pretrained model's cross-modal layers); none here."""
        return []

    def list_models(self) -> list[tuple[str, str, bool]]:
        """(name, note, is the default) rows for ``petlbench list models``."""
        return []


@dataclass
class Built:
    """A backbone with a method applied: the model, its family, its weights' provenance, and the parameter count
    of the backbone (with its head) before ``apply`` (so ``params_added`` can be counted)."""

    model: nn.Module
    weights_info: dict[str, Any]
    backbone_total: int
    family: BackboneFamily | None = None
