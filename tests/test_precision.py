"""--precision auto|fp32|bf16: resolved before the identity, recorded in the row, stored hashes unchanged."""

import csv
from pathlib import Path

import pytest
import torch

from petlbench import numerics, runner
from petlbench.options import RunConfig, identity
from petlbench.sources import load_data
from petlbench.suites import suite_jobs

TINY_RUN = ["--model", "test_vit", "--img-size", "32", "--no-pretrained", "--epochs", "1", "--batch-size", "8"]
REFERENCE = Path(__file__).parents[1] / "benchmarks" / "reference" / "mini-vtab.csv"


@pytest.mark.parametrize("has_bf16", [True, False])
def test_auto_is_bf16_where_the_hardware_has_it(monkeypatch, has_bf16):
    monkeypatch.setattr(numerics, "cpu_has_bf16", lambda: has_bf16)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: has_bf16)
    want = "bf16" if has_bf16 else "fp32"
    assert numerics.resolve_precision("auto", torch.device("cpu")) == want
    assert numerics.resolve_precision("auto", torch.device("cuda")) == want
    assert numerics.resolve_precision("fp32", torch.device("cuda")) == "fp32"
    assert numerics.resolve_precision("bf16", torch.device("cpu")) == "bf16"
    assert numerics.resolve_precision("auto", torch.device("meta")) == "fp32"


def test_identity_holds_the_resolved_precision(monkeypatch):
    raw = load_data("shapes-loc", limit=16)
    hashes = {}
    for has_bf16 in (True, False):
        monkeypatch.setattr(numerics, "cpu_has_bf16", lambda v=has_bf16: v)
        p = runner.prepare_run(RunConfig(method="linear", dataset="shapes-loc", limit=16, device="cpu"), raw)
        assert p.cfg.precision == ("bf16" if has_bf16 else "fp32") and p.identity["amp"] is has_bf16
        hashes[has_bf16] = p.config_hash
    pinned = runner.prepare_run(RunConfig(method="linear", dataset="shapes-loc", limit=16, precision="bf16"), raw)
    assert pinned.config_hash == hashes[True] != hashes[False]
    with pytest.raises(ValueError, match="unresolved"):
        identity(RunConfig(method="linear", precision="auto"), pinned.method.cfg, {})


def test_reference_suite_is_pinned_to_fp32_and_keeps_its_config_hashes(monkeypatch):
    """mini-vtab runs in fp32 on every machine, and its hashes are those of the committed reference
    (stored before --precision, as amp = false)."""
    monkeypatch.setattr(numerics, "cpu_has_bf16", lambda: True)
    _, jobs, _ = suite_jobs("mini-vtab")
    ref = {(r["method"], r["dataset"], r["seed"], r["label"]): r["config_hash"] for r in csv.DictReader(REFERENCE.open())}
    job = jobs[0]
    p = runner.prepare_run(job, load_data(job.dataset, limit=job.limit))
    assert p.cfg.precision == "fp32"
    assert p.config_hash == ref[(job.method, job.dataset, str(job.seed), job.label)]


def test_bf16_run_records_its_precision(cli, tmp_path, image_folder):
    out = tmp_path / "store"
    code, _, err = cli("run", "lora", "--dataset", str(image_folder), *TINY_RUN, "--precision", "bf16", "--out", str(out))
    assert code == 0, err
    (row,) = list(csv.DictReader((out / "results.csv").open()))
    assert row["precision"] == "bf16" and row["amp"] == "True" and row["status"] == "ok"


def test_old_amp_key_in_a_suite_says_what_replaced_it(cli, tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text('name = "s"\nmethods = ["linear"]\ndatasets = ["shapes-loc"]\namp = true\n')
    code, _, err = cli("suite", str(suite), "--out", str(tmp_path / "o"), "--print-commands")
    assert code == 2 and 'precision = "bf16"' in err
