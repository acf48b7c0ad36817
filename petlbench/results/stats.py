"""The statistics of ``compare`` and ``report`` (scipy's distributions and bootstrap).

**Paired** (``compare --vs``): a seed fixes the Python, NumPy and torch RNGs and the data order the same way for
every method, so two configurations run on the same (dataset, model, seed) form a *pair*. Differences are taken per
pair, which removes the seed-to-seed variation both share (e.g. a lucky data order). Per task: the mean of the
per-seed differences with a 95% CI from the paired t-test over seeds. Over tasks: the mean of the per-task mean
differences with a 95% t CI over tasks, the sign count ("better on k of n tasks") and a two-sided Wilcoxon
signed-rank p-value over the per-task means. A difference is marked significant only where its 95% CI excludes 0
(the Wilcoxon p is reported next to it, not used for the mark).

**What is real in a ranking** (``rankings``). The published PETL benchmarks rank methods by a mean over tasks. With
three seeds per task that mean moves by points from one draw of seeds to the next, so for each section (a track, and
a model where the track has several) over the configurations that ran on every task this module says:

- the mean over tasks (as the summaries) and the interquartile mean of all task × seed scores (IQM), each with a
  95% confidence interval from a stratified bootstrap: seeds resampled within each task, percentile interval
  (Agarwal et al., NeurIPS 2021, rliable's ``get_interval_estimates``; here ``scipy.stats.bootstrap``);
- for every pair, the probability of improvement P(X > Y): per task the Mann-Whitney U of X's runs against Y's
  over n·m, averaged over tasks (rliable's ``probability_of_improvement``), with a stratified independent bootstrap
  CI;
- a rank test across tasks, which asks whether an order would hold on other tasks: Friedman's test on the
  per-task mean scores and the Nemenyi critical difference of average ranks (Demšar, JMLR 2006), drawn as a
  critical-difference diagram by ``report``;
- for each pair of neighbours in the ranking, the paired difference of their mean over tasks seed by seed (a seed
  fixes the data order for every method) with its t interval, and, where that includes 0, how many seeds a
  paired t-test would need to tell them apart (power 0.8, two-sided 0.05) at the difference and seed-to-seed
  spread observed.

Scores are the stored top-1 / VQA score in % on each task (not normalised). scipy does the statistics; what is
written here (the statistics' vectorised forms, the Nemenyi groups, the seed count) is tested against scipy on the
same inputs (``tests/unit/results/test_ranking.py``). ``results.tables`` shows them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from petlbench.results.aggregate import CONFIG, by_model, named_rows, on_track, tracks_of

LEVEL = 0.95
EXACT_MAX_N = 16  # Wilcoxon: every sign pattern enumerated up to here (2^16), the normal approximation above


def t_ppf(q: float, df: float) -> float:
    """Student-t quantile (inverse CDF)."""
    from scipy.stats import t

    if not 0.0 < q < 1.0 or df <= 0:
        raise ValueError(f"t_ppf needs 0 < q < 1 and df > 0, got q={q}, df={df}")
    return float(t.ppf(q, df))


def t_cdf(x: float, df: float) -> float:
    """Student-t cumulative distribution function."""
    from scipy.stats import t

    return float(t.cdf(x, df))


def mean_ci(values: Sequence[float], level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, low, high): two-sided t interval of the mean; bounds are NaN for fewer than 2 values.

    Zero spread gives a zero-width interval at the mean (every pair moved by the same amount).
    """
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_ppf(0.5 + level / 2.0, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def excludes_zero(low: float, high: float) -> bool:
    """True when a CI lies entirely above or below 0 (NaN bounds never do)."""
    return (low > 0 or high < 0) and not (math.isnan(low) or math.isnan(high))


def wilcoxon_signed_rank(diffs: Sequence[float]) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test of ``diffs`` against 0 (``scipy.stats.wilcoxon``).

    Zero differences are dropped (Wilcoxon's convention). Up to ``EXACT_MAX_N`` non-zero differences the null
    distribution is every sign pattern of the observed mid-ranks (exact, ties included); above, the normal
    approximation with the tie-corrected variance and a continuity correction. NaN when no non-zero difference is
    left.
    """
    import numpy as np
    from scipy.stats import PermutationMethod, wilcoxon

    d = [x for x in diffs if x != 0 and not math.isnan(x)]
    if not d:
        return math.nan
    if len(d) == 1:  # two sign patterns, as extreme as each other (scipy's permutation needs two values)
        return 1.0
    method = PermutationMethod(n_resamples=np.inf) if len(d) <= EXACT_MAX_N else "approx"
    return float(wilcoxon(d, zero_method="wilcox", correction=True, method=method).pvalue)


ALPHA = 0.05
POWER = 0.8
RESAMPLES = 2000  # bootstrap resamples (rliable uses 2,000 to 50,000); at 3 seeds the bounds move by < 0.1 point
SEED = 0  # the bootstrap's generator: the same store gives the same intervals on every machine
SEED_CAP = 1000  # seed counts searched for a close pair; beyond it: "more than 1,000"


@dataclass
class Ranking:
    """One section's ranking: ``table`` (best mean first: name, mean, IQM with CIs, average rank), ``poi`` /
    ``poi_low`` / ``poi_high`` (k × k, row beats column), the rank test, ``groups`` (configurations the Nemenyi
    test cannot separate: runs of the ranking by average rank), ``neighbours`` (each step of the ranking) and the
    ``partial`` configurations left out ('name: k of n tasks')."""

    track: str
    model: str
    tasks: list[str]
    seeds: int
    table: Any  # pandas.DataFrame
    poi: Any
    poi_low: Any
    poi_high: Any
    friedman_p: float
    friedman_stat: float
    cd: float
    groups: list[list[str]]
    neighbours: Any
    partial: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- statistics


def mean_of_tasks(*tasks, axis: int = -1):
    """The mean over tasks of each task's mean over its seeds (the summaries' "mean of tasks")."""
    import numpy as np

    return np.mean([np.mean(t, axis=axis) for t in tasks], axis=0)


def iqm(*tasks, axis: int = -1):
    """The interquartile mean of every task × seed score (rliable's ``aggregate_iqm``)."""
    import numpy as np
    from scipy.stats import trim_mean

    return trim_mean(np.concatenate(tasks, axis=axis), 0.25, axis=axis)


def improvement(*samples, axis: int = -1):
    """P(X > Y) (ties count half): per task U / (n·m) of X's runs against Y's, averaged over tasks. ``samples``
    are X's per-task runs then Y's, each with the runs along ``axis`` (bootstrap resamples along the others)."""
    import numpy as np

    half = len(samples) // 2
    per_task = []
    for x, y in zip(samples[:half], samples[half:], strict=True):
        x, y = np.moveaxis(x, axis, -1)[..., :, None], np.moveaxis(y, axis, -1)[..., None, :]
        per_task.append(np.mean((x > y) + 0.5 * (x == y), axis=(-2, -1)))
    return np.mean(per_task, axis=0)


def interval(samples: list, statistic, resamples: int = RESAMPLES) -> tuple[float, float, float]:
    """(statistic, low, high): the 95% percentile interval of a stratified bootstrap, each sample resampled
    apart (``scipy.stats.bootstrap``, not paired); no interval (NaN) when a sample has a single run."""
    import numpy as np
    from scipy.stats import bootstrap

    point = float(statistic(*samples, axis=-1))
    if min(len(s) for s in samples) < 2:
        return point, math.nan, math.nan
    with warnings.catch_warnings():  # equal runs everywhere: a zero-width interval is the right answer
        warnings.simplefilter("ignore")
        ci = bootstrap(samples, statistic, n_resamples=resamples, vectorized=True, paired=False, axis=-1,
                       confidence_level=LEVEL, method="percentile", rng=np.random.default_rng(SEED))
    return point, float(ci.confidence_interval.low), float(ci.confidence_interval.high)


def rank_test(means) -> tuple[Any, float, float, float]:
    """Average ranks (1 = best) of the configurations (columns) over tasks (rows of ``means``), Friedman's χ² and
    p (NaN under 3 configurations) and the Nemenyi critical difference at ``ALPHA`` (Demšar 2006:
    q_α·sqrt(k(k+1)/6N), q_α the studentized range quantile for k groups over √2)."""
    import numpy as np
    from scipy import stats

    n, k = means.shape
    ranks = np.vstack([stats.rankdata(-row) for row in means]).mean(axis=0)
    stat, p = stats.friedmanchisquare(*means.T) if k >= 3 else (math.nan, math.nan)
    q = stats.studentized_range.ppf(1 - ALPHA, k, np.inf) / math.sqrt(2)
    return ranks, float(stat), float(p), float(q * math.sqrt(k * (k + 1) / (6 * n)))


def nemenyi_groups(names: list[str], ranks, cd: float) -> list[list[str]]:
    """The maximal runs of configurations (in average-rank order) whose ranks lie within ``cd`` of each other: the
    bars of a critical-difference diagram. A configuration in no run of two is separated from all others."""
    order = sorted(range(len(names)), key=lambda i: ranks[i])
    groups, reach = [], -1
    for a, i in enumerate(order):
        last = max(b for b in range(a, len(order)) if ranks[order[b]] - ranks[i] <= cd)
        if last > a and last > reach:
            groups.append([names[order[b]] for b in range(a, last + 1)])
            reach = last
    return groups


def seeds_needed(effect: float, cap: int = SEED_CAP) -> int | None:
    """The fewest seeds (≥ 2) at which a two-sided paired t-test at ``ALPHA`` detects a standardised difference
    ``effect`` (mean / sd of the per-seed differences) with probability ``POWER``: the noncentral t power.
    None when no count up to ``cap`` does (or the difference is 0)."""
    import numpy as np
    from scipy import stats

    if not effect or not math.isfinite(effect):
        return None
    n = np.arange(2, cap + 1)
    crit = stats.t.ppf(1 - ALPHA / 2, n - 1)
    nc = abs(effect) * np.sqrt(n)
    power = stats.nct.sf(crit, n - 1, nc) + stats.nct.cdf(-crit, n - 1, nc)
    hit = np.nonzero(power >= POWER)[0]
    return int(n[hit[0]]) if len(hit) else None


# ----------------------------------------------------------------------------- the sections


def rankings(df, agg) -> list[Ranking]:
    """One ``Ranking`` per section (track, and model where a track has several) with 2 tasks or more and at
    least 2 configurations that ran on every task."""
    runs = named_rows(df, agg)
    out = []
    for track in tracks_of(agg):
        whole = on_track(agg, track)
        if whole["dataset"].nunique() < 2:
            continue
        for model, g in by_model(whole):
            done = g[g["tasks"] == g["tasks_total"]]
            if done.groupby(CONFIG).ngroups >= 2:
                partial = sorted({f"{r.name}: {r.tasks} of {r.tasks_total} tasks" for r in g.itertuples()
                                  if r.tasks < r.tasks_total})
                out.append(_rank(track, model, done, runs[runs["track"] == track] if "track" in runs else runs,
                                 partial))
    return out


def _scores(done, runs) -> tuple[list[str], list[str], dict[str, dict[str, dict[int, float]]]]:
    """Tasks, names and name -> task -> seed -> score of a section's complete configurations."""
    tasks = sorted(set(done["dataset"]))
    names = list(dict.fromkeys(done["name"]))
    keep = runs[runs["name"].isin(names) & runs["model"].isin(set(done["model"])) & runs["dataset"].isin(tasks)]
    scores: dict[str, dict[str, dict[int, float]]] = {n: {t: {} for t in tasks} for n in names}
    for (name, task, seed), g in keep.groupby(["name", "dataset", "seed"]):
        scores[name][task][int(seed)] = float(g["top1_pct"].mean())
    return tasks, names, scores


def _rank(track: str, model: str, done, runs, partial: list[str]) -> Ranking:
    import numpy as np
    import pandas as pd

    tasks, names, scores = _scores(done, runs)
    arrays = {n: [np.array(list(scores[n][t].values())) for t in tasks] for n in names}
    rows = []
    for n in names:
        mean, mlo, mhi = interval(arrays[n], mean_of_tasks)
        q, qlo, qhi = interval(arrays[n], iqm)
        rows.append({"name": n, "mean": mean, "mean_low": mlo, "mean_high": mhi, "iqm": q, "iqm_low": qlo,
                     "iqm_high": qhi})
    table = pd.DataFrame(rows)
    ranks, stat, p, cd = rank_test(np.array([[np.mean(arrays[n][i]) for n in names] for i in range(len(tasks))]))
    table = table.assign(avg_rank=ranks).sort_values(["mean", "avg_rank"], ascending=[False, True], kind="stable",
                                                     ignore_index=True)
    order = list(table["name"])
    poi, low, high = _poi(order, arrays)
    groups = nemenyi_groups(list(table["name"]), list(table["avg_rank"]), cd)
    seeds = min(len(s) for n in names for s in scores[n].values())
    return Ranking(track, model, tasks, seeds, table, poi, low, high, p, stat, cd, groups,
                   _neighbours(order, scores, tasks, dict(zip(table["name"], table["avg_rank"], strict=True)), cd),
                   partial)


def _poi(order: list[str], arrays) -> tuple[Any, Any, Any]:
    """P(row beats column) for every pair, with its CI (computed once per pair: the reverse is 1 − it)."""
    import pandas as pd

    poi, low, high = (pd.DataFrame(0.5, index=order, columns=order) for _ in range(3))
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            p, lo, hi = interval(arrays[a] + arrays[b], improvement)
            poi.loc[a, b], low.loc[a, b], high.loc[a, b] = p, lo, hi
            poi.loc[b, a], low.loc[b, a], high.loc[b, a] = 1 - p, 1 - hi, 1 - lo
    return poi, low, high


def _neighbours(order: list[str], scores, tasks: list[str], ranks: dict[str, float], cd: float):
    """Each step of the ranking (a above b): the paired difference of their mean over tasks seed by seed (seeds
    both ran on every task), its 95% t interval, whether the rank test separates them across tasks, and the seeds
    a paired t-test would need where the interval includes 0."""
    import pandas as pd

    rows = []
    for a, b in zip(order, order[1:], strict=False):
        shared = sorted(set.intersection(*[set(scores[n][t]) for n in (a, b) for t in tasks]))
        diffs = [sum(scores[a][t][s] - scores[b][t][s] for t in tasks) / len(tasks) for s in shared]
        mean, low, high = mean_ci(diffs)
        real = excludes_zero(low, high)
        sd = pd.Series(diffs).std(ddof=1) if len(diffs) > 1 else math.nan
        rows.append({"upper": a, "lower": b, "diff": mean, "low": low, "high": high, "n": len(diffs),
                     "separated": real, "across_tasks": abs(ranks[a] - ranks[b]) > cd,
                     "seeds_needed": None if real or not sd else seeds_needed(mean / sd)})
    return pd.DataFrame(rows, columns=["upper", "lower", "diff", "low", "high", "n", "separated", "across_tasks",
                                       "seeds_needed"])
