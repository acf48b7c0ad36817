"""Batches: mini-batches of a prepared split (in-memory tensors sliced directly, datasets that batch themselves,
or a DataLoader), batch tensors mapped as a whole, and a seeded held-out part of a split."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset


class BatchedDataset(Dataset, ABC):
    """A prepared split that makes its own mini-batches (``vl.data.raw.VLTorchSplit``: token ids cut to each batch's
    longest text; ``data.cache.CachedImages``: lazy data decoded once); ``batches`` uses them."""

    @abstractmethod
    def batches(self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
                num_workers: int = 0, pin_memory: bool = False) -> Iterator[tuple[Any, Any]]:
        """Mini-batches ``(inputs, target)`` in order, or shuffled by ``generator``."""


def split_off(ds: Dataset, fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
    """(rest, held-out ``fraction``) of ``ds``, drawn with a fixed seed; in-memory sets stay in memory."""
    n = len(ds)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    k = max(1, int(round(fraction * n)))
    rest, held = perm[k:].sort().values, perm[:k].sort().values
    if isinstance(ds, TensorDataset):  # type(ds): a decoded-once lazy split keeps being served as one
        return type(ds)(*(t[rest] for t in ds.tensors)), type(ds)(*(t[held] for t in ds.tensors))
    return torch.utils.data.Subset(ds, rest.tolist()), torch.utils.data.Subset(ds, held.tolist())


def map_tensors(batch: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``fn`` applied to a batch's tensors: a tensor, or every tensor in a mapping / tuple / list (a VL batch
    is a mapping of text and pixel tensors); anything else passes through."""
    if isinstance(batch, torch.Tensor):
        return fn(batch)
    if isinstance(batch, Mapping):
        return {k: map_tensors(v, fn) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(map_tensors(v, fn) for v in batch)
    return batch


def tensor_shapes(batch: Any) -> tuple[tuple[int, ...], ...]:
    """The shapes of a batch's tensors, in ``map_tensors`` order."""
    shapes: list[tuple[int, ...]] = []
    map_tensors(batch, lambda t: shapes.append(tuple(t.shape)) or t)
    return tuple(shapes)


def batches(ds: Dataset, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
            num_workers: int = 0, pin_memory: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches of ``ds``; in-memory tensor sets are sliced directly (no per-sample collation);
    ``pin_memory``: loader batches arrive in pinned memory (for non-blocking copies to a GPU). A
    ``BatchedDataset`` batches itself."""
    if isinstance(ds, BatchedDataset):
        yield from ds.batches(batch_size, shuffle, generator, num_workers, pin_memory)
        return
    if isinstance(ds, TensorDataset):
        n = len(ds)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        x, y = ds.tensors
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            yield x[idx], y[idx]
        return
    yield from DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=num_workers,
                          pin_memory=pin_memory)


def num_batches(ds: Dataset, batch_size: int) -> int:
    return -(-len(ds) // batch_size)
