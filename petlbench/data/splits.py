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


def carve_pool(n: int) -> dict[str, np.ndarray]:
    """Sorted indices of one pool of ``n`` samples cut 70/10/20 into train/val/test (a permutation by
    ``CARVE_SEED``); empty parts are left out."""
    perm = np.random.default_rng(CARVE_SEED).permutation(n)
    n_tr, n_va = int(POOL_CARVE["train"] * n), int(POOL_CARVE["val"] * n)
    parts = {"train": perm[:n_tr], "val": perm[n_tr:n_tr + n_va], "test": perm[n_tr + n_va:]}
    return {s: np.sort(ix) for s, ix in parts.items() if len(ix)}


def flat_split(name: str, images: Any, labels: np.ndarray, classes: list[str], source: str) -> RawData:
    """One pool of labelled images -> train/val/test 70/10/20 with a fixed seed (said in ``note``)."""
    splits = {s: (images.subset(ix), labels[ix]) for s, ix in carve_pool(len(labels)).items()}
    note = f"no split given: {len(labels)} images split 70/10/20 into train/val/test with a fixed seed (0)"
    return RawData(name, splits, classes, source, note=note)
