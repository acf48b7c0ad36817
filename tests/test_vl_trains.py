"""Slow: the offline VL model (real all-MiniLM-L6-v2 + bundled micro ViT) learns a task that needs both the image
and the question, with ``linear`` (head + fusion layers) and ``adapter`` (benchmarks/perf/vl_trains.py)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "perf" / "vl_trains.py"


def _script():
    spec = importlib.util.spec_from_file_location("vl_trains", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
@pytest.mark.parametrize("name", ["linear", "adapter"])
def test_vl_model_learns_a_two_modality_task(name):
    r = _script().train_method(name, None, steps=STEPS, batch=16, lr=1e-3)
    assert r["loss_first20"] > 0.9 * math.log(4)  # starts at chance over 4 colours
    assert r["loss_last20"] < 0.5 * r["loss_first20"]
    assert r["val_acc"] > 60  # chance 25%; knowing only one modality caps it at 50% (see the script)


STEPS = 300
