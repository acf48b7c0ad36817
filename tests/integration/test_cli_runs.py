"""Runs end to end through the CLI (in-process ``main``): a stored row and its JSON record, skip and --force, seeds
and compare (and its gate), precision recorded with its reason."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from petlbench.results.store import read_rows

pytestmark = pytest.mark.integration

TINY_RUN = ["--model", "test_vit", "--img-size", "32", "--no-pretrained", "--epochs", "1", "--batch-size", "8"]
CPU = torch.device("cpu")


def test_run_stores_row_and_json_then_skips_and_forces(cli, tmp_path, image_folder):
    out = tmp_path / "store"
    args = ["run", "linear", "--dataset", image_folder, *TINY_RUN, "--out", out]
    code, stdout, err = cli(*args)
    assert code == 0, err
    rows = read_rows(out / "results.csv")
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "ok" and row["method"] == "linear" and row["model"] == "test_vit"
    assert 0.0 <= float(row["top1_pct"]) <= 100.0
    assert int(row["params_trainable"]) == 64 * 3 + 3  # test_vit head (d=64) for 3 classes
    assert int(row["n_train"]) + int(row["n_val"]) + int(row["n_test"]) == 36
    assert float(row["gmacs"]) > 0 and float(row["infer_img_s"]) > 0 and float(row["train_img_s"]) > 0
    assert row["peak_mem_kind"] in ("cpu_peak_rss_run", "cpu_peak_rss_process", "cuda_max_allocated")
    assert json.loads(row["data_fingerprint"]).keys() >= {"train", "test"}
    record = json.loads((out / "runs" / f"{row['run_id']}.json").read_text())
    assert record["config_hash"] == row["config_hash"] and record["method_config"]["epochs"] == 1
    assert "top-1" in stdout or "top1" in stdout.lower()

    code, stdout, _ = cli(*args)  # same config: skipped
    assert code == 0 and "skipped" in stdout
    assert len(read_rows(out / "results.csv")) == 1
    code, _, _ = cli(*args, "--force")
    assert code == 0 and len(read_rows(out / "results.csv")) == 1  # --force replaces the stored row (issue 12)


def test_seeds_and_compare(cli, tmp_path, image_folder):
    out = tmp_path / "store"
    for method in ("linear", "bitfit"):
        code, _, err = cli("run", method, "--dataset", image_folder, *TINY_RUN, "--seeds", "0,1", "--out", out)
        assert code == 0, err
    rows = read_rows(out / "results.csv")
    assert sorted((r["method"], r["seed"]) for r in rows) == [("bitfit", "0"), ("bitfit", "1"),
                                                               ("linear", "0"), ("linear", "1")]
    agg_csv = tmp_path / "agg.csv"
    code, stdout, err = cli("compare", out, "--csv", agg_csv)
    assert code == 0, err
    assert "±" in stdout and "linear" in stdout and "bitfit" in stdout
    import pandas as pd

    agg = pd.read_csv(agg_csv)
    lin = agg[agg["method"] == "linear"].iloc[0]
    vals = [float(r["top1_pct"]) for r in rows if r["method"] == "linear"]
    assert lin["n"] == 2 and lin["top1_pct"] == pytest.approx(sum(vals) / 2)
    # gating against itself passes; against an inflated reference it fails with exit 1
    assert cli("compare", out, "--baseline", out / "results.csv")[0] == 0
    ref = tmp_path / "ref.csv"
    text = (out / "results.csv").read_text().splitlines()
    header = text[0].split(",")
    i = header.index("top1_pct")
    bumped = [text[0]] + [",".join(c if j != i else "100.0" for j, c in enumerate(line.split(",")))
                          for line in text[1:]]
    ref.write_text("\n".join(bumped) + "\n")
    code, _, err = cli("compare", out, "--baseline", ref, "--max-drop", "1")
    assert code == 1 and "regression" in err


def test_rows_record_precision_and_why(cli, tmp_path, image_folder):
    out = tmp_path / "store"
    code, _, err = cli("run", "lora", "--dataset", str(image_folder), *TINY_RUN, "--precision", "bf16", "--out", str(out))
    assert code == 0, err
    code, _, err = cli("run", "lora", "--dataset", str(image_folder), *TINY_RUN, "--out", str(out))  # auto
    assert code == 0, err
    asked, auto = list(csv.DictReader((out / "results.csv").open()))
    assert asked["precision"] == "bf16" and asked["amp"] == "True" and asked["precision_reason"] == "asked"
    assert auto["precision"] == "fp32" and auto["precision_reason"].startswith("auto: ")
    record = json.loads((out / "runs" / f"{auto['run_id']}.json").read_text())
    assert record["precision_reason"] == auto["precision_reason"]
