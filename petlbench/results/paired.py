"""Paired comparisons of configurations over seeds (``compare --vs``): per task the mean difference with its
confidence interval, over tasks a summary with a Wilcoxon signed-rank test, and ranks with ties by significance."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from petlbench.errors import UserError, did_you_mean
from petlbench.results.aggregate import CONFIG, display_name
from petlbench.results.stats import excludes_zero, mean_ci, wilcoxon_signed_rank
from petlbench.results.tables import fmt


def parse_config(text: str) -> tuple[str, str, str]:
    """``"linear"`` -> ("linear", "", ""); ``"linear [random-init]"`` (or without the space) -> with the label;
    ``"lora (lr 0.05)"`` -> with the variant (``results.aggregate``'s names); a † is ignored."""
    text = text.replace("†", "").strip()
    variant = ""
    if text.endswith(")") and "(" in text:
        text, _, variant = text[:-1].rpartition("(")
        text, variant = text.strip(), variant.strip()
    if text.endswith("]") and "[" in text:
        method, _, label = text[:-1].partition("[")
        return method.strip(), label.strip(), variant
    return text, "", variant


def _ok_rows(df):
    """The rows that count (status ok, not a selection run, one per stored configuration and seed), each with its
    configuration's ``variant`` and ``name`` as ``results.aggregate`` gives them."""
    from petlbench.results.aggregate import KEYS, aggregate

    agg = aggregate(df)
    ok = df[df["status"] == "ok"].copy()
    for k in ["dataset", *KEYS]:
        ok[k] = ok[k].fillna("").astype(str) if k in ok else ""
    ok["data_group"] = ok["data_group"].fillna("").astype(str) if "data_group" in ok else ""
    names = {tuple(r[k] for k in KEYS): (r["variant"], r["name"]) for r in agg.to_dict("records")} if len(agg) else {}
    found = [names.get(key) for key in zip(*(ok[k] for k in KEYS), strict=True)]
    keep = [f is not None for f in found]  # selection runs are not results
    ok = ok[keep].assign(variant=[f[0] for f in found if f], name=[f[1] for f in found if f])
    if "config_hash" in ok:
        ok = ok.drop_duplicates("config_hash", keep="last") if (ok["config_hash"].fillna("") != "").all() else ok
    return ok


def _baseline(ok, text: str) -> tuple[str, str, str]:
    """The configuration (method, label, variant) that ``--vs TEXT`` names; a one-line error when none or
    several do."""
    method, label, variant = parse_config(text)
    have = ok.drop_duplicates(["method", "label", "variant"])
    exact = have[(have["method"] == method) & (have["label"] == label) & (have["variant"] == variant)]
    if len(exact):
        return method, label, variant
    names = sorted({display_name(m, lab, "", v) for m, lab, v in zip(have["method"], have["label"], have["variant"],
                                                                     strict=True)})
    family = have[(have["method"] == method) & (have["label"] == label)]
    if len(family) > 1 and not variant:
        choices = [display_name(method, label, "", v) for v in family["variant"]]
        raise UserError(f"'{text}' has {len(family)} configurations here: {', '.join(choices)}; pass one, e.g. "
                        f"--vs '{choices[0]}'")
    raise UserError(f"no successful runs of baseline '{text}'{did_you_mean(text, names)}; choose one of: "
                    f"{', '.join(names)}")


def _per_seed(rows, metric: str) -> dict[int, float]:
    """seed -> value; a seed stored twice (a ``--force`` rerun) counts once, as the mean of its rows."""
    return {int(s): float(g[metric].mean()) for s, g in rows.groupby("seed")}


def paired_diffs(ours: dict[int, float], base: dict[int, float]) -> tuple[list[int], list[float]]:
    """Seeds present in both, and ours − base on each."""
    seeds = sorted(set(ours) & set(base))
    return seeds, [ours[s] - base[s] for s in seeds]


@dataclass
class Paired:
    """``per_task``: one row per (dataset, configuration); ``summary``: one row per configuration."""

    baseline: tuple[str, str, str]  # method, label, variant; ("", "", "") with ``model``
    per_task: Any  # pandas.DataFrame
    summary: Any  # pandas.DataFrame
    model: str = ""  # ``paired_vs_model``: each configuration against its own method on this model

    @property
    def baseline_name(self) -> str:
        if self.model:
            return f"the same method on {self.model}"
        method, label, variant = self.baseline
        return display_name(method, label, "", variant)

    def is_baseline(self, method: str, label: str, model: str, variant: str) -> bool:
        return model == self.model if self.model else (method, label, variant) == self.baseline


def paired_vs(df, baseline: str, metric: str = "top1_pct") -> Paired:
    """Paired differences of every configuration against the baseline configuration (named as in ``compare``:
    ``linear``, ``linear [random-init]``, ``linear (trainval)``), per task and overall. Rows pair on (dataset,
    model, seed); only ``status == ok`` rows count; a configuration is never mixed with another of its method.
    """
    ok = _ok_rows(df)
    chosen = _baseline(ok, baseline)
    is_base = (ok[["method", "label", "variant"]] == list(chosen)).all(axis=1)
    base = {key: _per_seed(g, metric) for key, g in ok[is_base].groupby(["dataset", "model"])}
    per_task = _paired_rows(ok[~is_base], lambda dataset, config: base.get((dataset, config[2]), {}), metric)
    return Paired(chosen, per_task, summarize(per_task))


def paired_vs_model(df, model: str, metric: str = "top1_pct") -> Paired:
    """``compare --vs-model MODEL``: every configuration on another model against the same method and label on
    ``model`` (e.g. a method on the micro VLP model against itself on the PLM pair), paired on (dataset, seed).
    A method with several configurations on ``model`` is refused in one line (the pairing would be ambiguous)."""
    ok = _ok_rows(df)
    models = sorted(set(ok["model"]))
    if model not in models:
        raise UserError(f"no successful runs on model '{model}'{did_you_mean(model, models)}; choose one of: "
                        f"{', '.join(models)}")
    on = ok[ok["model"] == model]
    base = {}
    for (dataset, method, label), g in on.groupby(["dataset", "method", "label"]):
        if g["variant"].nunique() > 1:
            raise UserError(f"{display_name(method, label)} has {g['variant'].nunique()} configurations on {model} "
                            f"({dataset}); keep one (pass only its results) to pair against it")
        base[dataset, method, label] = _per_seed(g, metric)
    per_task = _paired_rows(ok[ok["model"] != model], lambda dataset, c: base.get((dataset, c[0], c[1]), {}), metric)
    return Paired(("", "", ""), per_task, summarize(per_task), model=model)


def _paired_rows(ok, base_of: Callable[[str, list], dict[int, float]], metric: str):
    """One row per (dataset, configuration) of ``ok`` that shares seeds with ``base_of(dataset, config)``."""
    import pandas as pd

    rows = []
    for (dataset, *config), g in ok.groupby(["dataset", *CONFIG], sort=False):
        seeds, diffs = paired_diffs(_per_seed(g, metric), base_of(dataset, config))
        if not seeds:
            continue
        mean, low, high = mean_ci(diffs)
        rows.append({"dataset": dataset, **dict(zip(CONFIG, config, strict=True)), "name": g["name"].iloc[0],
                     "data_group": g["data_group"].iloc[0], "n": len(seeds), "seeds": seeds, "diffs": diffs,
                     "mean_diff": mean, "ci_low": low, "ci_high": high, "significant": excludes_zero(low, high)})
    return pd.DataFrame(rows, columns=["dataset", *CONFIG, "name", "data_group", "n", "seeds", "diffs",
                                       "mean_diff", "ci_low", "ci_high", "significant"])


def summarize(per_task):
    """Per configuration over tasks: mean of task mean differences, t CI over tasks, sign count, Wilcoxon."""
    import pandas as pd

    rows = []
    for config, g in per_task.groupby(CONFIG, sort=False):
        means = [float(v) for v in g["mean_diff"]]
        mean, low, high = mean_ci(means)
        rows.append({**dict(zip(CONFIG, config, strict=True)), "name": g["name"].iloc[0], "tasks": len(means),
                     "better": sum(v > 0 for v in means), "worse": sum(v < 0 for v in means),
                     "mean_diff": mean, "ci_low": low, "ci_high": high,
                     "wilcoxon_p": wilcoxon_signed_rank(means), "significant": excludes_zero(low, high)})
    cols = [*CONFIG, "name", "tasks", "better", "worse", "mean_diff", "ci_low", "ci_high", "wilcoxon_p", "significant"]
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values("mean_diff", ascending=False, ignore_index=True) if len(out) else out


TIE_RULES = ("leader", "neighbour")


def rank_with_ties(n: int, same: Callable[[int, int], bool], rule: str = "leader") -> list[str]:
    """Competition ranks for n items sorted best-first, tied items sharing a group.

    ``same(i, j)`` (i above j) says the two cannot be told apart. ``rule="leader"`` (the default): item j
    joins the current group when it cannot be told apart from the group's *first* (best) member, else it
    starts a new group; every member of a group is then indistinguishable from its best one.
    ``rule="neighbour"``: item j joins when it cannot be told apart from item j−1; groups chain (A~B, B~C
    puts A, B, C together even when C is clearly below A), so on noisy tasks one group can swallow the
    whole ranking. A group shares the rank of its first position, written "k=" when it has more than one
    member: groups [0, 1], [2] -> ["1=", "1=", "3"].
    """
    if rule not in TIE_RULES:
        raise ValueError(f"rule must be one of {TIE_RULES}, got {rule!r}")
    groups: list[list[int]] = []
    for j in range(n):
        if groups and same(groups[-1][0] if rule == "leader" else j - 1, j):
            groups[-1].append(j)
        else:
            groups.append([j])
    ranks = [""] * n
    for g in groups:
        for i in g:
            ranks[i] = f"{g[0] + 1}=" if len(g) > 1 else str(g[0] + 1)
    return ranks


def tie_ranks(df, metric: str = "top1_pct", rule: str = "leader") -> dict[tuple[str, ...], tuple[int, str]]:
    """(dataset, method, label, model, variant) -> (position, rank), per dataset, best mean ``metric`` over seeds first.

    Two configurations "cannot be told apart" when the 95% paired t CI of their difference over their
    shared seeds includes 0, or cannot be computed (fewer than 2 shared seeds, or different models).
    Groups follow ``rank_with_ties``'s ``rule``.
    """
    ok = _ok_rows(df)
    out = {}
    for dataset, g in ok.groupby("dataset", sort=True):
        configs = [(key, _per_seed(rows, metric)) for key, rows in g.groupby(CONFIG, sort=False)]
        configs.sort(key=lambda kv: -sum(kv[1].values()) / len(kv[1]))

        def same(i: int, j: int, configs=configs) -> bool:
            (ki, vi), (kj, vj) = configs[i], configs[j]
            _, diffs = paired_diffs(vi, vj) if ki[2] == kj[2] else ([], [])
            return not excludes_zero(*mean_ci(diffs)[1:])

        for pos, ((key, _), rank) in enumerate(zip(configs, rank_with_ties(len(configs), same, rule), strict=True)):
            out[(dataset, *key)] = (pos, rank)
    return out


def _ci(low: float, high: float) -> str:
    return "–" if math.isnan(low) else f"[{low:+.2f}, {high:+.2f}]"


def _mark(significant: bool, mean: float, n: int) -> str:
    if significant:
        return "[green]better[/]" if mean > 0 else "[red]worse[/]"
    return "n < 2" if n < 2 else "[dim]CI ∋ 0[/]"


def paired_tables(df, paired: Paired) -> list:
    """Rich tables, one per dataset: configurations ranked with ties, each with its paired difference."""
    from rich.markup import escape
    from rich.table import Table

    from petlbench.results.aggregate import aggregate

    agg = aggregate(df)
    ranks = tie_ranks(df)
    base = paired.baseline_name
    diffs = {(r.dataset, r.method, r.label, r.model, r.variant): r for r in paired.per_task.itertuples()}
    tables = []
    for dataset, g in agg.groupby("dataset", sort=True):
        group = g["data_group"].iloc[0]
        t = Table(title=escape(f"dataset {dataset}{f' ({group})' if group else ''}: top-1 vs {base}, paired over seeds"),
                  title_justify="left")
        for col in ("rank", "method", "n", "top-1 % (mean ± std)", escape(f"Δ vs {base}"), "95% CI of Δ (paired t)", ""):
            t.add_column(col, justify="left" if col in ("method", "") else "right")
        keys = [(dataset, r.method, r.label, r.model, r.variant) for r in g.itertuples()]
        g = g.assign(pos_=[ranks[k][0] for k in keys], rank_=[ranks[k][1] for k in keys])
        for r in g.sort_values("pos_").itertuples():
            name = escape(r.name)
            d = diffs.get((dataset, r.method, r.label, r.model, r.variant))
            is_base = paired.is_baseline(r.method, r.label, r.model, r.variant)
            delta = ("baseline", "", "") if is_base else ("no shared seeds", "", "") if d is None else \
                (f"{d.mean_diff:+.2f}", _ci(d.ci_low, d.ci_high), _mark(d.significant, d.mean_diff, d.n))
            t.add_row(r.rank_, name, str(r.n), f"{fmt(r.top1_pct)} ± {fmt(r.top1_pct_std)}", *delta)
        t.caption = ("rank: 'k=' marks a tie group (paired 95% CI of the difference to the group's best member "
                     "includes 0); better/worse only where the CI of Δ excludes 0")
        t.caption_justify = "left"
        tables.append(t)
    return tables


def summary_table(paired: Paired):
    """Rich table of ``paired.summary``."""
    from rich.markup import escape
    from rich.table import Table

    base = paired.baseline_name
    t = Table(title=escape(f"over tasks: mean top-1 difference vs {base}"), title_justify="left")
    for col in ("method", "tasks", "mean Δ (points)", "95% CI (t over tasks)", "better on", "Wilcoxon p", ""):
        t.add_column(col, justify="left" if col in ("method", "") else "right")
    for r in paired.summary.itertuples():
        t.add_row(escape(r.name), str(r.tasks), f"{r.mean_diff:+.2f}", _ci(r.ci_low, r.ci_high),
                  f"{r.better} of {r.tasks}", fmt(r.wilcoxon_p, 3), _mark(r.significant, r.mean_diff, r.tasks))
    t.caption = ("mean Δ = mean over tasks of the per-task mean paired difference; Wilcoxon: exact two-sided "
                 "signed-rank test on the per-task means; marked only where the 95% CI excludes 0")
    t.caption_justify = "left"
    return t


def paired_markdown(paired: Paired) -> str:
    """``paired.per_task`` as one Markdown table: a row per configuration, per dataset the mean paired difference,
    its 95% CI (paired t) and the number of seeds."""
    per = paired.per_task
    datasets = sorted(set(per["dataset"]))
    lines = [f"Δ top-1 (points) vs {paired.baseline_name}, paired over seeds: mean [95% CI] (seeds)", "",
             "| configuration | " + " | ".join(datasets) + " |", "|---|" + "---:|" * len(datasets)]
    for _, g in per.groupby(CONFIG, sort=False):  # one row per configuration, never two under one name
        cells = {r.dataset: f"{r.mean_diff:+.2f} {_ci(r.ci_low, r.ci_high)} ({r.n})" for r in g.itertuples()}
        lines.append(f"| {g['name'].iloc[0]} | " + " | ".join(cells.get(d, "–") for d in datasets) + " |")
    return "\n".join(lines)
