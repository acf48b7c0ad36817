"""CPU float modes of a run: denormals flushed to zero on every thread that computes.

x86 float math on denormal (subnormal) values is many times slower than on normal ones, and training can
drive values there (e.g. a memorised batch: softmax gradients of about exp(-90) are subnormal in fp32).
``torch.set_flush_denormal`` sets flush-to-zero and denormals-are-zero (FTZ/DAZ in the MXCSR register) on
the *calling thread only*: torch's intra-op OpenMP workers, created earlier, keep computing with denormals,
so with 2 threads half of every parallel op stays slow. ``flush_denormal`` sets the mode on the calling
thread and on every worker of the OpenMP pool (through ``GOMP_parallel``, exported by libgomp and LLVM's
libomp alike); workers created later inherit it from the calling thread (POSIX: a new thread inherits the
floating-point environment of its creator). Whether it took is checked, not assumed (``flushing_everywhere``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

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


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> bf16 on a CUDA device with bf16 support and on a CPU with AMX or AVX512-BF16, else fp32;
    fp32 / bf16 as asked (issue 16: the bf16 parity table in the README decided this)."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_bf16() else "fp32"


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
