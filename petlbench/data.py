"""Data types and preprocessing: ``RawData`` -> ``Splits`` the loop consumes.

Two stages so the model can be sized before preprocessing: ``sources.load_data(name)`` -> ``RawData``
(classes known, images not yet preprocessed), then ``prepare(raw, data_cfg)`` -> ``Splits`` of torch
datasets preprocessed with the backbone's data config (input size, mean, std). Small in-memory sets are
preprocessed once into tensors; hub/local image datasets are decoded lazily; both go through one
``Preprocess`` (squash-resize to the input size, no centre crop, as VTAB-1k protocols do). No
augmentation (VTAB-1k protocol). A ``Task`` (declared by the data) says how predictions are scored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

SPLITS = ("train", "val", "test")
IMG_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass
class RawData:
    """A dataset before preprocessing. Each split is (images, labels).

    images: uint8 array N×H×W(×C) for in-memory sets, or a sequence of PIL-loadable items
    (``ImageSource``) for lazily decoded sets.
    """

    name: str
    splits: dict[str, tuple[Any, np.ndarray]]
    classes: list[str]
    source: str  # where the data came from (hub id, path, generator + version)
    group: str | None = None
    note: str = ""  # said to the user when loaded, e.g. how a single file was split
    epochs: int | None = None  # compact epoch budget of built-in tasks (None = method recipe)
    batch_size: int | None = None

    track = "vision"  # the benchmark track (``vl_data.VLRawData.track`` = "vl"); results are grouped by it

    @property
    def num_classes(self) -> int:
        return len(self.classes)

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


# ----------------------------------------------------------------------------- preprocessing


class Task:
    """How predictions are scored, declared by the data: the training loss and the evaluation metric.
    Single-label classification: cross-entropy and top-1 (the metric stored as ``top1_pct``)."""

    metric = "top1"
    kind = "classification"  # what kind of task (VL tasks: "vqa" | "entailment"); recipes may depend on it

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target)

    def score(self, logits: torch.Tensor, target: torch.Tensor) -> float:
        """Sum over the batch of per-sample scores in [0, 1] (here: correct or not)."""
        return float((logits.argmax(-1) == target).sum())


CLASSIFICATION = Task()


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


class Preprocess:
    """uint8 images -> normalised float tensors at the model's input size, as VTAB-1k protocols do:
    resized straight to (H, W) (squash, no centre crop: VPT and NOAH resize to 224×224; timm's eval
    transform would crop 87.5% and lose the borders structured tasks depend on), bilinear with
    antialiasing (our choice; NOAH's loader uses PIL bicubic), the model's mean/std. In-memory and lazily
    decoded data go through this one function, so the same image gives the same tensor on both paths."""

    def __init__(self, input_size: tuple[int, int, int], mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.input_size, self.mean, self.std = tuple(input_size), tuple(mean), tuple(std)

    def __call__(self, images: np.ndarray) -> torch.Tensor:
        """uint8 N×H×W(×C) -> float N×C×H×W."""
        x = torch.from_numpy(np.ascontiguousarray(images))
        if x.ndim == 3:
            x = x.unsqueeze(-1)
        x = x.permute(0, 3, 1, 2).float().div_(255)
        c, h, w = self.input_size
        if x.shape[1] != c:
            x = x.expand(-1, c, -1, -1) if x.shape[1] == 1 else x[:, :c]
        if x.shape[-2:] != (h, w):
            x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        mean_t = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std_t = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)
        return ((x - mean_t) / std_t).contiguous()

    def describe(self) -> str:
        """One line for the run's provenance."""
        c, h, w = self.input_size
        mean, std = (",".join(f"{v:.4g}" for v in t) for t in (self.mean, self.std))
        return f"resize to {h}x{w} (squash, no crop; bilinear, antialias), {c} channels, mean ({mean}), std ({std})"


class LazyImages(Dataset):
    """Images decoded on access (hub / local files), through the same ``Preprocess`` as in-memory data."""

    def __init__(self, images: ImageSource, labels: np.ndarray, preprocess: Preprocess) -> None:
        self.images, self.labels, self.preprocess = images, labels, preprocess

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = np.array(self.images.load(i), dtype=np.uint8)  # a writable copy
        return self.preprocess(img[None])[0], int(self.labels[i])


def preprocess_array(images: np.ndarray, input_size: tuple[int, int, int], mean, std) -> torch.Tensor:
    """uint8 N×H×W(×C) -> float N×C×H×W resized to ``input_size`` and normalised (see ``Preprocess``)."""
    return Preprocess(input_size, mean, std)(images)


def prepare(raw: RawData, data_cfg: dict[str, Any], trainval: bool = False, selection: bool = False) -> Splits:
    """Preprocess every split with the backbone's input size and mean/std; ``trainval`` merges val into
    train for training (``Splits.search_train``/``search_val`` keep them apart for a method's search).
    A ``selection`` run (hyper-parameter choice) gets no test split at all: it is never read. Data that prepares
    itself (``vl_data.VLRawData``: images and texts) does."""
    if hasattr(raw, "prepare"):
        return raw.prepare(data_cfg, trainval=trainval, selection=selection)
    pre = Preprocess(data_cfg["input_size"], data_cfg["mean"], data_cfg["std"])
    out: dict[str, Dataset] = {}
    for split, (images, labels) in raw.splits.items():
        if selection and split == "test":
            continue
        if isinstance(images, np.ndarray):
            out[split] = TensorDataset(pre(images), torch.from_numpy(labels.astype(np.int64)))
        else:
            out[split] = LazyImages(images, labels, pre)
    train, val = out["train"], out.get("val")
    if trainval and val is not None:
        return Splits(torch.utils.data.ConcatDataset([train, val]), None, out.get("test"), raw.num_classes,
                      search_train=train, search_val=val, preprocessing=pre.describe())
    return Splits(train, val, out.get("test"), raw.num_classes, search_train=train, search_val=val,
                  preprocessing=pre.describe())


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
    ``pin_memory``: loader batches arrive in pinned memory (for non-blocking copies to a GPU). A dataset with
    its own ``batches`` (``vl_data.VLTorchSplit``: token ids cut to each batch's longest text;
    ``datacache.CachedImages``: lazy data decoded once) batches itself."""
    if hasattr(ds, "batches"):
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
