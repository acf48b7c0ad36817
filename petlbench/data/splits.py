"""Split rules shared by every local format of both tracks: which split a folder or file name means, the fixed
carve of one unsplit pool into train/val/test, and hidden entries to skip."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from petlbench.data.images import RawData

SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "dev": "val", "test": "test", "testing": "test", "testdev": "test"}  # names users give splits
POOL_CARVE = {"train": 0.7, "val": 0.1, "test": 0.2}  # one unsplit pool -> train/val/test (our choice)
CARVE_SEED = 0  # the fixed seed of every carve (our choice)


def split_of(name: str) -> str | None:
    """'train' | 'val' | 'test' for a split folder or file name: the whole stem (``validation``, ``valid``,
    ``dev`` = val), else a ``-``/``_``-separated part of it, optionally followed by digits (``questions_train2014``);
    None when no part names a split."""
    stem = name.lower().split(".")[0]
    if stem in SPLIT_NAMES:
        return SPLIT_NAMES[stem]
    for part in re.split(r"[-_ ]", stem):
        if split := SPLIT_NAMES.get(part.rstrip("0123456789")):
            return split
    return None


def visible(p: Path) -> bool:
    """Not a hidden or tool folder / file (.ipynb_checkpoints, .DS_Store, __MACOSX ...)."""
    return not p.name.startswith((".", "__"))


def carve_keys(n: int, fractions: dict[str, float], seed: int = CARVE_SEED, floor: bool = False) -> dict[str, np.ndarray]:
    """Sorted indices 0..n-1 (samples, or groups of them) per split: a permutation by ``seed`` cut by the cumulative
    ``fractions`` (in dict order), each bound rounded; with ``floor``, each part but the last floored and the last
    taking the rest (the flat-pool carve)."""
    rank = np.empty(n, dtype=np.int64)
    rank[np.random.default_rng(seed).permutation(n)] = np.arange(n)
    if floor:
        sizes = [int(f * n) for f in list(fractions.values())[:-1]]
        bounds = [0, *np.cumsum(sizes).tolist(), n]
    else:
        bounds = [round(b) for b in np.cumsum([0.0, *fractions.values()]) / sum(fractions.values()) * n]
    return {s: np.flatnonzero((rank >= lo) & (rank < hi)) for s, lo, hi in zip(fractions, bounds[:-1], bounds[1:],
                                                                                  strict=True)}


def carve_pool(n: int) -> dict[str, np.ndarray]:
    """Sorted indices of one pool of ``n`` samples cut 70/10/20 into train/val/test (``carve_keys`` by
    ``CARVE_SEED``, floored); empty parts are left out."""
    return {s: ix for s, ix in carve_keys(n, POOL_CARVE, floor=True).items() if len(ix)}


def flat_split(name: str, images: Any, labels: np.ndarray, classes: list[str], source: str) -> RawData:
    """One pool of labelled images -> train/val/test 70/10/20 with a fixed seed (said in ``note``)."""
    splits = {s: (images.subset(ix), labels[ix]) for s, ix in carve_pool(len(labels)).items()}
    note = f"no split given: {len(labels)} images split 70/10/20 into train/val/test with a fixed seed (0)"
    return RawData(name, splits, classes, source, note=note)
