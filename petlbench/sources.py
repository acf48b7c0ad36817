"""Where datasets come from: built-in offline tasks, Hugging Face hub specs (online only) and local paths
-> ``RawData``. ``DATASETS`` is the registry of named datasets (offline tasks and hub specs); any existing
path is loaded as a local dataset (image folder, parquet, ``save_to_disk``, VTAB-1k NOAH layout).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from petlbench import offline
from petlbench.data import IMG_EXT, ImageSource, RawData
from petlbench.errors import UserError, hub_unreachable
from petlbench.registry import Registry

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



DATASETS: Registry[offline.OfflineTask | HubSpec] = Registry(
    "dataset", "run 'petlbench list datasets' or pass an existing path")
for _t in offline.TASKS:
    DATASETS.add(_t.name, _t)
for _name, _spec in HUB.items():
    DATASETS.add(_name, _spec)


# ----------------------------------------------------------------------------- loading


def list_datasets() -> list[tuple[str, str, str]]:
    """(name, kind, note) rows for ``petlbench list datasets``."""
    rows = [(t.name, "built-in (offline)", t.describe()) for t in offline.TASKS]
    rows += [(n, "hub", f"{s.hub_id} {s.note}") for n, s in HUB.items()]
    rows.append(("<path>", "local", "image folder, parquet file/dir, save_to_disk dir, or VTAB-1k NOAH task dir"))
    return rows


def load_data(name: str | None, limit: int | None = None, seed: int = 0) -> RawData:
    """Resolve ``name`` (built-in, hub name, or local path) to ``RawData``; UserError when unusable."""
    name = name or offline.DEFAULT
    if os.path.exists(name) and name not in DATASETS:
        raw = _load_local(Path(name))
    else:
        spec = DATASETS.get(name)
        raw = offline.load(name) if isinstance(spec, offline.OfflineTask) else _load_hub(name, spec)
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
        except hub_unreachable() as e:
            raise UserError(f"cannot reach '{spec.hub_id}' on the Hugging Face hub ({type(e).__name__}); {OFFLINE_HINT}") from None
        task_dirs = [p for p in Path(root).rglob(spec.subdir) if (p / "test.txt").exists()]
        if not task_dirs:
            raise UserError(f"'{spec.hub_id}' has no unpacked '{spec.subdir}' task; unzip it and pass the task dir as --dataset")
        raw = _load_noah(task_dirs[0])
        raw.name, raw.group = name, spec.group
        return raw
    hfds = _quiet_datasets()
    try:
        dsd = hfds.load_dataset(spec.hub_id)
    except hub_unreachable() as e:
        raise UserError(f"cannot reach '{spec.hub_id}' on the Hugging Face hub ({type(e).__name__}); "
                        f"{OFFLINE_HINT}") from None
    except Exception as e:  # the hub answered, but the dataset does not load (gone, gated, changed format)
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


