"""--compile: compiling steps (one per new batch shape) stay out of the throughput, the ETA leaves the first step
out, and the CPU run does not show torch's GPU-build notice. torch.compile itself is replaced by the identity
(compiling takes minutes on a CPU); what is checked is the loop's bookkeeping around it."""

from __future__ import annotations

import logging

import torch
from torch.utils.data import TensorDataset

from petlbench import progress
from petlbench.data.types import Splits
from petlbench.engine.build import build, make_method
from petlbench.engine.loop import Reporter, Runtime, train_and_evaluate
from petlbench.models.measure import StepClock


class _Log(Reporter):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, message: str) -> None:
        self.lines.append(message)


def test_one_compiling_step_per_batch_shape_is_logged_and_untimed(monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda net: compiled.append(net) or net)
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.WARNING)
    method = make_method("lora", {"epochs": 2, "batch_size": 4, "warmup_epochs": 0})
    built = build(method, "test_vit", 3, pretrained=False, img_size=32)
    g = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.randn(10, 3, 32, 32, generator=g), torch.arange(10) % 3)  # batches of 4, 4, 2
    reporter = _Log()
    out = train_and_evaluate(built, method, Splits(ds, None, ds, 3), Runtime(compile=True), reporter)
    assert out.status == "ok" and len(compiled) == 1
    notes = [ln for ln in reporter.lines if ln.startswith("torch.compile:")]
    assert len(notes) == 2  # shapes (4, ...) and (2, ...), each once over two epochs
    assert logging.getLogger("torch.utils.cpp_extension").level == logging.ERROR  # CPU run: notice silenced


def test_untimed_steps_stay_out_of_the_step_clock():
    clock = StepClock(torch.device("cpu"), warmup=0)
    for timed in (False, True, True):
        clock.start()
        clock.stop(4, timed=timed)
    assert clock.timed_images == 8 and clock.steps == 3


def test_plain_eta_leaves_the_first_step_out(monkeypatch):
    """A first step of 80 s (compiling), then steps of 0.2 s: the ETA counts the later ones only."""
    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    lines: list[str] = []
    reporter = progress.PlainReporter(lines.append, interval=0)
    reporter.start(101, "lora")
    now[0] = 80.0
    reporter.step(1.0, 0.0)
    for _ in range(50):
        now[0] += 0.2
        reporter.step(1.0, 0.0)
    assert lines[-1].endswith("ETA 10s")  # 50 steps left at 0.2 s, not 50 x (90 / 51) = 88 s

