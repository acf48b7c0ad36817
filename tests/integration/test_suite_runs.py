"""Suites that train through the CLI: each job's own peak memory, the tuned protocol (tune) choosing on val."""

from __future__ import annotations

import json

import pytest
import torch

from petlbench.models import measure

pytestmark = pytest.mark.integration

SUITE = """
name = "memory"
methods = ["linear"]
datasets = ["shapes-loc"]
model = "test_vit"
pretrained = false
limit = 64
epochs = 1
[[group]]
label = "large"
methods = ["full"]
img_size = 224
batch_size = 64
[[group]]
label = "small"
methods = ["linear"]
img_size = 32
batch_size = 8
"""


def _resettable_peak() -> bool:
    mem = measure.PeakMemory(torch.device("cpu"))
    mem.start()
    return mem.kind == "cpu_peak_rss_run"


def test_tune_chooses_on_val_before_reading_test_and_resumes(cli, tmp_path, monkeypatch):
    from petlbench.results.store import read_rows

    calls: list[tuple[bool, bool]] = []  # (selection run, test split prepared) in order
    from petlbench.data.images import RawData

    real_prepare = RawData.prepare

    def recording_prepare(raw, data_cfg, trainval=False, selection=False):
        splits = real_prepare(raw, data_cfg, trainval=trainval, selection=selection)
        calls.append((selection, splits.test is not None))
        return splits

    monkeypatch.setattr(RawData, "prepare", recording_prepare)
    args = ["tune", "linear", "--dataset", "shapes-loc", "--model", "test_vit", "--img-size", "32", "--no-pretrained",
            "--limit", "24", "--epochs", "1", "--grid", "lr=0.01,0.1", "--grid", "weight_decay=0,1e-4",
            "--seeds", "0,1", "--precision", "fp32", "--out", tmp_path / "store"]  # fp32: no precision probe's prepare
    code, out, err = cli(*args)
    assert code == 0, err
    assert [c[0] for c in calls] == [True] * 4 + [False] * 2  # the whole grid first, then the final runs
    assert all(not test for sel, test in calls if sel)  # selection runs never even load the test split
    rows = read_rows(tmp_path / "store" / "results.csv")
    grid, finals = [r for r in rows if r["selection"] == "True"], [r for r in rows if r["selection"] != "True"]
    assert len(grid) == 4 and all(r["top1_pct"] == "" and r["n_test"] == "0" for r in grid)
    assert out.count("(selection run, no test split)") == 4 and "top-1 nan" not in out  # said as such
    scores = [float(r["top1_val_pct"]) for r in grid]
    best = max(range(4), key=lambda i: (scores[i], -i))  # the documented tie rule
    record = json.loads(finals[0]["tune"])
    assert len(finals) == 2 and {r["trainval"] for r in finals} == {"True"}
    assert record["choice"] == [{"lr": a, "weight_decay": b} for a in (0.01, 0.1) for b in (0.0, 1e-4)][best]
    assert float(finals[0]["lr"]) == record["choice"]["lr"]
    calls.clear()
    code, out, _ = cli(*args)  # killed or not, a rerun trains nothing twice
    assert code == 0 and calls == [] and out.count("skipped") == 6
    code, out, _ = cli(*args, "--print-commands")
    assert code == 0 and all("--trainval" in line for line in out.strip().splitlines())


def test_suite_reports_each_jobs_own_peak_memory(cli, tmp_path):
    if not _resettable_peak():
        pytest.skip("no resettable peak RSS on this platform (not Linux)")
    (tmp_path / "mem.toml").write_text(SUITE)
    code, _, err = cli("suite", tmp_path / "mem.toml", "--out", tmp_path / "r", "--device", "cpu")
    assert code == 0, err
    import csv

    rows = {r["label"]: r for r in csv.DictReader(open(tmp_path / "r" / "results.csv"))}
    assert {r["peak_mem_kind"] for r in rows.values()} == {"cpu_peak_rss_run"}
    large, small = float(rows["large"]["peak_mem_train_mb"]), float(rows["small"]["peak_mem_train_mb"])
    assert small < large - 100  # the small job after the large one reports its own, lower peak
