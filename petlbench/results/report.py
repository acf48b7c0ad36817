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
from petlbench.results.aggregate import CONFIG, aggregate, on_track, tracks_of
from petlbench.results.schema import METRIC_NAMES, mem_kind_name
from petlbench.results.tables import fmt, fmt_int, markdown_pivot

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
        if set(g["dataset"]) != all_tasks:
            continue
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


def _scatter(ax, pts, cost: str, styles, log: bool) -> list[str]:
    """Points with ±1 std error bars, the frontier as a dashed staircase; returns the frontier names."""
    front = frontier(pts, cost)
    by_name = {r.name: r for r in pts.itertuples()}
    for name, r in by_name.items():
        colour, marker = styles[name]
        yerr, xerr = r.top1_pct_std, getattr(r, f"{cost}_std")
        ax.errorbar(getattr(r, cost), r.top1_pct, yerr=yerr if yerr > 0 else None, xerr=xerr if xerr > 0 else None,
                    fmt=marker, color=colour, ecolor=colour, elinewidth=1, capsize=3, markersize=7, zorder=3,
                    **_marker_style(name, colour, front, _baseline(r)))
    xs = [getattr(by_name[n], cost) for n in front]
    ys = [by_name[n].top1_pct for n in front]
    ax.plot(xs, ys, drawstyle="steps-post", linestyle="--", color="black", linewidth=1, alpha=0.6, zorder=2)
    if log:
        _log_axis(ax)
    ax.grid(True, which="major", alpha=0.3)
    return front


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


def suite_figure(plt, suite, cost: str, kind: str | None, ylabel: str, styles, path: Path) -> list[str]:
    fig, ax = plt.subplots(figsize=(9.5, 5.5))
    pts = _axes(suite, cost, kind)
    front = _scatter(ax, pts, cost, styles, COSTS[cost][1])
    ax.set_xlabel(_xlabel(cost, kind))
    ax.set_ylabel(f"{ylabel} (mean of task means)")
    tasks = int(suite["tasks"].max())
    ax.set_title(f"Suite mean over {tasks} task{'s' if tasks > 1 else ''}: {ylabel} vs {COST_TITLES[cost]}\n"
                 "error bars: ±1 std over seeds; dashed line and black edges: Pareto frontier", fontsize=10)
    baselines = {r.name for r in pts.itertuples() if _baseline(r)}
    ax.legend(*_legend_handles(styles, list(pts["name"]), front, baselines), loc="center left",
              bbox_to_anchor=(1.01, 0.5), fontsize=9, frameon=False)
    _save(fig, plt, path, 100)
    return front_labels(pts, cost, front)


def task_figure(plt, agg, cost: str, kind: str | None, styles, path: Path) -> dict[str, list[str]]:
    tasks = _task_order(agg)
    cols = min(4, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    fronts = {}
    for ax, task in zip(axes.flat, tasks, strict=False):
        g = _axes(agg[agg["dataset"] == task], cost, kind)
        fronts[task] = front_labels(g, cost, _scatter(ax, g, cost, styles, COSTS[cost][1]))
        group = agg.loc[agg["dataset"] == task, "data_group"].iloc[0]
        ax.set_title(f"{task}" + (f" ({group})" if group else ""), fontsize=10)
        ax.set_ylabel(_score_label(set(agg.loc[agg["dataset"] == task, "metric"])), fontsize=9)
        ax.set_xlabel(AXIS_SHORT[cost], fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_visible(False)
    pts = _axes(agg, cost, kind).drop_duplicates("name")
    baselines = {r.name for r in pts.itertuples() if _baseline(r)}
    fig.legend(*_legend_handles(styles, list(pts["name"]), (), baselines), loc="center left",
               bbox_to_anchor=(1.0, 0.5), fontsize=9, frameon=False)
    title = f"Per task: score vs {COST_TITLES[cost]}; x = {_xlabel(cost, kind)}. Error bars: ±1 std over seeds; " \
            "dashed line and black edges: Pareto frontier of the task"
    fig.suptitle(textwrap.fill(title, width=int(22 * cols) + 20), fontsize=10)
    fig.tight_layout()
    _save(fig, plt, path, 90)
    return fronts


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
        acc = f"{fmt(s.top1_pct)} ± {fmt(s.top1_pct_std)}" if s is not None else "– (not on every task)"
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


def _md(rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return "\n".join(out + ["| " + " | ".join(r) + " |" for r in rows[1:]])


def _md_to_rows(md: str) -> list[list[str]]:
    lines = [ln for ln in md.splitlines() if ln.startswith("|") and not ln.startswith("|---")]
    return [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines]


def _html_table(rows: list[list[str]], numeric: bool = True) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table class='{'num' if numeric else 'text'}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


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
td:first-child,th:first-child{text-align:left;white-space:nowrap}img{max-width:100%;
border:1px solid #eee}p.note{color:#555;font-size:.9em}"""

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


def _track_items(plt, df, agg, track: str, out: Path, prefix: str) -> list[tuple[str, str, object]]:
    """The items of one track's section: tables, notes and figures (written to ``out``)."""
    agg = on_track(agg, track)
    suite = suite_points(df, agg)
    names = list(dict.fromkeys(agg.sort_values("top1_pct", ascending=False, kind="stable")["name"]))
    styles = _styles(names, {r.name for r in agg.itertuples() if _baseline(r)})
    ylabel = _score_label(set(agg["metric"]))
    figures, suite_fronts, task_fronts, axes = [], {}, {}, _memory_axes(agg)
    for cost, kind in axes:
        stem = f"{prefix}{cost}" + (f"_{kind}" if cost == MEM and len(axes) > 3 else "")
        suite_fronts[cost, kind] = []
        if len(suite):  # no configuration ran on every task: no suite mean
            path = out / f"suite_{stem}.png"
            suite_fronts[cost, kind] = suite_figure(plt, suite, cost, kind, ylabel, styles, path)
            figures.append(("img", f"suite mean: score vs {_axis_title(cost, kind)}", path))
        path = out / f"tasks_{stem}.png"
        task_fronts[cost, kind] = task_figure(plt, agg, cost, kind, styles, path)
        figures.append(("img", f"per task: score vs {_axis_title(cost, kind)}", path))
    return [("h3", f"Results ({ylabel})", None), ("table", "", _md_to_rows(markdown_pivot(agg, track))),
            ("h3", "Cost (mean over tasks)", None), ("table", "", cost_table(agg, suite)), ("p", COST_NOTE, None),
            ("h3", "Pareto frontiers (maximise the score, minimise cost)", None),
            ("table", "text", frontier_table(axes, suite_fronts, task_fronts)), ("p", FRONT_NOTE, None),
            ("h3", "Figures", None), *figures]


def _write_html(items, path: Path) -> None:
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>petlbench report</title>",
             f"<style>{CSS}</style></head><body><h1>petlbench report</h1>"]
    for kind, text, payload in items:
        if kind == "p":
            parts.append(f"<p class='note'>{html.escape(text)}</p>")
        elif kind in ("h2", "h3"):
            parts.append(f"<{kind}>{html.escape(text)}</{kind}>")
        elif kind == "table":
            parts.append(_html_table(payload, numeric=text != "text"))
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
        elif kind in ("h2", "h3"):
            parts.append(f"{'#' * int(kind[1])} {text}")
        elif kind == "table":
            parts.append(_md(payload))
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
    tracks = tracks_of(agg)
    items: list[tuple[str, str, object]] = [("p", _intro(df, agg), None)]
    for track in tracks:
        items.append(("h2", TRACK_TITLES.get(track, f"{track} track"), None))
        items += _track_items(plt, df, agg, track, out, "" if len(tracks) == 1 else f"{track}_")
    _write_html(items, out / "index.html")
    _write_markdown(items, out / "report.md")
    return out / "index.html", out / "report.md"
