"""Scene-caption pairs for the VL pretraining recipes (``vl_scenes``, ``vl_scenes_meter``): generated scenes of the
VL tasks' prior (``vl.data.scenes``) from a seed stream of their own (``CAPTION_STREAM``; disjoint from the task
splits' and the encoder pretraining's), each with a caption in the words a caption uses: one sentence about the whole
scene (every object by colour and shape, or how many of each shape), then one true fact about an object named
uniquely (its colour, its shape, or a spatial relation with centres at least ``MARGIN`` apart), e.g. "there are two
circles and a square. the square is red." Never a question: the question words ("what", "how many", "is there") are
learned in fine-tuning, as with ViLT's caption corpora and VQA.

With a ``region_share`` > 0 (the recipes' ``region_captions`` option, ours; off in the bundled recipes) that share
of the captions are region descriptions, as Visual Genome's, one of ViLT's four corpora ("a red circle.", "two
circles.", "a red circle left of a blue square."); ``true_regions`` lists those true of a scene so that an ITM
negative which happens to describe the image can be redrawn.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import torch

from petlbench.pretrain.scenes import patch_labels
from petlbench.vl.data.scenes import MARGIN, PLURAL, RELATIONS, draw_scenes, relation

CAPTION_STREAM = 17  # task splits: 11, encoder pretraining scenes: 13
NUMBERS = ("no", "a", "two", "three", "four", "five")  # a scene has 2-5 objects (vl.data.scenes.sample_scene)


def caption(scene: list, rng: np.random.Generator, region_share: float = 0.0) -> str:
    """One sentence about the whole scene (half the time every object by colour and shape in random order, half
    the time how many of each shape), then one fact about a named object when the scene has one (``_facts``); a
    region description (``region``) with probability ``region_share``."""
    if region_share and rng.random() < region_share:
        return region(scene, rng)
    if rng.random() < 0.5:
        first = _series([f"a {scene[i].colour} {scene[i].shape}" for i in rng.permutation(len(scene))])
    else:
        counts = {s: sum(o.shape == s for o in scene) for s in dict.fromkeys(o.shape for o in scene)}
        shapes = [list(counts)[i] for i in rng.permutation(len(counts))]
        first = ("there is " if counts[shapes[0]] == 1 else "there are ") + _series(
            [f"{NUMBERS[counts[s]]} {s if counts[s] == 1 else PLURAL[s]}" for s in shapes])
    kinds = [k for k in _facts(scene, rng) if k]
    if not kinds:
        return first + "."
    facts = kinds[rng.integers(len(kinds))]
    return f"{first}. {facts[rng.integers(len(facts))]}"


def region(scene: list, rng: np.random.Generator) -> str:
    """A region description, as Visual Genome's: a phrase about part of the scene, of one kind drawn uniformly
    among those the scene has: one object ("a red circle."), how many of a shape there are when at least two ("two
    circles."), or two objects in a relation whose centres are at least ``MARGIN`` apart on that axis ("a red
    circle left of a blue square.")."""
    objects = [f"{_a(o)}." for o in scene]
    counts = [_how_many(scene, s) for s in dict.fromkeys(o.shape for o in scene)
              if sum(o.shape == s for o in scene) >= 2]
    relations = [f"{_a(a)} {rel} {_a(b)}." for a in scene for b in scene if a is not b for rel in RELATIONS
                 if relation(a, b, rel)]
    kinds = [k for k in (objects, counts, relations) if k]
    phrases = kinds[rng.integers(len(kinds))]
    return phrases[rng.integers(len(phrases))]


def _a(o) -> str:
    return f"a {o.colour} {o.shape}"


def _how_many(scene: list, shape: str) -> str:
    return f"{NUMBERS[sum(o.shape == shape for o in scene)]} {PLURAL[shape]}."


def true_regions(scene: list) -> frozenset[str]:
    """Every region description (``region``'s forms) true of ``scene``, relations at any distance: an ITM
    negative that is one of them is redrawn (a random corpus caption describing the image is rare; a random phrase
    about part of a generated scene often does)."""
    facts = {f"{_a(o)}." for o in scene}
    facts |= {_how_many(scene, o.shape) for o in scene}
    for a, b in ((a, b) for a in scene for b in scene if a is not b):
        dx, dy = a.x - b.x, a.y - b.y
        facts |= {f"{_a(a)} {rel} {_a(b)}." for rel, holds in zip(RELATIONS, (dx < 0, dx > 0, dy < 0, dy > 0),
                                                                   strict=True) if holds}
    return frozenset(facts)


def _series(parts: list[str]) -> str:
    return (", ".join(parts[:-1]) + " and " + parts[-1]) if len(parts) > 1 else parts[0]


def _facts(scene: list, rng: np.random.Generator) -> tuple[list[str], list[str], list[str]]:
    """The true facts a caption may add, by kind: the colour of each shape present once ("the circle is red."),
    the shape of each colour present once ("the red object is a circle."), and one spatial relation between two
    objects each named by its shortest unique name ("the circle" or "the red circle") whose centres are at least
    ``MARGIN`` apart on that axis, when such a pair exists (up to 4 pairs tried)."""
    def once(key) -> list:
        return [o for o in scene if sum(key(p) == key(o) for p in scene) == 1]

    colour = [f"the {o.shape} is {o.colour}." for o in once(lambda o: o.shape)]
    shape = [f"the {o.colour} object is a {o.shape}." for o in once(lambda o: o.colour)]
    names = {id(o): o.shape for o in once(lambda o: o.shape)}
    names.update({id(o): f"{o.colour} {o.shape}" for o in once(lambda o: (o.colour, o.shape)) if id(o) not in names})
    pairs = [(a, b) for a in scene for b in scene if a is not b and id(a) in names and id(b) in names]
    found: list[str] = []
    for k in rng.permutation(len(pairs))[:4]:
        a, b = pairs[k]
        horizontal = bool(rng.random() < 0.5)
        d = (a.x - b.x) if horizontal else (a.y - b.y)
        if abs(d) >= MARGIN:
            rel = ("left of" if d < 0 else "right of") if horizontal else ("above" if d < 0 else "below")
            found = [f"the {names[id(a)]} is {rel} the {names[id(b)]}."]
            break
    return colour, shape, found


def scene_captions(n: int, seed: int, patch: int,
                   region_share: float = 0.0) -> tuple[np.ndarray, list[str], np.ndarray, list[frozenset[str]]]:
    """(uint8 n×32×32×3 images, n captions, int64 n×3×G×G patch labels as ``pretrain.scenes.patch_labels``, each
    scene's ``true_regions``) from the caption seed stream."""
    rng = np.random.default_rng([zlib.crc32(b"vlp-captions"), seed, CAPTION_STREAM])
    images, texts, labels, truths = [], [], [], []
    for scene, image, covers in draw_scenes(n, rng):
        images.append(image)
        labels.append(patch_labels(scene, covers, patch))
        texts.append(caption(scene, rng, region_share))
        truths.append(true_regions(scene))
    return np.stack(images), texts, np.stack(labels), truths


def caption_vocabulary(texts: list[str], tokenizer: Any) -> torch.Tensor:
    """The sorted word ids of ``texts`` (no special tokens): what the MLM head predicts and random-replaces with."""
    ids = {i for t in sorted(set(texts)) for i in tokenizer(t)["input_ids"]}
    return torch.tensor(sorted(ids - set(tokenizer.all_special_ids)), dtype=torch.long)


def vocabulary_rows(pretraining_texts: list[str], tokenizer: Any) -> torch.Tensor:
    """The token ids of the generated vocabulary, special tokens included: the pretraining captions' and the
    built-in VL tasks' texts (the rows of the word embeddings the micro ViLT's file keeps)."""
    from petlbench.vl.data.tasks import task_texts

    texts = list(pretraining_texts) + task_texts()
    ids = set(tokenizer.all_special_ids)
    for t in sorted(set(texts)):
        ids.update(tokenizer(t)["input_ids"])
    return torch.tensor(sorted(ids), dtype=torch.long)
