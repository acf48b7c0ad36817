"""Shared fixtures: tiny models, tiny generated data, a CLI runner that goes through ``main``."""

from __future__ import annotations

import copy
import os
import sys

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # test fixtures writing parquet stay quiet
# At most 2 intra-op threads (tiny models); under pytest-xdist the cores are shared among the workers, so that
# 2 workers on 2 cores do not oversubscribe them (thread counts change no assertion: tests compare runs within
# one process).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, torch.get_num_threads() // _WORKERS)))

TINY = {"model": "test_vit", "img_size": 32, "num_classes": 5}

# The longest tests (the CI regression sweeps, minutes each) go first when the suite runs on several workers, so
# that `--dist loadgroup` (one test at a time to whichever worker is free) starts them at once on different
# workers instead of leaving one for last.
RUN_FIRST = ("tests/integration/test_regression.py::",)


def pytest_collection_modifyitems(config, items):
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: every worker sorts its collection the same way
        items.sort(key=lambda item: not item.nodeid.startswith(RUN_FIRST))  # stable: the rest keep their order


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """pytest-xdist's workers start with COLUMNS=80 in their environment, which would narrow the console tables
    the CLI prints (``petlbench.progress``); each worker gets the COLUMNS of the run that started it instead."""
    node.workerinput["columns"] = os.environ.get("COLUMNS")


def pytest_configure(config):
    if hasattr(config, "workerinput"):  # before any test module imports petlbench.progress
        columns = config.workerinput.get("columns")
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run ``petlbench ARGS`` in-process through ``main`` -> (exit code, stdout, stderr)."""
    from petlbench import cli as cli_mod

    def invoke(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["petlbench", *map(str, args)])
        code = 0
        try:
            cli_mod.main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out = capsys.readouterr()
        return code, out.out, out.err

    return invoke


def make_image_folder(root, classes=3, per_class=12, size=24, seed=0):
    """``root/<class>/<i>.png`` with class-dependent colours (learnable, tiny)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in range(classes):
        d = root / f"class{c}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            arr[..., c % 3] += 150
            Image.fromarray(arr).save(d / f"{i}.png")
    return root


@pytest.fixture
def image_folder(tmp_path):
    return make_image_folder(tmp_path / "imgs")


@pytest.fixture(autouse=True)
def _auto_precision_is_not_timed(monkeypatch):
    """``--precision auto`` times the run's step in both precisions on machines with native bf16; in tests it
    gets a fixed answer instead (bf16 twice as slow -> fp32), so no test depends on this machine's kernels and
    none writes timings into the user's cache (tests of the timing import ``cached_timing`` at collection)."""
    from petlbench.engine import numerics

    monkeypatch.setattr(numerics, "cached_timing", lambda path, key, measure: (1.0, 2.0, "test stub"))


@pytest.fixture(scope="module")
def _backbones_of_the_module():
    return {}


@pytest.fixture
def backbones_built_once(monkeypatch, _backbones_of_the_module):
    """Each distinct backbone (name, classes, options) is created once per test module and copied after that
    (``tracks.create_backbone``): for tests that read a model's structure, counts, GMACs or identity, never its
    random initial values."""
    from petlbench import tracks

    real, built = tracks.create_backbone, _backbones_of_the_module

    def create_once(name, num_classes, **kwargs):
        key = (name, num_classes, tuple(sorted((k, v) for k, v in kwargs.items() if v is not None)))
        if key not in built:
            built[key] = real(name, num_classes, **kwargs)
        model, info, family = built[key]
        return copy.deepcopy(model), copy.deepcopy(info), family

    monkeypatch.setattr(tracks, "create_backbone", create_once)


def _vtab_image(path, v: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (10, 8), (v % 256, 40, 200 - v % 200)).save(path)


def write_vtab_root(root, tasks=None, n: int = 6):
    """NOAH's get_vtab1k.py layout: <task>/images/<split>/<i>.jpg and 'path label' lists, two classes per task."""
    from petlbench.data.noah import VTAB_TASKS

    for t in tasks or VTAB_TASKS:
        for split in ("train800", "val200", "test", "train800val200"):
            lines = []
            for i in range(n):
                _vtab_image(root / t / "images" / split / f"{i:06d}.jpg", 30 * i)
                lines.append(f"images/{split}/{i:06d}.jpg {i % 2}")
            (root / t / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root
