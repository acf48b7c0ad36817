"""Slow: the offline VL model (real all-MiniLM-L6-v2 + bundled micro ViT) learns a task that needs both the image
and the question, with ``linear`` (head + fusion layers) and ``adapter`` (benchmarks/perf/vl_trains.py), and the
image-only baseline stays at its 50% cap."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "perf" / "vl_trains.py"
STEPS = 150  # batch 16; about 2 CPU minutes per run on one thread


def _script():
    spec = importlib.util.spec_from_file_location("vl_trains", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
@pytest.mark.parametrize("name", ["linear", "adapter"])
def test_vl_model_learns_a_two_modality_task(name):
    r = _script().train_method(name, None, steps=STEPS, batch=16, lr=1e-3)
    assert r["loss_first20"] > 0.8 * math.log(8)  # starts near chance over the 8 answers
    assert r["loss_last20"] < 0.5 * r["loss_first20"]
    assert r["val_acc"] > 60  # either modality alone caps it at 50% (image) / 25% (text)


@pytest.mark.slow
def test_image_only_baseline_stays_at_its_cap():
    r = _script().train_method("linear", None, steps=STEPS, batch=16, lr=1e-3, modality="image")
    assert r["val_acc"] < 60
