"""VTAB-1k task folders in NOAH's layout (``train800.txt``, ``val200.txt``, ``test.txt`` lists of image paths and labels)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from petlbench.data.images import RawData
from petlbench.data.types import ImageSource


def load_noah(task: Path) -> RawData:
    """VTAB-1k in NOAH layout: ``train800.txt``, ``val200.txt``, ``test.txt`` with 'path label' lines."""

    def read(listfile: str) -> tuple[ImageSource, np.ndarray]:
        files, labels = [], []
        for line in (task / listfile).read_text().splitlines():
            if line.strip():
                rel, lab = line.rsplit(" ", 1)
                files.append(str(task / rel))
                labels.append(int(lab))
        ident = hashlib.sha256((task / listfile).read_bytes()).hexdigest()[:16]
        return ImageSource(files, f"noah:{task.name}:{listfile}:{ident}"), np.asarray(labels, dtype=np.int64)

    splits = {"train": read("train800.txt"), "test": read("test.txt")}
    if (task / "val200.txt").exists():
        splits["val"] = read("val200.txt")
    n = int(max(int(lab.max()) for _, lab in splits.values())) + 1
    return RawData(task.name, splits, [str(i) for i in range(n)], f"noah:{task}")
