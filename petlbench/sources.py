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

from petlbench import offline, vl_data, vl_sources
from petlbench.data import IMG_EXT, ImageSource, RawData, image_entries
from petlbench.errors import UserError
from petlbench.hub import offline_if_unreachable, unreachable
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



DATASETS: Registry[offline.OfflineTask | HubSpec | vl_sources.VLBuiltin | vl_sources.VLHubSpec] = Registry(
    "dataset", "run 'petlbench list datasets' or pass an existing path")
for _t in offline.TASKS:
    DATASETS.add(_t.name, _t)
for _name, _spec in HUB.items():
    DATASETS.add(_name, _spec)
# the vision-language track: built-in offline tasks (petlbench.vl_tasks) and hub specs (vl_sources.VL_HUB)
for _name, _desc in vl_sources.builtin_descriptions().items():
    DATASETS.add(_name, vl_sources.VLBuiltin(_name, _desc))
for _name, _vspec in vl_sources.VL_HUB.items():
    DATASETS.add(_name, _vspec)
VL_SPECS = (vl_sources.VLBuiltin, vl_sources.VLHubSpec)


# ----------------------------------------------------------------------------- loading


def list_datasets() -> list[tuple[str, str, str]]:
    """(name, kind, note) rows for ``petlbench list datasets``."""
    rows = [(t.name, "built-in (offline)", t.describe()) for t in offline.TASKS]
    rows += [(n, "hub", f"{s.hub_id} {s.note}") for n, s in HUB.items()]
    rows.append(("<path>", "local", "image folder, parquet file/dir, save_to_disk dir, or VTAB-1k NOAH task dir"))
    return rows + vl_sources.list_vl_datasets()


def load_data(name: str | None, limit: int | None = None, seed: int = 0) -> RawData | vl_data.VLRawData:
    """Resolve ``name`` (built-in, hub name, or local path) to ``RawData`` (vision track) or ``VLRawData``
    (VL track: a VL name, or a local path that holds VL data); UserError when unusable."""
    name = name or offline.DEFAULT
    local = os.path.exists(name) and name not in DATASETS
    if (local and vl_sources.looks_like_vl(name)) or (not local and isinstance(DATASETS.get(name), VL_SPECS)):
        return _checked_vl(name, vl_sources.load_vl(name, limit=limit, seed=seed))
    if local:
        raw = _load_local(Path(name))
    else:
        spec = DATASETS.get(name)
        raw = offline.load(name) if isinstance(spec, offline.OfflineTask) else _load_hub(name, spec)
    _check_splits(name, raw)
    if limit:
        raw.splits = {s: _take(imgs, labels, limit, seed) for s, (imgs, labels) in raw.splits.items()}
    return raw


def _checked_vl(name: str, raw: vl_data.VLRawData) -> vl_data.VLRawData:
    """A usable VL dataset: train and test splits (``load_vl`` checked that none is empty), two answers."""
    if "train" not in raw.splits or "test" not in raw.splits:
        raise UserError(f"VL dataset '{name}' needs a train and a test split, found: {', '.join(raw.splits)}")
    if raw.num_classes < 2:
        raise UserError(f"VL dataset '{name}' has {raw.num_classes} answer; it needs at least two")
    return raw


def _check_splits(name: str, raw: RawData) -> None:
    """A usable classification dataset: train and test splits, none empty, at least two classes, and no
    class in val/test that train lacks."""
    if "train" not in raw.splits or "test" not in raw.splits:
        raise UserError(f"dataset '{name}' needs a train and a test split, found: {', '.join(raw.splits) or 'none'}")
    for split, (_images, labels) in raw.splits.items():
        if len(labels) == 0:
            raise UserError(f"dataset '{name}' has an empty '{split}' split; point --dataset at data with images")
    if raw.num_classes < 2:
        raise UserError(f"dataset '{name}' has {raw.num_classes} class ({', '.join(raw.classes) or 'none'}); "
                        "classification needs at least two")
    seen = set(np.unique(raw.splits["train"][1]).tolist())
    for split, (_images, labels) in raw.splits.items():
        missing = sorted(set(np.unique(labels).tolist()) - seen)
        if missing:
            names = ", ".join(raw.classes[i] if i < len(raw.classes) else str(i) for i in missing[:3])
            raise UserError(f"dataset '{name}': class {names} appears in '{split}' but not in train; "
                            "every class needs training images")


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
    offline_if_unreachable()
    if spec.subdir:  # VTAB-1k: one zip in NOAH layout
        try:
            from huggingface_hub import snapshot_download

            root = snapshot_download(spec.hub_id, repo_type="dataset", allow_patterns=[f"*{spec.subdir}*"])
        except unreachable() as e:
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
    except unreachable() as e:
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


SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "dev": "val", "test": "test", "testing": "test"}  # folder / file names users give their splits
IMAGE_COLUMNS = ("image", "img", "images", "picture", "photo", "image_bytes")
LABEL_COLUMNS = ("label", "labels", "fine_label", "class", "category", "target", "y")


def _split_of(name: str) -> str | None:
    """'train' | 'val' | 'test' for a split folder or file name (``validation``, ``valid``, ``dev`` = val)."""
    stem = name.lower().split(".")[0]
    return SPLIT_NAMES.get(stem) or next((v for k, v in SPLIT_NAMES.items() if k in stem.split("-")
                                          or k in stem.split("_")), None)


def _visible(p: Path) -> bool:
    return not p.name.startswith((".", "__"))  # .ipynb_checkpoints, .DS_Store, __MACOSX ...


def _load_local(path: Path) -> RawData:
    if path.is_dir() and (path / "test.txt").exists() and (path / "train800.txt").exists():
        return _load_noah(path)
    if path.is_dir() and (path / "dataset_dict.json").exists():
        return _from_hf(_quiet_datasets().load_from_disk(str(path)), path.name, f"disk:{path}", None, None)
    parquet = [path] if path.suffix == ".parquet" else sorted(f for f in path.rglob("*.parquet") if _visible(f)) \
        if path.is_dir() else []
    if parquet:
        return _load_parquet(path, parquet)
    if path.is_dir():
        return _load_image_folder(path)
    raise UserError(f"'{path}' is not a dataset: pass an image folder, parquet file/dir, save_to_disk dir or NOAH task dir")


def _flat_split(name: str, images: Any, labels: np.ndarray, classes: list[str], source: str) -> RawData:
    """One pool of labelled images -> train/val/test 70/10/20 with a fixed seed (said in ``note``)."""
    perm = np.random.default_rng(0).permutation(len(labels))
    n_tr, n_va = int(0.7 * len(perm)), int(0.1 * len(perm))
    parts = {"train": perm[:n_tr], "val": perm[n_tr:n_tr + n_va], "test": perm[n_tr + n_va:]}
    splits = {s: (images.subset(np.sort(ix)), labels[np.sort(ix)]) for s, ix in parts.items() if len(ix)}
    note = f"no split given: {len(labels)} images split 70/10/20 into train/val/test with a fixed seed (0)"
    return RawData(name, splits, classes, source, note=note)


def _load_image_folder(root: Path) -> RawData:
    """``root/<class>/*`` (split 70/10/20 by a fixed seed) or ``root/{train,val,test}/<class>/*`` (``val`` may
    be called ``validation``, ``valid`` or ``dev``). Hidden entries (``.ipynb_checkpoints``, ...) are skipped."""
    split_dirs = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and _visible(p)):
        if (split := SPLIT_NAMES.get(d.name.lower())) and split not in split_dirs:
            split_dirs[split] = d
    top = split_dirs.get("train", root)
    classes = sorted(p.name for p in top.iterdir() if p.is_dir() and _visible(p) and p not in split_dirs.values())
    if not classes:
        raise UserError(f"image folder '{root}' has no class sub-folders; expected {root}/<class>/<image>")
    if "train" in split_dirs:
        for split, d in split_dirs.items():
            extra = sorted({p.name for p in d.iterdir() if p.is_dir() and _visible(p)} - set(classes))
            if extra:
                raise UserError(f"image folder '{root}': class {', '.join(extra[:3])} appears in '{split}' but not "
                                "in train; every class needs training images")
        return RawData(root.name, {s: _scan(d, classes) for s, d in split_dirs.items()}, classes, f"folder:{root}")
    files, labels = _scan(root, classes)
    return _flat_split(root.name, files, labels, classes, f"folder:{root}")


def _scan(d: Path, classes: list[str]) -> tuple[ImageSource, np.ndarray]:
    files, labels = [], []
    for ci, c in enumerate(classes):
        for f in sorted((d / c).rglob("*")) if (d / c).is_dir() else []:
            if f.suffix.lower() in IMG_EXT and all(_visible(Path(part)) for part in f.relative_to(d).parts):
                files.append(str(f))
                labels.append(ci)
    ident = hashlib.sha256("\n".join(f"{f}:{os.path.getsize(f)}" for f in files).encode()).hexdigest()
    return ImageSource(files, f"files:{ident[:16]}"), np.asarray(labels, dtype=np.int64)


# ----------------------------------------------------------------------------- parquet (any writer)


def _pick_column(names: list[str], wanted: tuple[str, ...]) -> str | None:
    lower = {n.lower(): n for n in names}
    return next((lower[w] for w in wanted if w in lower), None)


def _parquet_columns(table: Any, where: str) -> tuple[str, str]:
    """(image column, label column) of a parquet table written by ``datasets``, pandas or pyarrow."""
    import pyarrow as pa

    names = table.column_names
    image = _pick_column(names, IMAGE_COLUMNS) or next(
        (f.name for f in table.schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)
         or (pa.types.is_struct(f.type) and f.type.get_field_index("bytes") >= 0)), None)
    if image is None:
        raise UserError(f"parquet data '{where}' has no image column (bytes or {{bytes, path}} records named one of "
                        f"{', '.join(IMAGE_COLUMNS)}); columns: {', '.join(names)}")
    label = _pick_column([n for n in names if n != image], LABEL_COLUMNS)
    if label is None:
        raise UserError(f"parquet data '{where}' has no label column (one of {', '.join(LABEL_COLUMNS)}); "
                        f"columns: {', '.join(names)}")
    return image, label


def _hf_class_names(table: Any, label: str) -> list[str] | None:
    """ClassLabel names that ``datasets`` stores in the parquet schema metadata, if any."""
    import json

    meta = (table.schema.metadata or {}).get(b"huggingface")
    if not meta:
        return None
    feat = json.loads(meta).get("info", {}).get("features", {}).get(label, {})
    return list(feat["names"]) if isinstance(feat, dict) and feat.get("names") else None


def _load_parquet(path: Path, files: list[Path]) -> RawData:
    """Parquet files (``datasets``, pandas or pyarrow): an image column of bytes / ``{bytes, path}`` records and
    an integer or string label column. Files named by split (train/val/validation/dev/test) give the splits;
    a single pool is split 70/10/20 with a fixed seed."""
    import pyarrow.parquet as pq

    tables: dict[str, list[Any]] = {}
    for f in files:
        try:
            table = pq.read_table(f)
        except Exception as e:  # not parquet, truncated, unsupported encoding
            raise UserError(f"cannot read parquet file '{f}' ({type(e).__name__}); check the file") from None
        tables.setdefault(_split_of(f.name) or "pool", []).append(table)
    first = next(iter(tables.values()))[0]
    image, label = _parquet_columns(first, str(path))
    raw_labels = {s: [v for t in ts for v in t.column(label).to_pylist()] for s, ts in tables.items()}
    classes, encode = _label_encoding(raw_labels, _hf_class_names(first, label), str(path))
    splits = {}
    for split, ts in tables.items():
        items = [v for t in ts for v in t.column(image).to_pylist()]
        splits[split] = (image_entries(items), encode(raw_labels[split]))
    if set(splits) == {"pool"} or "train" not in splits:
        images, labels = splits.pop("pool", next(iter(splits.values())))
        return _flat_split(path.stem, images, labels, classes, f"parquet:{path}")
    return RawData(path.stem, splits, classes, f"parquet:{path}")


def _label_encoding(raw: dict[str, list[Any]], names: list[str] | None, where: str):
    """(class names, encode): integer labels as they are (names from ``datasets`` metadata if present, else
    0..max); string labels sorted into classes."""
    values = [v for vs in raw.values() for v in vs]
    if any(v is None for v in values):
        raise UserError(f"parquet data '{where}' has rows without a label; drop or fill them")
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        classes = names or [str(i) for i in range(int(max(values)) + 1)]
        return classes, lambda vs: np.asarray(vs, dtype=np.int64)
    classes = sorted({str(v) for v in values})
    index = {c: i for i, c in enumerate(classes)}
    return classes, lambda vs: np.asarray([index[str(v)] for v in vs], dtype=np.int64)


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


