"""Image classification datasets on the Hugging Face hub (``HUB``: CIFAR-100, FGVC, VTAB-1k), and reading a
``datasets`` dataset dict (hub or ``save_to_disk``) into ``RawData`` with lazily decoded image columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from petlbench.data.images import RawData
from petlbench.data.noah import VTAB_GROUPS, load_noah
from petlbench.data.types import DatasetSpec, HFColumn, ImageSource
from petlbench.errors import UserError
from petlbench.hub import offline_if_unreachable, unreachable

OFFLINE_HINT = "offline, use a built-in dataset (run 'petlbench list datasets') or a local path"


@dataclass(frozen=True)
class HubSpec(DatasetSpec):
    """A dataset on the Hugging Face hub (online only)."""

    hub_id: str
    image_col: str | None = None  # None = autodetect the Image feature
    label_col: str | None = None  # None = autodetect the ClassLabel feature / 'label'
    splits: dict[str, str] = field(default_factory=lambda: {"train": "train", "test": "test"})
    subdir: str | None = None  # VTAB-1k: task folder inside the NOAH zip
    group: str | None = None  # VTAB group: natural | specialized | structured
    note: str = ""

    def load(self, name: str) -> RawData:
        return load_hub(name, self)

    def row(self) -> tuple[str, str]:
        return "hub", f"{self.hub_id} {self.note}"


HUB: dict[str, HubSpec] = {
    "cifar100": HubSpec("uoft-cs/cifar100", image_col="img", label_col="fine_label", note="50k/10k, 100 classes"),
    "cub200": HubSpec("Donghyun99/CUB-200-2011", note="FGVC, parquet"),
    "flowers102": HubSpec("Donghyun99/Oxford-Flower-102", note="FGVC, parquet"),
    "stanford-dogs": HubSpec("Donghyun99/Stanford-Dogs", note="FGVC, parquet"),
    "stanford-cars": HubSpec("Donghyun99/Stanford-Cars", note="FGVC, parquet"),
}


for _group, _tasks in VTAB_GROUPS.items():
    for _task in _tasks:
        HUB[f"vtab-{_task}"] = HubSpec("XiN0919/VTAB-1k", subdir=_task, group=_group, note=f"VTAB-1k {_group}")


def quiet_datasets():
    import datasets as hfds

    hfds.disable_progress_bars()
    hfds.logging.set_verbosity_error()
    return hfds


def load_hub(name: str, spec: HubSpec) -> RawData:
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
        raw = load_noah(task_dirs[0])
        raw.name, raw.group = name, spec.group
        return raw
    hfds = quiet_datasets()
    try:
        dsd = hfds.load_dataset(spec.hub_id)
    except unreachable() as e:
        raise UserError(f"cannot reach '{spec.hub_id}' on the Hugging Face hub ({type(e).__name__}); "
                        f"{OFFLINE_HINT}") from None
    except Exception as e:  # the hub answered, but the dataset does not load (gone, gated, changed format)
        raise UserError(f"cannot load '{spec.hub_id}' ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    return from_hf(dsd, name, f"hub:{spec.hub_id}", spec.image_col, spec.label_col, spec.splits)


def from_hf(dsd: Any, name: str, source: str, image_col: str | None, label_col: str | None,
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
        splits[ours] = (ImageSource(HFColumn(ds, image_col), ident), labels)
    if isinstance(feat, hfds.ClassLabel):
        classes = list(feat.names)
    else:
        all_labels = np.concatenate([lab for _, lab in splits.values()]) if splits else np.zeros(0)
        classes = [str(i) for i in range(int(all_labels.max()) + 1)] if len(all_labels) else []
    return RawData(name, splits, classes, source)
