"""Measurements: parameter counts, GMACs, throughput, peak memory, timers."""

from __future__ import annotations

import copy
import re
import resource
import sys
import time
from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from petlbench.models.heads import head_parameters


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


def trainable_groups(model: nn.Module) -> dict[str, int]:
    """Trainable parameters by name, layer indices folded (``transformer.blocks.*.attn.apt.prompt``), with their
    counts: what trains, and how much of it."""
    groups: dict[str, int] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            key = re.sub(r"\.\d+(?=\.|$)", ".*", name)
            groups[key] = groups.get(key, 0) + p.numel()
    return groups


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


def _register_fused_attention_formulas() -> None:
    """FlopCounterMode knows the CUDA fused SDPA kernels but not the CPU flash kernel
    (``_scaled_dot_product_flash_attention_for_cpu``, taken on e.g. Intel AMX CPUs): without a formula its
    attention matmuls count as zero. Register the same formula torch uses for the CUDA kernels."""
    for name in ("_scaled_dot_product_flash_attention_for_cpu",):
        op = getattr(torch.ops.aten, name, None)
        if op is None or op in flop_counter.flop_registry:
            continue

        def formula(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
            return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)

        flop_counter.register_flop_formula(op)(formula)


_register_fused_attention_formulas()

# The attention path every count runs under: the math SDPA decomposes into matmuls FlopCounterMode sees,
# whatever kernel this machine's CPU or GPU would pick (a test checks every available backend agrees).
COUNT_BACKEND = SDPBackend.MATH


def example_like(sample: Any) -> Any:
    """A batch of one shaped like a dataset sample (no batch dim): float tensors become fixed-seed random
    values (so a data-dependent model, e.g. an equilibrium solver, is always measured on the same input),
    integer tensors (token ids, masks) are kept; mappings are handled per key."""
    if isinstance(sample, Mapping):
        return {k: example_like(v) for k, v in sample.items()}
    if isinstance(sample, torch.Tensor):
        if sample.is_floating_point():
            return torch.randn(1, *sample.shape, generator=torch.Generator().manual_seed(0))
        return sample.unsqueeze(0).clone()
    return sample


def example_input(input_size: tuple[int, ...] | Mapping[str, Any] | torch.Tensor,
                  device: torch.device | str = "cpu") -> Any:
    """A batch of one: a fixed-seed random image of ``input_size`` (C, H, W), or a given batch as is."""
    if isinstance(input_size, (torch.Tensor, Mapping)):
        return _to(input_size, device)
    return example_like(torch.empty(*input_size)).to(device)


def _to(batch: Any, device: torch.device | str) -> Any:
    if isinstance(batch, Mapping):
        return {k: _to(v, device) for k, v in batch.items()}
    return batch.to(device) if isinstance(batch, torch.Tensor) else batch


def _repeat(example: Any, n: int) -> Any:
    if isinstance(example, Mapping):
        return {k: _repeat(v, n) for k, v in example.items()}
    return example.expand(n, *example.shape[1:]).contiguous() if isinstance(example, torch.Tensor) else example


def count_flops(model: nn.Module, inputs: Any, backend: SDPBackend = COUNT_BACKEND) -> int:
    """FLOPs of one inference forward of ``model`` on ``inputs`` (on the CPU), under one SDPA backend."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), sdpa_kernel(backend), FlopCounterMode(display=False) as counter:
            model(inputs)
    finally:
        model.train(was_training)
    return counter.get_total_flops()


def gmacs(model: nn.Module, input_size: tuple[int, ...] | Mapping[str, Any] | torch.Tensor) -> float:
    """Multiply-accumulates per input (GMAC) of one inference forward: FlopCounterMode / 2 under the
    math attention path, always on the CPU (a model elsewhere is counted on a CPU copy), so the figure
    is a property of the model, not of the machine or the kernel it picked. A model on the ``meta``
    device (shapes only, used by fast anchor tests) is counted there: the same decomposition, no data."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    if device.type not in ("cpu", "meta"):
        model, device = copy.deepcopy(model).cpu(), torch.device("cpu")
    return count_flops(model, example_input(input_size, device)) / 2 / 1e9


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def infer_throughput(
    model: nn.Module, example: tuple[int, ...] | Mapping[str, Any] | torch.Tensor, device: torch.device,
    batch_size: int = 64, steps: int = 10, warmup: int = 2, autocast=None,
) -> float:
    """Inputs per second of ``model`` in inference mode on a fixed batch of ``batch_size`` copies of
    ``example`` (a batch of one, or an image size)."""
    model.eval()
    x = _repeat(example_input(example, device), batch_size)
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


_CLEAR_REFS = "/proc/self/clear_refs"


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def _release_free_memory() -> None:
    """Hand memory freed by earlier runs back to the OS (glibc ``malloc_trim``), so this run's peak RSS starts
    from what is live, not from what the allocator kept cached; a no-op where glibc is absent."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak memory of one run, whatever ran before it in the same process.

    - CUDA: ``torch.cuda.max_memory_allocated`` since ``start`` (kind ``cuda_max_allocated``);
    - CPU on Linux: the process's resident-set high-water mark (``VmHWM``) after resetting it at ``start``
      through ``/proc/self/clear_refs`` (kind ``cpu_peak_rss_run``): the largest RSS during this run,
      including the interpreter, torch and the data it holds;
    - elsewhere: ``getrusage`` peak RSS of the whole process, never reset (kind ``cpu_peak_rss_process``):
      in a suite it is the largest of all jobs so far, and labelled as such.
    """

    def __init__(self, device: torch.device) -> None:
        self.device, self.kind = device, "cpu_peak_rss_process"

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.kind = "cuda_max_allocated"
            return
        _release_free_memory()
        try:
            with open(_CLEAR_REFS, "w") as f:
                f.write("5")  # Linux >= 4.0: reset the peak RSS to the current RSS
            if _status_kib("VmHWM") is not None:
                self.kind = "cpu_peak_rss_run"
        except OSError:
            pass

    def read(self) -> tuple[float, str]:
        """(MiB, kind)."""
        if self.kind == "cuda_max_allocated":
            return torch.cuda.max_memory_allocated(self.device) / 2**20, self.kind
        if self.kind == "cpu_peak_rss_run":
            return (_status_kib("VmHWM") or 0) / 2**10, self.kind
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return (rss / 2**20 if sys.platform == "darwin" else rss / 2**10), self.kind


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


class StepClock:
    """Time of training steps without a host synchronisation per step. On a GPU each step is bracketed by
    two CUDA events, read only when the loop reads its losses back anyway (``read``); on the CPU a step has
    finished when its Python call returns, so ``perf_counter`` is exact. The first ``warmup`` steps
    (allocator and kernel warm-up) are left out of the timed total, not out of the progress window."""

    def __init__(self, device: torch.device, warmup: int = 2) -> None:
        self.cuda, self.warmup = device.type == "cuda", warmup
        self.steps, self.timed_s, self.timed_images = 0, 0.0, 0
        self._open: Any = None
        self._pending: list[tuple[Any, Any, int, bool]] = []  # CUDA: (start, end, images, timed)
        self._window_s, self._window_images = 0.0, 0

    def start(self) -> None:
        if self.cuda:
            self._open = torch.cuda.Event(enable_timing=True)
            self._open.record()
        else:
            self._open = time.perf_counter()

    def stop(self, images: int, timed: bool = True) -> None:
        """End the step begun by ``start``; ``timed`` False keeps it out of the timed total (a compiling step)."""
        self.steps += 1
        timed = timed and self.steps > self.warmup
        if self.cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self._pending.append((self._open, end, images, timed))
        else:
            self._add(time.perf_counter() - self._open, images, timed)

    def _add(self, seconds: float, images: int, timed: bool) -> None:
        self._window_s += seconds
        self._window_images += images
        if timed:
            self.timed_s += seconds
            self.timed_images += images

    def read(self) -> tuple[float, int]:
        """(seconds, images) of the steps since the last ``read`` (the progress window); on a GPU this waits
        for the last recorded step, which the caller has just waited for by reading its loss back."""
        for start, end, images, timed in self._pending:
            end.synchronize()
            self._add(start.elapsed_time(end) / 1e3, images, timed)
        self._pending.clear()
        out = (self._window_s, self._window_images)
        self._window_s, self._window_images = 0.0, 0
        return out
