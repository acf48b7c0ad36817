"""Paired statistics: t quantiles, CIs, Wilcoxon, pairing on seeds, summaries, ties in the ranking."""

from __future__ import annotations

import math

import pytest

from petlbench.errors import UserError
from petlbench.results.paired import (
    paired_markdown,
    paired_vs,
    paired_vs_model,
    parse_config,
    rank_with_ties,
    tie_ranks,
)
from petlbench.results.stats import mean_ci, t_cdf, t_ppf, wilcoxon_signed_rank

from ...runs_table import frame, paired_rows, write_runs

# Student-t 0.975 quantiles for 1..15 degrees of freedom, as printed in statistical tables (3 decimals)
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131]


@pytest.mark.parametrize("df", range(1, len(T975) + 1))
def test_t_quantile_matches_the_printed_table(df):
    assert t_ppf(0.975, df) == pytest.approx(T975[df - 1], abs=6e-4)


def test_t_quantile_beyond_the_table_and_the_cdf():
    assert t_ppf(0.975, 60) == pytest.approx(2.000, abs=6e-4)
    assert t_ppf(0.975, 120) == pytest.approx(1.980, abs=6e-4)
    assert t_ppf(0.995, 5) == pytest.approx(4.032, abs=6e-4)
    assert t_ppf(0.025, 4) == pytest.approx(-t_ppf(0.975, 4))
    assert t_cdf(0.0, 3) == pytest.approx(0.5)
    assert t_cdf(1.0, 1) == pytest.approx(0.75)  # Cauchy: 1/2 + atan(1)/pi


def test_mean_ci_by_hand():
    # diffs 1, 2, 4: mean 7/3, sd sqrt(7/3), half width t(0.975, 2) * sd / sqrt(3)
    mean, low, high = mean_ci([1.0, 2.0, 4.0])
    half = 4.302653 * math.sqrt(7 / 3) / math.sqrt(3)
    assert mean == pytest.approx(7 / 3)
    assert (low, high) == (pytest.approx(7 / 3 - half, abs=1e-5), pytest.approx(7 / 3 + half, abs=1e-5))
    assert mean_ci([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)  # constant differences: zero width
    m, lo, hi = mean_ci([5.0])
    assert m == 5.0 and math.isnan(lo) and math.isnan(hi)


def test_wilcoxon_exact_values():
    assert wilcoxon_signed_rank([1, 2, 3, 4, 5]) == pytest.approx(2 / 32)  # all positive: 2 * 1/2^5
    assert wilcoxon_signed_rank([1, 2, 3, 4, 5, 6]) == pytest.approx(2 / 64)
    assert wilcoxon_signed_rank([0, 1, 2, 3]) == pytest.approx(2 / 8)  # zeros dropped
    assert wilcoxon_signed_rank([-1, 1, -2, 2]) == pytest.approx(1.0)  # symmetric
    # ties: |d| all equal -> doubled ranks 4, 4, 4; W+ = 8 of sums {0:1, 4:3, 8:3, 12:1}/8 -> 2 * 4/8
    assert wilcoxon_signed_rank([1, 1, -1]) == pytest.approx(1.0)
    # n = 6, signs + - + - + - on ranks 1..6: W+ = 9; P(W+ <= 9) = 27/64 -> p = 54/64
    assert wilcoxon_signed_rank([1, -2, 3, -4, 5, -6]) == pytest.approx(54 / 64)
    assert math.isnan(wilcoxon_signed_rank([0.0, 0.0]))
    assert wilcoxon_signed_rank(list(range(1, 80))) < 1e-10  # normal approximation branch


def test_constant_paired_differences_are_significant(tmp_path):
    base = [50.0, 60.0, 55.0]
    df = frame(tmp_path, paired_rows("linear", "d1", base) + paired_rows("lora", "d1", [b + 2 for b in base]))
    p = paired_vs(df, "linear")
    (row,) = p.per_task.itertuples()
    assert row.n == 3 and row.diffs == [2.0, 2.0, 2.0]
    assert row.mean_diff == pytest.approx(2.0) and row.ci_low == pytest.approx(2.0) and row.significant
    # unpaired, the seed spread (std 5) would swamp the +2: pairing is what makes it visible
    assert mean_ci([b + 2 for b in base])[1] < mean_ci(base)[2]


def test_symmetric_differences_are_not_significant(tmp_path):
    base = [50.0, 50.0, 50.0, 50.0]
    df = frame(tmp_path, paired_rows("linear", "d1", base) + paired_rows("vpt", "d1", [51.0, 49.0, 52.0, 48.0]))
    (row,) = paired_vs(df, "linear").per_task.itertuples()
    assert row.mean_diff == pytest.approx(0.0) and row.ci_low < 0 < row.ci_high and not row.significant


def test_pairs_match_on_seed_and_skip_failed_runs(tmp_path):
    rows = paired_rows("linear", "d1", [50.0, 51.0, 52.0])
    rows += [{"method": "full", "dataset": "d1", "seed": s, "top1_pct": v} for s, v in ((1, 61.0), (2, 64.0), (3, 99.0))]
    rows.append({"method": "full", "dataset": "d1", "seed": 0, "top1_pct": 0.0, "status": "failed"})
    (row,) = paired_vs(frame(tmp_path, rows), "linear").per_task.itertuples()
    assert row.seeds == [1, 2] and row.diffs == [10.0, 12.0]  # seed 3 has no partner, seed 0 failed


def test_summary_over_tasks_by_hand(tmp_path):
    rows = []
    for task, delta in (("d1", 1.0), ("d2", 2.0), ("d3", 3.0)):
        rows += paired_rows("linear", task, [40.0, 41.0]) + paired_rows("apt", task, [40.0 + delta, 41.0 + delta])
    (s,) = paired_vs(frame(tmp_path, rows), "linear").summary.itertuples()
    half = 4.302653 * 1.0 / math.sqrt(3)  # task means 1, 2, 3: sd 1
    assert (s.tasks, s.better, s.worse) == (3, 3, 0)
    assert s.mean_diff == pytest.approx(2.0) and s.ci_low == pytest.approx(2.0 - half, abs=1e-5)
    assert s.wilcoxon_p == pytest.approx(0.25)
    assert not s.significant  # better on 3 of 3, yet with 3 tasks the CI [-0.48, 4.48] still includes 0


def test_baseline_with_label_and_unknown_baseline(tmp_path):
    rows = paired_rows("linear", "d1", [20.0, 21.0], label="random-init") + paired_rows("linear", "d1", [50.0, 52.0])
    df = frame(tmp_path, rows)
    assert parse_config("linear [random-init]") == ("linear", "random-init", "") == parse_config("linear[random-init]")
    assert parse_config("lion† [x] (lr 0.05)") == ("lion", "x", "lr 0.05")
    (row,) = paired_vs(df, "linear [random-init]").per_task.itertuples()
    assert (row.method, row.label, row.diffs) == ("linear", "", [30.0, 31.0])
    with pytest.raises(UserError, match="did you mean 'linear'"):
        paired_vs(df, "lineer")


def test_rank_with_ties_leader_and_neighbour_rules():
    # 0~1 and 1~2 but 0 vs 2 is clear: the leader rule splits, the neighbour rule chains
    same = {(0, 1): True, (1, 2): True, (0, 2): False}
    assert rank_with_ties(3, lambda i, j: same[(i, j)]) == ["1=", "1=", "3"]
    assert rank_with_ties(3, lambda i, j: same[(i, j)], rule="neighbour") == ["1=", "1=", "1="]
    assert rank_with_ties(4, lambda i, j: False) == ["1", "2", "3", "4"]
    assert rank_with_ties(4, lambda i, j: (i, j) == (1, 2)) == ["1", "2=", "2=", "4"]
    with pytest.raises(ValueError):
        rank_with_ties(2, lambda i, j: True, rule="transitive")


def test_tie_ranks_on_results(tmp_path):
    rows = paired_rows("a", "d1", [80.0, 81.0, 82.0]) + paired_rows("b", "d1", [70.0, 71.5, 71.0])
    rows += paired_rows("c", "d1", [70.5, 71.0, 71.2]) + paired_rows("d", "d1", [60.0, 60.0])
    ranks = tie_ranks(frame(tmp_path, rows))
    got = {k[1]: v for k, v in ranks.items()}
    assert got == {"a": (0, "1"), "c": (1, "2="), "b": (2, "2="), "d": (3, "4")}


def test_compare_vs_cli(cli, tmp_path):
    rows = []
    for task in ("d1", "d2"):
        rows += paired_rows("linear", task, [50.0, 52.0, 51.0]) + paired_rows("lora", task, [55.0, 57.5, 56.0])
        rows += paired_rows("vpt", task, [50.5, 51.0, 52.0])
    path = write_runs(tmp_path, rows)
    code, out, err = cli("compare", str(path), "--vs", "linear")
    assert code == 0, err
    assert "Δ vs linear" in out and "baseline" in out and "better" in out and "CI ∋ 0" in out
    assert "better on" in out and "2 of 2" in out and "Wilcoxon" in out
    assert "2=" in out  # vpt and linear cannot be told apart
    code, out, err = cli("compare", str(path), "--vs", "nope")
    assert code == 2 and "no successful runs of baseline 'nope'" in err and len(err.strip().splitlines()) == 1
    code, out, err = cli("compare", str(path), "--vs", "linear", "--markdown")
    assert code == 0, err
    assert "| lora | +5.17 [+4.45, +5.88] (3) | +5.17 [+4.45, +5.88] (3) |" in out and "| vpt |" in out


def test_compare_vs_model_cli(cli, tmp_path):
    rows = paired_rows("full", "d1", [40.0, 42.0, 41.0], model="pair") + paired_rows("full", "d1", [45.0, 46.0, 49.0],
                                                                                        model="vlp")
    path = write_runs(tmp_path, rows)
    code, out, err = cli("compare", str(path), "--vs-model", "pair")
    assert code == 0, err
    # one section for the other model, its rows only (the baseline model's are what they pair with)
    assert "the same method on pair" in out and "· model vlp" in out and "+5.67" in out
    assert "· model pair" not in out
    code, out, err = cli("compare", str(path), "--vs-model", "pair", "--markdown")
    assert code == 0 and "on vlp vs the same method on pair" in out and "| full | +5.67 [+0.50, +10.84] (3) |" in out
    code, _, err = cli("compare", str(path), "--vs-model", "pair", "--vs", "full")
    assert code == 2 and "pass one" in err and len(err.strip().splitlines()) == 1


def test_vs_model_pairs_each_method_with_itself_on_the_baseline_model(tmp_path):
    rows = (paired_rows("full", "d1", [40.0, 42.0, 41.0], model="pair")
            + paired_rows("full", "d1", [45.0, 46.0, 49.0], model="vlp")
            + paired_rows("lora", "d1", [30.0, 31.0, 32.0], model="pair")
            + paired_rows("lora", "d1", [29.0, 30.0, 31.0], model="vlp")
            + paired_rows("full", "d1", [20.0, 20.0, 20.0], model="vlp", label="random-init"))
    p = paired_vs_model(frame(tmp_path, rows), "pair")
    got = {(r.method, r.model): r.diffs for r in p.per_task.itertuples()}
    assert got == {("full", "vlp"): [5.0, 4.0, 8.0], ("lora", "vlp"): [-1.0, -1.0, -1.0]}  # no pair [random-init]
    assert p.baseline_name == "the same method on pair" and p.is_baseline("lora", "", "pair", "")
    text = paired_markdown(p)
    assert "| full | +5.67 [+0.50, +10.84] (3) |" in text and "| lora | -1.00 [-1.00, -1.00] (3) |" in text
    with pytest.raises(UserError, match="no successful runs on model 'pari'.*did you mean 'pair'"):
        paired_vs_model(frame(tmp_path, rows), "pari")
