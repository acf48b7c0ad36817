"""``petlbench suite NAME --plan``: the arithmetic of steps, compute, device-hours and memory on a small suite, the
paper suites planned offline without their data, and their downloads."""

from __future__ import annotations

import math

import pytest

from petlbench.data.noah import VTAB_TASKS
from petlbench.engine import plan as planmod
from petlbench.engine.plan import DEVICES, activation_bytes, downloads, plan_suite

SUITE = """
name = "tiny-plan"
methods = ["linear", "full", "lora"]
datasets = ["shapes-loc"]
model = "test_vit"
img_size = 32
pretrained = false
seeds = [0, 1]
epochs = 2
batch_size = 16
"""


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PETLBENCH_CACHE", str(tmp_path / "cache"))


def test_plan_arithmetic_on_a_small_suite(tmp_path):
    from petlbench.datasets import load_data
    from petlbench.engine.build import inspect

    path = tmp_path / "tiny.toml"
    path.write_text(SUITE)
    rows = {r.method: r for r in plan_suite(str(path), "H100")}
    raw = load_data("shapes-loc")
    train, val, test = (raw.size(s) for s in ("train", "val", "test"))
    h100 = DEVICES["H100"]
    for method, mult in (("linear", 1), ("full", 3), ("lora", 2)):
        r = rows[method]
        assert (r.seeds, r.samples, r.batch, r.epochs) == (2, train, 16, 2)
        assert r.steps == math.ceil(train / 16) * 2
        gmacs = inspect(method, "test_vit", raw.num_classes, 32)["gmacs"]
        assert r.gmacs == pytest.approx(gmacs, rel=1e-9)
        # forward + backward per training sample, one forward per val sample each epoch and per test sample
        flop = 2 * gmacs * 1e9 * (mult * r.steps * 16 + val * 2 + test)
        assert r.train_flop == pytest.approx(flop)
        assert r.precision == "bf16" and r.hours == pytest.approx(flop / (h100.peak["bf16"] * 0.35) / 3600)
        assert "assumed: 35%" in r.throughput_source
    assert rows["full"].peak_gb > rows["lora"].peak_gb > rows["linear"].peak_gb > 0


def test_peak_memory_is_weights_optimizer_and_korthikanti_activations():
    counted = planmod.Counted(gmacs=1.0, params=1_000_000, trainable=10_000, blocks=[(65, 64)] * 4)
    acts = 4 * 65 * 8 * 64 * (34 + 5 * 1 * 65 / 64)  # s*b*h*(34 + 5*a*s/h), a = h / 64 = 1 head, batch 8
    assert activation_bytes(counted.blocks, 8, "bf16") == pytest.approx(acts)
    assert planmod.peak_gb(counted, "lora", 8, "fp32") == pytest.approx((4e6 + 12e4 + 2 * acts) / 1e9)
    assert planmod.peak_gb(counted, "linear", 8, "fp32") == pytest.approx((4e6 + 12e4) / 1e9)  # no backward: no acts
    assert counted.at(12).gmacs == 1.0 and counted.at(12).params == 1_000_000  # no linear head: nothing to add


def test_paper_suites_plan_without_their_data(monkeypatch):
    """The full releases' sizes and the recipe the runs would resolve (counting ViLT-B/32 is stubbed: seconds)."""
    monkeypatch.setattr(planmod, "count", lambda cfg, overrides, classes: planmod.Counted(14.5, 10**8, 10**6))
    rows = plan_suite("apt-vilt", "A100")
    assert {r.method for r in rows} == {"apt", "das", "adapter", "lora", "linear", "full"}
    r = next(r for r in rows if r.method == "apt")
    # VQAv2 (train + trainable_val + our val under --trainval), ViLT's official VQA recipe: batch 256, 10 epochs
    assert (r.dataset, r.batch, r.epochs, r.samples) == ("vqav2", 256, 10, 443_757 + 214_354 - 5_350)
    assert r.steps == math.ceil(r.samples / 256) * 10 and r.gmacs == 14.5
    assert downloads("apt-vilt") == pytest.approx({"data": 19.05, "weights": 0.47})  # COCO 2014 + VQAv2 JSON; ViLT
    assert {r.dataset for r in plan_suite("vtab-1k", "H100")} == {f"vtab-{t}" for t in VTAB_TASKS}


def test_plan_cli_prints_jobs_totals_and_sources(cli, tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(SUITE)
    code, out, err = cli("suite", path, "--plan", "--device-kind", "A100")
    assert code == 0, err
    text = " ".join(out.split())
    assert "plan: suite tiny-plan on NVIDIA A100" in text and "6 runs" in text
    assert "assumed: 35% of NVIDIA A100's 312 TFLOP/s" in text and "downloads: 0.0 GB data" in text
    assert not (tmp_path / "results").exists()
    code, _, err = cli("suite", path, "--plan", "--device-kind", "TPU")
    assert code == 2 and "unknown --device-kind 'TPU'" in err
