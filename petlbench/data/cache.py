"""Data once: lazily decoded splits that are read more than once (train every epoch, val after every epoch)
are decoded and preprocessed once, then served from a cache.

petlbench has no augmentation (VTAB-1k protocol), so every epoch sees the same preprocessed tensors; decoding
and resizing them again each epoch is pure overhead. ``cache_splits`` replaces a lazy train / val split by a
``CachedImages`` tensor set, keyed by (the split's data fingerprint, the preprocessing):
- in memory (kept for the process, so the next run of a suite on the same data decodes nothing) when the
  tensors take at most a quarter of the memory available (``MEMORY_SHARE``, our choice);
- else a memory-mapped file under ``<cache dir>/data`` (written once, reused by later processes).
The cache holds the exact float32 tensors ``Preprocess`` produces (a uint8 cache of the resized images would
round them and break "the same image gives the same tensor" between in-memory and decoded data). The first
decode runs through a DataLoader with the run's ``num_workers``. Test is read once and stays lazy.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from petlbench.data.batching import BatchedDataset
from petlbench.data.preprocess import LazyImages
from petlbench.data.types import Splits

MEMORY_SHARE = 0.25  # at most this share of the available memory goes to in-memory caches (our choice)
_MEMORY: dict[str, torch.Tensor] = {}  # key -> N×C×H×W float32, for the life of the process
_VERSION = "1"  # bump when Preprocess changes what it computes


class CachedImages(TensorDataset, BatchedDataset):
    """A lazily decoded split, decoded and preprocessed once: (images N×C×H×W float32, labels)."""

    def batches(self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
                num_workers: int = 0, pin_memory: bool = False):
        """Batches as ``batching.batches`` served the lazy split through a DataLoader: the same order from the
        same random draws (so the data order and every random stream after it do not change), sliced
        from the tensors without per-sample collation."""
        n, (x, y) = len(self), self.tensors
        torch.empty((), dtype=torch.int64).random_(generator=generator)  # the loader's worker base seed
        if shuffle and generator is None:  # RandomSampler seeds a generator of its own from the global one
            generator = torch.Generator().manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            yield x[idx], y[idx]
        if shuffle:  # RandomSampler draws a permutation for the remainder (num_samples % n) at the end
            torch.randperm(n, generator=generator)


def _available_bytes() -> int:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def _decode(ds: LazyImages, out: torch.Tensor, num_workers: int) -> None:
    """Fill ``out`` with ``ds``'s preprocessed images, in order, through a DataLoader (``num_workers``)."""
    i = 0
    # a generator of its own: the loader's worker seed is drawn from it, not from the run's global RNG
    for x, _ in DataLoader(ds, batch_size=64, num_workers=num_workers, generator=torch.Generator()):
        out[i:i + len(x)] = x
        i += len(x)


def _on_disk(path: Path, ds: LazyImages, shape: tuple[int, ...], num_workers: int) -> torch.Tensor:
    """A read-only memory map of the preprocessed images at ``path``, written first if it is not there."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        _decode(ds, torch.from_numpy(out), num_workers)
        out.flush()
        del out
        os.replace(tmp, path)  # complete files only: a crashed writer leaves a .tmp, never a partial cache
    return torch.from_numpy(np.load(path, mmap_mode="c"))  # copy-on-write: the file is never written


def cached(ds: LazyImages, key: str, cache_dir: Path | None, num_workers: int = 0) -> CachedImages:
    """``ds`` decoded and preprocessed once (memory when it fits, else a memory-mapped file under
    ``cache_dir``; in memory anyway when there is no cache dir)."""
    shape = (len(ds), *ds.preprocess.input_size)  # N×C×H×W
    labels = torch.from_numpy(np.asarray(ds.labels, dtype=np.int64))
    if key in _MEMORY:
        return CachedImages(_MEMORY[key], labels)
    nbytes = int(np.prod(shape)) * 4
    if cache_dir is not None and nbytes > MEMORY_SHARE * _available_bytes():
        return CachedImages(_on_disk(cache_dir / "data" / f"{key}.npy", ds, shape, num_workers), labels)
    x = torch.empty(shape, dtype=torch.float32)
    _decode(ds, x, num_workers)
    _MEMORY[key] = x
    return CachedImages(x, labels)


def cache_key(fingerprint: str, preprocessing: str) -> str:
    return hashlib.sha256(f"{_VERSION}|{fingerprint}|{preprocessing}".encode()).hexdigest()[:24]


def cache_splits(splits: Splits, fingerprints: dict[str, str], cache_dir: Path | None,
                 num_workers: int = 0) -> Splits:
    """``splits`` with its lazily decoded train / val (and search_train / search_val, the same objects)
    served from the cache; in-memory splits and test are left as they are."""
    done: dict[int, CachedImages] = {}

    def swap(ds, split: str):
        if not isinstance(ds, LazyImages):
            return ds
        if id(ds) not in done:
            done[id(ds)] = cached(ds, cache_key(fingerprints[split], splits.preprocessing), cache_dir, num_workers)
        return done[id(ds)]

    parts = [splits.train, splits.val, splits.search_train, splits.search_val]
    if isinstance(splits.train, torch.utils.data.ConcatDataset):  # --trainval: train + val
        parts += list(splits.train.datasets)
    if not any(isinstance(d, LazyImages) for d in parts):
        return splits  # in-memory or non-image (VL) data: nothing to decode
    train, val = swap(splits.search_train or splits.train, "train"), swap(splits.search_val or splits.val, "val")
    if isinstance(splits.train, torch.utils.data.ConcatDataset):  # --trainval: train + val
        splits.train = torch.utils.data.ConcatDataset([train, val])
    else:
        splits.train, splits.val = swap(splits.train, "train"), swap(splits.val, "val")
    splits.search_train, splits.search_val = train, val
    return splits
