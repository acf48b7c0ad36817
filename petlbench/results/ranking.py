"""What is real in a ranking over tasks and seeds (``compare``'s and ``report``'s "what is real" tables).

The published PETL benchmarks rank methods by a mean over tasks. With three seeds per task that mean moves by
points from one draw of seeds to the next, so for each section (a track, and a model where the track has several)
over the configurations that ran on every task this module says:

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
written here (the statistics' vectorised forms, the Nemenyi groups, the seed count) is tested against scipy's
own tests on the same inputs (``tests/unit/results/test_ranking.py``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

from petlbench.results.aggregate import CONFIG, by_model, on_track, tracks_of
from petlbench.results.stats import excludes_zero, mean_ci

LEVEL = 0.95
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
    from petlbench.results.paired import named_rows

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


# ----------------------------------------------------------------------------- views


def letters(r: Ranking) -> dict[str, str]:
    """A compact letter display of the Nemenyi groups: two configurations that share a letter are not separated
    across tasks; a configuration separated from every other has a letter of its own."""
    import string

    alone = [[n] for n in r.table.sort_values("avg_rank", kind="stable")["name"]
             if not any(n in g for g in r.groups)]
    runs = sorted(r.groups + alone, key=lambda g: min(r.table.set_index("name").loc[g, "avg_rank"]))
    marks = string.ascii_lowercase + string.ascii_uppercase
    return {n: "".join(marks[i % len(marks)] for i, g in enumerate(runs) if n in g) for n in r.table["name"]}


def _ci_text(value: float, low: float, high: float, nd: int = 1) -> str:
    return f"{value:.{nd}f}" + ("" if math.isnan(low) else f" [{low:.{nd}f}, {high:.{nd}f}]")


def _p(p: float) -> str:
    return "–" if math.isnan(p) else f"{p:.3f}" if p >= 0.001 else f"{p:.0e}"


def rank_rows(r: Ranking) -> list[list[str]]:
    """Rows (header first) of the ranking table: #, configuration, mean and IQM with their CIs, average rank and
    the rank test's letters."""
    cld = letters(r)
    head = ["#", "configuration", "mean % [95% CI]", "IQM % [95% CI]", "avg rank", "rank test group"]
    return [head] + [[str(i), t.name, _ci_text(t.mean, t.mean_low, t.mean_high),
                      _ci_text(t.iqm, t.iqm_low, t.iqm_high), f"{t.avg_rank:.2f}", cld[t.name]]
                     for i, t in enumerate(r.table.itertuples(), 1)]


def poi_rows(r: Ranking, strong: tuple[str, str] = ("**", "**")) -> list[list[str]]:
    """Rows (header first) of P(row beats column) in %, the ones whose CI excludes 50 wrapped in ``strong``."""
    names = list(r.table["name"])
    rows = [["#", "configuration", *[str(i) for i in range(1, len(names) + 1)]]]
    for i, a in enumerate(names, 1):
        cells = []
        for b in names:
            lo, hi = r.poi_low.loc[a, b], r.poi_high.loc[a, b]
            text = f"{100 * r.poi.loc[a, b]:.0f}"
            cells.append("·" if a == b else f"{strong[0]}{text}{strong[1]}" if lo > 0.5 or hi < 0.5 else text)
        rows.append([str(i), a, *cells])
    return rows


def step_rows(r: Ranking) -> list[list[str]]:
    """Rows (header first) of the steps down the ranking: the paired difference and the seeds to tell it."""
    rows = [["step", "Δ mean (points)", "95% CI (paired over seeds)", "seeds to tell apart"]]
    for s in r.neighbours.itertuples():
        rows.append([f"{s.upper} > {s.lower}", f"{s.diff:+.2f}",
                     "–" if math.isnan(s.low) else f"[{s.low:+.2f}, {s.high:+.2f}] ({s.n})", _seeds(s)])
    return rows


def _seeds(s) -> str:
    if s.separated:
        return f"told apart at {s.n}"
    if s.n < 2:
        return "1 seed: no spread to judge"
    need = s.seeds_needed
    if need is None or (isinstance(need, float) and math.isnan(need)):
        return "no difference" if s.diff == 0 else f"more than {SEED_CAP:,}"
    return f"about {int(need)}"


def rank_caption(r: Ranking) -> str:
    """What the ranking's numbers are and what the rank test found."""
    k, n = len(r.table), len(r.tasks)
    test = (f"Friedman χ²({k - 1}) = {r.friedman_stat:.1f}, p = {_p(r.friedman_p)}: "
            + ("the ranks differ across tasks" if r.friedman_p < ALPHA else f"no rank difference across these {n} "
               "tasks is significant") if not math.isnan(r.friedman_p) else "no Friedman test under 3 configurations")
    return (f"{k} configurations on all {n} tasks, {r.seeds} seeds or more each. CIs: stratified bootstrap "
            f"(seeds resampled within each task, percentile, {RESAMPLES:,} resamples); IQM: mean of the middle 50% of "
            f"all task × seed scores. {test}; Nemenyi critical difference {r.cd:.2f} average ranks (α {ALPHA}): "
            "configurations sharing a letter are not separated across tasks."
            + (f" Not ranked: {'; '.join(r.partial)}." if r.partial else ""))


POI_NOTE = ("P(row beats column) in %: per task the share of (row run, column run) pairs where the row scores higher (ties "
            "count half), averaged over tasks (rliable's probability of improvement); marked where its 95% "
            "stratified-bootstrap CI excludes 50.")
STEP_NOTE = (f"Each step down the ranking: the two configurations' mean over tasks, paired seed by seed. Where its "
             f"CI includes 0, the seeds a paired t-test (two-sided {ALPHA}) needs to tell them apart with "
             f"{POWER:.0%} power at the difference and seed-to-seed spread observed: more seeds settle the order on "
             "these tasks; whether it holds on other tasks is the rank test's question.")


def section_title(r: Ranking) -> str:
    where = "vision track" if r.track == "vision" else f"{r.track} track"
    return f"What is real: {where}{f' · model {r.model}' if r.model else ''}, {len(r.tasks)} tasks"


def ranking_tables(r: Ranking, width: int | None = None) -> list:
    """The Rich tables of one section: the ranking, P(row > column) and the steps."""
    from rich.markup import escape

    from petlbench.results.tables import Col, fitted

    rank, poi, steps = rank_rows(r), poi_rows(r, ("[bold]", "[/]")), step_rows(r)
    esc = [[escape(c) for c in row] for row in rank[1:]]
    cols = [Col("#"), Col("configuration", 0, "left", True), Col(rank[0][2]), Col(rank[0][3], 1), Col("avg rank", 2),
            Col("rank test group", 0, "left")]
    poi_cols = [Col("#"), Col(poi[0][1], 0, "left", True), *[Col(h) for h in poi[0][2:]]]
    step_cols = [Col("step", 0, "left", True), Col(steps[0][1]), Col(steps[0][2], 1), Col(steps[0][3], 0, "left")]
    return [fitted(escape(section_title(r)), cols, esc, width, escape(rank_caption(r))),
            fitted("", poi_cols, [[row[0], escape(row[1]), *row[2:]] for row in poi[1:]], width, escape(POI_NOTE),
                   compact=True),
            fitted("", step_cols, [[escape(row[0]), *row[1:]] for row in steps[1:]], width, escape(STEP_NOTE))]


def _md(rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return "\n".join(out + ["| " + " | ".join(r) + " |" for r in rows[1:]])


def ranking_markdown(r: Ranking) -> str:
    """The section as Markdown (the report's and docs/results.md's): the three tables with their notes."""
    return "\n\n".join([f"**{section_title(r)}**", _md(rank_rows(r)), rank_caption(r), _md(poi_rows(r)), POI_NOTE,
                        _md(step_rows(r)), STEP_NOTE])


def headline(r: Ranking) -> str:
    """One paragraph of what is real in a ranking (the README's and docs/results.md's results sentence)."""
    top, others = r.table.iloc[0], list(r.table["name"].iloc[1:])
    beats = [b for b in others if r.poi_low.loc[top["name"], b] > 0.5]
    steps = r.neighbours
    close = steps[~steps["separated"]]
    seeds = ", ".join(f"{s.upper} > {s.lower} {_seeds(s).removeprefix('about ')}" for s in close.itertuples())
    beat = ("every other configuration" if len(beats) == len(others) else
            f"{len(beats)} of the {len(others)} others")
    return (f"Over the {len(r.tasks)} tasks × {r.seeds} seeds, {top['name']} ranks first (mean "
            f"{_ci_text(top['mean'], top['mean_low'], top['mean_high'])}, IQM {top['iqm']:.1f}) and beats {beat} with "
            f"a probability of improvement whose 95% CI excludes 50%. Of the {len(steps)} steps down the ranking, "
            f"{int(steps['separated'].sum())} are told apart at {r.seeds} seeds"
            + (f"; the others would take, at the spread observed, this many seeds: {seeds}" if len(close) else "")
            + f". Across tasks (Friedman p = {_p(r.friedman_p)}) the Nemenyi test separates only configurations more "
            f"than {r.cd:.2f} average ranks apart: a new task could reorder any two that share a rank-test group.")
