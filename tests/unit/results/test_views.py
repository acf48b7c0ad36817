"""One configuration is one row in every view of ``compare`` and in the gate: the mixed store
(``tests/mixed_store.py``), every number computed by hand from its ``CONFIGS``."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from petlbench.results.aggregate import aggregate, vtab_summary
from petlbench.results.gate import gate
from petlbench.results.paired import paired_vs
from petlbench.results.store import load_frame
from petlbench.results.tables import markdown_pivot

from ...mixed_store import CONFIGS, write_mixed


@pytest.fixture
def store(tmp_path):
    return write_mixed(tmp_path / "mixed")


@pytest.fixture
def df(store):
    return load_frame([store])


def test_every_configuration_is_named_by_what_differs(df):
    agg = aggregate(df)
    assert sorted(set(agg["name"])) == sorted(CONFIGS)
    assert len(agg) == sum(len(c[4]) for c in CONFIGS.values())  # one row per (configuration, task)


def test_summary_averages_a_configuration_over_its_own_tasks(df):
    s = vtab_summary(aggregate(df)).set_index("name")
    assert s.loc["linear", "mean_of_tasks"] == pytest.approx((31 + 27) / 2)  # never the trainval rows' 47
    assert s.loc["linear", "tasks"] == 2
    assert (s.loc["linear (trainval)", "tasks"], s.loc["linear (trainval)", "tasks_total"]) == (1, 2)
    assert s.loc["linear (trainval)", "mean_of_tasks"] == pytest.approx(47.0)
    assert s.loc["lora (bf16, lr 0.001)", "mean_of_groups"] == pytest.approx((50 + 42) / 2)
    assert s.loc["vpt (limit 64)", "mean_of_tasks"] == pytest.approx((39 + 31) / 2)
    # the complete configurations ranked by mean of groups; the partial ones after them, never among them
    assert list(s.index[:2]) == ["lora (fp32, lr 0.001)", "lora (bf16, lr 0.001)"]
    assert list(s.index[-2:]) == ["linear (trainval)", "lora (fp32, lr 0.05)"] and not s["complete"].iloc[-2:].any()
    by_params = vtab_summary(aggregate(df), sort="params_trainable")
    assert list(by_params["name"][:2]) == ["linear", "vpt"]  # 1,000 trainable first, then 8,000


def test_markdown_rows_cells_and_means_agree(df):
    lines = markdown_pivot(aggregate(df)).splitlines()
    row = {ln.split(" | ")[0][2:]: ln for ln in lines if ln.startswith("| ") and not ln.startswith("| method")}
    assert row["linear"] == "| linear | 31.0 ± 1.4 | 27.0 ± 1.4 | 29.0 | 29.0 | 0 | 1.0000 | 2 |"
    # a partial configuration: in a table of its own below the ranked ones, "1 of 2 tasks" and no mean over tasks
    assert row["linear (trainval)"] == "| linear (trainval) | 47.0 ± 1.4 | – | 1 of 2 tasks | – | 0 | 1.0000 | 2 |"
    apart = lines[lines.index("Not ranked (run on fewer tasks than the others):"):]
    assert {ln.split(" | ")[0] for ln in apart if ln.startswith("| ") and "method" not in ln} == {
        "| linear (trainval)", "| lora (fp32, lr 0.05)"}
    by_params = markdown_pivot(aggregate(df), sort="params_trainable").splitlines()
    assert by_params[2].startswith("| linear |") and by_params[3].startswith("| vpt")  # 1,000 trainable, then 8,000


def test_vs_pairs_with_one_configuration(df):
    per = paired_vs(df, "linear").summary.set_index("name")
    assert per.loc["adapter", "mean_diff"] == pytest.approx(((44 - 30) + (38 - 26)) / 2)  # 13, not 9
    trainval = paired_vs(df, "linear (trainval)").per_task.set_index("name")
    assert list(trainval.loc["adapter", "diffs"]) == [44 - 46, 46 - 48]  # only task a has the baseline
    assert "linear" in trainval.index
    with pytest.raises(Exception, match="'lora' has 3 configurations here"):
        paired_vs(df, "lora")


def test_cli_views_and_csv(cli, store, tmp_path):
    code, out, err = cli("compare", store)
    assert code == 0, err
    assert "linear (trainval)" in out and "vpt (limit 64)" in out and "1 of 2" in out
    out_csv = tmp_path / "agg.csv"
    code, _, err = cli("compare", store, "--csv", out_csv, "--sort", "params_trainable")
    assert code == 0, err
    agg = pd.read_csv(out_csv, keep_default_na=False)
    assert {"trainval", "limit", "precision", "variant", "name", "identity"} <= set(agg.columns)
    first_a = agg[agg["dataset"] == "a"].iloc[0]
    assert first_a["params_trainable"] == 1000  # --sort applies to --csv
    assert set(agg.loc[agg["name"] == "linear (trainval)", "trainval"].astype(str)) == {"True"}
    code, _, err = cli("compare", store, "--vs", "linear", "--sort", "gmacs")
    assert code == 2 and "--sort cannot apply" in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- the gate


def _agg(df, names: list[str], datasets=("a", "b")):
    want = {(n, d) for n in names for d in datasets}
    keep = [(n, d) in want for n, d in zip(_names(df), df["dataset"], strict=True)]
    return aggregate(df[keep])


def _names(df):
    """Each stored row's configuration name, from its run id ('<name>-<dataset>-<seed>')."""
    return [rid.rsplit("-", 2)[0] for rid in df["run_id"]]


def test_gate_reports_a_configuration_that_differs_never_a_regression(df):
    # a store at --limit 64 against the reference without it
    problems = gate(_agg(df, ["vpt (limit 64)"]), _agg(df, ["vpt"]), max_drop=2.0)
    assert problems == [f"configuration differs: vpt on {d}: limit 64 (reference none); data fingerprint"
                        for d in "ab"]
    # LoRA at lr 0.05 against the lr 1e-3 reference
    (p,) = gate(_agg(df, ["lora (fp32, lr 0.05)"]), _agg(df, ["lora (fp32, lr 0.001)"], "a"), max_drop=2.0)
    assert p == "configuration differs: lora on a: lr 0.05 (reference 0.001)"


def test_gate_is_order_independent_with_two_configurations_of_one_method(df):
    names = ["lora (fp32, lr 0.001)", "lora (fp32, lr 0.05)"]
    ref = _agg(df, names, "a")
    assert gate(ref, ref, max_drop=0.0) == [] == gate(ref.iloc[::-1], ref, max_drop=0.0)
    assert gate(ref, ref.iloc[::-1], max_drop=0.0) == []
    worse = ref.assign(top1_pct=ref["top1_pct"] - [0.0, 5.0])  # only the lr 0.05 run dropped
    (p,) = gate(worse, ref, max_drop=2.0)
    assert p.startswith("regression: ") and "on a: top-1 " in p and "reference 21.00%" in p


def test_gate_cli_filters_the_reference_by_dataset(cli, store, tmp_path):
    rows = pd.read_csv(store, dtype=str, keep_default_na=False)
    current = tmp_path / "current.csv"
    rows[rows["dataset"] == "a"].to_csv(current, index=False)
    code, _, err = cli("compare", current, "--baseline", store)
    assert code == 1 and "missing: linear on b" in err
    assert not any(ln.startswith("regression: ") for ln in err.splitlines())
    # one summary line per outcome, and how to regenerate a reference
    summary = [ln for ln in err.splitlines() if ln.startswith("gate summary, ")]
    assert summary == ["gate summary, regression: 0", "gate summary, configuration differs: 0",
                       "gate summary, missing: 6", "gate summary, not in the reference: 0"]
    assert "make reference" in err
    code, out, err = cli("compare", current, "--baseline", store, "--dataset", "a")
    assert code == 0 and "no regression" in out, err
    code, _, err = cli("compare", current, "--baseline", store, "--dataset", "c")
    assert code == 2 and "no results for dataset 'c'" in err


def test_seeds_stored_in_any_order_are_one_configuration(tmp_path):
    """The seed is part of the run identity, never of a configuration's name (a task whose first stored row is
    seed 1 is the same configuration as one whose first row is seed 0)."""
    df = load_frame([write_mixed(tmp_path / "m")])
    df = pd.concat([df[(df["dataset"] == "b") & (df["seed"] == 1)], df[~((df["dataset"] == "b") & (df["seed"] == 1))]])
    assert sorted(set(aggregate(df)["name"])) == sorted(CONFIGS)


def test_rows_stored_before_a_recipe_key_existed_are_the_same_configuration(df):
    """A recipe key added later is left out of the hash at its neutral value (MethodConfig.NEUTRAL): a row
    that stores it next to one stored before it existed is no other configuration, in names and in the gate."""
    newer = df["dataset"] == "b"
    df = df.assign(method_config=[json.dumps({**json.loads(c), "decay": "cosine", "adam_beta2": 0.999}) if new
                                  else c for c, new in zip(df["method_config"], newer, strict=True)])
    agg = aggregate(df)
    assert sorted(set(agg["name"])) == sorted(CONFIGS)
    changed = agg.assign(group_hash=agg["group_hash"] + "x", limit=0)
    problems = gate(changed[changed["dataset"] == "b"], agg[agg["dataset"] == "a"].assign(dataset="b"), 2.0)
    assert all("decay" not in p and "adam_beta2" not in p for p in problems)


def test_weights_name_a_configuration_by_file_never_by_hash(tmp_path):
    from ...runs_table import frame, paired_rows

    rows = paired_rows("linear", "d1", [50.0, 51.0], weights_sha256="a" * 64, weights_source="file:w/own.safetensors")
    rows += paired_rows("linear", "d1", [40.0, 41.0], weights_sha256="b" * 64, weights_source="file:/x/mine.safetensors",
                        group_hash="g-other")
    # a third identity the stored columns cannot tell apart (e.g. another --img-size): numbered by its first run
    rows += paired_rows("linear", "d1", [30.0, 31.0], weights_sha256="b" * 64, weights_source="file:/x/mine.safetensors",
                        group_hash="g-third", timestamp="2027-01-01T00:00:00Z")
    names = sorted(set(aggregate(frame(tmp_path, rows))["name"]))
    assert names == ["linear (weights mine.safetensors, run set 1)", "linear (weights mine.safetensors, run set 2)",
                     "linear (weights own.safetensors)"]
