"""THE training / evaluation loop. It never names a method: methods act through their hooks.

Order of events in ``run``:
seed -> backbone (frozen, trainable head) -> method.apply -> param counts -> [search, timed apart]
-> train epochs (AdamW/SGD, cosine with warm-up, optional bf16 autocast; extra_loss, on_step)
-> eval on val each epoch (if a val split exists; never used for selection on test)
-> method.finalize -> test once -> GMACs, inference throughput, peak memory.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from petlbench import measure
from petlbench.backbones import backbone_kind, create_backbone
from petlbench.config import build_method_config
from petlbench.data import Splits, batches, num_batches
from petlbench.errors import UserError
from petlbench.methods.base import Method, MethodConfig, MethodModule, SearchContext
from petlbench.registry import get as get_method


def seed_everything(seed: int, deterministic: bool = True) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        # CPU kernels are deterministic for a fixed thread count; cuDNN needs to be told.
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def make_method(name: str, overrides: dict[str, Any] | None = None) -> Method:
    cls = get_method(name)
    return cls(build_method_config(cls.Config, overrides or {}))


def build(
    method: Method, model_name: str | None, num_classes: int, *, weights: str | None = None,
    pretrained: bool = True, **timm_kwargs: Any,
) -> tuple[nn.Module, dict[str, Any], int]:
    """Backbone + ``method.apply``. Returns (model, weights provenance, backbone param count)."""
    model, info = create_backbone(model_name, num_classes, weights=weights, pretrained=pretrained, **timm_kwargs)
    kind = backbone_kind(model)
    if kind not in method.supports:
        raise UserError(
            f"method '{method.name}' does not support {kind} backbones (supports: {', '.join(sorted(method.supports))}); "
            "pick another --model"
        )
    backbone_total = sum(p.numel() for p in model.parameters())
    model = method.apply(model)
    return model, info, backbone_total


def input_size(model: nn.Module) -> tuple[int, int, int]:
    from timm.data import resolve_data_config

    return tuple(resolve_data_config({}, model=model)["input_size"])


def inspect(method_name: str, model_name: str | None, num_classes: int = 1000, img_size: int | None = None,
            overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build (random init, no data), apply, count params, finalize, count GMACs."""
    torch.manual_seed(0)
    method = make_method(method_name, overrides)
    kwargs = {"img_size": img_size} if img_size else {}
    model, _, backbone_total = build(method, model_name, num_classes, pretrained=False, **kwargs)
    counts = measure.param_counts(model, backbone_total)
    size = input_size(model)
    model = method.finalize(model)
    base, _ = create_backbone(model_name, num_classes, pretrained=False, **kwargs)
    g, g_base = measure.gmacs(model, size), measure.gmacs(base, size)
    return {
        "method": method_name, "model": model_name, "num_classes": num_classes, "input_size": list(size),
        **counts, "gmacs": g, "gmacs_backbone": g_base, "gmacs_extra": g - g_base,
        "gmacs_ratio": g / g_base if g_base else float("nan"),
        "method_config": {k: v for k, v in vars(method.cfg).items()},
    }
