"""The classifier head of a backbone: finding it, freezing everything else, and its parameters."""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn


def get_classifier(model: nn.Module) -> nn.Module:
    """The classifier head module (timm ``get_classifier``; ``model.head`` otherwise)."""
    return _head(model)


def _head(model: nn.Module) -> nn.Module:
    head = model.get_classifier() if hasattr(model, "get_classifier") else model.head
    return head if isinstance(head, nn.Module) else nn.Identity()


def _head_prefix(model: nn.Module) -> str:
    head = _head(model)
    for name, mod in model.named_modules():
        if mod is head:
            return name
    return "head"


def freeze_backbone(model: nn.Module, also: Iterable[nn.Module | nn.Parameter] = ()) -> nn.Module:
    """Freeze every parameter, then make the classifier head and ``also`` (modules or parameters that train with
    every method, e.g. a VL model's new fusion layers) trainable; returns the model."""
    model.requires_grad_(False)
    for part in (_head(model), *also):
        part.requires_grad_(True)
    return model


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    return list(_head(model).parameters())


def vilt_head(dim: int, num_classes: int, std: float = 0.02, hidden: int | None = None, **dd) -> nn.Sequential:
    """ViLT's VQA classifier, also DVP's (``dvp/modules/bert_module.py``, ``t5_module.py``: ``vqa_classifier``,
    ``gqa_classifier``, ``snli_ve_classifier``): Linear(d, 2d) - LayerNorm(2d) - GELU - Linear(2d, C), initialised
    as ViLT's ``objectives.init_weights``: Linear weights N(0, ``std`` = 0.02), Linear biases 0, LayerNorm 1 / 0."""
    h = hidden or 2 * dim  # METER reads two pooled streams (dim = 2d) and keeps 2d: hidden = dim
    head = nn.Sequential(nn.Linear(dim, h, **dd), nn.LayerNorm(h, **dd), nn.GELU(), nn.Linear(h, num_classes, **dd))
    for m in head:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            nn.init.zeros_(m.bias)
    return head  # nn.LayerNorm starts at weight 1, bias 0
