"""Slow checks through the perf scripts' command lines (benchmarks/perf/, run as a user runs them): the offline VL
model (real all-MiniLM-L6-v2 + bundled micro ViT) learns a task that needs both the image and the question, with
``linear`` (head + fusion layers) and ``adapter``, and the image-only baseline stays at its 50% cap (vl_trains.py);
the offline VL tasks need both modalities (vl_task_check.py)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PERF = Path(__file__).resolve().parents[2] / "benchmarks" / "perf"
STEPS = 150  # batch 16; about 2 CPU minutes per run on one thread


def _script_json(script: str, *args: str):
    """Run ``benchmarks/perf/<script> ARGS`` in a fresh interpreter; the JSON of its last output line."""
    proc = subprocess.run([sys.executable, str(PERF / script), *args], capture_output=True, text=True,
                          timeout=3600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _vl_trains(method: str, modality: str = "both") -> dict:
    (row,) = _script_json("vl_trains.py", "--methods", method, "--modalities", modality, "--steps", str(STEPS),
                          "--batch", "16", "--lr", "1e-3")
    assert (row["method"], row["modality"], row["steps"]) == (method, modality, STEPS)
    return row


@pytest.mark.parametrize("name", ["linear", "adapter"])
def test_vl_model_learns_a_two_modality_task(name):
    r = _vl_trains(name)
    # the mean of the first 20 steps: at most chance over the 8 answers (a linear head on the pair already learns
    # within them: 1.34 at these settings, before and after the redesign), then learning halves it at least
    assert r["loss_first20"] < 1.1 * math.log(8)
    assert r["loss_last20"] < 0.5 * r["loss_first20"]
    assert r["val_acc"] > 60  # either modality alone caps it at 50% (image) / 25% (text)


def test_image_only_baseline_stays_at_its_cap():
    assert _vl_trains("linear", "image")["val_acc"] < 60


def test_offline_vl_tasks_need_both_modalities() -> None:
    """vl_task_check.py at its reference budget for shapes-vqa (8,000 generated training questions, 20 epochs;
    ~15 min on one idle core): text-only and image-only stay near their answer priors (35% / 20%), the model that
    sees both is far above (measured: 34.4 / 20.5 / 81.6)."""
    out = _script_json("vl_task_check.py", "--task", "shapes-vqa", "--train-size", "8000", "--epochs", "20")
    scores = out["results"]["shapes-vqa"]
    assert scores["text"]["all"] < 42 and scores["image"]["all"] < 27
    assert scores["both"]["all"] > max(scores["text"]["all"], scores["image"]["all"]) + 30
