"""Vision-language data: samples, task metadata, splits, and batches for a VL model.

A VL sample is (image, text, target). A split holds them column-wise (``VLSplit``):

* ``images``: uint8 N×H×W×3 for generated data, or an ``ImageSource`` of PIL-loadable items (hub rows,
  file paths) decoded lazily;
* ``texts``: the question (VQA) or the hypothesis / statement (entailment), one string per sample;
* ``labels``: int64 (N,), the class / answer index used by top-1 and cross-entropy (-1: the answer is not in
  the vocabulary; never counted correct, ignored by the loss);
* ``soft``: VQA soft scores per sample as sparse (answer index, score) lists (``SoftTargets``), or None for
  single-answer tasks.

``VLTask`` says how a task is scored and trained (metric, loss, direction) and holds its answer vocabulary.
Where the data comes from: ``vl.data.tasks`` (the built-in tasks) and ``vl.data.sources`` (hub specs, local files).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from petlbench.data.batching import BatchedDataset
from petlbench.data.types import Data, ImageSource, Splits, Task, limit_rows, make_splits
from petlbench.errors import UserError
from petlbench.vl.data.metrics import SoftTargets, ce_loss, soft_bce_loss, top1_sum, vqa_score_sum

ENTAILMENT = ("entailment", "neutral", "contradiction")  # SNLI / SNLI-VE label order 0, 1, 2
PUBLISHED_TASKS = ("vqav2", "gqa", "snli-ve")  # the VL tasks of the papers (DVP, ViLT, METER), as petlbench names them

# ----------------------------------------------------------------------------- task metadata


@dataclass(frozen=True)
class VLTask(Task):
    """How a VL task is scored and trained (the loop's ``Task``: ``loss`` and ``score`` by its metric).
    ``answers`` is the answer vocabulary (VQA) or the class names."""

    name: str
    kind: str  # "vqa" | "entailment"
    answers: tuple[str, ...]
    metric: str  # "vqa_score" (soft targets, BCE) | "top1" (class labels, CE); stored in the ``metric`` column
    objective: str  # the training loss: "bce" | "ce"
    higher_is_better: bool = True  # direction of the metric

    def __post_init__(self) -> None:
        if self.kind not in ("vqa", "entailment"):
            raise ValueError(f"VLTask kind must be 'vqa' or 'entailment', got {self.kind!r}")
        if (self.metric, self.objective) not in (("vqa_score", "bce"), ("top1", "ce")):
            raise ValueError(f"VLTask pairs vqa_score with bce and top1 with ce, got {self.metric}/{self.objective}")

    @property
    def num_answers(self) -> int:
        return len(self.answers)

    @property
    def head_lr_mult(self) -> float:
        """The head's lr multiplier when the recipe leaves it to the task: ×10 on VQA, ×1 on entailment, as ViLT's
        and DVP's official configs (``lr_mult`` 10 on VQAv2 and GQA, 1 on SNLI-VE)."""
        return 10.0 if self.kind == "vqa" else 1.0

    @property
    def published(self) -> str:
        """The published task whose official recipes (DVP's, ViLT's) apply to this data: ``vqav2``, ``gqa`` or
        ``snli-ve`` by the dataset's name, else by kind (VQA-style data -> vqav2, entailment -> snli-ve)."""
        return self.name if self.name in PUBLISHED_TASKS else {"vqa": "vqav2", "entailment": "snli-ve"}[self.kind]

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

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return soft_bce_loss(logits, target) if self.objective == "bce" else ce_loss(logits, target)

    def score(self, logits: torch.Tensor, target: torch.Tensor) -> float:
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
class VLRawData(Data):
    """A VL dataset before preprocessing (the VL track's ``Data``): ``splits`` maps train / val / test to
    ``VLSplit``."""

    name: str
    task: VLTask
    splits: dict[str, VLSplit]
    source: str  # hub id + split plan, local path, or generator + version
    notes: str = ""  # how the splits were formed (carves etc.), for the run record
    group: str = ""  # set to the task kind (vqa | entailment) when empty
    epochs: int | None = None  # compact budget of built-in tasks (None = method recipe)
    batch_size: int | None = None
    verify_images: bool = False  # local data: decode every image once before training (``ready``)

    track = "vl"
    unit, noun = "answer", "VL dataset"

    def __post_init__(self) -> None:
        self.group = self.group or self.task.kind

    @property
    def note(self) -> str:
        """Said to the user when loaded (``data.RawData.note``)."""
        return self.notes

    def size(self, split: str) -> int:
        return len(self.splits[split])

    def prepare(self, data_cfg: dict[str, Any], trainval: bool = False, selection: bool = False) -> Splits:
        """``Splits`` for a model (see ``prepare_vl``)."""
        return prepare_vl(self, data_cfg, trainval, selection)

    @property
    def classes(self) -> list[str]:
        return list(self.task.answers)

    @property
    def num_classes(self) -> int:
        return self.task.num_answers

    def fingerprint(self) -> dict[str, str]:
        return {s: sp.fingerprint() for s, sp in self.splits.items()}

    def ready(self) -> None:
        """Local data: every image of these samples decodes (``check_images``), before any training."""
        if self.verify_images:
            check_images(self)

    def limited(self, limit: int | None, seed: int = 0) -> VLRawData:
        splits = {}
        for s, sp in self.splits.items():
            rows = limit_rows(len(sp), limit, seed)
            splits[s] = sp if rows is None else sp.subset(rows)
        return replace(self, splits=splits)


def check_images(raw: VLRawData) -> None:
    """Decode every image of a local dataset once, so that one that is not an image (truncated, empty, another
    file type) is a one-line UserError before training instead of a failed run after it (missing files were
    caught when the rows were read). In-memory arrays need no check."""
    for split, sp in raw.splits.items():
        if isinstance(sp.images, np.ndarray):
            continue
        for i in range(len(sp)):
            try:
                sp.image(i)
            except Exception:  # PIL / datasets decoding: UnidentifiedImageError, truncated file, ...
                raise UserError(f"dataset '{raw.name}' ({split}): the image of question {sp.texts[i][:60]!r}"
                                f"{_entry_name(sp.images.items, i)} is not a readable image; replace it or drop "
                                "the row") from None


def _entry_name(items: Any, i: int) -> str:
    """How image entry ``i`` is named in a message: `` (file '...')``, `` (bytes of '<record path>')`` or ''."""
    item = items[i] if isinstance(items, list) else None  # a hub-style column would decode it again
    if isinstance(item, str | Path):
        return f" (file '{item}')"
    path = item.get("path") if isinstance(item, dict) else None
    return f" (bytes of '{path}')" if path else ""


# ----------------------------------------------------------------------------- batches for a model

Tokenize = Callable[[list[str]], Any]  # texts -> mapping of N×T tensors (input_ids, attention_mask, ...)


def tokenizer_for(name: str, max_len: int | None = None) -> Tokenize:
    """Texts -> N×T tensors with the tokenizer of text model ``name`` (``VLModel.tokenizer_name``): right-padded to
    the longest text and truncated at the model's maximum, or, with ``max_len`` (a method's ``max_text_len``, e.g.
    DVP's official 16), truncated at and padded to exactly ``max_len`` tokens, as the official collate does."""
    from petlbench.vl.models.text import text_tokenizer

    tok = text_tokenizer(name)
    pad = {"padding": "max_length", "max_length": max_len} if max_len else {"padding": True}
    return lambda texts: dict(tok(list(texts), truncation=True, return_tensors="pt", **pad))


class VLTorchSplit(BatchedDataset):
    """A split ready for a model. Texts are tokenised once, right-padded to the split's longest text; images are
    preprocessed with the visual encoder's data config (in-memory arrays once, up front, through ``data.Preprocess``;
    lazily decoded sets per item with timm's eval transform); no images at all for a text-only model (a data
    config without ``input_size``).

    ``self[i]`` = (inputs of one sample, its target) at the split's padded length (what ``DataLoader`` collates
    and what GMACs are counted on); ``batches`` yields ``(inputs, target)`` with the text columns cut to the
    batch's longest text; ``target`` = B×A soft scores (vqa_score tasks) or B int64 labels (``VLTask.targets``).
    """

    def __init__(self, split: VLSplit, task: VLTask, data_cfg: dict[str, Any], tokenize: Tokenize,
                 augment: bool = False) -> None:
        from petlbench.data.preprocess import preprocess_array

        self.split, self.task, self.data_cfg = split, task, data_cfg
        # RandAugment(2, 9) on each image before its preprocessing, drawn per epoch (``batches``): training splits only
        self.augment = augment and "input_size" in data_cfg
        self.fixed_len = bool(data_cfg.get("max_text_len"))  # texts padded to one length: batches keep it
        self.text = {k: torch.as_tensor(v) for k, v in tokenize(split.texts).items()}  # N×T each
        self.pixels, self.transform = None, None  # both None: a text-only model, no pixel_values
        if "input_size" in data_cfg and isinstance(split.images, np.ndarray) and not self.augment:
            self.pixels = preprocess_array(split.images, data_cfg["input_size"], data_cfg["mean"], data_cfg["std"])
        elif "input_size" in data_cfg and not isinstance(split.images, np.ndarray):
            from timm.data import create_transform

            timm_cfg = {k: v for k, v in data_cfg.items() if k not in ("tokenizer", "modality", "max_text_len", "augment")}
            self.transform = create_transform(**timm_cfg, is_training=False)

    def __len__(self) -> int:
        return len(self.split)

    @property
    def text_len(self) -> int:
        return int(self.text["input_ids"].shape[1])

    def _pixel(self, i: int, seed: int | None = None) -> torch.Tensor:
        """Image ``i`` ready for the model; augmented from ``seed`` (an epoch's) when the split augments."""
        if self.pixels is not None:
            return self.pixels[i]
        if isinstance(self.split.images, np.ndarray):  # augmented arrays: one image at a time
            from petlbench.data.preprocess import preprocess_array

            image = self._augmented([i], seed)
            return preprocess_array(image, self.data_cfg["input_size"], self.data_cfg["mean"], self.data_cfg["std"])[0]
        image = self.split.image(i)
        if seed is not None and self.augment:
            from PIL import Image

            from petlbench.data.randaugment import RandAugment

            image = RandAugment()(image.convert("RGB") if isinstance(image, Image.Image) else image,
                                  np.random.default_rng([seed, i]))
        return self.transform(image)

    def _augmented(self, rows: list[int], seed: int | None) -> np.ndarray:
        """uint8 images ``rows``, each augmented by its own draw of the epoch's ``seed`` (none without a seed)."""
        from petlbench.data.randaugment import augment_array

        images = self.split.images[rows]
        if seed is None or not self.augment:
            return images
        return np.concatenate([augment_array(images[k:k + 1], np.random.default_rng([seed, i]))
                               for k, i in enumerate(rows)])

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        inputs = {k: v[i] for k, v in self.text.items()}
        if "input_size" in self.data_cfg:
            inputs["pixel_values"] = self._pixel(i)
        return inputs, self.task.targets(self.split, [i])[0]

    def _pixel_chunks(self, chunks: list[torch.Tensor], num_workers: int, pin_memory: bool, seed: int | None = None):
        """B×C×H×W pixels of each chunk of rows (None for a text-only model); augmented from ``seed`` when the split
        augments."""
        if self.pixels is not None:
            return (self.pixels[rows] for rows in chunks)
        if isinstance(self.split.images, np.ndarray) and self.augment:
            from petlbench.data.preprocess import preprocess_array

            cfg = self.data_cfg
            return (preprocess_array(self._augmented(rows.tolist(), seed), cfg["input_size"], cfg["mean"], cfg["std"])
                    for rows in chunks)
        if self.transform is None:
            return (None for _ in chunks)
        order = torch.cat(chunks).tolist() if chunks else []
        images = _Pixels(self, seed)
        return iter(torch.utils.data.DataLoader(torch.utils.data.Subset(images, order), batch_size=len(chunks[0]),
                                                num_workers=num_workers, pin_memory=pin_memory))

    def batches(self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
                num_workers: int = 0, pin_memory: bool = False):
        """Mini-batches ``(inputs, target)`` in order (or shuffled by ``generator``)."""
        order = torch.randperm(len(self), generator=generator) if shuffle else torch.arange(len(self))
        seed = int(torch.randint(0, 2**62, (1,), generator=generator)) if self.augment and shuffle else None
        chunks = list(order.split(batch_size))
        for rows, pixels in zip(chunks, self._pixel_chunks(chunks, num_workers, pin_memory, seed), strict=True):
            mask = self.text["attention_mask"][rows]
            width = mask.shape[1] if self.fixed_len else max(1, int(mask.sum(1).max()))  # else the batch's longest
            inputs = {k: v[rows, :width] for k, v in self.text.items()}
            if pixels is not None:
                inputs["pixel_values"] = pixels
            yield inputs, self.task.targets(self.split, rows.numpy())


class _Pixels(torch.utils.data.Dataset):
    """The lazily decoded images of a ``VLTorchSplit`` (what its DataLoader reads)."""

    def __init__(self, split: VLTorchSplit, seed: int | None = None) -> None:
        self.split, self.seed = split, seed

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.split._pixel(i, self.seed)


def prepare_vl(raw: VLRawData, data_cfg: dict[str, Any], trainval: bool = False, selection: bool = False,
               tokenize: Tokenize | None = None):
    """``Splits`` of ``VLTorchSplit`` for a model's data config (``Data.prepare`` dispatches here).
    ``trainval`` trains on train + val (search_train / search_val keep them apart); a ``selection`` run gets no
    test split. ``tokenize`` defaults to the tokenizer named in ``data_cfg``."""
    tokenize = tokenize or tokenizer_for(data_cfg["tokenizer"], data_cfg.get("max_text_len"))
    augment = data_cfg.get("augment") == "randaugment"
    out = {s: VLTorchSplit(sp, raw.task, data_cfg, tokenize, augment and s == "train") for s, sp in raw.splits.items()
           if not (selection and s == "test")}
    if data_cfg.get("input_size"):
        c, h, w = data_cfg["input_size"]
        pre = f"images resized to {h}x{w} for the visual encoder (squash, no crop), mean/std of its data config; "
    else:
        pre = "text only (no images); "
    pre += "training images RandAugment(2, 9) (official ViLT; data.randaugment); " if augment else ""
    pre += f"texts tokenised by {data_cfg.get('tokenizer', 'the given')} tokenizer, " + (
        f"truncated at and padded to {data_cfg['max_text_len']} tokens" if data_cfg.get("max_text_len")
        else "right-padded per batch")
    merged = lambda: VLTorchSplit(concat_splits(raw.splits["train"], raw.splits["val"]), raw.task,  # noqa: E731
                                  data_cfg, tokenize, augment)
    return make_splits(out, raw.num_classes, pre, raw.task, trainval, merged)


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
