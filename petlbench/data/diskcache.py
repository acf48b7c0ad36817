"""Build once per machine: generated or converted arrays stored as an .npz under the cache dir, keyed by the code
that builds them and the input files it reads, so editing a generator or reinstalling a data package rebuilds the
entry. Used by the built-in vision tasks (``data.builtin``) and the built-in VL tasks (``vl.data.tasks``); the cache dir
is also where the decoded-data cache (``data.cache``) and the precision timings (``engine.numerics``) live.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

Arrays = dict[str, tuple[np.ndarray, ...]]  # {split: arrays of equal length (e.g. images, labels)}


def cache_dir() -> Path | None:
    """Where petlbench caches: $PETLBENCH_CACHE (``0`` disables), else ~/.cache/petlbench/offline."""
    env = os.environ.get("PETLBENCH_CACHE")
    if env == "0":
        return None
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "petlbench" / "offline"


def _key(name: str, code: Sequence[Path], inputs: Sequence[Path]) -> str:
    """The code's bytes, numpy's major version and each input file's (path, size, mtime)."""
    h = hashlib.sha256(b"".join(Path(p).read_bytes() for p in code) + np.__version__.split(".")[0].encode())
    h.update(name.encode())
    for p in inputs:
        h.update(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _read(path: Path) -> Arrays | None:
    try:
        with np.load(path) as z:
            out: dict[str, list[np.ndarray]] = {}
            for k in z.files:  # in the order written: splits in build order, each split's arrays in order
                out.setdefault(k.rsplit("_", 1)[0], []).append(z[k])
            return {s: tuple(a) for s, a in out.items()}
    except Exception:  # corrupt / partial file: rebuilt by the caller
        return None


def build_once(name: str, build: Callable[[], Arrays], code: Sequence[Path], inputs: Sequence[Path] = ()) -> Arrays:
    """``build()`` once per machine (in memory only when caching is off or the folder is read-only). Older
    entries of ``name`` are removed when a new one is written."""
    folder = cache_dir()
    if folder is None:
        return build()
    path = folder / f"{name}-{_key(name, code, inputs)}.npz"
    if path.is_file() and (arrays := _read(path)) is not None:
        return arrays
    arrays = build()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **{f"{s}_{i}": np.asarray(a) for s, group in arrays.items() for i, a in enumerate(group)})
        os.replace(tmp, path)
        for stale in folder.glob(f"{name}-{'?' * 16}.npz"):  # entries of older code or inputs
            if stale != path:
                stale.unlink(missing_ok=True)
    except OSError:  # read-only home etc.: stay in memory only
        pass
    return arrays
