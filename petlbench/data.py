"""Datasets: hub ids, local sources and built-in offline tasks -> train/val/test splits.

Two stages so the model can be sized before preprocessing:
``load_data(name)`` -> ``RawData`` (classes known, images not yet preprocessed), then
``prepare(raw, data_cfg)`` -> ``Splits`` of torch datasets preprocessed with the backbone's
timm data config (input size, mean, std). Small in-memory sets are preprocessed once into
tensors; hub/local image datasets are decoded lazily; both go through one ``Preprocess``
(squash-resize to the input size, no centre crop, as VTAB-1k protocols do).
No augmentation (VTAB-1k protocol).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from petlbench.errors import UserError, did_you_mean

SPLITS = ("train", "val", "test")
IMG_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
OFFLINE_HINT = "offline, use a built-in dataset (run 'petlbench list datasets') or a local path"


# ----------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class HubSpec:
    """A dataset on the Hugging Face hub (online only)."""

    hub_id: str
    image_col: str | None = None  # None = autodetect the Image feature
    label_col: str | None = None  # None = autodetect the ClassLabel feature / 'label'
    splits: dict[str, str] = field(default_factory=lambda: {"train": "train", "test": "test"})
    subdir: str | None = None  # VTAB-1k: task folder inside the NOAH zip
    group: str | None = None  # VTAB group: natural | specialized | structured
    note: str = ""


_VTAB = {
    "natural": ["cifar", "caltech101", "dtd", "oxford_flowers102", "oxford_iiit_pet", "svhn", "sun397"],
    "specialized": ["patch_camelyon", "eurosat", "resisc45", "diabetic_retinopathy"],
    "structured": ["clevr_count", "clevr_dist", "dmlab", "kitti", "dsprites_loc", "dsprites_ori",
                   "smallnorb_azi", "smallnorb_ele"],
}

HUB: dict[str, HubSpec] = {
    "cifar100": HubSpec("uoft-cs/cifar100", image_col="img", label_col="fine_label", note="50k/10k, 100 classes"),
    "cub200": HubSpec("Donghyun99/CUB-200-2011", note="FGVC, parquet"),
    "flowers102": HubSpec("Donghyun99/Oxford-Flower-102", note="FGVC, parquet"),
    "stanford-dogs": HubSpec("Donghyun99/Stanford-Dogs", note="FGVC, parquet"),
    "stanford-cars": HubSpec("Donghyun99/Stanford-Cars", note="FGVC, parquet"),
}
for _group, _tasks in _VTAB.items():
    for _task in _tasks:
        HUB[f"vtab-{_task}"] = HubSpec("XiN0919/VTAB-1k", subdir=_task, group=_group, note=f"VTAB-1k {_group}")


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
    epochs: int | None = None  # compact epoch budget of built-in tasks (None = method recipe)
    batch_size: int | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

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


class ImageSource:
    """Lazily decoded images: a list of file paths or a hub dataset column."""

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
        from PIL import Image

        item = self.items[int(i)]
        img = Image.open(item) if isinstance(item, (str, Path)) else item
        return img.convert("RGB")


# ----------------------------------------------------------------------------- loading


def builtin_datasets() -> dict[str, Callable[[], RawData]]:
    from petlbench import offline

    return offline.BUILTIN


def default_dataset() -> str:
    from petlbench import offline

    return offline.DEFAULT


def list_datasets() -> list[tuple[str, str, str]]:
    """(name, kind, note) rows for ``petlbench list datasets``."""
    from petlbench import offline

    rows = [(n, "built-in (offline)", offline.describe(n)) for n in builtin_datasets()]
    rows += [(n, "hub", f"{s.hub_id} {s.note}") for n, s in HUB.items()]
    rows.append(("<path>", "local", "image folder, parquet file/dir, save_to_disk dir, or VTAB-1k NOAH task dir"))
    return rows


def load_data(name: str | None, limit: int | None = None, seed: int = 0) -> RawData:
    """Resolve ``name`` (built-in, hub name, or local path) to ``RawData``; UserError when unusable."""
    name = name or default_dataset()
    builtins = builtin_datasets()
    if name in builtins:
        raw = builtins[name]()
    elif name in HUB:
        raw = _load_hub(name, HUB[name])
    elif os.path.exists(name):
        raw = _load_local(Path(name))
    else:
        raise UserError(
            f"unknown dataset '{name}'{did_you_mean(name, list(builtins) + list(HUB))}; "
            "run 'petlbench list datasets' or pass an existing path"
        )
    if "train" not in raw.splits or "test" not in raw.splits:
        raise UserError(f"dataset '{name}' needs a train and a test split, found: {', '.join(raw.splits) or 'none'}")
    for split, (_images, labels) in raw.splits.items():
        if len(labels) == 0:
            raise UserError(f"dataset '{name}' has an empty '{split}' split; point --dataset at data with images")
    if limit:
        raw.splits = {s: _take(imgs, labels, limit, seed) for s, (imgs, labels) in raw.splits.items()}
    return raw


def _take(images: Any, labels: np.ndarray, n: int, seed: int) -> tuple[Any, np.ndarray]:
    if len(labels) <= n:
        return images, labels
    idx = np.sort(np.random.default_rng(seed).permutation(len(labels))[:n])
    return (images[idx] if isinstance(images, np.ndarray) else images.subset(idx)), labels[idx]


def _quiet_datasets():
    import datasets as hfds

    hfds.disable_progress_bars()
    hfds.logging.set_verbosity_error()
    return hfds


def _load_hub(name: str, spec: HubSpec) -> RawData:
    if spec.subdir:  # VTAB-1k: one zip in NOAH layout
        try:
            from huggingface_hub import snapshot_download

            root = snapshot_download(spec.hub_id, repo_type="dataset", allow_patterns=[f"*{spec.subdir}*"])
        except Exception as e:
            raise UserError(f"cannot reach '{spec.hub_id}' on the Hugging Face hub ({type(e).__name__}); {OFFLINE_HINT}") from None
        task_dirs = [p for p in Path(root).rglob(spec.subdir) if (p / "test.txt").exists()]
        if not task_dirs:
            raise UserError(f"'{spec.hub_id}' has no unpacked '{spec.subdir}' task; unzip it and pass the task dir as --dataset")
        raw = _load_noah(task_dirs[0])
        raw.name, raw.group = name, spec.group
        return raw
    try:
        hfds = _quiet_datasets()
        dsd = hfds.load_dataset(spec.hub_id)
    except Exception as e:
        if "couldn't reach" in str(e).lower() or "offline" in str(e).lower() or "connection" in type(e).__name__.lower():
            raise UserError(f"cannot reach '{spec.hub_id}' on the Hugging Face hub; {OFFLINE_HINT}") from None
        raise UserError(f"cannot load '{spec.hub_id}' ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    return _from_hf(dsd, name, f"hub:{spec.hub_id}", spec.image_col, spec.label_col, spec.splits)


def _from_hf(dsd: Any, name: str, source: str, image_col: str | None, label_col: str | None,
             split_map: dict[str, str] | None = None) -> RawData:
    import datasets as hfds

    split_map = split_map or {s: s for s in ("train", "validation", "val", "test") if s in dsd}
    first = dsd[next(iter(split_map.values()))]
    feats = first.features
    image_col = image_col or next((k for k, v in feats.items() if isinstance(v, hfds.Image)), None)
    if image_col is None or image_col not in feats:
        which = f" '{image_col}'" if image_col else ""
        raise UserError(f"dataset '{name}' has no image column{which}; columns: {', '.join(feats)}")
    if label_col is None:
        label_col = next((k for k, v in feats.items() if isinstance(v, hfds.ClassLabel)), "label")
    if label_col not in feats:
        raise UserError(f"dataset '{name}' has no label column '{label_col}'; columns: {', '.join(feats)}")
    feat = feats[label_col]
    splits = {}
    for ours, theirs in split_map.items():
        ours = "val" if ours == "validation" else ours
        if theirs not in dsd:
            continue
        ds = dsd[theirs]
        labels = np.asarray(ds[label_col], dtype=np.int64)
        ident = f"{source}:{theirs}:{getattr(ds, '_fingerprint', '')}"
        splits[ours] = (ImageSource(_Column(ds, image_col), ident), labels)
    if isinstance(feat, hfds.ClassLabel):
        classes = list(feat.names)
    else:
        all_labels = np.concatenate([lab for _, lab in splits.values()]) if splits else np.zeros(0)
        classes = [str(i) for i in range(int(all_labels.max()) + 1)] if len(all_labels) else []
    return RawData(name, splits, classes, source)


class _Column:
    """Indexable image column of a hub dataset (decodes one row at a time)."""

    def __init__(self, ds: Any, col: str) -> None:
        self.ds, self.col = ds, col

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        return self.ds[int(i)][self.col]

    def select(self, idx: list[int]) -> _Column:
        return _Column(self.ds.select(idx), self.col)


def _load_local(path: Path) -> RawData:
    hfds = _quiet_datasets()

    if path.is_dir() and (path / "test.txt").exists() and (path / "train800.txt").exists():
        return _load_noah(path)
    if path.is_dir() and (path / "dataset_dict.json").exists():
        return _from_hf(hfds.load_from_disk(str(path)), path.name, f"disk:{path}", None, None)
    parquet = [path] if path.suffix == ".parquet" else sorted(path.rglob("*.parquet")) if path.is_dir() else []
    if parquet:
        files: dict[str, list[str]] = {}
        for f in parquet:
            split = next((s for s in ("train", "validation", "val", "test") if s in f.stem.lower()), "train")
            files.setdefault(split, []).append(str(f))
        try:
            dsd = hfds.load_dataset("parquet", data_files=files)
        except Exception as e:
            raise UserError(f"cannot read parquet data in '{path}' ({type(e).__name__}); check the files") from None
        return _from_hf(dsd, path.stem, f"parquet:{path}", None, None)
    if path.is_dir():
        return _load_image_folder(path)
    raise UserError(f"'{path}' is not a dataset: pass an image folder, parquet file/dir, save_to_disk dir or NOAH task dir")


def _load_image_folder(root: Path) -> RawData:
    """``root/<class>/*`` (split 70/10/20 by a fixed seed) or ``root/{train,val,test}/<class>/*``."""
    split_dirs = {s: root / d for s, d in (("train", "train"), ("val", "val"), ("test", "test")) if (root / d).is_dir()}
    if "train" in split_dirs:
        classes = sorted(p.name for p in split_dirs["train"].iterdir() if p.is_dir())
        splits = {s: _scan(d, classes) for s, d in split_dirs.items()}
    else:
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        files, labels = _scan(root, classes)
        perm = np.random.default_rng(0).permutation(len(labels))
        n_tr, n_va = int(0.7 * len(perm)), int(0.1 * len(perm))
        parts = {"train": perm[:n_tr], "val": perm[n_tr:n_tr + n_va], "test": perm[n_tr + n_va:]}
        splits = {s: (files.subset(np.sort(ix)), labels[np.sort(ix)]) for s, ix in parts.items() if len(ix)}
    if not classes:
        raise UserError(f"image folder '{root}' has no class sub-folders; expected {root}/<class>/<image>")
    return RawData(root.name, splits, classes, f"folder:{root}")


def _scan(d: Path, classes: list[str]) -> tuple[ImageSource, np.ndarray]:
    files, labels = [], []
    for ci, c in enumerate(classes):
        for f in sorted((d / c).rglob("*")) if (d / c).is_dir() else []:
            if f.suffix.lower() in IMG_EXT:
                files.append(str(f))
                labels.append(ci)
    ident = hashlib.sha256("\n".join(f"{f}:{os.path.getsize(f)}" for f in files).encode()).hexdigest()
    return ImageSource(files, f"files:{ident[:16]}"), np.asarray(labels, dtype=np.int64)


def _load_noah(task: Path) -> RawData:
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


# ----------------------------------------------------------------------------- preprocessing


@dataclass
class Splits:
    """What the loop trains (``train``), validates (``val``) and tests on; a method's search trains on
    ``search_train`` and takes its rewards from ``search_val`` (under ``--trainval`` these are train and
    val apart, while ``train`` is their union: a search never rewards on data it trains on)."""

    train: Dataset
    val: Dataset | None
    test: Dataset
    num_classes: int
    search_train: Dataset | None = None
    search_val: Dataset | None = None
    preprocessing: str = ""


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


def prepare(raw: RawData, data_cfg: dict[str, Any], trainval: bool = False) -> Splits:
    """Preprocess every split with the backbone's input size and mean/std; ``trainval`` merges val into
    train for training (``Splits.search_train``/``search_val`` keep them apart for a method's search)."""
    pre = Preprocess(data_cfg["input_size"], data_cfg["mean"], data_cfg["std"])
    out: dict[str, Dataset] = {}
    for split, (images, labels) in raw.splits.items():
        if isinstance(images, np.ndarray):
            out[split] = TensorDataset(pre(images), torch.from_numpy(labels.astype(np.int64)))
        else:
            out[split] = LazyImages(images, labels, pre)
    train, val = out["train"], out.get("val")
    if trainval and val is not None:
        return Splits(torch.utils.data.ConcatDataset([train, val]), None, out["test"], raw.num_classes,
                      search_train=train, search_val=val, preprocessing=pre.describe())
    return Splits(train, val, out["test"], raw.num_classes, search_train=train, search_val=val,
                  preprocessing=pre.describe())


def split_off(ds: Dataset, fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
    """(rest, held-out ``fraction``) of ``ds``, drawn with a fixed seed; in-memory sets stay in memory."""
    n = len(ds)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    k = max(1, int(round(fraction * n)))
    rest, held = perm[k:].sort().values, perm[:k].sort().values
    if isinstance(ds, TensorDataset):
        return TensorDataset(*(t[rest] for t in ds.tensors)), TensorDataset(*(t[held] for t in ds.tensors))
    return torch.utils.data.Subset(ds, rest.tolist()), torch.utils.data.Subset(ds, held.tolist())


def batches(ds: Dataset, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
            num_workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches of ``ds``; in-memory tensor sets are sliced directly (no per-sample collation)."""
    if isinstance(ds, TensorDataset):
        n = len(ds)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        x, y = ds.tensors
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            yield x[idx], y[idx]
        return
    yield from DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=num_workers)


def num_batches(ds: Dataset, batch_size: int) -> int:
    return -(-len(ds) // batch_size)
