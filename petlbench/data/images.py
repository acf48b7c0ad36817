"""Image classification data (the vision track's ``Data``): per split an array of uint8 images or lazily decoded
image entries, and integer labels. Preprocessed for a model by one ``Preprocess`` (squash-resize to the input size,
no centre crop, as VTAB-1k protocols do): small in-memory sets once into tensors, files and hub columns lazily.
No augmentation (VTAB-1k protocol)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from petlbench.data.preprocess import LazyImages, Preprocess
from petlbench.data.types import CLASSIFICATION, Data, Splits, limit_rows, make_splits
from petlbench.errors import UserError


@dataclass
class RawData(Data):
    """A dataset before preprocessing. Each split is (images, labels).

    images: uint8 array N×H×W(×C) for in-memory sets, or a sequence of PIL-loadable items
    (``ImageSource``) for lazily decoded sets.
    """

    name: str
    splits: dict[str, tuple[Any, np.ndarray]]
    classes: list[str]  # type: ignore[assignment]  (a field here; a property on VLRawData)
    source: str  # where the data came from (hub id, path, generator + version)
    group: str | None = None
    note: str = ""  # said to the user when loaded, e.g. how a single file was split
    epochs: int | None = None  # compact epoch budget of built-in tasks (None = method recipe)
    batch_size: int | None = None

    track = "vision"
    task = CLASSIFICATION

    def size(self, split: str) -> int:
        return len(self.splits[split][1])

    def fingerprint(self) -> dict[str, str]:
        """sha256 (16 hex) of each split's labels and image bytes / file identities."""
        out = {}
        for split, (images, labels) in self.splits.items():
            h = hashlib.sha256(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
            if isinstance(images, np.ndarray):
                h.update(np.ascontiguousarray(images).tobytes())
            else:  # decoded by petlbench: since 0.2 squashed to the input size (0.1 centre-cropped)
                h.update(f"{images.identity()}|decode:squash".encode())
            out[split] = h.hexdigest()[:16]
        return out

    def prepare(self, data_cfg: dict[str, Any], trainval: bool = False, selection: bool = False) -> Splits:
        """Every split preprocessed with the backbone's input size and mean/std (see ``Data.prepare``)."""
        pre = Preprocess.of(data_cfg)  # the model's input size; mean/std and resize by the run's protocol
        parts: dict[str, Dataset] = {}
        for split, (images, labels) in self.splits.items():
            if selection and split == "test":
                continue
            if isinstance(images, np.ndarray):
                parts[split] = TensorDataset(pre(images), torch.from_numpy(labels.astype(np.int64)))
            else:
                parts[split] = LazyImages(images, labels, pre)
        return make_splits(parts, self.num_classes, pre.describe(), trainval=trainval)

    def limited(self, limit: int | None, seed: int = 0) -> RawData:
        splits = {}
        for split, (images, labels) in self.splits.items():
            rows = limit_rows(len(labels), limit, seed)
            splits[split] = (images, labels) if rows is None else (
                images[rows] if isinstance(images, np.ndarray) else images.subset(rows), labels[rows])
        return replace(self, splits=splits)

    def check(self, what: str) -> None:
        """``Data.check``, and no class in val / test that train lacks."""
        super().check(what)
        seen = set(np.unique(self.splits["train"][1]).tolist())
        for split, (_images, labels) in self.splits.items():
            missing = sorted(set(np.unique(labels).tolist()) - seen)
            if missing:
                names = ", ".join(self.classes[i] if i < len(self.classes) else str(i) for i in missing[:3])
                raise UserError(f"{what}: class {names} appears in '{split}' but not in train; "
                                "every class needs training images")
