"""The results store: schema, crash repair, migration, aggregation, gate."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from petlbench.results.aggregate import aggregate, vtab_summary
from petlbench.results.gate import gate
from petlbench.results.schema import COLUMNS, RunResult
from petlbench.results.store import Store, read_rows
from petlbench.results.tables import markdown_pivot


def _res(i: int, method: str = "m", seed: int = 0, top1: float = 50.0, dataset: str = "d", group: str = "") -> RunResult:
    return RunResult(run_id=f"r{i}", method=method, dataset=dataset, seed=seed, config_hash=f"h{i}",
                     group_hash=f"g-{method}-{dataset}", top1_pct=top1, params_trainable=10, data_group=group,
                     error="comma, \"quote\"\nnewline")


def test_header_is_the_schema_and_rows_round_trip(tmp_path):
    store = Store(tmp_path)
    store.append(_res(1, top1=12.5))
    text = (tmp_path / "results.csv").read_text()
    assert text.splitlines()[0].split(",") == COLUMNS
    (row,) = read_rows(tmp_path / "results.csv")
    assert float(row["top1_pct"]) == 12.5 and row["error"] == "comma, \"quote\"\nnewline"
    assert (tmp_path / "runs" / "r1.json").exists()
    assert store.hashes() == {"h1"}


def test_crash_mid_write_is_repaired_without_losing_rows(tmp_path):
    store = Store(tmp_path)
    store.append(_res(1))
    store.append(_res(2))
    with open(tmp_path / "results.csv", "a") as f:  # a crash left half a row
        f.write("r3,2026-01-01,half")
    assert [r["run_id"] for r in read_rows(tmp_path / "results.csv")] == ["r1", "r2"]
    store.append(_res(4))
    assert [r["run_id"] for r in read_rows(tmp_path / "results.csv")] == ["r1", "r2", "r4"]
    assert (tmp_path / "results.csv").read_text().endswith("\n")


def test_old_schema_is_migrated_keeping_every_row(tmp_path):
    (tmp_path / "results.csv").write_text("run_id,method,top1_pct,legacy_col\nold1,m,33.0,x\n")
    Store(tmp_path).append(_res(2))
    rows = read_rows(tmp_path / "results.csv")
    assert [r["run_id"] for r in rows] == ["old1", "r2"]
    assert rows[0]["top1_pct"] == "33.0" and rows[0]["legacy_col"] == "x"


def test_aggregate_mean_std_ci():
    df = pd.DataFrame([vars(_res(i, seed=i, top1=v)) for i, v in enumerate([50.0, 52.0, 54.0])])
    df["status"] = "ok"
    (row,) = aggregate(df).to_dict("records")
    assert row["n"] == 3 and row["top1_pct"] == pytest.approx(52.0)
    assert row["top1_pct_std"] == pytest.approx(2.0)
    assert row["top1_pct_ci95"] == pytest.approx(4.3027 * 2.0 / math.sqrt(3), rel=1e-4)  # t(0.975, 2 df)


def test_failed_rows_are_left_out_of_aggregates():
    df = pd.DataFrame([vars(_res(1, top1=40.0)), vars(_res(2, seed=1, top1=float("nan")))])
    df.loc[1, "status"] = "failed"
    (row,) = aggregate(df).to_dict("records")
    assert row["n"] == 1 and row["top1_pct"] == 40.0


def test_vtab_summaries_mean_of_groups_vs_mean_of_tasks():
    rows = [_res(1, dataset="a", top1=90, group="natural"), _res(2, dataset="b", top1=70, group="natural"),
            _res(3, dataset="c", top1=40, group="structured")]
    df = pd.DataFrame([vars(r) for r in rows])
    df["status"] = "ok"
    (s,) = vtab_summary(aggregate(df)).to_dict("records")
    assert s["mean_of_tasks"] == pytest.approx(200 / 3)
    assert s["mean_of_groups"] == pytest.approx((80 + 40) / 2)


def test_gate_flags_drops_param_changes_and_missing():
    ref = aggregate(pd.DataFrame([{**vars(_res(1, method="a", top1=80)), "status": "ok"},
                                  {**vars(_res(2, method="b", top1=60)), "status": "ok"}]))
    cur = aggregate(pd.DataFrame([{**vars(_res(1, method="a", top1=77.5)), "status": "ok"}]))
    problems = gate(cur, ref, max_drop=2.0)
    assert any("a on d: top-1 77.50%" in p for p in problems)
    assert any("b on d: missing" in p for p in problems)
    assert gate(cur, ref.iloc[:1], max_drop=3.0) == []
    # two-sided: a rise beyond max_rise is a change too; GMACs must match to the MAC
    assert any("77.50% > reference" in p for p in gate(cur, ref.iloc[:1].assign(top1_pct=70.0), 3.0, max_rise=5.0))
    assert gate(cur, ref.iloc[:1].assign(top1_pct=70.0), 3.0) == []
    assert any("GMACs" in p for p in gate(cur.assign(gmacs=1.0), ref.iloc[:1].assign(gmacs=1.000000001), 3.0))


def test_markdown_pivot_has_a_row_per_configuration_and_both_summaries():
    rows = [_res(1, dataset="a", top1=90, group="natural"), _res(2, dataset="a", seed=1, top1=80, group="natural"),
            _res(3, dataset="c", top1=40, group="structured"), _res(4, method="z", dataset="a", top1=10,
                                                                    group="natural")]
    df = pd.DataFrame([vars(r) for r in rows])
    df["status"] = "ok"
    text = markdown_pivot(aggregate(df))
    lines = text.splitlines()
    assert "mean of groups" in lines[0] and "a (nat.)" in lines[0] and "c (str.)" in lines[0]
    m_row = next(ln for ln in lines if ln.startswith("| m |"))
    assert "85.0 ± 7.1" in m_row and "62.5" in m_row  # mean of groups (85 + 40) / 2
    assert next(ln for ln in lines if ln.startswith("| z |")).count("–") >= 1  # z has no result on c
