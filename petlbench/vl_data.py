"""Vision-language data: samples, task metadata, hub specs and local loaders -> ``VLRawData``.

A VL sample is (image, text, target). A split holds them column-wise (``VLSplit``):

* ``images``: uint8 N×H×W×3 for generated data, or an ``ImageSource`` of PIL-loadable items (hub rows,
  file paths) decoded lazily;
* ``texts``: the question (VQA) or the hypothesis / statement (entailment), one string per sample;
* ``labels``: int64 (N,), the class / answer index used by top-1 and cross-entropy (-1: the answer is not in
  the vocabulary; never counted correct, ignored by the loss);
* ``soft``: VQA soft scores per sample as sparse (answer index, score) lists (``SoftTargets``), or None for
  single-answer tasks.

``VLTask`` says how a task is scored and trained (metric, loss, direction) and holds its answer vocabulary.
Online datasets are declared as data in ``VL_HUB``; ``load_vl(name)`` resolves a built-in offline task
(``petlbench.vl_tasks``), a hub name or a local path.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from petlbench.data import ImageSource, Task
from petlbench.errors import UserError, did_you_mean
from petlbench.vl_metrics import (
    SoftTargets,
    build_vocab,
    ce_loss,
    majority_answer,
    normalize_answer,
    soft_bce_loss,
    soft_targets,
    top1_sum,
    vqa_score_sum,
)

ENTAILMENT = ("entailment", "neutral", "contradiction")  # SNLI / SNLI-VE label order 0, 1, 2
OFFLINE_HINT = "offline, use a built-in VL task (shapes-vqa, shapes-ve) or a local path"

# ----------------------------------------------------------------------------- task metadata


@dataclass(frozen=True)
class VLTask:
    """How a VL task is scored and trained. ``answers`` is the answer vocabulary (VQA) or the class names."""

    name: str
    kind: str  # "vqa" | "entailment"
    answers: tuple[str, ...]
    metric: str  # "vqa_score" (soft targets, BCE) | "top1" (class labels, CE)
    loss: str  # "bce" | "ce"
    higher_is_better: bool = True  # direction of the metric

    def __post_init__(self) -> None:
        if self.kind not in ("vqa", "entailment"):
            raise ValueError(f"VLTask kind must be 'vqa' or 'entailment', got {self.kind!r}")
        if (self.metric, self.loss) not in (("vqa_score", "bce"), ("top1", "ce")):
            raise ValueError(f"VLTask pairs vqa_score with bce and top1 with ce, got {self.metric}/{self.loss}")

    @property
    def num_answers(self) -> int:
        return len(self.answers)

    @property
    def soft(self) -> bool:
        """Whether batches carry soft score rows (B×A float) rather than labels (B int64)."""
        return self.metric == "vqa_score"

    def targets(self, split: VLSplit, rows: Sequence[int] | np.ndarray) -> torch.Tensor:
        """The batch target of ``rows`` of ``split``: B×A soft scores or B labels."""
        labels = torch.from_numpy(split.labels[np.asarray(rows, dtype=np.int64)])
        if not self.soft:
            return labels
        if split.soft is not None:
            return split.soft.dense(rows, self.num_answers)
        dense = torch.zeros(len(labels), self.num_answers)  # one answer per sample: score 1 (none for -1)
        known = labels >= 0
        dense[known, labels[known]] = 1.0
        return dense

    def loss_fn(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return soft_bce_loss(logits, target) if self.loss == "bce" else ce_loss(logits, target)

    def metric_sum(self, logits: torch.Tensor, target: torch.Tensor) -> float:
        """Sum of the per-sample metric over a batch (divide by the number of samples for the mean)."""
        return vqa_score_sum(logits, target) if self.metric == "vqa_score" else top1_sum(logits, target)


def vqa_task(name: str, answers: Sequence[str], soft: bool = True) -> VLTask:
    """A VQA task: soft scores + BCE + VQA score (VQAv2 style) or one answer + CE + top-1 (GQA style)."""
    metric, loss = ("vqa_score", "bce") if soft else ("top1", "ce")
    return VLTask(name, "vqa", tuple(answers), metric, loss)


def entailment_task(name: str, classes: Sequence[str] = ENTAILMENT) -> VLTask:
    return VLTask(name, "entailment", tuple(classes), "top1", "ce")


# ----------------------------------------------------------------------------- splits and raw data


@dataclass
class VLSplit:
    """One split, column-wise (see the module doc)."""

    images: Any  # np.ndarray uint8 N×H×W×3 | ImageSource
    texts: list[str]
    labels: np.ndarray  # int64 (N,)
    soft: SoftTargets | None = None

    def __post_init__(self) -> None:
        n = len(self.labels)
        sizes = {len(self.images), len(self.texts)} | ({len(self.soft)} if self.soft is not None else set())
        if sizes != {n}:
            raise ValueError(f"VLSplit columns differ in length: {sizes | {n}}")

    def __len__(self) -> int:
        return len(self.labels)

    def soft_targets(self) -> SoftTargets:
        return self.soft if self.soft is not None else SoftTargets.from_labels(self.labels)

    def subset(self, rows: np.ndarray) -> VLSplit:
        rows = np.asarray(rows, dtype=np.int64)
        images = self.images[rows] if isinstance(self.images, np.ndarray) else self.images.subset(rows)
        soft = self.soft.subset(rows) if self.soft is not None else None
        return VLSplit(images, [self.texts[i] for i in rows], self.labels[rows], soft)

    def image(self, i: int):
        """Sample i's image as a PIL RGB image."""
        from PIL import Image

        if isinstance(self.images, np.ndarray):
            return Image.fromarray(self.images[i]).convert("RGB")
        return self.images.load(i)

    def fingerprint(self) -> str:
        """sha256 (16 hex) of texts, labels, soft scores and image bytes / identities."""
        h = hashlib.sha256("\n".join(self.texts).encode())
        h.update(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
        if self.soft is not None:
            for a in (self.soft.ptr, self.soft.idx, self.soft.val):
                h.update(np.ascontiguousarray(a).tobytes())
        if isinstance(self.images, np.ndarray):
            h.update(np.ascontiguousarray(self.images).tobytes())
        else:
            h.update(self.images.identity().encode())
        return h.hexdigest()[:16]


@dataclass
class VLRawData:
    """A VL dataset before preprocessing: ``splits`` maps train / val / test to ``VLSplit``."""

    name: str
    task: VLTask
    splits: dict[str, VLSplit]
    source: str  # hub id + split plan, local path, or generator + version
    notes: str = ""  # how the splits were formed (carves etc.), for the run record
    group: str = ""  # set to the task kind (vqa | entailment) when empty
    epochs: int | None = None  # compact budget of built-in tasks (None = method recipe)
    batch_size: int | None = None

    track = "vl"  # the benchmark track of every VL dataset (``data.RawData.track`` = "vision")

    def __post_init__(self) -> None:
        self.group = self.group or self.task.kind

    @property
    def note(self) -> str:
        """Said to the user when loaded (``data.RawData.note``)."""
        return self.notes

    def size(self, split: str) -> int:
        return len(self.splits[split])

    def prepare(self, data_cfg: dict[str, Any], trainval: bool = False, selection: bool = False):
        """``data.Splits`` for a model (``data.prepare`` dispatches here; see ``prepare_vl``)."""
        return prepare_vl(self, data_cfg, trainval, selection)

    @property
    def classes(self) -> list[str]:
        return list(self.task.answers)

    @property
    def num_classes(self) -> int:
        return self.task.num_answers

    def fingerprint(self) -> dict[str, str]:
        return {s: sp.fingerprint() for s, sp in self.splits.items()}

    def take(self, limit: int | None, seed: int = 0) -> VLRawData:
        """At most ``limit`` samples per split (a seeded random subset, order kept), as a new object."""
        if not limit:
            return self
        splits = {}
        for s, sp in self.splits.items():
            rows = np.sort(np.random.default_rng(seed).permutation(len(sp))[:limit]) if len(sp) > limit else None
            splits[s] = sp if rows is None else sp.subset(rows)
        return replace(self, splits=splits)


# ----------------------------------------------------------------------------- split carving


def carve(groups: Sequence[Any], fractions: dict[str, float], seed: int) -> dict[str, np.ndarray]:
    """Split row indices by group (e.g. image id: all questions on one image land in one split).

    Groups are shuffled with ``seed`` and cut by cumulative ``fractions`` (in dict order); returns sorted
    row indices per split.
    """
    keys, inverse = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
    order = np.random.default_rng(seed).permutation(len(keys))
    rank = np.empty(len(keys), dtype=np.int64)
    rank[order] = np.arange(len(keys))
    bounds = np.cumsum([0.0, *fractions.values()]) / sum(fractions.values()) * len(keys)
    out = {}
    for (split, _), lo, hi in zip(fractions.items(), bounds[:-1], bounds[1:], strict=True):
        member = (rank >= round(lo)) & (rank < round(hi))
        out[split] = np.flatnonzero(member[inverse])
    return out


CARVE_SEED = 0  # fixed seed of every carve (documented choice)
LOCAL_CARVE = {"train": 0.7, "val": 0.1, "test": 0.2}  # same fractions as data.py's single-folder split
VAL_CARVE = {"train": 0.9, "val": 0.1}  # a missing labelled val: 10% of train images (documented choice)


# ----------------------------------------------------------------------------- tables (one split's rows)


class _HFImages:
    """Lazily decoded image column of a hub / parquet dataset, optionally through a row map (joined images)."""

    def __init__(self, ds: Any, col: str, rows: np.ndarray | None = None) -> None:
        self.ds, self.col, self.rows = ds, col, rows

    def __len__(self) -> int:
        return len(self.ds) if self.rows is None else len(self.rows)

    def __getitem__(self, i: int):
        return self.ds[int(i if self.rows is None else self.rows[i])][self.col]

    def select(self, idx: Sequence[int]) -> _HFImages:
        idx = np.asarray(idx, dtype=np.int64)
        return _HFImages(self.ds, self.col, idx if self.rows is None else self.rows[idx])


class _Table:
    """The rows of one split: a ``datasets.Dataset`` or a list of dict rows (JSONL), images left lazy."""

    def __init__(self, rows: Any, identity: str, root: Path | None = None, joined: ImageSource | None = None,
                 columns: list[str] | None = None) -> None:
        self.rows, self.identity, self.root = rows, identity, root
        self.joined = joined  # images of the rows kept in another table (GQA), else None
        self.is_hf = not isinstance(rows, list)
        if self.is_hf:
            self.columns = list(rows.column_names)
        else:  # JSONL rows: the keys of the rows (of the whole file, kept by subsets)
            self.columns = columns if columns is not None else list(dict.fromkeys(k for r in rows for k in r))

    def __len__(self) -> int:
        return len(self.rows)

    def values(self, col: str) -> list:
        return list(self.rows[col]) if self.is_hf else [r.get(col) for r in self.rows]

    def is_image_feature(self, col: str) -> bool:
        import datasets as hfds

        return self.is_hf and isinstance(self.rows.features.get(col), hfds.Image)

    def subset(self, idx: np.ndarray) -> _Table:
        ident = f"{self.identity}|{hashlib.sha256(np.asarray(idx, np.int64).tobytes()).hexdigest()[:12]}"
        rows = self.rows.select(idx.tolist()) if self.is_hf else [self.rows[i] for i in idx]
        joined = self.joined.subset(idx) if self.joined is not None else None
        return _Table(rows, ident, self.root, joined, self.columns)

    def images(self, col: str, where: str) -> ImageSource:
        if self.joined is not None:
            return self.joined
        if self.is_image_feature(col):
            return ImageSource(_HFImages(self.rows, col), f"{self.identity}:{col}")
        paths = [_resolve_image(self.root, p, where) for p in self.values(col)]
        ident = hashlib.sha256("\n".join(f"{p}:{os.path.getsize(p)}" for p in paths).encode()).hexdigest()[:16]
        return ImageSource(paths, f"files:{ident}")


def _resolve_image(root: Path | None, item: Any, where: str) -> str:
    """A path-like image entry -> an existing file (relative paths: to the data folder, or its images/)."""
    if not isinstance(item, str | Path) or not str(item):
        raise UserError(f"{where}: image entry {str(item)[:60]!r} is not a file path; give a path per row")
    path = Path(item)
    candidates = [path] if path.is_absolute() else [(root or Path()) / path, (root or Path()) / "images" / path]
    for c in candidates:
        if c.is_file():
            return str(c)
    raise UserError(f"{where}: image '{item}' not found (looked in {', '.join(str(c.parent) for c in candidates)}); "
                    "paths are relative to the data file's folder")


def _join_images(questions: _Table, images: Any, key: str, id_col: str, image_col: str) -> tuple[_Table, int]:
    """Questions whose ``key`` names a row of the image table (by ``id_col``); returns (table, dropped)."""
    index = {str(v): i for i, v in enumerate(images[id_col])}
    rows = np.asarray([index.get(str(v), -1) for v in questions.values(key)], dtype=np.int64)
    keep = np.flatnonzero(rows >= 0)
    table = questions.subset(keep) if len(keep) < len(rows) else questions
    joined = ImageSource(_HFImages(images, image_col, rows[keep]), f"{table.identity}:joined")
    return _Table(table.rows, table.identity, table.root, joined), len(rows) - len(keep)


# ----------------------------------------------------------------------------- rows -> VLRawData


@dataclass(frozen=True)
class Columns:
    """Which columns hold the image, the text and the target (``vocab``: one answer per row for the vocabulary,
    VQAv2's ``multiple_choice_answer``; None = the majority of the human answers)."""

    image: str
    text: str
    answer: str
    vocab: str | None = None


def _check_columns(table: _Table, cols: Columns, where: str) -> None:
    found = table.columns
    for role, col in (("image", cols.image), ("text", cols.text), ("answer", cols.answer)):
        if col not in found and not (role == "image" and table.joined is not None):
            raise UserError(f"{where} has no {role} column '{col}'; columns: {', '.join(found) or 'none'}")


def _human_answers(value: Any) -> list[str]:
    """A row's human answers: a list of strings or of {'answer': ...} dicts (VQAv2 on the hub)."""
    return [str(a["answer"]) if isinstance(a, dict) else str(a) for a in (value or [])]


def _answer_mode(values: list, where: str, col: str) -> str:
    """'soft' (lists of human answers), 'single' (one answer string) or 'class' (integer class ids)."""
    first = next((v for v in values if v is not None), None)
    if isinstance(first, list | tuple):
        return "soft"
    if isinstance(first, bool) or not isinstance(first, str | int | np.integer):
        raise UserError(f"{where}: answer column '{col}' holds {type(first).__name__} values; "
                        "give a string, a list of strings, or an integer class id per row")
    return "single" if isinstance(first, str) else "class"


def _make_task(name: str, kind: str, mode: str, train: _Table, cols: Columns, vocab_size: int | None,
               classes: Sequence[str] | None) -> VLTask:
    values = train.values(cols.answer)
    if mode == "class":
        feat = train.rows.features.get(cols.answer) if train.is_hf else None
        names = classes or getattr(feat, "names", None) or [str(i) for i in range(int(max(values)) + 1)]
        return entailment_task(name, names) if kind == "entailment" else VLTask(name, kind, tuple(names), "top1", "ce")
    if mode == "soft":
        pool = (train.values(cols.vocab) if cols.vocab in train.columns
                else [majority_answer(_human_answers(v)) for v in values])
        return vqa_task(name, build_vocab(pool, vocab_size), soft=True)
    vocab = build_vocab([str(v) for v in values if v is not None], vocab_size)
    if kind == "entailment" and set(vocab) <= set(ENTAILMENT):
        return entailment_task(name)
    return VLTask(name, kind, tuple(vocab), "top1", "ce")


def _make_split(table: _Table, cols: Columns, task: VLTask, mode: str, where: str) -> VLSplit:
    values = table.values(cols.answer)
    soft = None
    if mode == "soft":
        soft = soft_targets([_human_answers(v) for v in values], task.answers)
        labels = soft.best()
    elif mode == "single":
        index = {a: i for i, a in enumerate(task.answers)}
        labels = np.asarray([index.get(normalize_answer(str(v)), -1) for v in values], dtype=np.int64)
    else:  # class ids; rows without a gold label (-1, as in SNLI) cannot be scored: drop them
        labels = np.asarray([-1 if v is None else v for v in values], dtype=np.int64)
        if (labels < 0).any():
            keep = np.flatnonzero(labels >= 0)
            return _make_split(table.subset(keep), cols, task, mode, where)
        if labels.max(initial=-1) >= task.num_answers:
            raise UserError(f"{where}: label {labels.max()} is out of range for {task.num_answers} classes")
    texts = table.values(cols.text)
    if any(t is None for t in texts):
        raise UserError(f"{where}: text column '{cols.text}' has empty rows; give a question or statement per row")
    return VLSplit(table.images(cols.image, where), [str(t) for t in texts], labels, soft)


def assemble(name: str, tables: dict[str, _Table], cols: Columns, kind: str, source: str, notes: str = "",
             vocab_size: int | None = None, classes: Sequence[str] | None = None) -> VLRawData:
    """Train / val / test tables -> ``VLRawData``; the vocabulary comes from the train split only."""
    for split, table in tables.items():
        _check_columns(table, cols, f"dataset '{name}' ({split})")
    mode = _answer_mode(tables["train"].values(cols.answer), f"dataset '{name}'", cols.answer)
    task = _make_task(name, kind, mode, tables["train"], cols, vocab_size, classes)
    splits = {s: _make_split(t, cols, task, mode, f"dataset '{name}' ({s})") for s, t in tables.items()}
    for split, sp in splits.items():
        if len(sp) == 0:
            sizes = ", ".join(f"{s} {len(v)}" for s, v in splits.items())
            raise UserError(f"dataset '{name}' has an empty '{split}' split ({sizes} rows); "
                            "give more rows or separate train/val/test files")
    return VLRawData(name, task, splits, source, notes)


def plan_splits(tables: dict[str, _Table], group_col: str | None) -> tuple[dict[str, _Table], str]:
    """Our train / val / test from the labelled splits a dataset has, never choosing on its test split.

    only train -> carve 70/10/20; train + test -> carve val from train (10%); train + val -> their val becomes
    test and val is carved from train. Carves keep rows of one ``group_col`` value (image) together.
    """
    aliases = {"validation": "val", "dev": "val", "valid": "val"}
    tables = {aliases.get(k, k): v for k, v in tables.items()}
    if "train" not in tables:
        raise UserError(f"VL data needs a train split, found: {', '.join(tables) or 'none'}; "
                        "name files/splits train, val, test")
    have = {k for k in ("val", "test") if k in tables}
    train = tables["train"]
    groups = train.values(group_col) if group_col in train.columns else list(range(len(train)))
    by = f"by '{group_col}'" if group_col in train.columns else "by row"
    if not have:
        parts = carve(groups, LOCAL_CARVE, CARVE_SEED)
        return {s: train.subset(ix) for s, ix in parts.items()}, f"train/val/test carved 70/10/20 {by}, seed 0"
    out = dict(tables)
    if have == {"val"}:
        out["test"] = out.pop("val")
    if "val" not in out:
        parts = carve(groups, VAL_CARVE, CARVE_SEED)
        out["train"], out["val"] = train.subset(parts["train"]), train.subset(parts["val"])
        why = "their val is our test; " if have == {"val"} else ""
        return out, f"{why}val carved from train (10% {by}, seed 0)"
    return out, ""


# ----------------------------------------------------------------------------- hub specs


@dataclass(frozen=True)
class VLHubSpec:
    """A VL dataset on the Hugging Face hub (online only). ``splits`` maps our split -> (config, hub split);
    the key ``all`` names the one labelled split that ``carve`` cuts into ours."""

    hub_id: str
    kind: str  # vqa | entailment
    cols: Columns
    splits: dict[str, tuple[str | None, str]]
    carve: dict[str, float] | None = None
    group_col: str | None = None  # rows sharing it (one image) stay in one carved split
    image_tables: dict[str, tuple[str, str]] | None = None  # our split -> (config, split) of an id/image table
    join: tuple[str, str] | None = None  # (image-id column of the questions, id column of the image table)
    vocab_size: int | None = None
    classes: tuple[str, ...] | None = None
    note: str = ""


_GQA_TIERS = {"train": "train", "val": "val", "test": "testdev"}

VL_HUB: dict[str, VLHubSpec] = {
    # lmms-lab/VQAv2 (parquet, CC BY 4.0): splits validation 214,354 (labelled: question_type,
    # multiple_choice_answer, answers=[{answer, answer_confidence, answer_id}] x10, image_id, answer_type,
    # question_id, question, image), testdev 107,394 and test 447,793 without answers; no train split
    # (hf.co/datasets/lmms-lab/VQAv2 README at d138bef and dataset viewer; lmms-eval vqav2_val.yaml).
    "vqav2": VLHubSpec(
        "lmms-lab/VQAv2", "vqa", Columns("image", "question", "answers", vocab="multiple_choice_answer"),
        splits={"all": (None, "validation")}, carve={"train": 0.7, "val": 0.1, "test": 0.2}, group_col="image_id",
        vocab_size=3129,
        note="only val2014 is labelled here: train/val/test carved 70/10/20 by image_id (seed 0); "
             "not the paper protocol (train2014 -> test-dev), numbers are not comparable to papers"),
    # lmms-lab/GQA (parquet, MIT): one config per tier x {balanced, all} x {instructions, images};
    # instructions = id, imageId, question, answer, fullAnswer, ... (answers on train/val/testdev only),
    # images = id, image (hf.co/datasets/lmms-lab/GQA README at af87823/007c772; lmms-eval gqa/utils.py joins
    # testdev_balanced_images on imageId -> id).
    "gqa": VLHubSpec(
        "lmms-lab/GQA", "vqa", Columns("image", "question", "answer"),
        splits={s: (f"{t}_balanced_instructions", t) for s, t in _GQA_TIERS.items()},
        image_tables={s: (f"{t}_balanced_images", t) for s, t in _GQA_TIERS.items()},
        join=("imageId", "id"), vocab_size=1843,  # the figure in issue 13 / benchmark.md; not re-derived here
        note="balanced train / val (choices) / testdev (reported); 1,843 answers from train"),
    # sedrickkeh/snli-ve (parquet): image, filename, premise (the Flickr30k caption), hypothesis,
    # label ClassLabel(entailment, neutral, contradiction); train 529,527 / validation 17,858 / test 17,901 =
    # the official SNLI-VE splits (hf.co/datasets/sedrickkeh/snli-ve README at 662ae11). The text input is the
    # hypothesis alone: the image is the premise (the caption would turn the task into text-only NLI).
    "snli-ve": VLHubSpec(
        "sedrickkeh/snli-ve", "entailment", Columns("image", "hypothesis", "label"),
        splits={"train": (None, "train"), "val": (None, "validation"), "test": (None, "test")},
        classes=ENTAILMENT, note="text = hypothesis only (the image is the premise)"),
}


def vl_from_hub(name: str, spec: VLHubSpec, tables: dict[str, Any],
                image_tables: dict[str, Any] | None = None) -> VLRawData:
    """Loaded hub splits (``datasets.Dataset`` per key of ``spec.splits``) -> ``VLRawData`` per the spec."""
    ours = {s: _Table(ds, f"hub:{spec.hub_id}:{spec.splits[s][1]}:{getattr(ds, '_fingerprint', '')}")
            for s, ds in tables.items()}
    notes = [spec.note] if spec.note else []
    if spec.join:
        for s in list(ours):
            ours[s], dropped = _join_images(ours[s], (image_tables or {})[s], *spec.join, spec.cols.image)
            if dropped:
                notes.append(f"{s}: {dropped} questions without an image dropped")
    if spec.carve:
        source = ours.pop("all")
        groups = source.values(spec.group_col) if spec.group_col else list(range(len(source)))
        ours = {s: source.subset(ix) for s, ix in carve(groups, spec.carve, CARVE_SEED).items()}
    return assemble(name, ours, spec.cols, spec.kind, f"hub:{spec.hub_id}", "; ".join(notes),
                    spec.vocab_size, spec.classes)


def _quiet_datasets():
    import datasets as hfds

    hfds.disable_progress_bars()
    hfds.logging.set_verbosity_error()
    return hfds


def _hub_error(hub_id: str, e: Exception) -> UserError:
    from petlbench.hub import unreachable

    text = f"{type(e).__name__} {e}".lower()
    if isinstance(e, unreachable()) or any(w in text for w in ("couldn't reach", "offline", "connection",
                                                                 "localentrynotfound")):
        return UserError(f"cannot reach '{hub_id}' on the Hugging Face hub; {OFFLINE_HINT}")
    return UserError(f"cannot load '{hub_id}' ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})")


def load_vl_hub(name: str) -> VLRawData:
    """Download (or reuse the HF cache of) a ``VL_HUB`` dataset; one-line ``UserError`` when unreachable."""
    from petlbench.hub import offline_if_unreachable

    spec = VL_HUB[name]
    offline_if_unreachable()  # one short probe, then offline: an unreachable hub fails in seconds
    hfds = _quiet_datasets()

    def fetch(config: str | None, split: str):
        try:
            return hfds.load_dataset(spec.hub_id, config, split=split)
        except Exception as e:
            raise _hub_error(spec.hub_id, e) from None

    tables = {s: fetch(*cs) for s, cs in spec.splits.items()}
    images = {s: fetch(*cs) for s, cs in (spec.image_tables or {}).items()}
    return vl_from_hub(name, spec, tables, images)


# ----------------------------------------------------------------------------- local data

# column names we recognise in local data, in order of preference
TEXT_COLS = ("question", "text", "hypothesis", "statement", "sentence", "query")
ANSWER_COLS = ("answers", "answer", "multiple_choice_answer", "label", "labels")
IMAGE_COLS = ("image", "img", "image_path", "image_file", "file_name", "filename", "file", "path")
GROUP_COLS = ("image_id", "imageId", "image_path", "image_file", "file_name", "filename", "file", "path", "image")
ENTAILMENT_TEXT = ("hypothesis", "statement")


def _detect_columns(table: _Table, where: str) -> Columns:
    found = table.columns
    image = next((c for c in found if table.is_image_feature(c)), None) or next((c for c in IMAGE_COLS if c in found), None)
    text = next((c for c in TEXT_COLS if c in found), None)
    answer = next((c for c in ANSWER_COLS if c in found), None)
    for role, col, tried in (("image", image, IMAGE_COLS), ("question/text", text, TEXT_COLS),
                             ("answer", answer, ANSWER_COLS)):
        if col is None:
            raise UserError(f"{where} has no {role} column (one of {', '.join(tried)}); "
                            f"columns found: {', '.join(found) or 'none'}")
    vocab = "multiple_choice_answer" if answer == "answers" and "multiple_choice_answer" in found else None
    return Columns(image, text, answer, vocab)


def _group_col(table: _Table) -> str | None:
    """A column naming each row's image (path or id) to keep an image's questions in one carved split."""
    return next((c for c in GROUP_COLS if c in table.columns and not table.is_image_feature(c)), None)


def _split_of(stem: str) -> str:
    stem = stem.lower()
    return next((s for s in ("train", "validation", "val", "dev", "test") if s in stem), "train")


def _read_jsonl(path: Path) -> _Table:
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(f"'{path}' line {n} is not valid JSON; write one JSON object per line") from None
        if not isinstance(row, dict):
            raise UserError(f"'{path}' line {n} is not a JSON object; write {{\"image\": ..., \"question\": ...}} rows")
        rows.append(row)
    ident = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return _Table(rows, f"jsonl:{path.name}:{ident}", root=path.parent)


def _read_hf_local(path: Path) -> dict[str, _Table] | None:
    """A save_to_disk dir or parquet file/dir -> tables, or None when ``path`` is neither."""
    hfds = _quiet_datasets()
    root = path if path.is_dir() else path.parent
    if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists()):
        loaded = hfds.load_from_disk(str(path))
        dsd = loaded if isinstance(loaded, dict) else {"train": loaded}
        return {k: _Table(ds, f"disk:{path}:{k}:{getattr(ds, '_fingerprint', '')}", root) for k, ds in dsd.items()}
    files = [path] if path.suffix == ".parquet" else sorted(path.rglob("*.parquet")) if path.is_dir() else []
    if not files:
        return None
    by_split: dict[str, list[str]] = {}
    for f in files:
        by_split.setdefault(_split_of(f.stem), []).append(str(f))
    try:
        dsd = hfds.load_dataset("parquet", data_files=by_split)
    except Exception as e:
        raise UserError(f"cannot read parquet data in '{path}' ({type(e).__name__}); check the files") from None
    return {k: _Table(ds, f"parquet:{path}:{k}:{getattr(ds, '_fingerprint', '')}", root) for k, ds in dsd.items()}


def _read_local(path: Path) -> dict[str, _Table]:
    jsonl = [path] if path.suffix == ".jsonl" else sorted(path.glob("*.jsonl")) if path.is_dir() else []
    if jsonl:
        return {_split_of(f.stem): _read_jsonl(f) for f in jsonl}
    tables = _read_hf_local(path)
    if tables is None:
        raise UserError(f"'{path}' is not VL data: pass a parquet file/dir, a save_to_disk dir, "
                        "or a JSONL file (image, question, answer per line) next to its images")
    return tables


def load_vl_local(path: Path) -> VLRawData:
    """Local VL data as users keep it: parquet / save_to_disk with image, question, answer(s) columns, or
    JSONL rows {"image": relative path, "question": ..., "answer": ... | "answers": [...]} + an image folder.

    Splits come from file / split names (train, val|validation|dev, test) via ``plan_splits``. The answer
    column decides the task: a list of human answers -> VQA soft scores (BCE, VQA score); one string ->
    single-answer classification (CE, top-1); an integer -> class ids. A ``hypothesis`` / ``statement`` text
    column makes it an entailment task.
    """
    split_word = path.stem.lower() in ("train", "val", "validation", "dev", "test")
    name = path.resolve().parent.name if split_word else (path.stem or path.name)
    tables = _read_local(path)
    cols = _detect_columns(next(iter(tables.values())), f"local VL data '{path}'")
    tables, note = plan_splits(tables, _group_col(next(iter(tables.values()))))
    kind = "entailment" if cols.text in ENTAILMENT_TEXT else "vqa"
    return assemble(name, tables, cols, kind, f"local:{path}", note)


def looks_like_vl(path: str | Path) -> bool:
    """Whether a local path holds VL data (a JSONL, or tabular data with a question/text column)."""
    path = Path(path)
    if path.suffix == ".jsonl" or (path.is_dir() and any(path.glob("*.jsonl"))):
        return True
    schema_files = [path] if path.suffix == ".parquet" else sorted(path.rglob("*.parquet"))[:1] if path.is_dir() else []
    if schema_files:
        import pyarrow.parquet as pq

        return any(c in TEXT_COLS for c in pq.read_schema(schema_files[0]).names)
    infos = sorted(path.rglob("dataset_info.json"))[:1] if path.is_dir() else []
    return bool(infos) and any(c in TEXT_COLS for c in json.loads(infos[0].read_text()).get("features", {}))


# ----------------------------------------------------------------------------- resolution


@dataclass(frozen=True)
class VLBuiltin:
    """A built-in offline VL task in the dataset registry (generated by ``petlbench.vl_tasks``)."""

    name: str
    description: str


def builtin_vl() -> dict[str, Callable[[], VLRawData]]:
    from petlbench import vl_tasks

    return vl_tasks.BUILTIN


def load_vl(name: str, limit: int | None = None, seed: int = 0) -> VLRawData:
    """A built-in VL task, a ``VL_HUB`` name or a local path -> ``VLRawData`` (``limit``: samples per split)."""
    builtins = builtin_vl()
    if name in builtins:
        raw = builtins[name]()
    elif name in VL_HUB:
        raw = load_vl_hub(name)
    elif os.path.exists(name):
        raw = load_vl_local(Path(name))
    else:
        raise UserError(f"unknown VL dataset '{name}'{did_you_mean(name, list(builtins) + list(VL_HUB))}; "
                        "run 'petlbench list datasets' or pass an existing path")
    for split, sp in raw.splits.items():
        if len(sp) == 0:
            raise UserError(f"VL dataset '{name}' has an empty '{split}' split; point --dataset at data with rows")
    return raw.take(limit, seed)


def builtin_descriptions() -> dict[str, str]:
    """name -> one-line description of each built-in VL task."""
    from petlbench import vl_tasks

    return dict(vl_tasks.DESCRIPTIONS)


def list_vl_datasets() -> list[tuple[str, str, str]]:
    """(name, kind, note) rows for ``petlbench list datasets``."""
    rows = [(n, "built-in VL (offline)", d) for n, d in builtin_descriptions().items()]
    rows += [(n, "hub VL", f"{s.hub_id} ({s.kind}) {s.note}") for n, s in VL_HUB.items()]
    rows.append(("<path>", "local VL", "parquet / save_to_disk (image, question, answer[s]) or JSONL + images"))
    return rows


# ----------------------------------------------------------------------------- batches for a model

Tokenize = Callable[[list[str]], Any]  # texts -> mapping of N×T tensors (input_ids, attention_mask, ...)


def tokenizer_for(name: str) -> Tokenize:
    """Texts -> N×T tensors, right-padded to the longest text (truncated at the model's maximum), with the
    tokenizer of text model ``name`` (``VLModel.tokenizer_name``)."""
    from petlbench.vl import text_tokenizer

    tok = text_tokenizer(name)
    return lambda texts: dict(tok(list(texts), padding=True, truncation=True, return_tensors="pt"))


class VLTorchSplit(torch.utils.data.Dataset):
    """A split ready for a model. Texts are tokenised once, right-padded to the split's longest text; images are
    preprocessed with the visual encoder's data config (in-memory arrays once, up front, through ``data.Preprocess``;
    lazily decoded sets per item with timm's eval transform); no images at all for a text-only model (a data
    config without ``input_size``).

    ``self[i]`` = (inputs of one sample, its target) at the split's padded length (what ``DataLoader`` collates
    and what GMACs are counted on); ``batches`` yields ``(inputs, target)`` with the text columns cut to the
    batch's longest text; ``target`` = B×A soft scores (vqa_score tasks) or B int64 labels (``VLTask.targets``).
    """

    def __init__(self, split: VLSplit, task: VLTask, data_cfg: dict[str, Any], tokenize: Tokenize) -> None:
        from petlbench.data import preprocess_array

        self.split, self.task = split, task
        self.text = {k: torch.as_tensor(v) for k, v in tokenize(split.texts).items()}  # N×T each
        self.pixels, self.transform = None, None  # both None: a text-only model, no pixel_values
        if "input_size" in data_cfg and isinstance(split.images, np.ndarray):
            self.pixels = preprocess_array(split.images, data_cfg["input_size"], data_cfg["mean"], data_cfg["std"])
        elif "input_size" in data_cfg:
            from timm.data import create_transform

            timm_cfg = {k: v for k, v in data_cfg.items() if k not in ("tokenizer", "modality")}
            self.transform = create_transform(**timm_cfg, is_training=False)

    def __len__(self) -> int:
        return len(self.split)

    @property
    def text_len(self) -> int:
        return int(self.text["input_ids"].shape[1])

    def _pixel(self, i: int) -> torch.Tensor:
        return self.pixels[i] if self.pixels is not None else self.transform(self.split.image(i))

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        inputs = {k: v[i] for k, v in self.text.items()}
        if self.pixels is not None or self.transform is not None:
            inputs["pixel_values"] = self._pixel(i)
        return inputs, self.task.targets(self.split, [i])[0]

    def _pixel_chunks(self, chunks: list[torch.Tensor], num_workers: int, pin_memory: bool):
        """B×C×H×W pixels of each chunk of rows (None for a text-only model)."""
        if self.pixels is not None:
            return (self.pixels[rows] for rows in chunks)
        if self.transform is None:
            return (None for _ in chunks)
        order = torch.cat(chunks).tolist() if chunks else []
        images = _Pixels(self)
        return iter(torch.utils.data.DataLoader(torch.utils.data.Subset(images, order), batch_size=len(chunks[0]),
                                                num_workers=num_workers, pin_memory=pin_memory))

    def batches(self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
                num_workers: int = 0, pin_memory: bool = False):
        """Mini-batches ``(inputs, target)`` in order (or shuffled by ``generator``); ``data.batches`` calls this."""
        order = torch.randperm(len(self), generator=generator) if shuffle else torch.arange(len(self))
        chunks = list(order.split(batch_size))
        for rows, pixels in zip(chunks, self._pixel_chunks(chunks, num_workers, pin_memory), strict=True):
            mask = self.text["attention_mask"][rows]
            width = max(1, int(mask.sum(1).max()))  # the batch's longest text (right padding)
            inputs = {k: v[rows, :width] for k, v in self.text.items()}
            if pixels is not None:
                inputs["pixel_values"] = pixels
            yield inputs, self.task.targets(self.split, rows.numpy())


class _Pixels(torch.utils.data.Dataset):
    """The lazily decoded images of a ``VLTorchSplit`` (what its DataLoader reads)."""

    def __init__(self, split: VLTorchSplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.split._pixel(i)


class VLScoring(Task):
    """A ``VLTask`` as the loop's ``data.Task``: loss = the task's (BCE on soft scores | CE), score = per-sample
    sum of its metric (VQA score | top-1); ``metric`` names it (stored in the result's ``metric`` column)."""

    def __init__(self, task: VLTask) -> None:
        self.task, self.metric, self.kind = task, task.metric, task.kind

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.task.loss_fn(logits, target)

    def score(self, logits: torch.Tensor, target: torch.Tensor) -> float:
        return self.task.metric_sum(logits, target)


def prepare_vl(raw: VLRawData, data_cfg: dict[str, Any], trainval: bool = False, selection: bool = False,
               tokenize: Tokenize | None = None):
    """``data.Splits`` of ``VLTorchSplit`` for a model's data config (``data.prepare`` dispatches here).
    ``trainval`` trains on train + val (search_train / search_val keep them apart); a ``selection`` run gets no
    test split. ``tokenize`` defaults to the tokenizer named in ``data_cfg``."""
    from petlbench.data import Splits

    tokenize = tokenize or tokenizer_for(data_cfg["tokenizer"])
    out = {s: VLTorchSplit(sp, raw.task, data_cfg, tokenize) for s, sp in raw.splits.items()
           if not (selection and s == "test")}
    train, val = out["train"], out.get("val")
    if data_cfg.get("input_size"):
        c, h, w = data_cfg["input_size"]
        pre = f"images resized to {h}x{w} for the visual encoder (squash, no crop), mean/std of its data config; "
    else:
        pre = "text only (no images); "
    pre += f"texts tokenised by {data_cfg.get('tokenizer', 'the given')} tokenizer, right-padded per batch"
    common = dict(num_classes=raw.num_classes, search_train=train, search_val=val, preprocessing=pre,
                  task=VLScoring(raw.task))
    if trainval and val is not None:
        merged = VLTorchSplit(concat_splits(raw.splits["train"], raw.splits["val"]), raw.task, data_cfg, tokenize)
        return Splits(merged, None, out.get("test"), **common)
    return Splits(train, val, out.get("test"), **common)


def concat_splits(a: VLSplit, b: VLSplit) -> VLSplit:
    """Two splits as one (in-memory images only; lazily decoded sets are concatenated as file/row lists)."""
    if isinstance(a.images, np.ndarray) and isinstance(b.images, np.ndarray):
        images = np.concatenate([a.images, b.images])
    else:
        images = ImageSource(_Concat(a.images, b.images), f"{a.images.identity()}+{b.images.identity()}")
    soft = None
    if a.soft is not None or b.soft is not None:
        soft = SoftTargets.from_pairs([*(a.soft_targets()[i] for i in range(len(a))),
                                       *(b.soft_targets()[i] for i in range(len(b)))])
    return VLSplit(images, a.texts + b.texts, np.concatenate([a.labels, b.labels]), soft)


class _Concat:
    """Two ImageSources read as one item sequence."""

    def __init__(self, a: ImageSource, b: ImageSource) -> None:
        self.a, self.b = a, b

    def __len__(self) -> int:
        return len(self.a) + len(self.b)

    def __getitem__(self, i: int):
        return self.a.items[i] if i < len(self.a) else self.b.items[i - len(self.a)]

    def select(self, idx: Sequence[int]) -> _RowView:
        return _RowView(self, np.asarray(idx, dtype=np.int64))


class _RowView:
    """Rows ``rows`` of an indexable item sequence, still lazy."""

    def __init__(self, items: Any, rows: np.ndarray) -> None:
        self.items, self.rows = items, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        return self.items[int(self.rows[i])]

    def select(self, idx: Sequence[int]) -> _RowView:
        return _RowView(self.items, self.rows[np.asarray(idx, dtype=np.int64)])
