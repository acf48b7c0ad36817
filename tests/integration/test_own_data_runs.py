"""Own data through complete CLI runs: a truncated image named in the failed row, strict JSON records, forced
reruns and concurrent duplicates, Ctrl-C, plain progress lines."""

from __future__ import annotations

import csv
import json

import pytest

from petlbench.results.store import read_rows

from ..conftest import make_image_folder

pytestmark = pytest.mark.integration

TINY_RUN = ["--model", "test_vit", "--img-size", "32", "--no-pretrained", "--epochs", "1", "--batch-size", "8"]


def test_truncated_image_names_the_file(cli, tmp_path):
    root = make_image_folder(tmp_path / "imgs", classes=2, per_class=6)
    bad = sorted((root / "class0").iterdir())[0]
    bad.write_bytes(bad.read_bytes()[:40])
    code, _, _ = cli("run", "bitfit", "--dataset", root, *TINY_RUN, "--out", tmp_path / "store")
    assert code == 1
    (row,) = read_rows(tmp_path / "store" / "results.csv")
    assert row["status"] == "failed" and bad.name in row["error"]


def test_json_record_is_strict_json_without_val(cli, tmp_path):
    for split in ("train", "test"):
        make_image_folder(tmp_path / "d" / split, classes=2, per_class=4)
    code, _, err = cli("run", "linear", "--dataset", tmp_path / "d", *TINY_RUN, "--out", tmp_path / "store")
    assert code == 0, err
    (row,) = read_rows(tmp_path / "store" / "results.csv")
    text = (tmp_path / "store" / "runs" / f"{row['run_id']}.json").read_text()
    assert "NaN" not in text
    record = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert record["top1_val_pct"] is None


def test_forced_rerun_replaces_and_concurrent_duplicate_is_not_stored(cli, tmp_path, image_folder):
    from petlbench.results.aggregate import aggregate
    from petlbench.results.schema import RunResult
    from petlbench.results.store import Store, load_frame

    store = tmp_path / "store"
    args = ["run", "linear", "--dataset", image_folder, *TINY_RUN, "--out", store]
    assert cli(*args)[0] == 0
    (first,) = read_rows(store / "results.csv")
    assert cli(*args, "--force")[0] == 0
    (second,) = read_rows(store / "results.csv")  # one row: the rerun replaced the first
    assert second["run_id"] != first["run_id"]
    record = json.loads((store / "runs" / f"{second['run_id']}.json").read_text())
    assert record["extra"]["replaces"] == [first["run_id"]]
    assert (store / "runs" / f"{first['run_id']}.json").exists()  # history kept
    # a second process finishing the same configuration later: no second row
    dup = RunResult(run_id="dup", config_hash=second["config_hash"], method="linear", dataset="d", status="ok")
    assert Store(store).append(dup) is False
    assert len(read_rows(store / "results.csv")) == 1
    assert json.loads((store / "runs" / "dup.json").read_text())["extra"]["duplicate_of"] == second["run_id"]
    # compare counts a configuration once even in a store that holds it twice (written by older versions)
    text = (store / "results.csv").read_text().splitlines()
    (store / "results.csv").write_text("\n".join(text + text[1:]) + "\n")
    agg = aggregate(load_frame([store]))
    assert list(agg["n"]) == [1]


def test_interrupt_says_what_was_kept_and_how_to_resume(cli, tmp_path, image_folder, monkeypatch):
    from petlbench.engine import runner

    real, calls = runner.run_one, []

    def run_then_interrupt(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(runner, "run_one", run_then_interrupt)
    code, _, err = cli("run", "linear", "--dataset", image_folder, *TINY_RUN, "--seeds", "0,1,2",
                       "--out", tmp_path / "store")
    assert code == 130
    assert "1 of 3 runs finished" in err and "again to resume" in err
    assert len(read_rows(tmp_path / "store" / "results.csv")) == 1


def test_plain_progress_lines_when_not_a_terminal(cli, tmp_path, image_folder, monkeypatch):
    monkeypatch.setenv("PETLBENCH_PROGRESS", "plain")
    monkeypatch.setenv("PETLBENCH_PROGRESS_INTERVAL", "0")
    code, out, err = cli("run", "linear", "--dataset", image_folder, *TINY_RUN, "--set", "epochs=2",
                         "--out", tmp_path / "store")
    assert code == 0, err
    assert "recipe: adamw" in out and "steps" in out
    assert any(line.strip().startswith("linear step 1/") and "ETA" in line for line in out.splitlines())
    rows = list(csv.DictReader(open(tmp_path / "store" / "results.csv")))
    assert rows and rows[0]["status"] == "ok"
