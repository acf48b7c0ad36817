"""The papers' own VL files: ViLT-format pyarrow serialisations of VQAv2, SNLI-VE and GQA -> ``VLRawData``.

APT, DAS, DVP, ViLT and METER all train from Arrow IPC files (``pa.RecordBatchFileWriter``), one row per image.
Facts read from the official writers and readers (not copied):

* VQAv2 -- ViLT ``vilt/utils/write_vqa.py``: ``vqav2_{train,val,trainable_val,rest_val,test,test-dev}.arrow`` with
  columns ``image`` (encoded bytes), ``questions`` (list), ``answers``, ``answer_labels``, ``answer_scores`` (a list
  per question), ``image_id``, ``question_id`` (list), ``split``; ``trainable_val`` / ``rest_val`` are ``val`` without
  / with its last 1,000 rows. ViLT ``vilt/datasets/vqav2_dataset.py`` trains on train + trainable_val and validates
  on rest_val; ``vilt/datamodules/vqav2_datamodule.py`` rebuilds the answer vocabulary from the (answer, label)
  pairs of the train and val files (``num_class`` = largest label + 1, an id no pair names is "unknown"). The
  targets are the files' own ``answer_scores`` (ViLT ``get_score``) and the VQA score of a prediction is its score.
* SNLI-VE -- METER ``meter/utils/write_snli.py``: ``snli_{train,dev,test}.arrow`` with ``image``, ``sentences`` (a
  [premise, hypothesis] pair per question), ``labels`` (contradiction 0, neutral 1, entailment 2); METER's
  ``base_dataset.py`` feeds the hypothesis alone. DVP ``dvp/utils/write_snli_ve.py``:
  ``snli_ve_{train,dev,test}.arrow`` with ``image``, ``questions`` (hypotheses), ``answers`` (label names, mapped as
  METER's), ``identifier``.
* GQA -- DVP ``dvp/utils/write_gqa.py``: ``gqa_{train,val,test-dev}.arrow`` in the VQAv2 columns, one label per
  question (score 1.0) from DVP's ``dicts.json`` (1,843 answers); ``gqa_datamodule.py`` trains on gqa_train, reports
  gqa_test-dev and builds the vocabulary as ViLT does; ``objectives.compute_gqa`` is a cross-entropy on that label.

Our splits (a labelled test split is what we score; never choosing on it): VQAv2 trains on train + trainable_val
and tests on rest_val, as the official configs; val (per-epoch monitoring) is the last ``HELD_IMAGES`` images of
trainable_val, which ``--trainval`` (the paper suites) trains on too. GQA tests on test-dev; val is gqa_val, else the
last images of gqa_train. SNLI-VE: train / dev / test. A missing split file, a vocabulary that two files disagree on
and an image that does not decode are one-line errors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from petlbench.errors import UserError
from petlbench.vl.data.metrics import SoftTargets
from petlbench.vl.data.raw import VLRawData, VLSplit, VLTask, entailment_task, vqa_task

HELD_IMAGES = 1_000  # ViLT write_vqa.py: rest_val = the last 1,000 rows (images) of vqav2_val
SNLI_CLASSES = ("contradiction", "neutral", "entailment")  # METER write_snli.py / DVP snli_ve_dataset.py label ids


def held_images(n: int) -> int:
    """Images held out of a split of ``n`` images: ``HELD_IMAGES``, at most a quarter of them (small copies)."""
    return max(1, min(HELD_IMAGES, n // 4))


# ----------------------------------------------------------------------------- the file families


@dataclass(frozen=True)
class Family:
    """One writer's files: ``{prefix}_{split}.arrow``. ``train`` files are trained on, ``test`` is scored, ``val``
    (None: carved from the last train file) monitors; ``vocab`` files define the answer vocabulary (the official
    datamodule's train + val datasets); ``schema`` says how a row holds its questions and targets."""

    task: str  # petlbench's name of the published task
    prefix: str
    schema: str  # vqa | pairs | names
    train: tuple[str, ...]
    test: str
    writer: str
    val: str | None = None
    val_optional: bool = False
    vocab: tuple[str, ...] = ()
    classes: int = 0  # answers / classes of the full release
    questions: tuple[int, int, int] = (0, 0, 0)  # (train, val, test) questions of the full release, as we split it

    def file(self, split: str) -> str:
        return f"{self.prefix}_{split}.arrow"

    def required(self) -> list[str]:
        return [*self.train, self.test, *([self.val] if self.val and not self.val_optional else [])]

    def known(self) -> set[str]:
        return {*self.train, self.test, *([self.val] if self.val else []), *self.vocab}


# Sizes of the full releases (``--plan``): VQAv2 443,757 train2014 + 214,354 val2014 questions (Goyal et al. 2017),
# about 5.35 per image, so rest_val and our val hold ~5,350 each (the writer also drops questions without an answer
# in the vocabulary: an upper bound); GQA balanced train 943,000 / val 132,062 / test-dev 12,578 questions (Hudson &
# Manning 2019), 1,843 answers (DVP's dicts.json); SNLI-VE 529,527 / 17,858 / 17,901 (Xie et al. 2019).
_VQA_SIZES = (443_757 + 214_354 - 2 * 5_350, 5_350, 5_350)
FAMILIES = (
    Family("vqav2", "vqav2", "vqa", ("train", "trainable_val"), "rest_val", "ViLT's vilt/utils/write_vqa.py",
           vocab=("train", "trainable_val", "rest_val"), classes=3_129, questions=_VQA_SIZES),
    Family("gqa", "gqa", "vqa", ("train",), "test-dev", "DVP's dvp/utils/write_gqa.py", val="val",
           val_optional=True, vocab=("train", "test-dev"), classes=1_843, questions=(943_000, 132_062, 12_578)),
    Family("snli-ve", "snli", "pairs", ("train",), "test", "METER's meter/utils/write_snli.py", val="dev",
           classes=3, questions=(529_527, 17_858, 17_901)),
    Family("snli-ve", "snli_ve", "names", ("train",), "test", "DVP's dvp/utils/write_snli_ve.py", val="dev",
           classes=3, questions=(529_527, 17_858, 17_901)),
)
COLUMNS = {"vqa": ("image", "questions", "answers", "answer_labels", "answer_scores"),
           "pairs": ("image", "sentences", "labels"), "names": ("image", "questions", "answers")}
ALL_SPLITS = ("train", "val", "trainable_val", "rest_val", "test", "test-dev", "dev")


def _family_of(file: Path) -> Family | None:
    """The family whose ``{prefix}_{split}.arrow`` names ``file`` (the longest prefix first: snli_ve before snli)."""
    for fam in sorted(FAMILIES, key=lambda f: -len(f.prefix)):
        if any(file.name == fam.file(s) for s in ALL_SPLITS):
            return fam
    return None


def _families(path: Path) -> dict[str, Family]:
    """Families with a file at ``path`` (a file, or a folder of them), by prefix."""
    files = [path] if path.is_file() else sorted(path.glob("*.arrow")) if path.is_dir() else []
    return {f.prefix: f for f in (_family_of(p) for p in files) if f is not None}


def claims(path: Path) -> bool:
    """Whether ``path`` is ViLT-format VL data: such a file, or a folder holding one."""
    return path.suffix == ".arrow" or bool(_families(path))


def _choose(path: Path) -> tuple[Path, Family]:
    """(folder, family) of ``--dataset``; a folder with several families must be named by one of its files."""
    found = _families(path)
    if not found:
        raise UserError(f"'{path}' is no ViLT-format file: expected {{vqav2,gqa,snli,snli_ve}}_<split>.arrow as the "
                        "official writers name them")
    if len(found) > 1:
        names = ", ".join(f"{f.task} ({f.prefix}_*.arrow)" for f in found.values())
        raise UserError(f"'{path}' holds the files of several tasks: {names}; pass one file of the task you mean, "
                        f"e.g. --dataset {path / next(iter(found.values())).file('train')}")
    return (path.parent if path.is_file() else path), next(iter(found.values()))


# ----------------------------------------------------------------------------- reading one file


def read_table(path: Path, schema: str) -> Any:
    """An Arrow IPC file (memory-mapped: image bytes are read when used); UserError when it is no such file or
    lacks the writer's columns."""
    import pyarrow as pa

    try:
        table = pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()
    except (OSError, pa.ArrowInvalid) as e:
        raise UserError(f"cannot read '{path}' as an Arrow IPC file ({str(e).splitlines()[0][:80]}); write it with "
                        "the official writer (pa.RecordBatchFileWriter) again") from None
    missing = [c for c in COLUMNS[schema] if c not in table.column_names]
    if missing:
        raise UserError(f"'{path}' lacks column(s) {', '.join(missing)} (columns: {', '.join(table.column_names)}); "
                        "it is not the official writer's output, or a partial copy")
    return table


class ArrowImages:
    """The encoded images of one file's ``image`` column, one per row (left in the memory map until read)."""

    def __init__(self, path: Path, table: Any) -> None:
        self.path, self.column = path, table.column("image")
        stat = path.stat()
        with open(path, "rb") as f:  # size + the first MiB: a file written again reads as another identity
            self.identity = f"arrow:{path.name}:{stat.st_size}:{hashlib.sha256(f.read(1 << 20)).hexdigest()[:16]}"

    def entry(self, row: int) -> bytes:
        return self.column[int(row)].as_py()

    def where(self, row: int) -> str:
        return f"{self.path.name} row {int(row)}"


class FileImages:
    """Image files, one per row (the official VQAv2 JSON's COCO folders)."""

    def __init__(self, paths: list[str], identity: str) -> None:
        self.paths, self.identity = paths, identity

    def entry(self, row: int) -> str:
        return self.paths[int(row)]

    def where(self, row: int) -> str:
        return f"file '{self.paths[int(row)]}'"


class QuestionImages:
    """Per question, its image: ``tables[which[i]]`` row ``rows[i]`` (an ``ImageSource``'s items: indexable,
    ``select``-able, lazily read)."""

    def __init__(self, tables: Sequence[Any], which: np.ndarray, rows: np.ndarray) -> None:
        self.tables, self.which, self.rows = list(tables), which, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Any:
        return self.tables[int(self.which[i])].entry(self.rows[i])

    def select(self, idx: Sequence[int]) -> QuestionImages:
        idx = np.asarray(idx, dtype=np.int64)
        return QuestionImages(self.tables, self.which[idx], self.rows[idx])

    def distinct(self) -> list[tuple[int, int]]:
        """The (table, row) of every image once."""
        return sorted(set(zip(self.which.tolist(), self.rows.tolist(), strict=True)))


# ----------------------------------------------------------------------------- questions of one part


@dataclass
class Part:
    """The questions of one file (or a cut of it): text, target labels and scores, and the image row of each."""

    name: str
    images: Any  # ArrowImages | FileImages
    texts: list[str] = field(default_factory=list)
    labels: list[list[int]] = field(default_factory=list)
    scores: list[list[float]] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    answers: list[list[str]] = field(default_factory=list)  # the answer named by each label (vocabulary check)

    def add(self, text: str, labels: list[int], scores: list[float], row: int, answers: list[str] | None = None) -> None:
        self.texts.append(text)
        self.labels.append([int(lab) for lab in labels])
        self.scores.append([float(s) for s in scores])
        self.rows.append(int(row))
        self.answers.append(list(answers or []))

    def cut(self, keep_rows: set[int], name: str) -> Part:
        """The questions on the images ``keep_rows``."""
        ix = [i for i, r in enumerate(self.rows) if r in keep_rows]
        pick = lambda xs: [xs[i] for i in ix] if xs else []  # noqa: E731
        return Part(name, self.images, pick(self.texts), pick(self.labels), pick(self.scores), pick(self.rows),
                    pick(self.answers))

    def last_images(self, n: int) -> tuple[Part, Part]:
        """(the questions of all but the last ``n`` image rows, those of the last ``n``), as the writer cut rest_val."""
        images = sorted(set(self.rows))
        held = set(images[len(images) - n:])
        return self.cut(set(images) - held, self.name), self.cut(held, f"the last {n} images of {self.name}")


def _check_lengths(path: Path, row: int, columns: dict[str, list]) -> None:
    sizes = {k: len(v or []) for k, v in columns.items()}
    if len(set(sizes.values())) > 1:
        raise UserError(f"'{path}' row {row}: its lists differ in length ({', '.join(f'{k} {n}' for k, n in sizes.items())})"
                        "; the file is damaged or not the official writer's: write it again")


def read_part(path: Path, schema: str) -> Part:
    """One file's questions, each with its image row."""
    table = read_table(path, schema)
    part = Part(path.name, ArrowImages(path, table))
    cols = {c: table.column(c).to_pylist() for c in COLUMNS[schema] if c != "image"}
    for row in range(table.num_rows):
        values = {c: v[row] for c, v in cols.items()}
        _check_lengths(path, row, values)
        _add_questions(part, schema, values, path, row)
    return part


def _add_questions(part: Part, schema: str, values: dict[str, Any], path: Path, row: int) -> None:
    if schema == "vqa":
        for q, a, lab, sc in zip(*(values[c] or [] for c in COLUMNS["vqa"][1:]), strict=True):
            _check_lengths(path, row, {"answers": a, "answer_labels": lab, "answer_scores": sc})
            part.add(q, lab, sc, row, a)
        return
    texts = [p[1].strip() for p in values["sentences"]] if schema == "pairs" else list(values["questions"])
    labels = values["labels"] if schema == "pairs" else [_snli_label(a, path, row) for a in values["answers"]]
    for text, label in zip(texts, labels, strict=True):
        part.add(text, [label], [1.0], row)


def _snli_label(name: str, path: Path, row: int) -> int:
    if name not in SNLI_CLASSES:
        raise UserError(f"'{path}' row {row}: label '{name}' is none of {', '.join(SNLI_CLASSES)}")
    return SNLI_CLASSES.index(name)


# ----------------------------------------------------------------------------- the answer vocabulary


def vocabulary(parts: Sequence[Part], defining: Sequence[str]) -> list[str]:
    """The answers by label id, as the official datamodule rebuilds them from the (answer, label) pairs of the
    ``defining`` parts (``num_class`` = largest label + 1; an id no pair names is "unknown"); every part's pairs must
    agree with each other, and no label may lie past the vocabulary: UserError naming both files otherwise."""
    by_answer: dict[str, tuple[int, str]] = {}
    by_label: dict[int, tuple[str, str]] = {}
    for part in parts:
        for answers, labels in zip(part.answers, part.labels, strict=True):
            for answer, label in zip(answers, labels, strict=True):
                _agree(by_answer, answer, label, part.name, "answer")
                _agree(by_label, label, answer, part.name, "label")
    size = 1 + max((lab for p in parts if p.name in defining for ls in p.labels for lab in ls), default=-1)
    beyond = [(p.name, lab) for p in parts for ls in p.labels for lab in ls if lab >= size]
    if beyond:
        raise UserError(f"vocabulary mismatch: {beyond[0][0]} has label {beyond[0][1]} but the vocabulary of "
                        f"{' + '.join(defining)} has {size} answers; write all files with one run of the writer")
    return [by_label[i][0] if i in by_label else "unknown" for i in range(size)]


def _agree(seen: dict, key: Any, value: Any, where: str, what: str) -> None:
    if key not in seen:
        seen[key] = (value, where)
    elif seen[key][0] != value:
        other, first = seen[key]
        raise UserError(f"vocabulary mismatch: {what} {key!r} is {other!r} in {first} but {value!r} in {where}; the "
                        "files come from different runs of the writer: write them again together")


# ----------------------------------------------------------------------------- parts -> VLRawData


def split_of_parts(parts: Sequence[Part], task: VLTask) -> VLSplit:
    """The questions of ``parts`` as one ``VLSplit``: soft targets from the files' labels and scores (VQA), else
    the first label of each question."""
    tables = [p.images for p in parts]
    which = np.concatenate([np.full(len(p.rows), i, dtype=np.int64) for i, p in enumerate(parts)])
    rows = np.concatenate([np.asarray(p.rows, dtype=np.int64) for p in parts])
    digest = hashlib.sha256(which.tobytes() + rows.tobytes()).hexdigest()[:12]
    from petlbench.data.types import ImageSource

    images = ImageSource(QuestionImages(tables, which, rows), f"{'+'.join(t.identity for t in tables)}|{digest}")
    texts = [t for p in parts for t in p.texts]
    pairs = [sorted(zip(lab, sc, strict=True)) for p in parts for lab, sc in zip(p.labels, p.scores, strict=True)]
    if task.soft:
        soft = SoftTargets.from_pairs(pairs)
        return VLSplit(images, texts, soft.best(), soft)
    return VLSplit(images, texts, np.asarray([r[0][0] if r else -1 for r in pairs], dtype=np.int64))


@dataclass
class PaperVLData(VLRawData):
    """VL data from the papers' files: ``ready`` decodes each image the run reads once (an image serves several
    questions), in parallel and at a reduced JPEG scale, so a damaged one is a one-line error before training."""

    def ready(self) -> None:
        for split, sp in self.splits.items():
            items = sp.images.items
            bad = _undecodable(items)
            if bad is not None:
                raise UserError(f"dataset '{self.name}' ({split}): the image at {bad} does not decode as an image; "
                                "write that file again from the original images, or drop the row")


def _undecodable(items: QuestionImages) -> str | None:
    """Where the first image of ``items`` that does not decode lies, or None."""
    import os

    keys = items.distinct()
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # PIL decodes without the GIL
        ok = list(pool.map(lambda k: _decodes(items.tables[k[0]].entry(k[1])), keys))
    first = next((k for k, good in zip(keys, ok, strict=True) if not good), None)
    return None if first is None else items.tables[first[0]].where(first[1])


def _decodes(entry: bytes | str) -> bool:
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(entry) if isinstance(entry, bytes) else entry) as img:
            img.draft("RGB", (64, 64))  # JPEG: decode at 1/8 scale; the whole stream is still read
            img.load()
        return True
    except Exception:  # PIL: UnidentifiedImageError, truncated stream, unsupported mode, ...
        return False


def assemble(name: str, fam: Family, parts: dict[str, Part], source: str, note: str) -> PaperVLData:
    """Train / val / test parts of ``fam`` -> ``PaperVLData`` with the task's vocabulary."""
    known = [p for p in parts.values()]
    if fam.schema == "vqa":
        answers = vocabulary(known, [parts[s].name for s in fam.vocab if s in parts])
        task = vqa_task(fam.task, answers, soft=fam.task == "vqav2")
    else:
        task = entailment_task(fam.task, SNLI_CLASSES)
    train = [parts[s] for s in fam.train]
    val = parts.get(fam.val) if fam.val else None
    if val is None:  # held out of the last training file, as the writer cut rest_val out of val
        train[-1], val = train[-1].last_images(held_images(len(set(train[-1].rows))))
        note += f"; val = {val.name} (--trainval trains on them too)"
    splits = {"train": split_of_parts(train, task), "val": split_of_parts([val], task),
              "test": split_of_parts([parts[fam.test]], task)}
    return PaperVLData(name, task, splits, source, note)


def load_arrow(path: str | Path) -> PaperVLData:
    """``--dataset`` naming ViLT-format files (a folder of one task's files, or one of them)."""
    folder, fam = _choose(Path(path))
    missing = [fam.file(s) for s in fam.required() if not (folder / fam.file(s)).is_file()]
    if missing:
        raise UserError(f"'{folder}' lacks the split file {missing[0]}" + (f" (and {len(missing) - 1} more)"
                        if len(missing) > 1 else "") + f"; {fam.writer} writes it: copy or write it again")
    parts = {s: read_part(folder / fam.file(s), fam.schema) for s in sorted(fam.known())
             if (folder / fam.file(s)).is_file()}
    note = (f"{fam.writer} files; train = {' + '.join(fam.file(s) for s in fam.train)}, test = {fam.file(fam.test)}"
            + (f", val = {fam.file(fam.val)}" if fam.val and fam.val in parts else ""))
    return assemble(fam.task, fam, parts, f"arrow:{folder}", note)
