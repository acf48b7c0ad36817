"""The dataset interface between the engine and the data of each track, and the types both tracks share.

Two stages so the model can be sized before preprocessing: ``datasets.load_data(name)`` -> a ``Data`` (classes
known, nothing preprocessed), then ``data.prepare(data_cfg)`` -> ``Splits`` of torch datasets prepared for the
model's data config. ``Data`` is what the engine knows of a dataset (``data.images.RawData`` for image
classification, ``vl.data.raw.VLRawData`` for vision-language); a ``Task`` (declared by the data) says how predictions
are scored. Also here: lazily decoded image entries (``ImageSource``), read the same way by every format.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from petlbench.errors import UserError

IMG_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def image_entries(items: list[Any], resolve: Callable[[Any], str] | None = None) -> ImageSource:
    """Image entries as parquet writers store them -> an ImageSource identified by a digest of their bytes (of
    the path text where an entry has no bytes). An entry is encoded bytes (pyarrow, pandas), a ``{bytes, path}``
    record (``datasets``, pandas) or a path. ``resolve`` maps each path entry (a record without bytes, or a path)
    to the file it names, raising UserError when there is none (the VL loader: paths relative to the data);
    without it entries are kept as written (``data.ImageSource.load`` decodes all three)."""
    if resolve is not None:
        items = [item if entry_bytes(item) is not None else resolve(entry_path(item)) for item in items]
    digest = hashlib.sha256()
    for item in items:
        blob = entry_bytes(item)
        digest.update(blob if blob is not None else str(entry_path(item)).encode())
    return ImageSource(items, f"parquet:{digest.hexdigest()[:16]}")


def entry_bytes(item: Any) -> bytes | None:
    """The encoded image bytes of an image entry (bytes, or a record's ``bytes``), None for a path entry."""
    blob = item.get("bytes") if isinstance(item, dict) else item
    return bytes(blob) if isinstance(blob, bytes | bytearray) and blob else None


def entry_path(item: Any) -> Any:
    """The path of an image entry without bytes (a record's ``path``, or the entry itself)."""
    return item.get("path") if isinstance(item, dict) else item


class ImageSource:
    """Lazily decoded images: a list of file paths / encoded bytes / ``{bytes, path}`` records, or a hub
    dataset column. A file that cannot be decoded raises an error naming it."""

    def __init__(self, items: Any, identity: str) -> None:
        self.items, self._identity = items, identity

    def __len__(self) -> int:
        return len(self.items)

    def identity(self) -> str:
        return self._identity

    def subset(self, idx: np.ndarray) -> ImageSource:
        if isinstance(self.items, list):
            items = [self.items[i] for i in idx]
        else:
            items = self.items.select(idx.tolist())
        return ImageSource(items, f"{self._identity}|{hashlib.sha256(idx.tobytes()).hexdigest()[:12]}")

    def load(self, i: int):
        import io

        from PIL import Image

        item = self.items[int(i)]
        item = entry_bytes(item) or entry_path(item)  # bytes, a parquet image record {bytes, path}, or a path
        where = str(item) if isinstance(item, (str, Path)) else f"image {int(i)} of {self._identity}"
        try:
            if isinstance(item, (bytes, bytearray)):
                item = Image.open(io.BytesIO(item))
            elif isinstance(item, (str, Path)):
                item = Image.open(item)
            return item.convert("RGB")  # decodes now: a truncated file fails here, with its name
        except (OSError, ValueError, SyntaxError) as e:
            raise ValueError(f"cannot decode {where}: {e}") from None


class HFColumn:
    """Lazily decoded image column of a ``datasets`` dataset (hub, parquet, save_to_disk), decoded one row at a
    time, optionally through a row map (a subset, or images joined to questions)."""

    def __init__(self, ds: Any, col: str, rows: np.ndarray | None = None) -> None:
        self.ds, self.col, self.rows = ds, col, rows

    def __len__(self) -> int:
        return len(self.ds) if self.rows is None else len(self.rows)

    def __getitem__(self, i: int):
        return self.ds[int(i if self.rows is None else self.rows[i])][self.col]

    def select(self, idx: Sequence[int]) -> HFColumn:
        idx = np.asarray(idx, dtype=np.int64)
        return HFColumn(self.ds, self.col, idx if self.rows is None else self.rows[idx])


class Task(ABC):
    """How predictions are scored, declared by the data: the training loss and the evaluation metric (its name,
    ``metric``, is stored with each row), the ``kind`` of task, and the head's lr multiplier the task implies
    when the recipe leaves it to the task (``head_lr_mult`` None)."""

    metric: str
    kind: str
    head_lr_mult: float

    @abstractmethod
    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The training loss of a batch (mean)."""

    @abstractmethod
    def score(self, logits: torch.Tensor, target: torch.Tensor) -> float:
        """Sum over the batch of per-sample scores in [0, 1]."""


class Classification(Task):
    """Single-label classification: cross-entropy and top-1 (stored as ``top1_pct``)."""

    metric, kind, head_lr_mult = "top1", "classification", 1.0

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target)

    def score(self, logits: torch.Tensor, target: torch.Tensor) -> float:
        return float((logits.argmax(-1) == target).sum())


CLASSIFICATION = Classification()


@dataclass
class Splits:
    """What the loop trains (``train``), validates (``val``) and tests on; a method's search trains on
    ``search_train`` and takes its rewards from ``search_val`` (under ``--trainval`` these are train and
    val apart, while ``train`` is their union: a search never rewards on data it trains on)."""

    train: Dataset
    val: Dataset | None
    test: Dataset | None  # None for a selection run (hyper-parameter choice on val)
    num_classes: int
    search_train: Dataset | None = None
    search_val: Dataset | None = None
    preprocessing: str = ""
    task: Task = CLASSIFICATION


def make_splits(parts: dict[str, Dataset], num_classes: int, preprocessing: str, task: Task = CLASSIFICATION,
                trainval: bool = False, merged: Callable[[], Dataset] | None = None) -> Splits:
    """Prepared train / val (/ test) datasets -> ``Splits``. ``trainval`` trains on train + val (``merged()``, by
    default the two concatenated) while ``search_train`` / ``search_val`` keep them apart."""
    train, val = parts["train"], parts.get("val")
    if trainval and val is not None:
        both = merged() if merged is not None else torch.utils.data.ConcatDataset([train, val])
        return Splits(both, None, parts.get("test"), num_classes, train, val, preprocessing, task)
    return Splits(train, val, parts.get("test"), num_classes, train, val, preprocessing, task)


def limit_rows(n: int, limit: int | None, seed: int) -> np.ndarray | None:
    """``--limit``: sorted indices of a seeded random subset of ``limit`` of ``n`` samples, None to keep all."""
    if not limit or n <= limit:
        return None
    return np.sort(np.random.default_rng(seed).permutation(n)[:limit])


class Data(ABC):
    """A dataset as the engine sees it, before preprocessing. ``track`` names its results track; ``splits`` maps
    train / val / test to the data's own split type; ``epochs`` / ``batch_size`` are a built-in task's compact
    budget (None: the method's recipe); ``note`` is said to the user when the data is loaded."""

    track: str = "vision"
    name: str
    source: str  # where the data came from (hub id, path, generator + version)
    group: str | None
    note: str
    epochs: int | None
    batch_size: int | None
    splits: dict[str, Any]
    classes: list[str]  # the label names (classes, or a VL task's answers)
    task: Any  # how predictions are scored: its ``kind``, ``metric`` and the ``head_lr_mult`` it implies
    unit: str = "class"  # what a label is called in messages (VL: "answer")
    noun: str = "dataset"  # what the data is called in messages (VL: "VL dataset")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @abstractmethod
    def size(self, split: str) -> int:
        """Samples in ``split``."""

    @abstractmethod
    def fingerprint(self) -> dict[str, str]:
        """A digest per split of everything that defines it (part of the run identity)."""

    @abstractmethod
    def prepare(self, data_cfg: dict[str, Any], trainval: bool = False, selection: bool = False) -> Splits:
        """``Splits`` for a model's data config; a ``selection`` run (hyper-parameter choice) gets no test split."""

    @abstractmethod
    def limited(self, limit: int | None, seed: int = 0) -> Data:
        """At most ``limit`` samples per split (``limit_rows``), as a new object (cached data is never cut)."""

    def ready(self) -> None:
        """A last check on exactly the samples a run reads (after ``limited``), e.g. that every image decodes;
        UserError when one does not. Nothing by default."""
        return None

    def check(self, what: str) -> None:
        """UserError unless usable: a train and a test split, none empty, at least two labels."""
        if "train" not in self.splits or "test" not in self.splits:
            raise UserError(f"{what} needs a train and a test split, found: {', '.join(self.splits) or 'none'}")
        for split in self.splits:
            if self.size(split) == 0:
                raise UserError(f"{what} has an empty '{split}' split; point --dataset at data with samples")
        if self.num_classes < 2:
            raise UserError(f"{what} has {self.num_classes} {self.unit} ({', '.join(self.classes) or 'none'}); "
                            f"it needs at least two")


class DatasetSpec(ABC):
    """A named dataset in the registry (``datasets.DATASETS``): a built-in task or a hub spec of either track."""

    track: str = "vision"

    @abstractmethod
    def load(self, name: str) -> Data:
        """The dataset, loaded (UserError when it cannot be, e.g. offline for a hub spec)."""

    @abstractmethod
    def row(self) -> tuple[str, str]:
        """(kind, note) for ``petlbench list datasets``."""
