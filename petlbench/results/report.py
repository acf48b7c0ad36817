"""``petlbench report RESULTS --out DIR``: a self-contained HTML page and a Markdown report.

DIR/index.html embeds every figure as a base64 PNG and its CSS inline (no network, no external file);
DIR/report.md links the same PNGs, written next to it. One section per track (vision, then VL), each with
its results table (score per task and both summaries over tasks), a cost table, and the score against
trainable parameters (log x), GMACs and peak training memory (one figure per memory kind: kinds are never
mixed on one axis), each with ±1 std error bars over seeds and the Pareto frontier (maximise the score,
minimise the cost) drawn and listed, per task and for the suite mean. Every row is one configuration
(``results.aggregate``'s names); single-modality baselines (VL ``modality`` text / image) are drawn hollow
and grey and are never on a frontier.

matplotlib is an optional dependency: ``pip install 'petlbench[report]'``.
"""

from __future__ import annotations

import base64
import html
import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

from petlbench.errors import UserError
from petlbench.results.aggregate import CONFIG, aggregate, by_model, on_track, tracks_of
from petlbench.results.schema import METRIC_NAMES, mem_kind_name
from petlbench.results.tables import fmt, fmt_int, markdown_pivot, md_table

LEGEND_MAX = 12  # entries in one legend; a section with more configurations draws its plots in parts

# cost column -> (axis label, log x)
COSTS: dict[str, tuple[str, bool]] = {
    "params_trainable": ("trainable parameters incl. head, count (log scale)", True),
    "gmacs": ("inference compute, GMACs per image", False),
    "peak_mem_train_mb": ("peak training memory, MiB{kind}", False),
}
AXIS_SHORT = {"params_trainable": "trainable params (log)", "gmacs": "GMACs / image", "peak_mem_train_mb": "peak MiB"}
COST_TITLES = {"params_trainable": "trainable parameters", "gmacs": "GMACs", "peak_mem_train_mb": "peak memory"}
MEM = "peak_mem_train_mb"

# ----------------------------------------------------------------------------- Pareto frontier


def pareto_front(points: Sequence[tuple[str, float, float]]) -> list[str]:
    """Names of the non-dominated points of (name, cost, accuracy), by increasing cost.

    A point is dominated when another has cost ≤ and accuracy ≥ with at least one strict. So at equal
    cost only the most accurate point stays, and exact duplicates (same cost and accuracy) both stay.
    Points with a NaN cost or accuracy are left out.
    """
    pts = [(n, c, a) for n, c, a in points if not (math.isnan(c) or math.isnan(a))]
    front = []
    for name, cost, acc in pts:
        dominated = any(c <= cost and a >= acc and (c < cost or a > acc) for _, c, a in pts)
        if not dominated:
            front.append((cost, -acc, name))
    return [name for _, _, name in sorted(front)]


# ----------------------------------------------------------------------------- data


def suite_points(df, agg):
    """Per configuration over the tasks it ran on all of: mean of task means, ±std over seeds of the
    per-seed suite mean (seeds present on every task), and mean costs over tasks.

    Configurations missing a task of the results are left out of the suite mean (their mean would be
    over other tasks); ``tasks`` says how many tasks each mean covers. ``peak_mem_kind`` is the one kind of
    a configuration's rows ('' when its tasks were measured in different ways: no memory point)."""
    import pandas as pd

    all_tasks = set(agg["dataset"])
    ok = df[df["status"] == "ok"].fillna({"group_hash": ""})
    rows = []
    for config, g in agg.groupby(CONFIG, sort=False):
        if set(g["dataset"]) != all_tasks or ("tasks_total" in g and len(g) < g["tasks_total"].iloc[0]):
            continue  # a partial configuration: its mean would be over other tasks (a model's, not the track's)
        runs = ok[ok["group_hash"].isin(set(g["group_hash"]))] if (g["group_hash"] != "").all() else \
            ok[(ok[CONFIG[:3]] == list(config[:3])).all(axis=1)]
        per_seed = runs.groupby(["seed", "dataset"])["top1_pct"].mean().unstack().dropna()  # seeds x tasks
        std = float(per_seed.mean(axis=1).std(ddof=1)) if len(per_seed) > 1 else math.nan
        kinds = set(g["peak_mem_kind"])
        row = {**dict(zip(CONFIG, config, strict=True)), "name": g["name"].iloc[0], "modality": g["modality"].iloc[0],
               "peak_mem_kind": kinds.pop() if len(kinds) == 1 else "", "tasks": len(g), "n": len(per_seed),
               "top1_pct": g["top1_pct"].mean(), "top1_pct_std": std}
        for m in COSTS:
            row[m], row[f"{m}_std"] = g[m].mean(), g[f"{m}_std"].mean()
        rows.append(row)
    return pd.DataFrame(rows)


def _baseline(r) -> bool:
    """A single-modality baseline (VL text-only / image-only): drawn apart, never on a frontier."""
    return getattr(r, "modality", "both") not in ("both", "", None)


def frontier(pts, cost: str) -> list[str]:
    """Pareto frontier of a table of configurations (their ``name``) for one cost column; baselines left out."""
    return pareto_front([(r.name, float(getattr(r, cost)), float(r.top1_pct)) for r in pts.itertuples()
                         if not _baseline(r)])


# ----------------------------------------------------------------------------- figures


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise UserError("the report needs matplotlib; install it with: pip install 'petlbench[report]'") from None
    matplotlib.use("Agg")  # no display; the same pixels on every machine
    import matplotlib.pyplot as plt

    return plt


def _styles(names: list[str], baselines: set[str]) -> dict[str, tuple[str, str]]:
    """One (colour, marker) per configuration, the same in every figure; 14 distinct colours, then repeats;
    baselines grey (drawn hollow)."""
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf", "#393b79", "#e7969c", "#637939", "#7b4173"]
    markers = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "*", "h", "p", "d", "8"]
    methods = [n for n in names if n not in baselines]
    out = {n: (colours[i % len(colours)], markers[i % len(markers)]) for i, n in enumerate(methods)}
    return out | {n: ("#555555", markers[i % len(markers)]) for i, n in enumerate(sorted(baselines))}


def _marker_style(name: str, colour: str, front: Sequence[str], baseline: bool) -> dict:
    if baseline:
        return dict(markerfacecolor="white", markeredgecolor=colour, markeredgewidth=1.4)
    return dict(markeredgecolor="black" if name in front else colour, markeredgewidth=1.6 if name in front else 0.5)


def _legend_handles(styles, names: list[str], front: Sequence[str] = (), baselines=()) -> tuple[list, list[str]]:
    """Marker-only legend entries (no error bars); ``front`` members get a black edge and a note."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], linestyle="", marker=styles[n][1], color=styles[n][0], markersize=8,
                      **_marker_style(n, styles[n][0], front, n in baselines)) for n in names]
    return handles, [f"{n} (frontier)" if n in front else f"{n} (baseline)" if n in baselines else n for n in names]


def _log_axis(ax) -> None:
    """Log x with readable ticks: decades (1k, 10k, ...) labelled compactly, minor ticks unlabelled; within
    one decade, 1-2-5 steps."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    low, high = ax.get_xlim()
    subs = (1.0,) if high / max(low, 1e-12) >= 10 else (1.0, 2.0, 5.0)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs, numticks=8))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_int(v)))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _scatter(ax, pts, cost: str, styles, log: bool, everyone=None) -> None:
    """Points with ±1 std error bars and the frontier of ``everyone`` (default: ``pts``; a plot of part of a
    section draws the section's frontier) as a dashed staircase."""
    everyone = pts if everyone is None else everyone
    front = frontier(everyone, cost)
    for r in pts.itertuples():
        colour, marker = styles[r.name]
        yerr, xerr = r.top1_pct_std, getattr(r, f"{cost}_std")
        ax.errorbar(getattr(r, cost), r.top1_pct, yerr=yerr if yerr > 0 else None, xerr=xerr if xerr > 0 else None,
                    fmt=marker, color=colour, ecolor=colour, elinewidth=1, capsize=3, markersize=7, zorder=3,
                    **_marker_style(r.name, colour, front, _baseline(r)))
    by_name = {r.name: r for r in everyone.itertuples()}
    ax.plot([getattr(by_name[n], cost) for n in front], [by_name[n].top1_pct for n in front], drawstyle="steps-post",
            linestyle="--", color="black", linewidth=1, alpha=0.6, zorder=2)
    if log:
        _log_axis(ax)
    ax.grid(True, which="major", alpha=0.3)


def drawable(pts, cost: str) -> bool:
    """Whether a plot of ``pts`` against ``cost`` has a point to draw (a plot with none is left out)."""
    return bool(len(pts)) and bool((pts[cost].notna() & pts["top1_pct"].notna()).any())


def _xlabel(cost: str, kind: str | None) -> str:
    label = COSTS[cost][0]
    return label.format(kind=f" ({mem_kind_name(kind)})") if cost == MEM else label


def _score_label(metrics: set[str]) -> str:
    """The y axis: what the scores are ('top-1 %', 'VQA score %', or both named)."""
    return " / ".join(METRIC_NAMES.get(m, m) for m in sorted(metrics)) + " %"


def _axes(pts, cost: str, kind: str | None):
    """The points of one axis: for memory, only those measured as ``kind``."""
    return pts[pts["peak_mem_kind"] == kind] if cost == MEM else pts


def _save(fig, plt, path: Path, dpi: int) -> None:
    fig.savefig(path, dpi=dpi, bbox_inches="tight")  # titles and legends outside the axes are kept whole
    plt.close(fig)


def suite_figure(plt, suite, names: list[str], cost: str, kind: str | None, ylabel: str, styles, path: Path,
                 part: str = "") -> None:
    """The suite mean of the configurations ``names`` against one cost, with the frontier of all of ``suite``."""
    fig, ax = plt.subplots(figsize=(9.5, 5.5))
    everyone = _axes(suite, cost, kind)
    pts = everyone[everyone["name"].isin(names)]
    _scatter(ax, pts, cost, styles, COSTS[cost][1], everyone)
    ax.set_xlabel(_xlabel(cost, kind))
    ax.set_ylabel(f"{ylabel} (mean of task means)")
    tasks = int(suite["tasks"].max())
    ax.set_title(f"Suite mean over {tasks} task{'s' if tasks > 1 else ''}: {ylabel} vs {COST_TITLES[cost]}{part}\n"
                 "error bars: ±1 std over seeds; dashed line and black edges: Pareto frontier", fontsize=10)
    baselines = {r.name for r in pts.itertuples() if _baseline(r)}
    ax.legend(*_legend_handles(styles, list(pts["name"]), frontier(everyone, cost), baselines), loc="center left",
              bbox_to_anchor=(1.01, 0.5), fontsize=9, frameon=False)
    _save(fig, plt, path, 100)


def task_figure(plt, agg, names: list[str], cost: str, kind: str | None, styles, path: Path, part: str = "") -> None:
    """Per task, the configurations ``names`` against one cost, with each task's frontier of all of ``agg``."""
    tasks = _task_order(agg)
    cols = min(4, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, task in zip(axes.flat, tasks, strict=False):
        everyone = _axes(agg[agg["dataset"] == task], cost, kind)
        _scatter(ax, everyone[everyone["name"].isin(names)], cost, styles, COSTS[cost][1], everyone)
        group = agg.loc[agg["dataset"] == task, "data_group"].iloc[0]
        ax.set_title(f"{task}" + (f" ({group})" if group else ""), fontsize=10)
        ax.set_ylabel(_score_label(set(agg.loc[agg["dataset"] == task, "metric"])), fontsize=9)
        ax.set_xlabel(AXIS_SHORT[cost], fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_visible(False)
    pts = _axes(agg, cost, kind).drop_duplicates("name")
    pts = pts[pts["name"].isin(names)]
    baselines = {r.name for r in pts.itertuples() if _baseline(r)}
    fig.legend(*_legend_handles(styles, list(pts["name"]), (), baselines), loc="center left",
               bbox_to_anchor=(1.0, 0.5), fontsize=9, frameon=False)
    title = f"Per task: score vs {COST_TITLES[cost]}{part}; x = {_xlabel(cost, kind)}. Error bars: ±1 std over " \
            "seeds; dashed line and black edges: Pareto frontier of the task"
    fig.suptitle(textwrap.fill(title, width=int(22 * cols) + 20), fontsize=10)
    fig.tight_layout()
    _save(fig, plt, path, 90)


def parts(agg) -> list[list[str]]:
    """The configurations of a section in groups of at most ``LEGEND_MAX`` (one plot each), best mean score
    first; a method's configurations stay together where they fit."""
    order = agg.groupby("name", sort=False)["top1_pct"].mean().sort_values(ascending=False, kind="stable").index
    if len(order) <= LEGEND_MAX:
        return [list(order)]
    method = agg.drop_duplicates("name").set_index("name")["method"]
    families: dict[str, list[str]] = {}
    for name in order:
        families.setdefault(method[name], []).append(name)
    out: list[list[str]] = [[]]
    for family in families.values():
        for i in range(0, len(family), LEGEND_MAX):
            piece = family[i:i + LEGEND_MAX]
            if len(out[-1]) + len(piece) > LEGEND_MAX:
                out.append([])
            out[-1] += piece
    return out


def cd_figure(plt, ranking, path: Path) -> None:
    """A critical-difference diagram (Demšar 2006): each configuration at its average rank over tasks (1 = best, on
    the left), the Nemenyi critical difference as a bar, and a thick line under every run of configurations it
    cannot separate."""
    table = ranking.table.sort_values("avg_rank", kind="stable")
    names, ranks, k = list(table["name"]), list(table["avg_rank"]), len(table)
    low = 0.25 * (len(ranking.groups) + 1)
    fig, ax = plt.subplots(figsize=(9.5, 1.4 + 0.22 * k))
    ax.set_xlim(0.2 - 0.22 * k, k + 0.8 + 0.22 * k)
    ax.set_ylim(-(low + 0.3 * (k + 1) / 2 + 0.3), 0.9)
    ax.axis("off")
    ax.hlines(0, 1, k, color="black", linewidth=1)
    for tick in range(1, k + 1):
        ax.vlines(tick, 0, 0.08, color="black", linewidth=1)
        ax.text(tick, 0.13, str(tick), ha="center", va="bottom", fontsize=8)
    cd = min(ranking.cd, k - 1)
    ax.hlines(0.6, 1, 1 + cd, color="#b22222", linewidth=2)
    ax.text(1 + cd / 2, 0.66, f"CD = {ranking.cd:.2f}" + (" (wider than the axis)" if ranking.cd > k - 1 else ""),
            ha="center", va="bottom", fontsize=8, color="#b22222")
    for j, group in enumerate(ranking.groups):
        rs = [ranks[names.index(n)] for n in group]
        ax.hlines(-0.25 * (j + 1), min(rs) - 0.05, max(rs) + 0.05, color="#444444", linewidth=3)
    half = math.ceil(k / 2)
    for i, (name, rank) in enumerate(zip(names, ranks, strict=True)):
        left = i < half
        y = -(low + 0.3 * (i if left else k - 1 - i) + 0.2)
        edge = 1 - 0.2 * k if left else k + 0.2 * k
        ax.plot([rank, rank, edge], [0, y, y], color="#555555", linewidth=0.8)
        ax.text(edge + (-0.05 if left else 0.05), y, f"{name} ({rank:.2f})", ha="right" if left else "left",
                va="center", fontsize=8)
    ax.set_title(f"Average rank over {len(ranking.tasks)} tasks (1 = best); thick lines join configurations the "
                 "Nemenyi test (α 0.05) cannot separate", fontsize=9)
    _save(fig, plt, path, 100)


def _task_order(agg) -> list[str]:
    """Tasks by VTAB group (natural, specialized, structured, other), then name."""
    order = {"natural": 0, "specialized": 1, "structured": 2}
    groups = agg.groupby("dataset")["data_group"].first()
    return sorted(groups.index, key=lambda t: (order.get(groups[t], 3), t))


# ----------------------------------------------------------------------------- tables


def cost_table(agg, suite) -> list[list[str]]:
    """Rows (header first): per configuration, mean over tasks of the costs, with the suite-mean score."""
    head = ["method", "score % suite mean (± std over seeds)", "trainable incl. head", "trainable excl. head",
            "GMACs", "peak train memory MiB", "memory measured as", "train img/s", "seeds"]
    rows = [head]
    top = {r.name: r for r in suite.itertuples()}
    order = agg.groupby("name", sort=False)["top1_pct"].mean().sort_values(ascending=False, kind="stable")
    for name in order.index:  # best mean score first, as in the results table
        g = agg[agg["name"] == name]
        s = top.get(name)
        acc = f"{fmt(s.top1_pct)} ± {fmt(s.top1_pct_std)}" if s is not None else \
            f"– ({g['tasks'].iloc[0]} of {g['tasks_total'].iloc[0]} tasks)"
        rows.append([name, acc, fmt_int(g["params_trainable"].mean()), fmt_int(g["params_trainable_excl_head"].mean()),
                     fmt(g["gmacs"].mean(), 4), fmt(g[MEM].mean(), 0) if g["peak_mem_kind"].nunique() == 1 else "–",
                     " / ".join(mem_kind_name(k) for k in sorted(set(g["peak_mem_kind"]))),
                     fmt(g["train_img_s"].mean(), 0), str(int(g["n"].min()))])
    return rows


def _cost_text(cost: str, v: float) -> str:
    return fmt_int(v) if cost == "params_trainable" else fmt(v, 4) if cost == "gmacs" else f"{fmt(v, 0)} MiB"


def front_labels(pts, cost: str, names: list[str]) -> list[str]:
    """'name (cost, score)' for each frontier member, in frontier order."""
    by_name = {r.name: r for r in pts.itertuples()}
    return [f"{n} ({_cost_text(cost, getattr(by_name[n], cost))}, {by_name[n].top1_pct:.1f}%)" for n in names]


def frontier_table(axes: list[tuple[str, str | None]], suite_fronts: dict, task_fronts: dict) -> list[list[str]]:
    """Rows (header first): the frontier of each scope (suite mean, then each task) for each axis."""
    rows = [["scope", *[f"frontier: {_axis_title(c, k)}" for c, k in axes]]]
    if any(suite_fronts.values()):
        rows.append(["suite mean", *[", ".join(suite_fronts[a]) for a in axes]])
    for task in next(iter(task_fronts.values())):
        rows.append([task, *[", ".join(task_fronts[a][task]) for a in axes]])
    return rows


def _axis_title(cost: str, kind: str | None) -> str:
    return COST_TITLES[cost] + (f" ({mem_kind_name(kind)})" if cost == MEM else "")


def _md_to_rows(md: str) -> list[list[str]]:
    lines = [ln for ln in md.splitlines() if ln.startswith("|") and not ln.startswith("|---")]
    return [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines]


def _html_table(rows: list[list[str]], style: str = "num") -> str:
    """An HTML table: 'num' (numbers right, the first column left), 'text' (all left) or 'ranked' (a number
    column, then the names left)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table class='{style}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# ----------------------------------------------------------------------------- documents

COST_NOTE = ("Suite mean = mean of the task means over the configurations that ran on every task; its ± is the "
             "std over seeds of the per-seed mean over tasks. Trainable parameters include the classification head "
             "(the x axis of the parameter plots, log scale: the linear probe trains only the head). Peak memory is "
             "averaged only over tasks measured the same way, and each way has its own plot.")
FRONT_NOTE = ("A configuration is on the frontier when no other one has both a lower-or-equal cost and a "
              "higher-or-equal mean score (one of them strictly); at equal cost only the most accurate stays. "
              "Listed by increasing cost as name (cost, mean score). Means only: overlapping error bars are "
              "not resolved (see compare --vs for paired tests). Single-modality baselines (hollow grey markers) "
              "are drawn for reference and never on a frontier.")

CSS = """body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2em auto;max-width:1400px;
color:#222;padding:0 1em}h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}h3{margin-top:1.2em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}th,td{border:1px solid #ccc;padding:.25em .5em;
text-align:right}th{background:#f3f3f3}table.num td{white-space:nowrap}table.text td,table.text th{text-align:left}
td:first-child,th:first-child{text-align:left;white-space:nowrap}table.ranked td:nth-child(2),
table.ranked th:nth-child(2){text-align:left;white-space:nowrap}table.ranked td{white-space:nowrap}img{max-width:100%;
border:1px solid #eee}p.note{color:#555;font-size:.9em}div.scroll{max-width:100%;overflow-x:auto}
h4{margin-top:1em}"""

TRACK_TITLES = {"vision": "Vision track", "vl": "Vision-language track"}


def _intro(df, agg) -> str:
    ok = df[df["status"] == "ok"]
    kinds = sorted(set(agg["peak_mem_kind"]) - {""})
    return (f"{len(ok)} successful runs ({int((df['status'] != 'ok').sum())} not ok, left out) of "
            f"{agg.groupby(['track', *CONFIG]).ngroups} configurations on {agg['dataset'].nunique()} tasks; models: "
            f"{', '.join(sorted(agg['model'].unique()))}; devices: "
            f"{', '.join(sorted(ok['device'].dropna().astype(str).unique()))}; peak memory = "
            f"{', '.join(mem_kind_name(k) for k in kinds) or 'not recorded'}. Scores on test, evaluated once "
            "after training; mean ± std over seeds.")


def _memory_axes(agg) -> list[tuple[str, str | None]]:
    """(cost, memory kind) of every plot: one memory axis per kind measured (never two kinds on one axis)."""
    kinds = sorted(set(agg["peak_mem_kind"]) - {""})
    return [("params_trainable", None), ("gmacs", None), *[(MEM, k) for k in kinds]]


def _slug(model: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in model)


def _track_items(plt, df, agg, track: str, out: Path, prefix: str, ranked: list) -> list[tuple[str, str, object]]:
    """The items of one track: a section per model where it has several (``by_model``), each with its tables,
    notes, figures and what is real in its ranking (``ranked``: ``results.stats.rankings``)."""
    items: list[tuple[str, str, object]] = []
    for model, g in by_model(on_track(agg, track)):
        ranking = next((r for r in ranked if (r.track, r.model) == (track, model)), None)
        if model:
            items.append(("h3", f"Model {model}", None))
        items += _section_items(plt, df, g, track, out, prefix + (f"{_slug(model)}_" if model else ""), ranking)
    return items


def _section_items(plt, df, agg, track: str, out: Path, prefix: str, ranking) -> list[tuple[str, str, object]]:
    """One model's items: the results, cost and frontier tables, the figures (a plot per part of at most
    ``LEGEND_MAX`` configurations; a plot with nothing to draw is left out) and the ranking."""
    suite = suite_points(df, agg)
    styles = _styles(list(dict.fromkeys(agg.sort_values("top1_pct", ascending=False, kind="stable")["name"])),
                     {r.name for r in agg.itertuples() if _baseline(r)})
    ylabel, axes, groups = _score_label(set(agg["metric"])), _memory_axes(agg), parts(agg)
    figures, suite_fronts, task_fronts = [], {}, {}
    for cost, kind in axes:
        stem = f"{prefix}{cost}" + (f"_{kind}" if cost == MEM and len(axes) > 3 else "")
        pts = _axes(suite, cost, kind) if len(suite) else suite
        suite_fronts[cost, kind] = front_labels(pts, cost, frontier(pts, cost)) if len(pts) else []
        task_fronts[cost, kind] = {t: front_labels(g, cost, frontier(g, cost)) for t in _task_order(agg)
                                   for g in [_axes(agg[agg["dataset"] == t], cost, kind)]}
        for i, names in enumerate(groups, 1):
            part, tail = ("", "") if len(groups) == 1 else (f" (part {i} of {len(groups)})", f"_part{i}")
            title = f"score vs {_axis_title(cost, kind)}{part}"
            if drawable(pts[pts["name"].isin(names)] if len(pts) else pts, cost):
                suite_figure(plt, suite, names, cost, kind, ylabel, styles, out / f"suite_{stem}{tail}.png", part)
                figures.append(("img", f"suite mean: {title}", out / f"suite_{stem}{tail}.png"))
            if drawable(_axes(agg[agg["name"].isin(names)], cost, kind), cost):
                task_figure(plt, agg, names, cost, kind, styles, out / f"tasks_{stem}{tail}.png", part)
                figures.append(("img", f"per task: {title}", out / f"tasks_{stem}{tail}.png"))
    return [("h4", f"Results ({ylabel})", None), *_md_items(markdown_pivot(agg, track)),
            ("h4", "Cost (mean over tasks)", None), ("table", "", cost_table(agg, suite)), ("p", COST_NOTE, None),
            ("h4", "Pareto frontiers (maximise the score, minimise cost)", None),
            ("table", "text", frontier_table(axes, suite_fronts, task_fronts)), ("p", FRONT_NOTE, None),
            *(_ranking_items(plt, ranking, out / f"cd_{prefix}ranks.png") if ranking else []),
            ("h4", "Figures", None), *figures]


def _ranking_items(plt, ranking, path: Path) -> list[tuple[str, str, object]]:
    """What is real in the ranking (``results.stats.rankings``): its three tables, their notes and the
    critical-difference diagram."""
    from petlbench.results.tables import POI_NOTE, STEP_NOTE, poi_rows, rank_caption, rank_rows, step_rows

    cd_figure(plt, ranking, path)
    return [("h4", "What is real in this ranking", None), ("table", "ranked", rank_rows(ranking)),
            ("p", rank_caption(ranking), None), ("img", "critical-difference diagram of the average ranks", path),
            ("table", "ranked", poi_rows(ranking, ("", "*"))), ("p", POI_NOTE + " (*)", None),
            ("table", "", step_rows(ranking)), ("p", STEP_NOTE, None)]


def _md_items(md: str) -> list[tuple[str, str, object]]:
    """A Markdown text of tables and paragraphs as report items."""
    blocks = [b for b in md.split("\n\n") if b.strip()]
    return [("table", "", _md_to_rows(b)) if b.startswith("|") else ("p", b, None) for b in blocks]


def _write_html(items, path: Path) -> None:
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>petlbench report</title>",
             f"<style>{CSS}</style></head><body><h1>petlbench report</h1>"]
    for kind, text, payload in items:
        if kind == "p":
            parts.append(f"<p class='note'>{html.escape(text)}</p>")
        elif kind in ("h2", "h3", "h4"):
            parts.append(f"<{kind}>{html.escape(text)}</{kind}>")
        elif kind == "table":  # a wide table scrolls inside its box instead of widening the page
            parts.append(f"<div class='scroll'>{_html_table(payload, text or 'num')}</div>")
        else:
            data = base64.b64encode(Path(payload).read_bytes()).decode()
            parts.append(f"<p><img alt='{html.escape(text)}' src='data:image/png;base64,{data}'></p>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts))


def _write_markdown(items, path: Path) -> None:
    parts = ["# petlbench report"]
    for kind, text, payload in items:
        if kind == "p":
            parts.append(text)
        elif kind in ("h2", "h3", "h4"):
            parts.append(f"{'#' * int(kind[1])} {text}")
        elif kind == "table":
            parts.append(md_table(payload))
        else:
            parts.append(f"![{text}]({Path(payload).name})")
    path.write_text("\n\n".join(parts) + "\n")


def write_report(df, out: str | Path) -> tuple[Path, Path]:
    """Write ``out/index.html``, ``out/report.md`` and the PNGs; returns the two document paths."""
    plt = _pyplot()
    agg = aggregate(df)
    if agg.empty:
        raise UserError("no successful runs to report (all rows failed); see the status/error columns")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from petlbench.results.stats import rankings

    tracks, ranked = tracks_of(agg), rankings(df, agg)
    items: list[tuple[str, str, object]] = [("p", _intro(df, agg), None)]
    for track in tracks:
        items.append(("h2", TRACK_TITLES.get(track, f"{track} track"), None))
        items += _track_items(plt, df, agg, track, out, "" if len(tracks) == 1 else f"{track}_", ranked)
    _write_html(items, out / "index.html")
    _write_markdown(items, out / "report.md")
    return out / "index.html", out / "report.md"
