"""What is real in a ranking (``results.stats.rankings``, shown by ``results.tables``): each statistic against scipy (or the published table it comes
from) on the same inputs, the sections on a hand-made store, and the committed docs sentence and tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from petlbench.results import stats as ranking
from petlbench.results import tables
from petlbench.results.aggregate import aggregate
from petlbench.results.store import load_frame

from ...runs_table import frame, paired_rows
from ...sweeps import BENCH

RNG = np.random.default_rng(7)
# tasks × runs of two configurations, with ties (scores on a 0.5 grid, as top-1 on 200 test images)
X = [np.round(RNG.normal(60 + t, 2, 3) * 2) / 2 for t in range(5)]
Y = [np.round(RNG.normal(59 + t, 2, 4) * 2) / 2 for t in range(5)]


def test_probability_of_improvement_is_rliables_mann_whitney_average():
    # rliable.metrics.probability_of_improvement: per task U(x > y) / (n m) from scipy's Mann-Whitney, averaged
    want = np.mean([stats.mannwhitneyu(x, y, alternative="greater").statistic / (len(x) * len(y))
                    for x, y in zip(X, Y, strict=True)])
    assert ranking.improvement(*X, *Y) == pytest.approx(want)
    assert ranking.improvement(*Y, *X) == pytest.approx(1 - want)
    assert ranking.improvement(*X, *X) == pytest.approx(0.5)  # rliable: equal runs -> 0.5
    # vectorised over bootstrap resamples (leading axes) as scipy.stats.bootstrap calls it
    stacked = ranking.improvement(*[np.stack([x, x[::-1]]) for x in X], *[np.stack([y, y]) for y in Y])
    assert stacked == pytest.approx([want, want])


def test_aggregates_are_scipys_trimmed_mean_and_the_mean_of_task_means():
    assert ranking.iqm(*X) == pytest.approx(stats.trim_mean(np.concatenate(X), 0.25))
    assert ranking.mean_of_tasks(*Y) == pytest.approx(np.mean([y.mean() for y in Y]))


def test_the_bootstrap_is_stratified_by_task():
    # every task's runs equal: resampling seeds within a task cannot move the mean, an unstratified bootstrap would
    const = [np.full(3, 40.0), np.full(3, 60.0)]
    assert ranking.interval(const, ranking.mean_of_tasks) == (50.0, 50.0, 50.0)
    mean, low, high = ranking.interval(X, ranking.mean_of_tasks)
    assert low < mean < high and high - low < 4 * np.std(np.concatenate(X))
    assert math.isnan(ranking.interval([np.array([1.0]), np.array([2.0, 3.0])], ranking.iqm)[1])  # one run: no CI


def test_critical_difference_is_demsars():
    # Demšar (JMLR 2006) Table 5(a), q_0.05 for k = 2..10, and his example: 4 classifiers on 14 data sets, CD 1.25
    q = [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]
    for k, want in enumerate(q, start=2):
        means = RNG.normal(size=(14, k))
        cd = ranking.rank_test(means)[3]
        assert cd / math.sqrt(k * (k + 1) / (6 * 14)) == pytest.approx(want, abs=2e-3)
    assert ranking.rank_test(RNG.normal(size=(14, 4)))[3] == pytest.approx(1.25, abs=5e-3)


def test_average_ranks_and_friedman_are_scipys():
    means = np.array([[80, 70, 60], [75, 76, 50], [90, 85, 88], [60, 61, 59]], dtype=float)
    ranks, stat, p, _ = ranking.rank_test(means)
    assert list(ranks) == pytest.approx([1.5, 1.75, 2.75])  # 1 = best; by hand: (1+2+1+2)/4, (2+1+3+1)/4, ...
    want = stats.friedmanchisquare(*means.T)
    assert (stat, p) == (pytest.approx(want.statistic), pytest.approx(want.pvalue))


def test_nemenyi_groups_and_letters():
    names, ranks = ["a", "b", "c", "d"], [1.0, 2.0, 3.0, 4.5]
    assert ranking.nemenyi_groups(names, ranks, 1.0) == [["a", "b"], ["b", "c"]]  # d separated from all
    assert ranking.nemenyi_groups(names, ranks, 3.5) == [["a", "b", "c", "d"]]
    assert ranking.nemenyi_groups(names, ranks, 0.5) == []
    r = ranking.Ranking("vision", "", ["t"] * 5, 3, pd.DataFrame({"name": names, "avg_rank": ranks}), None, None, None,
                        math.nan, math.nan, 1.0, ranking.nemenyi_groups(names, ranks, 1.0), None)
    assert tables.letters(r) == {"a": "a", "b": "ab", "c": "b", "d": "c"}  # sharing a letter: not separated


def test_seeds_needed_reaches_the_power_of_scipys_paired_t_test():
    """The seed count at which a paired t-test (scipy.stats.ttest_rel) detects the effect 80% of the time, in a
    simulation on the same inputs; one seed fewer does not. G*Power gives 34 (d = 0.5) and 15 (d = 0.8)."""
    rng = np.random.default_rng(0)
    for effect, want in ((0.5, 34), (0.8, 15)):
        n = ranking.seeds_needed(effect)
        assert n == want
        for seeds, hit in ((n, True), (n - 1, False)):
            diffs = rng.normal(loc=effect, size=(40_000, seeds))  # per-seed differences, `effect` sds from 0
            p = stats.ttest_rel(diffs, np.zeros_like(diffs), axis=1).pvalue
            assert (np.mean(p < 0.05) >= 0.8) == hit, (effect, seeds, np.mean(p < 0.05))
    assert ranking.seeds_needed(0.0) is None and ranking.seeds_needed(0.01) is None  # beyond the cap


def _store(tmp_path):
    rows = []
    for task, shift in (("t1", 0.0), ("t2", 10.0), ("t3", 5.0)):
        rows += paired_rows("full", task, [70 + shift, 72 + shift, 71 + shift])
        rows += paired_rows("lora", task, [69 + shift, 72 + shift, 70 + shift])
        rows += paired_rows("linear", task, [50 + shift, 51 + shift, 50 + shift])
    rows += paired_rows("vpt", "t1", [90.0, 91.0, 92.0])  # one task of three: never ranked
    return frame(tmp_path, rows)


def test_sections_rank_complete_configurations_and_set_partial_ones_apart(tmp_path):
    df = _store(tmp_path)
    (r,) = ranking.rankings(df, aggregate(df))
    assert list(r.table["name"]) == ["full", "lora", "linear"] and r.partial == ["vpt: 1 of 3 tasks"]
    full_lora, lora_linear = r.neighbours.itertuples()
    assert full_lora.diff == pytest.approx(2 / 3) and not full_lora.separated and full_lora.seeds_needed > 3
    assert lora_linear.separated and pd.isna(lora_linear.seeds_needed)
    assert r.poi.loc["full", "linear"] == 1.0 and r.poi.loc["linear", "full"] == 0.0
    # ranks 1, 2, 3 on every task; the critical difference at 3 tasks is 1.91 ranks: only full and linear separate
    assert r.cd == pytest.approx(2.343 * math.sqrt(12 / 18), abs=1e-3)
    assert tables.letters(r) == {"full": "a", "lora": "ab", "linear": "b"}
    text = tables.ranking_markdown(r)
    assert "| 1 | full |" in text and "Not ranked: vpt: 1 of 3 tasks." in text and "told apart at 3" in text


def test_compare_prints_the_ranking_whenever_a_store_holds_several_tasks(cli, tmp_path):
    _store(tmp_path)
    code, out, err = cli("compare", tmp_path)
    assert code == 0, err
    assert "What is real: vision track, 3 tasks" in out and "seeds to tell apart" in out


def test_the_docs_ranking_and_the_readme_sentence_are_what_the_committed_sweep_gives():
    df = load_frame([BENCH / "reference" / "mini-vtab.csv"])
    (r,) = ranking.rankings(df, aggregate(df))
    docs = (BENCH.parent / "docs" / "results.md").read_text()
    assert tables.ranking_markdown(r) in docs and tables.headline(r) in docs
    assert tables.headline(r) in " ".join((BENCH.parent / "README.md").read_text().split())
