"""The encoder pretraining on scenes (``petlbench.pretrain.scenes``): the patch labels name each object where it is,
the scenes are their own pool, and the bundled encoder learnt them."""

from __future__ import annotations

import json

import numpy as np
import torch

from petlbench.models.backbones import DEFAULT_MODEL, bundled_weights_path, create_backbone
from petlbench.pretrain.scenes import patch_labels, pretraining_scenes
from petlbench.vl.data import scenes
from petlbench.vl.data import tasks as vl_tasks


def test_scene_patch_labels_name_each_object_where_it_is() -> None:
    rng = np.random.default_rng(3)
    ys, xs = np.meshgrid(np.arange(8) * 4 + 2.0, np.arange(8) * 4 + 2.0, indexing="ij")  # patch centres, px
    for _ in range(20):
        scene = scenes.sample_scene(rng)
        _, covers = scenes.render_with_covers(scene, rng)
        shape, colour, centre = patch_labels(scene, covers, patch=4)
        assert centre.sum() == len(scene)  # objects never share a centre patch (they do not overlap)
        labelled = np.zeros((8, 8), bool)
        for o in scene:
            assert centre[int(o.y // 4), int(o.x // 4)] == 1
            mine = ((shape == 1 + scenes.SHAPES.index(o.shape)) & (colour == 1 + list(scenes.COLOURS).index(o.colour))
                    & (np.hypot(ys - o.y, xs - o.x) <= o.r + 2 * np.sqrt(2)))  # patch centre within r + half a diagonal
            assert mine.any()  # every object is named on at least one patch, next to it
            labelled |= mine
        assert ((shape > 0) == (colour > 0)).all() and (labelled == (shape > 0)).all()  # and nothing else is named


def test_pretraining_scenes_are_deterministic_and_disjoint_from_the_task_splits() -> None:
    images, labels = pretraining_scenes(40, seed=0, patch=4)
    again, _ = pretraining_scenes(40, seed=0, patch=4)
    other, _ = pretraining_scenes(40, seed=1, patch=4)
    assert images.shape == (40, 32, 32, 3) and labels.shape == (40, 3, 8, 8)
    assert np.array_equal(images, again) and not np.array_equal(images, other)
    pool = {im.tobytes() for im in images}
    for task in vl_tasks.BY_NAME:
        for split in ("train", "val", "test"):
            task_images = vl_tasks.generate(task, split, 40)[0]
            assert not pool & {im.tobytes() for im in task_images}


def test_bundled_scene_encoder_names_shapes_and_colours() -> None:
    meta = json.loads(bundled_weights_path("petl_vit_micro_scenes").with_suffix(".json").read_text())
    assert meta["model"] == "petl_vit_micro_scenes" and meta["steps"] > 0
    # measured once when the weights were made (held-out scenes, object patches); 4 shapes + background
    assert meta["scenes_eval_shape_acc"] > 85 and meta["scenes_eval_colour_acc"] > 95
    scenes, _ = create_backbone("petl_vit_micro_scenes", 3)
    fashion, _ = create_backbone(DEFAULT_MODEL, 3)
    assert not torch.allclose(scenes.blocks[3].attn.qkv.weight, fashion.blocks[3].attn.qkv.weight)
