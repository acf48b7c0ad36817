"""The FGVC benchmark's five datasets (CUB-200-2011, NABirds, Oxford Flowers, Stanford Dogs, Stanford Cars) as
they are unpacked on disk, in the layouts people have:

* VPT's prepared splits (the layout of the PETL papers' FGVC numbers): ``train.json``, ``val.json``, ``test.json``
  (each {image path: class id}) in the dataset folder, images under ``images/`` (CUB, NABirds), ``Images/`` (Dogs) or
  the folder itself (Flowers, Cars); class ids made contiguous in sorted order (VPT ``src/data/datasets/
  json_dataset.py``, read, not copied);
* the official releases: CUB-200-2011 and NABirds (``images.txt``, ``image_class_labels.txt``,
  ``train_test_split.txt``, ``classes.txt``, ``images/``), Oxford Flowers 102 (``jpg/``, ``imagelabels.mat``,
  ``setid.mat`` with its train / val / test ids), Stanford Dogs (``Images/``, ``train_list.mat`` and
  ``test_list.mat``, also under ``lists/``), Stanford Cars (``cars_train/``, ``cars_test/``, ``cars_train_annos.mat``
  and ``cars_test_annos_withlabels.mat``, also under ``devkit/``).

An official release without a val split gets one carved from its train split (``VAL_CARVE``, the fixed seed), said
in the data's note. Each dataset is named as its hub copy is (``data.hub``), so runs on either line up.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from petlbench.data.images import RawData
from petlbench.data.splits import carve_keys
from petlbench.data.types import ImageSource
from petlbench.errors import UserError

VAL_CARVE = {"train": 0.9, "val": 0.1}  # our choice: 10% of an official train split as val when none is given
NAMES = (("nabird", "nabirds"), ("cub", "cub200"), ("flower", "flowers102"), ("dog", "stanford-dogs"),
         ("car", "stanford-cars"))  # a folder name containing the key -> the dataset's petlbench name

Split = tuple[list[str], list[int]]  # image paths, raw class ids


@dataclass(frozen=True)
class Layout:
    """One on-disk layout: the files that identify it and its reader (-> raw splits, class names or None)."""

    name: str
    marks: tuple[str, ...]  # files / folders that must all exist (any of a '|'-separated set)
    read: Callable[[Path], tuple[dict[str, Split], list[str] | None]]

    def claims(self, root: Path) -> bool:
        return root.is_dir() and all(any((root / m).exists() for m in mark.split("|")) for mark in self.marks)


def _find(root: Path, *names: str) -> Path:
    """The first of ``names`` (relative to ``root``) that exists."""
    found = next((root / n for n in names if (root / n).exists()), None)
    if found is None:
        raise UserError(f"'{root}' lacks {names[0]}; copy the dataset's whole release")
    return found


def _checked(paths: list[str], root: Path) -> list[str]:
    missing = next((p for p in paths if not Path(p).is_file()), None)
    if missing:
        raise UserError(f"image '{missing}' listed by the split files is missing in '{root}'; copy the whole folder")
    return paths


# ----------------------------------------------------------------------------- VPT's json splits


def _vpt_json(root: Path) -> tuple[dict[str, Split], None]:
    splits = {}
    for split in ("train", "val", "test"):
        if (root / f"{split}.json").is_file():
            try:
                anno = json.loads((root / f"{split}.json").read_text())
            except ValueError:
                raise UserError(f"'{root / f'{split}.json'}' is not JSON; VPT's split files map image paths to class ids") from None
            splits[split] = (list(anno), [int(c) for c in anno.values()])
    first = splits["train"][0][0] if splits["train"][0] else ""
    images = next((d for d in (root / "images", root / "Images", root) if (d / first).is_file()), root)
    return {s: (_checked([str(images / p) for p in ps], root), ys) for s, (ps, ys) in splits.items()}, None


# ----------------------------------------------------------------------------- the official releases


def _table(path: Path) -> dict[str, str]:
    """'id value' lines -> {id: value}."""
    return dict(line.split(" ", 1) for line in path.read_text().splitlines() if line.strip())


def _cub(root: Path) -> tuple[dict[str, Split], list[str]]:
    """CUB-200-2011 / NABirds: images.txt, image_class_labels.txt, train_test_split.txt (1 = train), classes.txt."""
    images, labels = _table(root / "images.txt"), _table(root / "image_class_labels.txt")
    is_train = _table(root / "train_test_split.txt")
    classes = _table(root / "classes.txt") if (root / "classes.txt").is_file() else {}
    splits: dict[str, Split] = {"train": ([], []), "test": ([], [])}
    for i, rel in images.items():
        paths, ys = splits["train" if is_train[i].strip() == "1" else "test"]
        paths.append(str(root / "images" / rel.strip()))
        ys.append(int(labels[i]))
    ids = sorted({y for _, ys in splits.values() for y in ys})
    names = [classes.get(str(c), str(c)).strip() for c in ids] if classes else None
    return {s: (_checked(p, root), y) for s, (p, y) in splits.items()}, names


def _mat(path: Path) -> dict:
    from scipy.io import loadmat

    try:
        return loadmat(str(path))
    except Exception as e:  # scipy: not a MAT file, truncated
        raise UserError(f"cannot read '{path}' as a MATLAB file ({type(e).__name__}); copy it from the release again") from None


def _flowers(root: Path) -> tuple[dict[str, Split], None]:
    """Oxford Flowers 102: imagelabels.mat 'labels' (1..102 by image number), setid.mat 'trnid' / 'valid' / 'tstid'."""
    labels = _mat(root / "imagelabels.mat")["labels"].ravel()
    ids = _mat(root / "setid.mat")
    out = {}
    for split, key in (("train", "trnid"), ("val", "valid"), ("test", "tstid")):
        numbers = ids[key].ravel().astype(int)
        out[split] = (_checked([str(root / "jpg" / f"image_{n:05d}.jpg") for n in numbers], root),
                      [int(labels[n - 1]) for n in numbers])
    return out, None


def _dogs(root: Path) -> tuple[dict[str, Split], list[str]]:
    """Stanford Dogs: {train,test}_list.mat 'file_list' (paths under Images/) and 'labels' (1..120)."""
    out = {}
    for split in ("train", "test"):
        mat = _mat(_find(root, f"lists/{split}_list.mat", f"{split}_list.mat"))
        files = [str(np.ravel(f)[0]) for f in mat["file_list"].ravel()]
        out[split] = (_checked([str(root / "Images" / f) for f in files], root), [int(y) for y in mat["labels"].ravel()])
    breeds = {int(y): Path(p).parent.name for p, y in zip(*out["train"], strict=True)}
    return out, [breeds[y] for y in sorted(breeds)]


def _cars(root: Path) -> tuple[dict[str, Split], None]:
    """Stanford Cars: cars_{train,test}_annos(_withlabels).mat 'annotations' with 'fname' and 'class' (1..196)."""
    out = {}
    for split, anno in (("train", "cars_train_annos.mat"), ("test", "cars_test_annos_withlabels.mat")):
        records = _mat(_find(root, f"devkit/{anno}", anno))["annotations"].ravel()
        out[split] = (_checked([str(root / f"cars_{split}" / str(np.ravel(r["fname"])[0])) for r in records], root),
                      [int(np.ravel(r["class"])[0]) for r in records])
    return out, None


LAYOUTS = (
    Layout("VPT json splits", ("train.json", "test.json"), _vpt_json),
    Layout("CUB-200-2011 / NABirds release", ("images.txt", "image_class_labels.txt", "train_test_split.txt", "images"),
           _cub),
    Layout("Oxford Flowers 102 release", ("imagelabels.mat", "setid.mat", "jpg"), _flowers),
    Layout("Stanford Dogs release", ("Images", "lists/train_list.mat|train_list.mat"), _dogs),
    Layout("Stanford Cars release", ("cars_train", "devkit/cars_train_annos.mat|cars_train_annos.mat"), _cars),
)


def layout_of(root: Path) -> Layout | None:
    return next((lay for lay in LAYOUTS if lay.claims(root)), None)


def dataset_name(root: Path) -> str:
    """The hub name of the dataset a folder holds (by its name), else the folder's name."""
    key = re.sub(r"[^a-z]", "", root.resolve().name.lower())
    return next((name for mark, name in NAMES if mark in key), root.name)


def load_fgvc(root: Path) -> RawData:
    """An FGVC dataset folder in one of ``LAYOUTS`` -> ``RawData`` (class ids contiguous in sorted order)."""
    layout = layout_of(root)
    raw, names = layout.read(root)
    if not raw.get("train", ([], []))[0]:
        raise UserError(f"'{root}' ({layout.name}) lists no training images; copy the whole release")
    ids = sorted(set(raw["train"][1]))
    index = {c: i for i, c in enumerate(ids)}
    unknown = next((c for _, ys in raw.values() for c in ys if c not in index), None)
    if unknown is not None:
        raise UserError(f"'{root}': class {unknown} appears in a val / test split but not in train; every class needs "
                        "training images")
    splits = {s: _source(root, s, paths, np.asarray([index[y] for y in ys], dtype=np.int64))
              for s, (paths, ys) in raw.items()}
    note = f"FGVC, {layout.name}"
    if "val" not in splits:
        parts = carve_keys(len(splits["train"][1]), VAL_CARVE)
        images, labels = splits["train"]
        splits = {**splits, **{s: (images.subset(ix), labels[ix]) for s, ix in parts.items()}}
        note += "; no official val split: 10% of train carved as val (seed 0)"
    return RawData(dataset_name(root), splits, names or [str(c) for c in ids], f"fgvc:{root}", note=note)


def _source(root: Path, split: str, paths: list[str], labels: np.ndarray) -> tuple[ImageSource, np.ndarray]:
    ident = hashlib.sha256("\n".join(f"{Path(p).relative_to(root)}" for p in paths).encode() + labels.tobytes())
    return ImageSource(paths, f"fgvc:{root.name}:{split}:{ident.hexdigest()[:16]}"), labels
