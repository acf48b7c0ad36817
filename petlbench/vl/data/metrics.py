"""Answers, targets, losses and metrics of the vision-language track.

Sources (read for facts, not copied):

* VQA accuracy and answer normalisation: the official evaluation, GT-Vision-Lab/VQA
  ``PythonEvaluationTools/vqaEvaluation/vqaEval.py`` (``evaluate``, ``processPunctuation``,
  ``processDigitArticle``).
* Soft targets, answer vocabulary and the BCE scale: ViLT (dandelin/ViLT) ``vilt/utils/write_vqa.py``
  (``get_score``, vocabulary = answers with >= 9 occurrences of ``multiple_choice_answer`` over
  train2014+val2014 = 3,129 answers, the BUTD vocabulary) and ``vilt/modules/objectives.py``
  (``compute_vqa``: BCE-with-logits, mean over batch×answers, times the number of answers, after
  ban-vqa's train.py).

**The VQA score we implement** is the official one: a predicted answer ``a`` for a question with ``n`` human
answers scores the mean over the ``n`` leave-one-out subsets of ``min(#matches among the other n-1 / 3, 1)``.
For an answer given by ``k`` of ``n`` humans this is
``(k * min((k-1)/3, 1) + (n-k) * min(k/3, 1)) / n``; with ``n = 10`` it is 0, 0.3, 0.6, 0.9, 1 for
k = 0, 1, 2, 3, >=4, exactly ViLT's ``get_score`` table. The simpler ``min(k/3, 1)`` (the VQA paper's
formula) gives 1/3 and 2/3 for k = 1, 2 instead; we do not use it.

Deviations from the official evaluation (documented choices):

* The official script normalises answers only when the 10 human answers are not all identical; we always
  normalise (human answers and vocabulary alike), so that a vocabulary entry such as ``2`` matches humans who
  all typed ``Two``. This is what ViLT/BUTD do when they build training targets.
* Contractions (``dont`` -> ``don't``) are restored from our own list of contracted forms: every variant with
  one apostrophe dropped maps back to the full form. The official table keys its three ``I...`` forms with a
  capital letter after lower-casing (so they never fire) and maps ``somebody'd`` the wrong way round; our
  list leaves the ``I`` forms out and maps ``somebodyd`` to ``somebody'd``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# ----------------------------------------------------------------------------- normalisation

_PUNCT = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
_COMMA_IN_NUMBER = re.compile(r"(\d)(,)(\d)")
# The official pattern "(?!<=\d)(\.)(?!\d)" has a typo'd look-behind that never fires: it strips every period
# not followed by a digit ("3.5" keeps its point, "st." loses it). We state that behaviour directly.
_PERIOD = re.compile(r"\.(?!\d)")
_NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                 "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = frozenset({"a", "an", "the"})
_CONTRACTED = (
    "ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've hasn't haven't he'd "
    "he'd've he's how'd how'll how's isn't it'd it'd've it'll let's ma'am mightn't mightn't've might've mustn't "
    "must've needn't not've o'clock oughtn't 'ow's'at shan't she'd've she's should've shouldn't shouldn't've "
    "somebody'd somebody'd've somebody'll somebody's someone'd someone'd've someone'll someone's something'd "
    "something'd've something'll that's there'd there'd've there're there's they'd they'd've they'll they're "
    "they've 'twas wasn't we'd've we've weren't what'll what're what's what've when's where'd where's where've "
    "who'd who'd've who'll who's who've why'll why're why's won't would've wouldn't wouldn't've y'all y'all'll "
    "y'all'd've you'd you'd've you'll you're you've"
).split()


def _contraction_table() -> dict[str, str]:
    """Every spelling with exactly one apostrophe dropped -> the full contracted form."""
    table = {}
    for full in _CONTRACTED:
        for i in (i for i, ch in enumerate(full) if ch == "'"):
            table[full[:i] + full[i + 1:]] = full
    return table


_CONTRACTIONS = _contraction_table()


def _punctuation(text: str) -> str:
    """Official ``processPunctuation``: drop a mark next to a space (or in '1,000'), else turn it into a space."""
    out = text
    drop_all = _COMMA_IN_NUMBER.search(text) is not None
    for p in _PUNCT:
        out = out.replace(p, "" if (drop_all or p + " " in text or " " + p in text) else " ")
    return _PERIOD.sub("", out)


def normalize_answer(answer: str) -> str:
    """VQA answer normalisation: whitespace, punctuation, lower case, number words -> digits, no articles,
    restored contractions (the official evaluation's steps, applied always; see the module doc)."""
    text = answer.replace("\n", " ").replace("\t", " ").strip()
    words = [_NUMBER_WORDS.get(w, w) for w in _punctuation(text).lower().split()]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES)


# ----------------------------------------------------------------------------- soft scores and vocabulary


def vqa_soft_scores(human_answers: Sequence[str]) -> dict[str, float]:
    """{normalised answer: official VQA score} for every answer the humans gave (see the module doc)."""
    n = len(human_answers)
    counts = Counter(normalize_answer(a) for a in human_answers)
    return {a: (k * min((k - 1) / 3, 1.0) + (n - k) * min(k / 3, 1.0)) / n for a, k in counts.items()}


def majority_answer(human_answers: Sequence[str]) -> str:
    """The most frequent normalised answer (ties: the one given first), like VQA's multiple_choice_answer."""
    counts = Counter(normalize_answer(a) for a in human_answers)
    return max(counts, key=counts.get) if counts else ""


def build_vocab(answers: Iterable[str], size: int | None = None) -> list[str]:
    """The ``size`` most frequent normalised answers (all if None), most frequent first, ties alphabetical.

    VQAv2 uses one answer per question (``multiple_choice_answer``) counted over the training questions only;
    3,129 entries as in BUTD/ViLT (their frequency cut-off >= 9 over train2014+val2014 yields 3,129).
    """
    counts = Counter(normalize_answer(a) for a in answers)
    counts.pop("", None)
    ranked = sorted(counts, key=lambda a: (-counts[a], a))
    return ranked[:size] if size else ranked


# ----------------------------------------------------------------------------- sparse soft targets


@dataclass
class SoftTargets:
    """Per-sample sparse soft scores in CSR form: sample i has answers ``idx[ptr[i]:ptr[i+1]]`` with scores
    ``val[ptr[i]:ptr[i+1]]`` (answer indices into the task vocabulary; answers outside it are dropped)."""

    ptr: np.ndarray  # int64 (N+1,)
    idx: np.ndarray  # int64 (nnz,)
    val: np.ndarray  # float32 (nnz,)

    def __len__(self) -> int:
        return len(self.ptr) - 1

    def __getitem__(self, i: int) -> list[tuple[int, float]]:
        s, e = self.ptr[i], self.ptr[i + 1]
        return [(int(a), float(v)) for a, v in zip(self.idx[s:e], self.val[s:e], strict=True)]

    @classmethod
    def from_pairs(cls, rows: Sequence[Sequence[tuple[int, float]]]) -> SoftTargets:
        ptr = np.zeros(len(rows) + 1, dtype=np.int64)
        ptr[1:] = np.cumsum([len(r) for r in rows])
        idx = np.asarray([a for r in rows for a, _ in r], dtype=np.int64)
        val = np.asarray([v for r in rows for _, v in r], dtype=np.float32)
        return cls(ptr, idx, val)

    @classmethod
    def from_labels(cls, labels: np.ndarray) -> SoftTargets:
        """One answer of score 1 per sample (a label of -1 gives no answer)."""
        return cls.from_pairs([[(int(y), 1.0)] if y >= 0 else [] for y in labels])

    def subset(self, rows: np.ndarray) -> SoftTargets:
        return SoftTargets.from_pairs([self[int(i)] for i in rows])

    def dense(self, rows: Sequence[int] | np.ndarray, num_answers: int) -> torch.Tensor:
        """float32 B×A target matrix of the given samples."""
        out = torch.zeros(len(rows), num_answers)
        for b, i in enumerate(rows):
            s, e = self.ptr[i], self.ptr[i + 1]
            out[b, torch.from_numpy(self.idx[s:e])] = torch.from_numpy(self.val[s:e])
        return out

    def best(self) -> np.ndarray:
        """int64 (N,): the highest-scoring answer per sample (ties: lowest index), -1 when a sample has none."""
        out = np.full(len(self), -1, dtype=np.int64)
        for i in range(len(self)):
            s, e = self.ptr[i], self.ptr[i + 1]
            if e > s:
                order = np.lexsort((self.idx[s:e], -self.val[s:e]))
                out[i] = self.idx[s + order[0]]
        return out


def soft_targets(answer_lists: Sequence[Sequence[str]], vocab: Sequence[str]) -> SoftTargets:
    """VQA soft targets of each sample's human answers, restricted to ``vocab`` (which holds normalised answers)."""
    index = {a: i for i, a in enumerate(vocab)}
    rows = [[(index[a], s) for a, s in vqa_soft_scores(answers).items() if a in index and s > 0]
            for answers in answer_lists]
    return SoftTargets.from_pairs([sorted(r) for r in rows])


# ----------------------------------------------------------------------------- losses and metrics


def soft_bce_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits over the answer vocabulary with soft targets (B×A), averaged over B×A and multiplied by
    A — i.e. summed over answers, averaged over the batch (ViLT ``compute_vqa``)."""
    return F.binary_cross_entropy_with_logits(logits, targets) * targets.shape[1]


def ce_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over classes; samples labelled -1 (answer outside the vocabulary) are ignored."""
    return F.cross_entropy(logits, labels, ignore_index=-1)


def vqa_score_sum(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Sum over the batch of the soft score of each predicted (argmax) answer: the VQA accuracy numerator.

    With the vocabulary's soft targets this equals the official per-question accuracy, because a prediction
    is always a vocabulary answer and its score does not depend on the answers left out of the vocabulary.
    """
    pred = logits.argmax(dim=1)
    return float(targets.gather(1, pred[:, None]).sum())


def top1_sum(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Number of samples whose argmax equals the label (a label of -1 is never matched)."""
    return float((logits.argmax(dim=1) == labels).sum())
