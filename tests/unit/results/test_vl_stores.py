"""Issue 41: vision-language stores read right. The committed vl-mini (the PLM pair), vlp-meter-mini (the micro
METER) and mini-vtab (vision) rows read together: one configuration is one row over all tasks in every view, the
model a section or a column and never part of a name, no hash in a name, partial configurations apart; every view
readable at 80 columns."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from rich.console import Console

from petlbench.results.aggregate import aggregate, by_model, on_track, vtab_summary
from petlbench.results.gate import gate
from petlbench.results.paired import paired_markdown, paired_vs, paired_vs_model
from petlbench.results.schema import RunResult
from petlbench.results.store import load_frame
from petlbench.results.tables import compare_tables, markdown_pivot, runs_table, summary_table

from ...sweeps import BENCH

REF = BENCH / "reference"
PAIR, METER = "minilm+petl_vit_micro_scenes", "petl_meter_micro_scenes"
PAIR_ROWS = {"linear", "full", "bitfit", "adapter", "lora", "apt", "das", "dvp", "dvp [adp]", "full [text-only]",
             "full [image-only]"}
METER_ROWS = {"linear", "full", "bitfit", "adapter", "lora", "apt", "das", "full [random-init]"}


@pytest.fixture(scope="module")
def df():
    return load_frame([REF / "vl-mini.csv", REF / "vlp-meter-mini.csv", REF / "mini-vtab.csv"])


@pytest.fixture(scope="module")
def agg(df):
    return aggregate(df)


def _names_by_model(frame) -> dict[str, set[str]]:
    return {m: set(g["name"]) for m, g in frame.groupby("model")}


def test_one_row_per_method_and_baseline_per_model(agg):
    vl = on_track(agg, "vl")
    assert _names_by_model(vl) == {PAIR: PAIR_ROWS, METER: METER_ROWS}
    assert (vl.groupby(["model", "name"])["dataset"].nunique() == 2).all()  # every row over both tasks
    for name in agg["name"]:  # never a hash, a weights key or a model in a name
        assert not re.search(r"[0-9a-f]{8}", name) and "weights" not in name and "micro" not in name, name


def test_every_vl_summary_covers_both_tasks_and_partial_ones_stand_apart(agg):
    for model, g in by_model(on_track(agg, "vl")):
        s = vtab_summary(g, "vl")
        assert set(s["name"]) == {PAIR: PAIR_ROWS, METER: METER_ROWS}[model]
        assert (s["tasks"] == 2).all() and s["complete"].all()
    # a configuration run on 1 of the 2 tasks is never ranked among the complete ones, however high it scores
    one = agg[~((agg["model"] == METER) & (agg["name"] == "full") & (agg["dataset"] == "shapes-vqa"))]
    s = vtab_summary(one[one["model"] == METER], "vl")
    assert s["name"].iloc[-1] == "full" and not s["complete"].iloc[-1] and s["complete"].iloc[:-1].all()
    text = markdown_pivot(one)
    assert "| full | petl_meter_micro_scenes | 67.3 ± 0.4 | – | 1 of 2 tasks | – |" in text


def test_markdown_and_csv_name_the_same_rows_with_the_model_as_a_column(agg):
    vl_table = markdown_pivot(agg).split("\n\n")[-1].splitlines()
    assert vl_table[0].startswith("| method | model | shapes-ve")
    rows = {tuple(c.strip() for c in ln.split("|")[1:3]) for ln in vl_table[2:]}
    assert rows == {(n, PAIR) for n in PAIR_ROWS} | {(n, METER) for n in METER_ROWS}
    assert len(vl_table) == 2 + len(rows)  # no name twice for one model


@pytest.mark.heavy
def test_vs_and_vs_model_pair_one_row_per_method(df):
    per = paired_vs(df, "linear").summary  # each model's rows against its own linear probe
    vl = per[per["model"].isin([PAIR, METER])]
    assert _names_by_model(vl) == {PAIR: PAIR_ROWS - {"linear"}, METER: METER_ROWS - {"linear"}}
    assert (vl["tasks"] == 2).all() and (per.loc[~per.index.isin(vl.index), "tasks"] == 8).all()
    text = paired_markdown(paired_vs_model(df, PAIR))
    rows = [ln.split(" | ")[0][2:] for ln in text.splitlines() if ln.startswith("| ") and "configuration" not in ln]
    assert sorted(rows) == sorted(METER_ROWS - {"full [random-init]"})  # each METER method once, both tasks filled
    assert f"on {METER} vs the same method on {PAIR}" in text


def test_the_gate_still_compares_like_with_like(agg):
    assert gate(agg, agg, max_drop=0.0, max_rise=0.0) == []
    dvp = agg[(agg["name"] == "dvp") & (agg["model"] == PAIR)]
    assert dvp["group_hash"].nunique() == 2  # one row, two identities: the gate tells the tasks' recipes apart


def _render(table, width: int = 80) -> list[str]:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(table)
    return console.export_text().splitlines()


def test_compare_tables_are_readable_at_80_columns(agg):
    lines = _render(compare_tables(agg[agg["dataset"] == "shapes-ve"], width=80)[0])
    assert max(len(ln) for ln in lines) <= 80 and not any("…" in ln for ln in lines)
    text = " ".join(lines)
    assert "full [image-only]" in text or ("full" in text and "[image-only]" in text)
    assert "left out at 80 columns" in text and "top-1 % ↑" in text and "66.60" not in text
    wide = _render(compare_tables(agg[agg["dataset"] == "shapes-ve"], width=200)[0], 200)
    assert "left out" not in " ".join(wide) and "PPT" in " ".join(wide)
    for model, g in by_model(on_track(agg, "vl")):
        lines = _render(summary_table(vtab_summary(g, "vl"), "vl", 80, model))
        assert max(len(ln) for ln in lines) <= 80 and not any("…" in ln for ln in lines)


def test_the_runs_table_is_readable_at_80_columns():
    runs = [RunResult(method="linear", label="random-init", dataset="shapes-vqa", seed=s, top1_pct=50.0,
                      params_trainable=1000, status="failed" if s else "ok", error="[bold]not markup[/bold]",
                      optimizer="adamw", lr=0.1, epochs=12, batch_size=32, precision="fp32") for s in range(2)]
    lines = _render(runs_table(runs, width=80))
    text = " ".join(lines)
    assert max(len(ln) for ln in lines) <= 80 and not any("…" in ln for ln in lines)
    assert "[random-init]" in text and "[bold]not" in text  # names and errors are text, not markup


def test_help_texts_are_text_not_markup(cli):
    code, out, _ = cli("compare", "--help")
    assert code == 0 and "'linear [random-init]'" in " ".join(out.split()).replace("│ ", "")


def test_csv_has_the_model_column_and_the_same_names(cli, tmp_path):
    out_csv = tmp_path / "agg.csv"
    code, _, err = cli("compare", REF / "vl-mini.csv", REF / "vlp-meter-mini.csv", "--csv", out_csv, "--markdown")
    assert code == 0, err
    rows = pd.read_csv(out_csv, keep_default_na=False)
    assert _names_by_model(rows) == {PAIR: PAIR_ROWS, METER: METER_ROWS}
