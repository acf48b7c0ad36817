"""Where VL data comes from besides the built-in tasks (``vl.data.tasks``): hub specs (``VL_HUB``) and local files
(parquet, ``save_to_disk``, JSONL + images), with the split carving they share -> ``vl.data.raw.VLRawData``. The
router (``petlbench.datasets``) asks ``looks_like_vl`` of a local path and registers the hub specs.
Online datasets are declared as data in ``VL_HUB`` (ids, configs and splits checked against their hub cards).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from petlbench.data.hub import quiet_datasets
from petlbench.data.splits import CARVE_SEED, POOL_CARVE, carve_keys, split_of
from petlbench.data.types import DatasetSpec, HFColumn, ImageSource, entry_bytes, image_entries
from petlbench.errors import UserError
from petlbench.vl.data.metrics import build_vocab, majority_answer, normalize_answer, soft_targets
from petlbench.vl.data.raw import ENTAILMENT, VLRawData, VLSplit, VLTask, entailment_task, vqa_task
from petlbench.vl.data.tasks import BY_NAME

OFFLINE_HINT = f"offline, use a built-in VL task ({', '.join(BY_NAME)}) or a local path"

# ----------------------------------------------------------------------------- split carving


def carve(groups: Sequence[Any], fractions: dict[str, float], seed: int) -> dict[str, np.ndarray]:
    """Split row indices by group (e.g. image id: all questions on one image land in one split).

    Groups are shuffled with ``seed`` and cut by cumulative ``fractions`` (in dict order); returns sorted
    row indices per split.
    """
    keys, inverse = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
    return {split: np.flatnonzero(np.isin(inverse, ix)) for split, ix in carve_keys(len(keys), fractions, seed).items()}


VAL_CARVE = {"train": 0.9, "val": 0.1}  # a missing labelled val: 10% of train images (documented choice)


# ----------------------------------------------------------------------------- tables (one split's rows)


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
            return ImageSource(HFColumn(self.rows, col), f"{self.identity}:{col}")
        values = self.values(col)
        if not all(isinstance(v, str | Path) for v in values):  # bytes / {bytes, path} records (pyarrow, pandas)
            return image_entries(values, resolve=lambda item: _resolve_image(self.root, item, where))
        paths = [_resolve_image(self.root, p, where) for p in values]
        ident = hashlib.sha256("\n".join(f"{p}:{os.path.getsize(p)}" for p in paths).encode()).hexdigest()[:16]
        return ImageSource(paths, f"files:{ident}")


def _resolve_image(root: Path | None, item: Any, where: str) -> str:
    """A path-like image entry -> an existing file (relative paths: to the data folder, or its images/)."""
    if not isinstance(item, str | Path) or not str(item):
        raise UserError(f"{where}: image entry {str(item)[:60]!r} is neither image bytes nor a file path; give "
                        "encoded image bytes, a {bytes, path} record or a path per row")
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
    joined = ImageSource(HFColumn(images, image_col, rows[keep]), f"{table.identity}:joined")
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


def _unanswered(values: list, mode: str) -> list[int]:
    """Rows without an answer: an empty (or blank) list of human answers, or a missing / blank answer string
    (class ids: -1 / None marks an unlabelled row, which ``_make_split`` drops, as SNLI-VE's)."""
    if mode == "soft":
        return [i for i, v in enumerate(values) if not any(a.strip() for a in _human_answers(v))]
    if mode == "single":
        return [i for i, v in enumerate(values) if v is None or not str(v).strip()]
    return []


def _make_split(table: _Table, cols: Columns, task: VLTask, mode: str, where: str) -> VLSplit:
    values = table.values(cols.answer)
    if missing := _unanswered(values, mode):
        first = table.values(cols.text)[missing[0]]
        raise UserError(f"{where}: {len(missing)} row(s) have no answer in '{cols.answer}' (first: question "
                        f"{str(first)[:60]!r}); give every question at least one answer, or drop those rows")
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


def _group_key(value: Any) -> Any:
    """The carve group of a row's image entry: a digest of its encoded bytes (bytes, ``{bytes, path}`` records),
    else the value itself (a path or an image id)."""
    blob = entry_bytes(value)
    return value if blob is None else hashlib.sha256(blob).hexdigest()


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
    groups = [_group_key(v) for v in train.values(group_col)] if group_col in train.columns else list(range(len(train)))
    by = f"by '{group_col}'" if group_col in train.columns else "by row"
    if not have:
        parts = carve(groups, POOL_CARVE, CARVE_SEED)
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
class VLHubSpec(DatasetSpec):
    """A VL dataset on the Hugging Face hub (online only). ``splits`` maps our split -> (config, hub split);
    the key ``all`` names the one labelled split that ``carve`` cuts into ours."""

    track = "vl"

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

    def load(self, name: str) -> VLRawData:
        return load_vl_hub(name)

    def row(self) -> tuple[str, str]:
        return "hub VL", f"{self.hub_id} ({self.kind}) {self.note}"


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
        join=("imageId", "id"), vocab_size=1843,  # the GQA answer vocabulary of published GQA heads; not re-derived
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
    hfds = quiet_datasets()

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
VL_ANSWER_COLS = ("answers", "answer", "multiple_choice_answer")  # names a classification table does not use
ANSWER_COLS = (*VL_ANSWER_COLS, "label", "labels")
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
                            f"columns found: {', '.join(found) or 'none'}; rename the column that holds the "
                            f"{role} to one of these")
    vocab = "multiple_choice_answer" if answer == "answers" and "multiple_choice_answer" in found else None
    return Columns(image, text, answer, vocab)


def _group_col(table: _Table) -> str | None:
    """A column naming each row's image (path or id) to keep an image's questions in one carved split."""
    return next((c for c in GROUP_COLS if c in table.columns and not table.is_image_feature(c)), None)


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
    hfds = quiet_datasets()
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
        by_split.setdefault(split_of(f.stem) or "train", []).append(str(f))
    try:
        dsd = hfds.load_dataset("parquet", data_files=by_split)
    except Exception as e:
        raise UserError(f"cannot read parquet data in '{path}' ({type(e).__name__}); check the files") from None
    return {k: _Table(ds, f"parquet:{path}:{k}:{getattr(ds, '_fingerprint', '')}", root) for k, ds in dsd.items()}


def _read_local(path: Path) -> dict[str, _Table]:
    jsonl = [path] if path.suffix == ".jsonl" else sorted(path.glob("*.jsonl")) if path.is_dir() else []
    if jsonl:
        return {split_of(f.stem) or "train": _read_jsonl(f) for f in jsonl}
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
    """Whether a local path holds VL data: a JSONL, or tabular data with a question/text column or an answer
    column (``answer[s]``, ``multiple_choice_answer``: a VL table that lacks its question is told so by the VL
    loader, not asked for a label by the vision one)."""
    path = Path(path)
    if path.suffix == ".jsonl" or (path.is_dir() and any(path.glob("*.jsonl"))):
        return True
    schema_files = [path] if path.suffix == ".parquet" else sorted(path.rglob("*.parquet"))[:1] if path.is_dir() else []
    if schema_files:
        import pyarrow.parquet as pq

        return _vl_columns(pq.read_schema(schema_files[0]).names)
    infos = sorted(path.rglob("dataset_info.json"))[:1] if path.is_dir() else []
    return bool(infos) and _vl_columns(json.loads(infos[0].read_text()).get("features", {}))


def _vl_columns(names: Sequence[str]) -> bool:
    return any(c in TEXT_COLS or c in VL_ANSWER_COLS for c in names)


# ----------------------------------------------------------------------------- resolution


def load_vl_path(path: str | Path) -> VLRawData:
    """VL data at a local path (``looks_like_vl``); every image of the run's samples is decoded once when the run
    loads it (``VLRawData.ready``)."""
    raw = load_vl_local(Path(path))
    raw.verify_images = True
    return raw
