"""Paired comparisons of configurations over seeds (``compare --vs``): per task the mean difference with its
confidence interval, over tasks a summary with a Wilcoxon signed-rank test, and ranks with ties by significance."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from petlbench.errors import UserError, did_you_mean
from petlbench.results.aggregate import CONFIG, by_model, display_name, named_rows
from petlbench.results.stats import excludes_zero, mean_ci, wilcoxon_signed_rank
from petlbench.results.tables import Col, escape_text, fitted, fmt, titled


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
    ok = named_rows(df)
    chosen = _baseline(ok, baseline)
    is_base = (ok[["method", "label", "variant"]] == list(chosen)).all(axis=1)
    base = {key: _per_seed(g, metric) for key, g in ok[is_base].groupby(["dataset", "model"])}
    per_task = _paired_rows(ok[~is_base], lambda dataset, config: base.get((dataset, config[2]), {}), metric)
    return Paired(chosen, per_task, summarize(per_task))


def paired_vs_model(df, model: str, metric: str = "top1_pct") -> Paired:
    """``compare --vs-model MODEL``: every configuration on another model against the same method and label on
    ``model`` (e.g. a method on the micro VLP model against itself on the PLM pair), paired on (dataset, seed).
    A method with several configurations on ``model`` is refused in one line (the pairing would be ambiguous)."""
    ok = named_rows(df)
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

    rows, total = [], per_task["dataset"].nunique()
    for config, g in per_task.groupby(CONFIG, sort=False):
        means = [float(v) for v in g["mean_diff"]]
        mean, low, high = mean_ci(means)
        rows.append({**dict(zip(CONFIG, config, strict=True)), "name": g["name"].iloc[0], "tasks": len(means),
                     "tasks_total": total, "complete": len(means) == total,
                     "better": sum(v > 0 for v in means), "worse": sum(v < 0 for v in means),
                     "mean_diff": mean, "ci_low": low, "ci_high": high,
                     "wilcoxon_p": wilcoxon_signed_rank(means), "significant": excludes_zero(low, high)})
    cols = [*CONFIG, "name", "tasks", "tasks_total", "complete", "better", "worse", "mean_diff", "ci_low", "ci_high",
            "wilcoxon_p", "significant"]
    out = pd.DataFrame(rows, columns=cols).sort_values("mean_diff", ascending=False, kind="stable")
    return out.sort_values("complete", ascending=False, kind="stable", ignore_index=True)


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
    """(dataset, method, label, model, variant) -> (position, rank), per dataset and model, best mean ``metric``
    over seeds first.

    Two configurations "cannot be told apart" when the 95% paired t CI of their difference over their
    shared seeds includes 0, or cannot be computed (fewer than 2 shared seeds). Groups follow
    ``rank_with_ties``'s ``rule``.
    """
    ok = named_rows(df)
    out = {}
    for _, g in ok.groupby(["dataset", "model"], sort=True):
        configs = [(key, _per_seed(rows, metric)) for key, rows in g.groupby(CONFIG, sort=False)]
        configs.sort(key=lambda kv: -sum(kv[1].values()) / len(kv[1]))

        def same(i: int, j: int, configs=configs) -> bool:
            return not excludes_zero(*mean_ci(paired_diffs(configs[i][1], configs[j][1])[1])[1:])

        for pos, ((key, _), rank) in enumerate(zip(configs, rank_with_ties(len(configs), same, rule), strict=True)):
            out[(g["dataset"].iloc[0], *key)] = (pos, rank)
    return out


def _ci(low: float, high: float) -> str:
    return "–" if math.isnan(low) else f"[{low:+.2f}, {high:+.2f}]"


def _mark(significant: bool, mean: float, n: int) -> str:
    if significant:
        return "[green]better[/]" if mean > 0 else "[red]worse[/]"
    return "n < 2" if n < 2 else "[dim]CI ∋ 0[/]"


def _sections(agg, paired: Paired) -> list[tuple[str, Any]]:
    """(model, rows) per table section: every model with ``--vs`` (each pairs with the baseline on itself), the
    models other than the baseline's with ``--vs-model`` (the baseline model's rows are what the others pair with)."""
    return [(m, g) for m, g in by_model(agg) if not (paired.model and (m or g["model"].iloc[0]) == paired.model)]


def _paired_cols(base: str) -> list[Col]:
    return [Col("rank"), Col("method", 0, "left", True), Col("n", 2), Col("top-1 % (mean ± std)"),
            Col(escape_text(f"Δ vs {base}")), Col("95% CI of Δ (paired t)", 1), Col("", 0, "left")]


def paired_tables(df, paired: Paired, width: int | None = None) -> list:
    """Rich tables, one per dataset (and model where there are several): configurations ranked with ties, each
    with its paired difference."""
    from rich.markup import escape

    from petlbench.results.aggregate import aggregate

    agg = aggregate(df)
    ranks = tie_ranks(df)
    diffs = {(r.dataset, r.method, r.label, r.model, r.variant): r for r in paired.per_task.itertuples()}
    tables = []
    for dataset, whole in agg.groupby("dataset", sort=True):
        group = whole["data_group"].iloc[0]
        for model, g in _sections(whole, paired):
            keys = [(dataset, r.method, r.label, r.model, r.variant) for r in g.itertuples()]
            g = g.assign(pos_=[ranks[k][0] for k in keys], rank_=[ranks[k][1] for k in keys], key_=keys)
            rows = [[r.rank_, escape(r.name), str(r.n), f"{fmt(r.top1_pct)} ± {fmt(r.top1_pct_std)}",
                     *_delta(diffs.get(r.key_), paired.is_baseline(r.method, r.label, r.model, r.variant))]
                    for r in g.sort_values("pos_").itertuples()]
            title = f"dataset {dataset}{f' ({group})' if group else ''}: top-1 vs {paired.baseline_name}, paired over seeds"
            tables.append(fitted(titled(title, model), _paired_cols(paired.baseline_name), rows, width, TIES_NOTE))
    return tables


TIES_NOTE = ("rank: 'k=' marks a tie group (paired 95% CI of the difference to the group's best member includes 0); "
             "better/worse only where the CI of Δ excludes 0")


def _delta(d, is_base: bool) -> list[str]:
    if is_base:
        return ["baseline", "", ""]
    if d is None:
        return ["nothing to pair with", "", ""]
    return [f"{d.mean_diff:+.2f}", _ci(d.ci_low, d.ci_high), _mark(d.significant, d.mean_diff, d.n)]


SUMMARY_COLS = [Col("method", 0, "left", True), Col("tasks"), Col("mean Δ (points)"), Col("95% CI (t over tasks)", 1),
                Col("better on", 2), Col("Wilcoxon p", 3), Col("", 0, "left")]


def summary_table(paired: Paired, width: int | None = None) -> list:
    """Rich tables of ``paired.summary`` (one per model where there are several): the configurations paired on
    every task, then apart those paired on fewer ("k of n", no mean: it would be over other tasks)."""
    from rich.markup import escape

    tables = []
    for model, g in by_model(paired.summary):
        rows = [[escape(r.name), str(r.tasks) if r.complete else f"{r.tasks} of {r.tasks_total}",
                 f"{r.mean_diff:+.2f}" if r.complete else "–", _ci(r.ci_low, r.ci_high) if r.complete else "",
                 f"{r.better} of {r.tasks}", fmt(r.wilcoxon_p, 3) if r.complete else "",
                 _mark(r.significant, r.mean_diff, r.tasks) if r.complete else "not ranked"] for r in g.itertuples()]
        first_partial = [i for i, c in enumerate(g["complete"]) if not c][:1]
        tables.append(fitted(titled(f"over tasks: mean top-1 difference vs {paired.baseline_name}", model),
                             SUMMARY_COLS, rows, width, SUMMARY_NOTE, sections=[i for i in first_partial if i]))
    return tables


SUMMARY_NOTE = ("mean Δ = mean over tasks of the per-task mean paired difference; Wilcoxon: exact two-sided signed-rank "
                "test on the per-task means; marked only where the 95% CI excludes 0")


def paired_markdown(paired: Paired) -> str:
    """``paired.per_task`` as Markdown: a row per configuration, per dataset the mean paired difference, its 95% CI
    (paired t) and the number of seeds; with ``--vs-model`` a table per other model, with ``--vs`` a model column
    where there are several. Configurations paired on fewer tasks than the others follow in a table apart."""
    per = paired.per_task
    sections = [(m or g["model"].iloc[0], g) for m, g in by_model(per)] if paired.model and len(per) else [("", per)]
    return "\n\n".join(_paired_md(g, model, paired) for model, g in sections)


def _paired_md(per, model: str, paired: Paired) -> str:
    datasets = sorted(set(per["dataset"]))
    models = not paired.model and per["model"].nunique() > 1
    on = f" on {model}" if model else ""
    head = ["| configuration | " + ("model | " if models else "") + " | ".join(datasets) + " |",
            "|---|" + ("---|" if models else "") + "---:|" * len(datasets)]
    tables: dict[bool, list[str]] = {True: [], False: []}
    for _, g in per.groupby(CONFIG, sort=False):  # one row per configuration, never two under one name
        cells = {r.dataset: f"{r.mean_diff:+.2f} {_ci(r.ci_low, r.ci_high)} ({r.n})" for r in g.itertuples()}
        row = f"| {g['name'].iloc[0]} | " + (f"{g['model'].iloc[0]} | " if models else "")
        tables[len(cells) == len(datasets)].append(row + " | ".join(cells.get(d, "–") for d in datasets) + " |")
    out = [f"Δ top-1 (points){on} vs {paired.baseline_name}, paired over seeds: mean [95% CI] (seeds)", "",
           "\n".join(head + tables[True])] if tables[True] else []
    if tables[False]:
        out += ["", f"Paired on fewer tasks than the others{on} (not ranked):", "", "\n".join(head + tables[False])]
    return "\n".join(out)
