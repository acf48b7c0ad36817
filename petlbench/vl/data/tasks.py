"""Built-in offline vision-language tasks: ``shapes-vqa``, ``shapes-ve`` and ``shapes-bind`` (generated,
deterministic), on scenes of one prior (``vl.data.scenes``). Sizes follow VTAB-1k like mini-VTAB: train 800 / val 200 / test 2000, one seeded generator per
(task, split), cached on disk (``diskcache.cache_dir()``).

``shapes-vqa`` (VQA-like, vocabulary of 14 answers: colours, shapes, 0–3, yes, no), five question types in
equal numbers:

* colour   "What color is the triangle?"           (the named shape occurs exactly once)
* shape    "What shape is the red object?"         (exactly one red object)
* count    "How many circles are there?"           0–3
* exist    "Is there a blue square?"               yes / no
* relation "Is the circle left of the cross?"      left of / right of / above / below; yes / no; both named
                                                   shapes occur once and differ by >= 4 px on that axis

``shapes-ve`` (visual entailment, SNLI-VE's three labels): a statement about the scene —
"The triangle is red.", "The red object is a circle.", "The circle is left of the cross." — is
*entailment* (its definite description picks out exactly one object, one pair for relations, and the predicate
holds), *contradiction* (one referent, predicate fails) or *neutral* = not decidable from the image because
no object fits the description (presupposition failure: "The cross is blue." in a scene without a cross).
Scenes where several objects fit a description are never used for that statement (an ambiguous reference
would be a second, harder kind of "not decidable"; v1 of the generator had it and a small model could not
learn the three-way logic, see the check script).

Balance (so that no single modality suffices):

* shapes-vqa: every sample first gets a (type, answer) cell — per split each type has the same count and,
  within a type, every answer the same count (yes/no exactly 50/50); then the question's free words (which
  shape, colour, relation) are drawn uniformly, independent of the answer; then scenes are drawn from one fixed
  scene prior until the scene gives that answer (rejection sampling). So P(answer | question) is uniform within
  a type (text-only is at chance) and the image alone does not say which object is asked about.
* shapes-ve: every scene carries three statements, one per label, so the image alone is exactly at chance;
  per label, the statement types are balanced over scenes; a scene is drawn from the prior until each of its
  three (type, label) cells has a fitting statement, and the statement is drawn uniformly among those that
  fit. The scene prior is symmetric under renaming shapes or colours and under mirroring, so a statement's
  wording is uniform given its (type, label): text-only is at chance too. Labels and types are balanced to
  within one sample (800 is not a multiple of 3; the 1–2 surplus samples are dropped from the fullest cells).

``shapes-bind`` (VQA-like, the 4 colours): "What color is the <shape>?" on scenes of exactly two objects with
different shapes and different colours; the answer colour is balanced, the asked shape and the other object's
shape and colour are drawn uniformly. The text alone is at chance (25%) and the colours present alone give at
most 50%: the answer needs the colour bound to the named shape, i.e. a look at the image that depends on the
question. Built to check DVP's layer search (docs/methods.md "DVP search"): DVP's prompt query is the text [CLS]
at the insertion layer, and in all-MiniLM-L6-v2 the [CLS] state carries the question only in the last layers.

``benchmarks/perf/vl_task_check.py`` measures text-only, image-only and both-modality baselines.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from petlbench.data import render as shapes
from petlbench.data.builtin import SIZES
from petlbench.data.diskcache import build_once
from petlbench.data.render import SHAPES, place
from petlbench.vl.data import scenes as prior
from petlbench.vl.data.raw import ENTAILMENT, VLRawData, VLSplit, entailment_task, vqa_task
from petlbench.vl.data.scenes import COLOURS, PLURAL, RELATIONS, Obj, relation, render, sample_scene

COUNTS = ("0", "1", "2", "3")
VQA_ANSWERS = (*COLOURS, *SHAPES, *COUNTS, "yes", "no")
VERSION = "v2"  # v2: shapes-ve neutral = absent referent only, three statements per scene


def _refs(scene: list[Obj], shape: str | None = None, colour: str | None = None) -> list[Obj]:
    return [o for o in scene if (shape is None or o.shape == shape) and (colour is None or o.colour == colour)]


# ----------------------------------------------------------------------------- questions (shapes-vqa)

# A template draws its free words with ``rng`` and returns (text, answer_of(scene) -> answer | None);
# None = the scene cannot carry this question (ambiguous reference, relation inside the margin).
Statement = tuple[str, Callable[[list[Obj]], str | None]]
Template = Callable[[np.random.Generator], Statement]


def _pick(rng: np.random.Generator, options, k: int = 1):
    picks = [options[i] for i in rng.choice(len(options), size=k, replace=False)]
    return picks[0] if k == 1 else picks


def _the(refs: list[Obj]) -> Obj | None:
    """The referent of a definite description: the only match, else None."""
    return refs[0] if len(refs) == 1 else None


def _q_colour(rng):
    s = _pick(rng, SHAPES)
    return f"What color is the {s}?", lambda sc: getattr(_the(_refs(sc, shape=s)), "colour", None)


def _q_shape(rng):
    c = _pick(rng, list(COLOURS))
    return f"What shape is the {c} object?", lambda sc: getattr(_the(_refs(sc, colour=c)), "shape", None)


def _q_count(rng):
    s = _pick(rng, SHAPES)
    return f"How many {PLURAL[s]} are there?", lambda sc: str(n) if (n := len(_refs(sc, shape=s))) <= 3 else None


def _q_exist(rng):
    c, s = _pick(rng, list(COLOURS)), _pick(rng, SHAPES)
    return f"Is there a {c} {s}?", lambda sc: "yes" if _refs(sc, shape=s, colour=c) else "no"


def _q_relation(rng):
    a, b = _pick(rng, SHAPES, 2)
    rel = _pick(rng, RELATIONS)

    def answer(sc):
        ra, rb = _refs(sc, shape=a), _refs(sc, shape=b)
        if len(ra) != 1 or len(rb) != 1:
            return None
        holds = relation(ra[0], rb[0], rel)
        return None if holds is None else ("yes" if holds else "no")

    return f"Is the {a} {rel} the {b}?", answer


VQA_TYPES: dict[str, tuple[Template, tuple[str, ...]]] = {
    "colour": (_q_colour, tuple(COLOURS)),
    "shape": (_q_shape, SHAPES),
    "count": (_q_count, COUNTS),
    "exist": (_q_exist, ("yes", "no")),
    "relation": (_q_relation, ("yes", "no")),
}


def _bind_samples(n: int, rng: np.random.Generator) -> list[tuple[np.ndarray, str, str, list[Obj]]]:
    """shapes-bind: answer colours balanced (``_cells`` of shapes-vqa's colour type), then the asked shape, then the
    other object."""
    names, out = list(COLOURS), []
    for _, colour in _cells({"colour": VQA_TYPES["colour"]}, n, rng):
        shape, other_shape = _pick(rng, SHAPES, 2)
        other_colour = _pick(rng, [c for c in names if c != colour])
        spots = place(rng, list(rng.uniform(3.0, 4.2, 2)), margin=1.5)
        pair = [(shape, colour), (other_shape, other_colour)]
        scene = [Obj(s, c, x, y, r) for (s, c), (x, y, r) in zip(pair, spots, strict=True)]
        scene = [scene[i] for i in rng.permutation(2)]
        out.append((render(scene, rng), f"What color is the {shape}?", colour, scene))
    return out


# ----------------------------------------------------------------------------- statements (shapes-ve)


def _verdict(refs: list, holds: Callable) -> str | None:
    """Label of a statement whose description picks out ``refs`` (objects, or pairs for relations)."""
    if not refs:
        return "neutral"  # nothing fits the description (presupposition failure): not decidable
    if len(refs) > 1:
        return None  # several fit: reject the scene (keeps "neutral" to one clear reading)
    value = holds(refs[0])
    if value is None:
        return None  # a relation inside the margin: reject the scene
    return "entailment" if value else "contradiction"


def _s_colour(s: str, c: str) -> Statement:
    return f"The {s} is {c}.", lambda sc: _verdict(_refs(sc, shape=s), lambda o: o.colour == c)


def _s_shape(c: str, s: str) -> Statement:
    return f"The {c} object is a {s}.", lambda sc: _verdict(_refs(sc, colour=c), lambda o: o.shape == s)


def _s_relation(a: str, rel: str, b: str) -> Statement:
    def label(sc):
        pairs = [(p, q) for p in _refs(sc, shape=a) for q in _refs(sc, shape=b)]
        return _verdict(pairs, lambda pq: relation(pq[0], pq[1], rel))

    return f"The {a} is {rel} the {b}.", label


# every statement of every type, with its labelling function
VE_STATEMENTS: dict[str, list[Statement]] = {
    "colour": [_s_colour(s, c) for s in SHAPES for c in COLOURS],
    "shape": [_s_shape(c, s) for c in COLOURS for s in SHAPES],
    "relation": [_s_relation(a, rel, b) for a in SHAPES for b in SHAPES if a != b for rel in RELATIONS],
}
VE_TYPES = tuple(VE_STATEMENTS)


def question_type(text: str) -> str:
    """The template type of a shapes-vqa question or shapes-ve statement (for per-type analysis)."""
    first = text.split()[:3]
    if text.endswith("?"):
        return {"What color": "colour", "What shape": "shape", "How many": "count", "Is there": "exist"}.get(
            " ".join(first[:2]), "relation")
    if first[2] == "object":
        return "shape"
    return "colour" if text.rstrip(".").split()[-1] in COLOURS else "relation"


# ----------------------------------------------------------------------------- generation


def _cells(types: dict[str, tuple[Template, tuple[str, ...]]], n: int, rng: np.random.Generator) -> list:
    """n (type, answer) cells in random order: types equally often, answers equally often within a type;
    when n does not divide evenly the counts differ by at most one."""
    per_type = np.resize(np.arange(len(types)), n)
    cells = []
    for ti, (qtype, (_, answers)) in enumerate(types.items()):
        cells += [(qtype, str(a)) for a in np.resize(np.asarray(answers), int((per_type == ti).sum()))]
    return [cells[i] for i in rng.permutation(n)]


def _sample(template: Template, target: str, rng: np.random.Generator, tries: int = 20000) -> tuple[str, list[Obj]]:
    """The text, and a scene from the prior for which the text's answer is ``target`` (rejection sampling)."""
    text, answer_of = template(rng)
    for _ in range(tries):
        scene = sample_scene(rng)
        if answer_of(scene) == target:
            return text, scene
    raise RuntimeError(f"no scene answers {text!r} with {target!r} in {tries} draws")


def _vqa_samples(n: int, rng: np.random.Generator) -> list[tuple[np.ndarray, str, str, list[Obj]]]:
    """One scene per question: (type, answer) cells, then the words, then a scene with that answer."""
    out = []
    for qtype, target in _cells(VQA_TYPES, n, rng):
        text, scene = _sample(VQA_TYPES[qtype][0], target, rng)
        out.append((render(scene, rng), text, target, scene))
    return out


def _scene_for(cells: list[tuple[str, str]], rng: np.random.Generator, tries: int = 20000) -> tuple[list[Obj], list[str]]:
    """A scene from the prior on which every (type, label) cell has a statement; one such statement per cell,
    drawn uniformly among those that fit."""
    for _ in range(tries):
        scene = sample_scene(rng)
        options = [[t for t, label_of in VE_STATEMENTS[qtype] if label_of(scene) == label] for qtype, label in cells]
        if all(options):
            return scene, [opts[int(rng.integers(len(opts)))] for opts in options]
    raise RuntimeError(f"no scene fits {cells} in {tries} draws")


def _ve_samples(n: int, rng: np.random.Generator) -> list[tuple[np.ndarray, str, str, list[Obj]]]:
    """Every scene carries three statements, one per label (so the image alone says nothing about the label);
    per label the statement types are balanced over scenes (each label's surplus type differs)."""
    n_scenes = -(-n // 3)
    slots = {lab: [VE_TYPES[i] for i in rng.permutation(np.resize(np.roll(np.arange(len(VE_TYPES)), -j), n_scenes))]
             for j, lab in enumerate(ENTAILMENT)}
    out = []
    for k in range(n_scenes):
        cells = [(slots[lab][k], lab) for lab in ENTAILMENT]
        scene, texts = _scene_for(cells, rng)
        image = render(scene, rng)
        out += [(image, text, lab, scene, qtype) for text, (qtype, lab) in zip(texts, cells, strict=True)]
    while len(out) > n:  # 3*ceil(n/3) - n <= 2 surplus samples: drop from the fullest label, type and cell
        count = Counter(x for o in out for x in (o[2], o[4], (o[4], o[2])))
        drop = max(range(len(out)), key=lambda i: (count[out[i][2]], count[out[i][4]], count[out[i][4], out[i][2]], i))
        out.pop(drop)
    return [out[i][:4] for i in rng.permutation(len(out))]


def generate_scenes(task: str, split: str, n: int | None = None) -> tuple[np.ndarray, list[str], np.ndarray, list]:
    """(images uint8 N×32×32×3, texts, label indices, scenes) of one split; deterministic per (task, split)."""
    if task not in BY_NAME:
        raise ValueError(f"unknown generated VL task {task!r}")
    t = BY_NAME[task]
    rng = np.random.default_rng([zlib.crc32(task.encode()), zlib.crc32(split.encode()), 11])
    samples = t.samples(n or SIZES[split], rng)
    index = {a: i for i, a in enumerate(t.answers)}
    images, texts, targets, scenes = zip(*samples, strict=True)
    return np.stack(images), list(texts), np.asarray([index[t] for t in targets], dtype=np.int64), list(scenes)


def generate(task: str, split: str, n: int | None = None) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(images, texts, labels) of one split (``n`` samples, default the split's size)."""
    return generate_scenes(task, split, n)[:3]


# ----------------------------------------------------------------------------- cache and registry


def _build(task: str):
    def build():
        return {s: (x, np.asarray(t), y) for s, (x, t, y) in ((s, generate(task, s)) for s in SIZES)}

    return build


def task_texts() -> list[str]:
    """Every text of every split of the built-in VL tasks."""
    return [t for task in TASKS for _, texts, _ in _splits(task.name).values() for t in texts]


@cache
def _splits(task: str) -> dict[str, tuple[np.ndarray, list[str], np.ndarray]]:
    arrays = build_once(task, _build(task), (Path(__file__), Path(prior.__file__), Path(shapes.__file__)))
    return {s: (x, [str(v) for v in t], y) for s, (x, t, y) in arrays.items()}


@dataclass(frozen=True)
class VLBuiltinTask:
    """One built-in VL task, in one row: its kind ("vqa" | "entailment"), answers in label order, the sample
    generator, the question types it draws (``question_type``), the description `list datasets` shows, and the
    compact budget (as the mini-VTAB tasks: 5 epochs of batch 16; not yet tuned for the VL model)."""

    name: str
    kind: str
    answers: tuple[str, ...]
    samples: Callable[[int, np.random.Generator], list]
    types: tuple[str, ...]
    description: str
    epochs: int = 5
    batch_size: int = 16
    track = "vl"

    def load(self, name: str | None = None) -> VLRawData:
        """A fresh ``VLRawData`` per call; the cached arrays are shared (callers must not modify them)."""
        meta = vqa_task(self.name, self.answers) if self.kind == "vqa" else entailment_task(self.name, self.answers)
        splits = {s: VLSplit(x, list(t), y) for s, (x, t, y) in _splits(self.name).items()}
        return VLRawData(self.name, meta, splits, f"generated:{self.name}:{VERSION}", epochs=self.epochs,
                         batch_size=self.batch_size)

    def row(self) -> tuple[str, str]:
        return "built-in VL (offline)", self.description


TASKS = (
    VLBuiltinTask("shapes-vqa", "vqa", VQA_ANSWERS, _vqa_samples, tuple(VQA_TYPES), "generated VQA on coloured-shape "
                  "scenes, 14 answers (colour/shape/count/exist/relation), 32px RGB"),
    VLBuiltinTask("shapes-ve", "entailment", ENTAILMENT, _ve_samples, VE_TYPES, "generated visual entailment on "
                  "coloured-shape scenes, 3 labels (true/not decidable/false), 32px RGB"),
    # budget: 24 epochs of batch 32 (600 steps), where DVP_adp's fixed-layer models learn it (docs/methods.md)
    VLBuiltinTask("shapes-bind", "vqa", tuple(COLOURS), _bind_samples, ("colour",), "generated VQA: the colour of "
                  "the named one of two shapes (needs a question-dependent look), 4 answers, 32px RGB", 24, 32),
)
BY_NAME = {t.name: t for t in TASKS}
