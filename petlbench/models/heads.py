"""The classifier head of a backbone: finding it, freezing everything else, and its parameters."""

from __future__ import annotations

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


def freeze_backbone(model: nn.Module) -> None:
    """Freeze every parameter, then make the classifier head trainable."""
    for p in model.parameters():
        p.requires_grad_(False)
    for p in _head(model).parameters():
        p.requires_grad_(True)


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    return list(_head(model).parameters())
