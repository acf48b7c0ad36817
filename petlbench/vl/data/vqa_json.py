"""The official VQAv2 release as users keep it: the questions and annotations JSON next to COCO's ``train2014/`` and
``val2014/`` image folders -> the same splits, vocabulary and targets as ViLT's arrow files (``vl.data.arrow``).

Facts from ViLT ``vilt/utils/write_vqa.py`` (read, not copied), which every paper's files come from:

* files: ``v2_OpenEnded_mscoco_{train2014,val2014}_questions.json`` (``questions``: image_id, question,
  question_id) and ``v2_mscoco_{train2014,val2014}_annotations.json`` (``annotations``: question_id, image_id,
  multiple_choice_answer, answers = 10 × {answer, ...}); images ``<split>/COCO_<split>_<12-digit image id>.jpg``;
* the vocabulary: every ``multiple_choice_answer`` of train2014 + val2014, normalised, kept when it occurs at least
  9 times, in order of first occurrence (3,129 answers on the full release);
* the targets of a question: each distinct human answer *as typed* that is a vocabulary entry, scored by how many of
  the humans gave it (``get_score``: 0.3, 0.6, 0.9, then 1.0; the official leave-one-out VQA accuracy for 10
  answers); questions without such an answer, and images without such a question, are dropped;
* rest_val: the writer shuffles val2014's images *without a seed* and keeps the last 1,000 apart, so no copy
  reproduces the official list; we hold out ``arrow.held_images`` val2014 images chosen with the fixed carve seed.

Normalisation is ``metrics.normalize_answer`` (ViLT's ``normalize_word`` with the official evaluation's steps; its
documented contraction fixes differ from ViLT's table on a handful of contracted forms).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from petlbench.data.splits import CARVE_SEED
from petlbench.errors import UserError
from petlbench.vl.data.arrow import FAMILIES, FileImages, PaperVLData, Part, assemble, held_images
from petlbench.vl.data.metrics import normalize_answer

SPLITS = ("train2014", "val2014")
QUESTIONS = "v2_OpenEnded_mscoco_{split}_questions.json"
ANNOTATIONS = "v2_mscoco_{split}_annotations.json"
MIN_COUNT = 9  # ViLT write_vqa.py: answers given as multiple_choice_answer at least 9 times
SCORES = (0.0, 0.3, 0.6, 0.9, 1.0)  # ViLT write_vqa.py get_score: 0, 1, 2, 3, 4+ humans


def claims(path: Path) -> bool:
    """A folder holding one of the official question / annotation files."""
    return path.is_dir() and any((path / name.format(split=s)).is_file() for s in SPLITS
                                 for name in (QUESTIONS, ANNOTATIONS))


def _read_json(path: Path, key: str) -> list[dict[str, Any]]:
    if not path.is_file():
        raise UserError(f"'{path.parent}' lacks {path.name} (the official VQAv2 release, visualqa.org/download.html); "
                        "add it next to the others")
    try:
        return json.loads(path.read_text())[key]
    except (ValueError, KeyError, TypeError):
        raise UserError(f"'{path}' is not the official VQAv2 JSON (a '{key}' list); download it again") from None


def vocabulary(annotations: dict[str, list[dict]]) -> dict[str, int]:
    """answer -> label: normalised multiple-choice answers of train then val given at least ``MIN_COUNT`` times, in
    order of first occurrence."""
    counts = Counter(normalize_answer(a["multiple_choice_answer"]) for s in SPLITS for a in annotations[s])
    return {a: i for i, a in enumerate(a for a, n in counts.items() if n >= MIN_COUNT)}


def targets(answers: list[dict], ans2label: dict[str, int]) -> tuple[list[int], list[float]]:
    """(labels, scores) of one question: each distinct answer as typed that is in the vocabulary, scored by its
    count of humans."""
    counts = Counter(a["answer"] for a in answers)
    kept = [(ans2label[a], SCORES[min(n, 4)]) for a, n in counts.items() if a in ans2label]
    return [lab for lab, _ in kept], [s for _, s in kept]


def _image_path(root: Path, split: str, image_id: int) -> str:
    path = root / split / f"COCO_{split}_{int(image_id):012d}.jpg"
    if not path.is_file():
        raise UserError(f"image {path.relative_to(root)} of a VQAv2 question is missing in '{root}'; copy COCO's "
                        f"{split}/ folder whole (images.cocodataset.org/zips/{split}.zip)")
    return str(path)


def read_split(root: Path, split: str, annotations: list[dict], ans2label: dict[str, int],
               label2ans: list[str]) -> Part:
    """One split's labelled questions (ordered by image id), with their images."""
    questions = {q["question_id"]: q for q in _read_json(root / QUESTIONS.format(split=split), "questions")}
    labelled = []
    for ann in annotations:
        labels, scores = targets(ann["answers"], ans2label)
        if labels and ann["question_id"] in questions:
            labelled.append((int(ann["image_id"]), ann["question_id"], labels, scores))
    labelled.sort(key=lambda t: (t[0], t[1]))
    image_ids = sorted({t[0] for t in labelled})
    paths = [_image_path(root, split, i) for i in image_ids]
    row = {i: r for r, i in enumerate(image_ids)}
    ident = hashlib.sha256("\n".join(f"{Path(p).name}:{Path(p).stat().st_size}" for p in paths).encode()).hexdigest()
    part = Part(f"{split} (JSON)", FileImages(paths, f"files:{ident[:16]}"))
    for image_id, qid, labels, scores in labelled:
        part.add(questions[qid]["question"], labels, scores, row[image_id], [label2ans[lab] for lab in labels])
    return part


def _held_out(part: Part) -> tuple[Part, Part]:
    """(trainable_val, rest_val): ``held_images`` of the part's images chosen with the carve seed."""
    images = sorted(set(part.rows))
    n = held_images(len(images))
    held = {images[i] for i in np.random.default_rng(CARVE_SEED).permutation(len(images))[:n]}
    return part.cut(set(images) - held, "val2014 (trainable)"), part.cut(held, f"val2014 ({n} held-out images)")


def load_vqa_json(path: str | Path) -> PaperVLData:
    """``--dataset`` naming a folder of the official VQAv2 JSON + COCO folders (see the module doc)."""
    root = Path(path)
    annotations = {s: _read_json(root / ANNOTATIONS.format(split=s), "annotations") for s in SPLITS}
    ans2label = vocabulary(annotations)
    if len(ans2label) < 2:
        raise UserError(f"'{root}': fewer than two answers are given {MIN_COUNT}+ times as multiple_choice_answer; "
                        "this is not (a whole copy of) the VQAv2 release")
    label2ans = list(ans2label)
    train, val = (read_split(root, s, annotations[s], ans2label, label2ans) for s in SPLITS)
    trainable, rest = _held_out(val)
    parts = {"train": train, "trainable_val": trainable, "rest_val": rest}
    note = (f"official VQAv2 JSON + COCO folders, as ViLT's write_vqa.py reads them ({len(ans2label)} answers); "
            f"train = train2014 + val2014 but for {rest.name} (the test split; seed {CARVE_SEED})")
    vqav2 = next(f for f in FAMILIES if f.task == "vqav2")
    return assemble("vqav2", vqav2, parts, f"vqa-json:{root}", note)
