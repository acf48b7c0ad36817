"""VTAB-1k in NOAH's layout: one folder per task (``train800.txt``, ``val200.txt``, ``train800val200.txt``,
``test.txt`` lists of 'image-path label' lines, images under the task folder), the 19 folders side by side in one
root, as NOAH's ``data/vtab-source/get_vtab1k.py`` writes them (folder names read there; NOAH's training scripts
call two of them ``cifar100`` and ``oxford_pet``, accepted as aliases). A known task is named ``vtab-<task>`` with
its VTAB group, as the hub copy (``data.hub``) and the published numbers name it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from petlbench.data.images import RawData
from petlbench.data.types import ImageSource
from petlbench.errors import UserError

# the 19 VTAB-1k tasks by group (Zhai et al. 2019; the folder names of NOAH's get_vtab1k.py)
VTAB_GROUPS = {
    "natural": ["cifar", "caltech101", "dtd", "oxford_flowers102", "oxford_iiit_pet", "svhn", "sun397"],
    "specialized": ["patch_camelyon", "eurosat", "resisc45", "diabetic_retinopathy"],
    "structured": ["clevr_count", "clevr_dist", "dmlab", "kitti", "dsprites_loc", "dsprites_ori",
                   "smallnorb_azi", "smallnorb_ele"],
}
VTAB_TASKS = [t for tasks in VTAB_GROUPS.values() for t in tasks]
# per task: (classes, test images). Classes: NOAH lib/datasets.py nb_classes; test images: the VTAB-1k test splits
# (Zhai et al. 2019; the line counts of the release's test.txt). Train800 + val200 = 1,000 images every task.
VTAB_SIZES = {"cifar": (100, 10_000), "caltech101": (102, 6_084), "dtd": (47, 1_880), "oxford_flowers102": (102, 6_149),
              "oxford_iiit_pet": (37, 3_669), "svhn": (10, 26_032), "sun397": (397, 21_750),
              "patch_camelyon": (2, 32_768), "eurosat": (10, 5_400), "resisc45": (45, 6_300),
              "diabetic_retinopathy": (5, 42_670), "clevr_count": (8, 15_000), "clevr_dist": (6, 15_000),
              "dmlab": (6, 22_735), "kitti": (4, 711), "dsprites_loc": (16, 73_728), "dsprites_ori": (16, 73_728),
              "smallnorb_azi": (18, 12_150), "smallnorb_ele": (9, 12_150)}
VTAB_TRAIN, VTAB_VAL = 800, 200
ALIASES = {"cifar100": "cifar", "oxford_pet": "oxford_iiit_pet"}  # NOAH's slurm_train_*_vtab.sh --data-set names
LISTS = ("train800.txt", "val200.txt", "test.txt")


def is_task_dir(path: Path) -> bool:
    return path.is_dir() and (path / "test.txt").is_file() and (path / "train800.txt").is_file()


def task_dirs(root: Path) -> dict[str, Path]:
    """The VTAB-1k task folders of a NOAH root, by task name (aliases resolved)."""
    found = {ALIASES.get(p.name, p.name): p for p in sorted(root.iterdir()) if is_task_dir(p)} if root.is_dir() else {}
    return {t: found[t] for t in VTAB_TASKS if t in found}


def refuse_root(root: Path) -> None:
    """A VTAB-1k root was passed as one dataset: say which task folders it holds and how to run them."""
    tasks = task_dirs(root)
    if tasks:
        raise UserError(f"'{root}' is a VTAB-1k root ({len(tasks)} of 19 task folders: {', '.join(list(tasks)[:3])}"
                        f"{', ...' if len(tasks) > 3 else ''}); pass one task, e.g. --dataset {next(iter(tasks.values()))}, "
                        f"or run all of them: petlbench suite vtab-1k --root {root}")


def _read_list(task: Path, listfile: str) -> tuple[ImageSource, np.ndarray]:
    files, labels = [], []
    for n, line in enumerate((task / listfile).read_text().splitlines(), 1):
        if line.strip():
            rel, _, lab = line.strip().rpartition(" ")
            if not rel or not lab.lstrip("-").isdigit():
                raise UserError(f"'{task / listfile}' line {n} is not 'image-path label'; restore the file from the "
                                "VTAB-1k release")
            files.append(str(task / rel))
            labels.append(int(lab))
    ident = hashlib.sha256((task / listfile).read_bytes()).hexdigest()[:16]
    return ImageSource(files, f"noah:{task.name}:{listfile}:{ident}"), np.asarray(labels, dtype=np.int64)


def load_noah(task: Path) -> RawData:
    """One VTAB-1k task folder in NOAH layout (``val200.txt`` optional); named ``vtab-<task>`` when it is one of the
    19 tasks, else by its folder."""
    missing = [f for f, split in zip(LISTS, ("train", "val", "test"), strict=True)
               if split != "val" and not (task / f).is_file()]
    if missing:
        raise UserError(f"VTAB-1k task folder '{task}' lacks {missing[0]}; copy the whole task folder")
    splits = {"train": _read_list(task, "train800.txt"), "test": _read_list(task, "test.txt")}
    if (task / "val200.txt").is_file():
        splits["val"] = _read_list(task, "val200.txt")
    n = int(max(int(lab.max()) for _, lab in splits.values() if len(lab))) + 1
    name = ALIASES.get(task.name, task.name)
    group = next((g for g, tasks in VTAB_GROUPS.items() if name in tasks), None)
    return RawData(f"vtab-{name}" if group else task.name, splits, [str(i) for i in range(n)], f"noah:{task}",
                   group=group)
