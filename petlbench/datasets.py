"""Which data? The router from a ``--dataset`` name or path to a loaded ``Data`` of either track.

``DATASETS`` holds every named dataset (``data.types.DatasetSpec``: the built-in vision tasks, the vision hub
specs, the built-in VL tasks, the VL hub specs); ``LOCAL_FORMATS`` the readers of a local path, asked in order.
``load_data`` resolves a name, checks the data (``Data.check``) and applies ``--limit``; nothing else in the engine
knows which track a dataset is on. It is one of the two modules that know both tracks (with ``tracks``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from petlbench.data import builtin
from petlbench.data.hub import HUB
from petlbench.data.local import load_local
from petlbench.data.types import Data, DatasetSpec
from petlbench.registry import Registry
from petlbench.vl.data import arrow as vl_arrow
from petlbench.vl.data import tasks as vl_tasks
from petlbench.vl.data import vqa_json
from petlbench.vl.data.sources import VL_HUB, load_vl_path, looks_like_vl

DATASETS: Registry[DatasetSpec] = Registry("dataset", "run 'petlbench list datasets' or pass an existing path")
for _spec in builtin.TASKS:
    DATASETS.add(_spec.name, _spec)
for _name, _hub in HUB.items():
    DATASETS.add(_name, _hub)
for _vl in vl_tasks.TASKS:
    DATASETS.add(_vl.name, _vl)
for _name, _vhub in VL_HUB.items():
    DATASETS.add(_name, _vhub)
DEFAULT = builtin.DEFAULT


@dataclass(frozen=True)
class LocalFormat:
    """A reader of local paths: ``claims(path)`` says whether the path is its kind of data."""

    track: str
    claims: Callable[[Path], bool]
    reader: Callable[[Path], Data]
    kind: str
    note: str

    def load(self, name: str) -> Data:
        return self.reader(Path(name))


LOCAL_FORMATS: list[LocalFormat] = [  # asked in order; the vision reader takes any path the others leave
    LocalFormat("vl", vl_arrow.claims, vl_arrow.load_arrow, "papers' VL files",
                "ViLT-format .arrow of VQAv2 / SNLI-VE / GQA (official writers; a folder, or one file of a task)"),
    LocalFormat("vl", vqa_json.claims, vqa_json.load_vqa_json, "VQAv2 JSON",
                "official VQAv2 questions + annotations JSON beside COCO's train2014/ and val2014/"),
    LocalFormat("vl", looks_like_vl, load_vl_path, "local VL",
                "parquet / save_to_disk (image, question, answer[s]) or JSONL + images"),
    LocalFormat("vision", lambda _path: True, load_local, "local",
                "image folder, parquet file/dir, save_to_disk dir, or VTAB-1k NOAH task dir"),
]


def list_datasets() -> list[tuple[str, str, str, str]]:
    """(name, track, kind, note) rows for ``petlbench list datasets``, each track's local formats after its
    named datasets."""
    rows, specs = [], DATASETS.registered()
    for track in dict.fromkeys(spec.track for spec in specs.values()):
        rows += [(n, track, *spec.row()) for n, spec in specs.items() if spec.track == track]
        rows += [("<path>", f.track, f.kind, f.note) for f in LOCAL_FORMATS if f.track == track]
    return rows


def _source(name: str | None) -> tuple[str, DatasetSpec | LocalFormat]:
    """(name, where it loads from): a registered dataset, or the local format that claims an existing path (None:
    the default task)."""
    name = name or DEFAULT
    if os.path.exists(name) and name not in DATASETS:
        return name, next(f for f in LOCAL_FORMATS if f.claims(Path(name)))
    return name, DATASETS.get(name)


def track_of(name: str | None) -> str:
    """The track of ``--dataset`` without loading it."""
    return _source(name)[1].track


def load_data(name: str | None, limit: int | None = None, seed: int = 0) -> Data:
    """Resolve ``name`` (a registered dataset or a local path; None: the default task) to checked ``Data`` with
    at most ``limit`` samples per split; UserError when unusable."""
    name, source = _source(name)
    raw = source.load(name)
    raw.check(f"{raw.noun} '{name}'")
    raw = raw.limited(limit, seed)
    raw.ready()
    return raw


@dataclass(frozen=True)
class Planned:
    """What ``suite --plan`` needs of a dataset, before it is on disk: its name, track, task (the recipe depends on
    it), samples per split, classes and a built-in task's budget."""

    name: str
    track: str
    task: Any
    sizes: dict[str, int]
    classes: int
    epochs: int | None = None
    batch_size: int | None = None


def planned(name: str) -> Planned:
    """A paper suite's task by its folder under the root (``{root}/cifar``, ``{root}/vqav2``: the full release's
    sizes, ``noah.VTAB_SIZES`` / ``arrow.FAMILIES``), else the data itself, loaded."""
    from petlbench.data.noah import ALIASES, VTAB_SIZES, VTAB_TRAIN, VTAB_VAL
    from petlbench.data.types import CLASSIFICATION
    from petlbench.vl.data.raw import entailment_task, vqa_task

    key = ALIASES.get(Path(name).name, Path(name).name)
    if key in VTAB_SIZES:
        classes, test = VTAB_SIZES[key]
        return Planned(f"vtab-{key}", "vision", CLASSIFICATION, {"train": VTAB_TRAIN, "val": VTAB_VAL, "test": test},
                       classes)
    fam = next((f for f in vl_arrow.FAMILIES if f.task == key), None)
    if fam is not None:
        answers = [str(i) for i in range(fam.classes)]
        task = entailment_task(key) if fam.schema != "vqa" else vqa_task(key, answers, soft=key == "vqav2")
        return Planned(key, "vl", task, dict(zip(("train", "val", "test"), fam.questions, strict=True)), fam.classes)
    raw = load_data(name)
    return Planned(raw.name, raw.track, raw.task, {s: raw.size(s) for s in raw.splits}, raw.num_classes, raw.epochs,
                   raw.batch_size)
