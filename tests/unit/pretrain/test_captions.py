"""The scene-caption pairs of the VL pretraining recipes (``petlbench.pretrain.captions``): captions true of their
scene, patch labels of their images, region descriptions and ITM negatives that are not true of the image."""

from __future__ import annotations

import numpy as np

from petlbench.pretrain.captions import NUMBERS, caption, region, scene_captions
from petlbench.pretrain.scenes import LABEL_HEADS
from petlbench.pretrain.vlp import Pairs
from petlbench.vl.data.scenes import COLOURS, PLURAL, relation, render, sample_scene


def test_scene_captions_carry_the_patch_labels_of_their_images():
    images, _, labels, _ = scene_captions(40, seed=0, patch=4)
    assert labels.shape == (40, len(LABEL_HEADS), 8, 8) and (labels[:, 0] > 0).any(axis=(1, 2)).all()
    assert np.array_equal((labels[:, 0] > 0), (labels[:, 1] > 0))  # an object patch has a shape and a colour
    means = images.reshape(40, 8, 4, 8, 4, 3).mean(axis=(2, 4))  # per patch RGB
    palette = np.asarray(list(COLOURS.values()), dtype=float)
    nearest = 1 + np.linalg.norm(means[..., None, :] - palette, axis=-1).argmin(-1)
    obj, other = labels[:, 1] > 0, np.roll(labels[:, 1], 1, axis=0)  # another image's labels at the same patches
    # the colour label is the colour in the image there (a patch an object covers 25% of is mostly background)
    assert (nearest[obj] == labels[:, 1][obj]).mean() > 0.75 > 0.5 > (nearest[obj] == other[obj]).mean()


def test_scene_captions_describe_the_scene_and_state_one_true_fact():
    import re

    images, texts, labels, truths = scene_captions(30, seed=0, patch=4)
    again = scene_captions(30, seed=0, patch=4)
    assert images.shape == (30, 32, 32, 3) and texts == again[1] and np.array_equal(images, again[0])
    assert np.array_equal(labels, again[2]) and truths == again[3] and not any(t in truths[i] for i, t in enumerate(texts))
    assert texts != scene_captions(30, seed=1, patch=4)[1]
    rng, checked = np.random.default_rng(5), {"list": 0, "count": 0, "colour": 0, "shape": 0, "relation": 0}

    def the(name: str, scene) -> object:
        (obj,) = [o for o in scene if name in (o.shape, f"{o.colour} {o.shape}")] if " " in name else \
            [o for o in scene if o.shape == name]  # a caption names an object only when the name is unique
        return obj

    for _ in range(300):
        scene = sample_scene(rng)
        render(scene, rng)
        first, *facts = caption(scene, rng).removesuffix(".").split(". ")
        if first.startswith("there "):
            counts = {s: sum(o.shape == s for o in scene) for s in {o.shape for o in scene}}
            want = {f"{NUMBERS[n]} {s if n == 1 else PLURAL[s]}" for s, n in counts.items()}
            assert sorted(re.split(", | and ", first.split(" ", 2)[2])) == sorted(want)
            checked["count"] += 1
        else:
            assert sorted(re.split(", | and ", first)) == sorted(f"a {o.colour} {o.shape}" for o in scene)
            checked["list"] += 1
        assert len(facts) <= 1
        for fact in facts:
            if m := re.fullmatch(r"the (.+) is (left of|right of|above|below) the (.+)", fact):
                assert relation(the(m[1], scene), the(m[3], scene), m[2])
                checked["relation"] += 1
            elif m := re.fullmatch(r"the (\w+) object is a (\w+)", fact):
                (obj,) = [o for o in scene if o.colour == m[1]]
                assert obj.shape == m[2]
                checked["shape"] += 1
            else:
                m = re.fullmatch(r"the (\w+) is (\w+)", fact)
                assert m and the(m[1], scene).colour == m[2]
                checked["colour"] += 1
    assert min(checked.values()) > 30, checked


def test_region_captions_are_true_of_their_scene_and_their_itm_negatives_are_not():
    """``region_captions`` (ours, off in the bundled recipes): Visual Genome-like phrases about part of the scene; an
    ITM negative that happens to be true of the image is redrawn; with the option off no caption is one."""
    import re

    others = scene_captions(200, seed=1, patch=4)[1]  # captions without the option: never a region description
    assert not any(t in tr for tr in scene_captions(200, seed=0, patch=4)[3] for t in others)
    images, texts, labels, truths = scene_captions(400, seed=0, patch=4, region_share=0.5)
    regions = [i for i, t in enumerate(texts) if t in truths[i]]
    assert 150 < len(regions) < 250 and all(t.count(".") == 1 for t in (texts[i] for i in regions))
    kinds = {"object": 0, "count": 0, "relation": 0}
    for i in regions:
        kind = "relation" if re.search("left|right|above|below", texts[i]) else "object" if texts[i][:2] == "a " \
            else "count"
        kinds[kind] += 1
    assert min(kinds.values()) > 30, kinds
    rng = np.random.default_rng(0)
    for _ in range(200):  # a positive is true by the scene's geometry, not just by membership in true_regions
        scene = sample_scene(rng)
        phrase = region(scene, rng).removesuffix(".")
        if m := re.fullmatch(r"a (\w+) (\w+) (left of|right of|above|below) a (\w+) (\w+)", phrase):
            assert any(relation(a, b, m[3]) for a in scene for b in scene
                       if (a.colour, a.shape) == (m[1], m[2]) and (b.colour, b.shape) == (m[4], m[5]))
        elif m := re.fullmatch(r"a (\w+) (\w+)", phrase):
            assert any((o.colour, o.shape) == (m[1], m[2]) for o in scene)
        else:
            n, shape = phrase.split()
            s = next(k for k, v in PLURAL.items() if v == shape)
            assert NUMBERS.index(n) == sum(o.shape == s for o in scene) >= 2
    idx = np.arange(400)
    other = Pairs(images, texts, labels, truths, None, None, None).others(idx, np.random.default_rng(1))
    assert (other != idx).all() and not any(texts[j] in truths[i] for i, j in zip(idx, other, strict=True))
    assert sum(texts[j] in truths[i] for i, j in zip(idx, (idx + 1) % 400, strict=True)) > 10  # redrawing is needed
