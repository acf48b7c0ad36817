"""Numerics of a run: denormals flushed to zero on every CPU thread that computes, and the precision.

x86 float math on denormal (subnormal) values is many times slower than on normal ones, and training can
drive values there (e.g. a memorised batch: softmax gradients of about exp(-90) are subnormal in fp32).
``torch.set_flush_denormal`` sets flush-to-zero and denormals-are-zero (FTZ/DAZ in the MXCSR register) on
the *calling thread only*: torch's intra-op OpenMP workers, created earlier, keep computing with denormals,
so with 2 threads half of every parallel op stays slow. ``flush_denormal`` sets the mode on the calling
thread and on every worker of the OpenMP pool (through ``GOMP_parallel``, exported by libgomp and LLVM's
libomp alike); workers created later inherit it from the calling thread (POSIX: a new thread inherits the
floating-point environment of its creator). Whether it took is checked, not assumed (``flushing_everywhere``).

The precision: ``resolve_precision`` keeps an asked fp32 / bf16; ``auto`` is bf16 only where the run's own
training step is measured faster in bf16 (``time_precisions``, cached per machine by ``cached_timing``): bf16
wins on large matmuls and loses to its casts on small models, differently on each CPU.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import math
import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch

_SUBNORMAL_BITS = 0x00400000  # float32 2**-127 ~ 5.9e-39, below the smallest normal (1.18e-38)


@cache
def _openmp() -> ctypes.CDLL | None:
    """The OpenMP runtime torch loaded (the one whose thread pool runs torch's parallel ops), or None."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "omp" in line.rsplit("/", 1)[-1]}
    except OSError:
        paths = set()
    for path in sorted(paths) + [ctypes.util.find_library("gomp") or ""]:
        try:
            lib = ctypes.CDLL(path) if path else None
        except OSError:
            continue
        if lib is not None and hasattr(lib, "GOMP_parallel"):
            return lib
    return None


_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def _on_every_thread(fn) -> bool:
    """Run ``fn()`` once on each thread of torch's OpenMP team (the calling thread included); False when
    no OpenMP runtime was found (then only the calling thread runs it)."""
    lib = _openmp()
    if lib is None:
        fn()
        return False
    callback = _CALLBACK(lambda _data: fn())  # each call takes the GIL; ctypes released it for the call below
    lib.GOMP_parallel(callback, None, ctypes.c_uint(torch.get_num_threads()), ctypes.c_uint(0))
    return True


def flushing_everywhere() -> bool:
    """Whether every thread of a parallel elementwise op flushes: a subnormal input large enough to be split
    over all threads comes out all zeros only if each chunk was computed with FTZ/DAZ."""
    n = (1 << 16) * max(2, torch.get_num_threads())  # well above torch's grain size (32768) per thread
    # made from its bit pattern: a float constant would itself be flushed on a thread that flushes
    x = torch.full((n,), _SUBNORMAL_BITS, dtype=torch.int32).view(torch.float32)
    return bool((x * 1.0 == 0).all())


def set_flush_denormal(enabled: bool) -> bool:
    """FTZ/DAZ on (or off) on the calling thread and every OpenMP worker; whether the CPU supports it."""
    supported = torch.set_flush_denormal(enabled)
    if supported:
        _on_every_thread(lambda: torch.set_flush_denormal(enabled))
    return supported


@cache
def cpu_has_bf16() -> bool:
    """The CPU computes bf16 matmuls natively: AMX (amx_bf16) or AVX512-BF16 (Linux /proc/cpuinfo flags; torch's
    own probe elsewhere). Without either, bf16 autocast on a CPU emulates and is slower than fp32."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(f.read().split())
        return bool(flags & {"amx_bf16", "avx512_bf16"})
    except OSError:
        probe = getattr(torch._C, "_cpu", None)  # torch's CPU feature probe (private; absent in old versions)
        return bool(probe and (probe._is_amx_tile_supported() or probe._is_avx512_bf16_supported()))


# bf16 is chosen by ``auto`` only when measured at least this much faster than fp32 (our margin). It must exceed the
# probe's run-to-run noise, or one command chooses differently from run to run: at 3% LION's probe (ratio ~0.97) chose
# bf16 in 3 of 8 fresh runs; the pass-to-pass spread of step timings on a shared machine is about ±8% (docs/speed.md).
# Where bf16 pays off it is 2.3-2.6x faster (ViT-B/16 on AMX, docs/speed.md): a 10% margin gives none of that away.
BF16_MARGIN = 0.10
LONG_S = 10.0  # a timing expected to take longer says so first (our choice)


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run trains in and why (stored with the row as ``precision`` / ``precision_reason``)."""

    precision: str  # fp32 | bf16
    reason: str


def has_native_bf16(device: torch.device) -> bool:
    """bf16 matmuls in hardware: a CUDA GPU with bf16, a CPU with AMX or AVX512-BF16."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_bf16()


def resolve_precision(precision: str, device: torch.device,
                      measure: Callable[[], tuple[float, float, str]] | None = None) -> PrecisionChoice:
    """``fp32`` / ``bf16`` as asked. ``auto``: fp32 without native bf16; with it, bf16 only when ``measure()``
    -> (fp32 s, bf16 s, where the timing came from) of the run's own training step shows bf16 at least
    ``BF16_MARGIN`` faster (bf16 pays off for large matmuls and loses to its casts on small models: measured
    both ways on one CPU, see docs); without ``measure``, fp32."""
    if precision != "auto":
        return PrecisionChoice(precision, "asked")
    if not has_native_bf16(device):
        return PrecisionChoice("fp32", f"auto: no native bf16 on {device.type}")
    if measure is None:
        return PrecisionChoice("fp32", "auto: not measured")
    fp32_s, bf16_s, source = measure()
    faster = bf16_s <= (1 - BF16_MARGIN) * fp32_s
    return PrecisionChoice("bf16" if faster else "fp32",
                           f"auto: bf16 step {bf16_s / fp32_s:.2f}x fp32 ({bf16_s:.4g} s vs {fp32_s:.4g} s, {source})")


def autocast(device: torch.device, precision: str):
    """The one place a precision becomes an autocast: bf16 autocast for "bf16" (losses are computed in fp32 on
    the logits by their callers), a no-op for "fp32"."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def time_precisions(step: Callable[[str], None], device: torch.device, passes: int = 5, min_sample_s: float = 0.2,
                    budget_s: float = 60.0, clock: Callable[[], float] = time.perf_counter,
                    announce: Callable[[float], None] | None = None) -> tuple[float, float]:
    """Seconds of one ``step(precision)`` in "fp32" and in "bf16": one warm-up step each, then
    ``passes`` interleaved passes (the order alternates), each sample repeating the step until it lasts
    ``min_sample_s`` (short steps are noise otherwise); the fastest sample of each precision (on a shared
    machine, other work only ever adds time); stops early past ``budget_s`` (large models). ``announce(seconds)``
    is told first when the passes are expected to take more than ``LONG_S``."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def timed(precision: str, repeats: int) -> float:
        sync()
        t0 = clock()
        for _ in range(repeats):
            step(precision)
        sync()
        return (clock() - t0) / repeats

    warm = {p: timed(p, 1) for p in ("fp32", "bf16")}
    repeats = {p: max(1, math.ceil(min_sample_s / max(s, 1e-6))) for p, s in warm.items()}
    expected = min(budget_s + max(warm.values()), passes * sum(repeats[p] * warm[p] for p in warm))
    if announce is not None and expected > LONG_S:
        announce(expected)
    samples: dict[str, list[float]] = {"fp32": [], "bf16": []}
    start = clock()
    for i in range(passes):
        for p in ("fp32", "bf16") if i % 2 == 0 else ("bf16", "fp32"):
            samples[p].append(timed(p, repeats[p]))
        if clock() - start > budget_s:
            break
    return min(samples["fp32"]), min(samples["bf16"])


def machine_key(device: torch.device) -> str:
    """What a timing depends on besides the model: the processor, torch's version and threads."""
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        where = cpu_model_name()
    return f"{where}|torch {torch.__version__}|threads {torch.get_num_threads()}"


@cache
def cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), platform.processor())
    except OSError:
        return platform.processor() or platform.machine()


def cached_timing(path: Path | None, key: str, measure: Callable[[], tuple[float, float]]) -> tuple[float, float, str]:
    """(fp32 s, bf16 s, source) for ``key``: from the JSON file at ``path`` when measured before, else measured
    now and added to it (written atomically; ``path`` None: measured every time)."""
    table: dict[str, Any] = {}
    if path is not None and path.is_file():
        try:
            table = json.loads(path.read_text())
        except (OSError, ValueError):
            table = {}  # an unreadable cache is measured again and rewritten
    if key in table:  # the file's name only: a stored row names no path of this machine
        return table[key]["fp32_s"], table[key]["bf16_s"], f"measured {table[key]['when']}, cached in {path.name}"
    fp32_s, bf16_s = measure()
    if path is not None:
        table[key] = {"fp32_s": fp32_s, "bf16_s": bf16_s, "when": time.strftime("%Y-%m-%d")}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(table, indent=1, sort_keys=True))
        os.replace(tmp, path)
    return fp32_s, bf16_s, "measured now"


@contextmanager
def flush_denormal(enabled: bool = True) -> Iterator[bool]:
    """Flush denormals to zero on every CPU thread inside the block (the previous mode is restored after);
    yields whether flushing is in effect on every thread (False when disabled or unsupported)."""
    before = flushing_everywhere()
    on = enabled and set_flush_denormal(True) and flushing_everywhere()
    try:
        yield on
    finally:
        if enabled and not before:
            set_flush_denormal(False)
