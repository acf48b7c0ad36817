"""Image classification data at a local path: which format it is (NOAH task folder, FGVC release, ``save_to_disk``
directory, parquet, image folder) and the image-folder reader (``root/<class>/*`` or ``root/<split>/<class>/*``)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from petlbench.data.fgvc import layout_of, load_fgvc
from petlbench.data.hub import from_hf, quiet_datasets
from petlbench.data.images import RawData
from petlbench.data.noah import is_task_dir, load_noah, refuse_root
from petlbench.data.parquet import load_parquet
from petlbench.data.splits import SPLIT_NAMES, flat_split, visible
from petlbench.data.types import IMG_EXT, ImageSource
from petlbench.errors import UserError


def load_local(path: Path) -> RawData:
    if is_task_dir(path):
        return load_noah(path)
    if path.is_dir():
        refuse_root(path)  # a VTAB-1k root of task folders is a suite, not a dataset
        if layout_of(path) is not None:
            return load_fgvc(path)
    if path.is_dir() and (path / "dataset_dict.json").exists():
        return from_hf(quiet_datasets().load_from_disk(str(path)), path.name, f"disk:{path}", None, None)
    parquet = [path] if path.suffix == ".parquet" else sorted(f for f in path.rglob("*.parquet") if visible(f)) \
        if path.is_dir() else []
    if parquet:
        return load_parquet(path, parquet)
    if path.is_dir():
        return _load_image_folder(path)
    raise UserError(f"'{path}' is not a dataset: pass an image folder, parquet file/dir, save_to_disk dir or NOAH task dir")


def _load_image_folder(root: Path) -> RawData:
    """``root/<class>/*`` (split 70/10/20 by a fixed seed) or ``root/{train,val,test}/<class>/*`` (``val`` may
    be called ``validation``, ``valid`` or ``dev``). Hidden entries (``.ipynb_checkpoints``, ...) are skipped."""
    split_dirs = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and visible(p)):
        if (split := SPLIT_NAMES.get(d.name.lower())) and split not in split_dirs:
            split_dirs[split] = d
    top = split_dirs.get("train", root)
    classes = sorted(p.name for p in top.iterdir() if p.is_dir() and visible(p) and p not in split_dirs.values())
    if not classes:
        raise UserError(f"image folder '{root}' has no class sub-folders; expected {root}/<class>/<image>")
    if "train" in split_dirs:
        for split, d in split_dirs.items():
            extra = sorted({p.name for p in d.iterdir() if p.is_dir() and visible(p)} - set(classes))
            if extra:
                raise UserError(f"image folder '{root}': class {', '.join(extra[:3])} appears in '{split}' but not "
                                "in train; every class needs training images")
        return RawData(root.name, {s: _scan(d, classes) for s, d in split_dirs.items()}, classes, f"folder:{root}")
    files, labels = _scan(root, classes)
    return flat_split(root.name, files, labels, classes, f"folder:{root}")


def _scan(d: Path, classes: list[str]) -> tuple[ImageSource, np.ndarray]:
    files, labels = [], []
    for ci, c in enumerate(classes):
        for f in sorted((d / c).rglob("*")) if (d / c).is_dir() else []:
            if f.suffix.lower() in IMG_EXT and all(visible(Path(part)) for part in f.relative_to(d).parts):
                files.append(str(f))
                labels.append(ci)
    ident = hashlib.sha256("\n".join(f"{f}:{os.path.getsize(f)}" for f in files).encode()).hexdigest()
    return ImageSource(files, f"files:{ident[:16]}"), np.asarray(labels, dtype=np.int64)
