"""Measurements: parameter counts, GMACs, throughput, peak memory, timers."""

from __future__ import annotations

import resource
import sys
import time
from contextlib import contextmanager

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from petlbench.backbones import head_parameters


def _effective_numel(model: nn.Module, only_trainable: bool) -> int:
    """Sum of parameter sizes; a param ``w`` with a sibling buffer ``w_mask`` counts its nonzeros."""
    total, seen = 0, set()
    for mod in model.modules():
        for pname, p in mod._parameters.items():
            if p is None or id(p) in seen or (only_trainable and not p.requires_grad):
                continue
            seen.add(id(p))
            mask = mod._buffers.get(f"{pname}_mask")
            total += int(mask.count_nonzero()) if mask is not None else p.numel()
    return total


def param_counts(model: nn.Module, backbone_total: int) -> dict[str, int]:
    """Counts after ``apply``: total, trainable, trainable without the head, added by the method.

    ``backbone_total`` is the parameter count of the backbone with its head, before ``apply``.
    """
    head_trainable = sum(p.numel() for p in head_parameters(model) if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    trainable = _effective_numel(model, only_trainable=True)
    return {
        "params_total": total,
        "params_trainable": trainable,
        "params_trainable_excl_head": trainable - head_trainable,
        "params_added": total - backbone_total,
    }


def gmacs(model: nn.Module, input_size: tuple[int, ...], device: torch.device | str = "cpu") -> float:
    """Multiply-accumulates per image (GMAC) of one inference forward, via FlopCounterMode / 2."""
    was_training = model.training
    model.eval()
    x = torch.randn(1, *input_size, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() / 2 / 1e9


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def infer_throughput(
    model: nn.Module, input_size: tuple[int, ...], device: torch.device, batch_size: int = 64, steps: int = 10,
    warmup: int = 2, autocast=None,
) -> float:
    """Images per second of ``model`` in inference mode on a fixed random batch."""
    model.eval()
    x = torch.randn(batch_size, *input_size, device=device)
    ctx = autocast or (lambda: torch.autocast(device.type, enabled=False))
    for _ in range(warmup):
        with ctx():
            model(x)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        with ctx():
            model(x)
    sync(device)
    return batch_size * steps / (time.perf_counter() - t0)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    """(MiB, kind): CUDA max allocated on GPU, else the process's peak RSS (never reset)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return (rss / 2**20 if sys.platform == "darwin" else rss / 2**10), "cpu_peak_rss"


class Timer:
    """Accumulating wall-clock timer (synchronises CUDA)."""

    def __init__(self, device: torch.device | None = None) -> None:
        self.device = device
        self.seconds = 0.0

    @contextmanager
    def __call__(self):
        if self.device is not None:
            sync(self.device)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self.device is not None:
                sync(self.device)
            self.seconds += time.perf_counter() - t0
