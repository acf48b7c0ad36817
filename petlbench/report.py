"""``petlbench report RESULTS --out DIR``: a self-contained HTML page and a Markdown report.

DIR/index.html embeds every figure as a base64 PNG and its CSS inline (no network, no external file);
DIR/report.md links the same PNGs, written next to it. Both contain the results table (top-1 per task
and both VTAB summaries), a cost table, and accuracy against trainable parameters (log x), GMACs and
peak training memory, each with ±1 std error bars over seeds and the Pareto frontier (maximise top-1,
minimise the cost) drawn and listed, per task and for the suite mean.

matplotlib is an optional dependency: ``pip install 'petlbench[report]'``.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from pathlib import Path

from petlbench.errors import UserError
from petlbench.results import aggregate, display_name, fmt, fmt_int, markdown_pivot

# cost column -> (axis label, log x)
COSTS: dict[str, tuple[str, bool]] = {
    "params_trainable": ("trainable parameters incl. head, count (log scale)", True),
    "gmacs": ("inference compute, GMACs per image", False),
    "peak_mem_train_mb": ("peak training memory, MiB{kind}", False),
}
AXIS_SHORT = {"params_trainable": "trainable params (log)", "gmacs": "GMACs / image", "peak_mem_train_mb": "peak MiB"}
COST_TITLES = {"params_trainable": "trainable parameters", "gmacs": "GMACs", "peak_mem_train_mb": "peak memory"}
MEM_KINDS = {"cpu_peak_rss": "CPU peak RSS of the process", "cuda_max_allocated": "CUDA max allocated"}

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
    over other tasks); ``tasks`` says how many tasks each mean covers.
    """
    import pandas as pd

    all_tasks = set(agg["dataset"])
    ok = df[df["status"] == "ok"].fillna({"label": ""})
    rows = []
    for (method, label, model), g in agg.groupby(["method", "label", "model"], sort=False):
        if set(g["dataset"]) != all_tasks:
            continue
        runs = ok[(ok["method"] == method) & (ok["label"] == label) & (ok["model"] == model)]
        per_seed = runs.groupby(["seed", "dataset"])["top1_pct"].mean().unstack()  # seeds x tasks
        per_seed = per_seed.dropna()  # seeds present on every task
        std = float(per_seed.mean(axis=1).std(ddof=1)) if len(per_seed) > 1 else math.nan
        row = {"method": method, "label": label, "model": model, "tasks": len(g), "n": len(per_seed),
               "top1_pct": g["top1_pct"].mean(), "top1_pct_std": std}
        for m in COSTS:
            row[m], row[f"{m}_std"] = g[m].mean(), g[f"{m}_std"].mean()
        rows.append(row)
    return pd.DataFrame(rows)


def _name(r) -> str:
    return display_name(r.method, r.label)


def frontier(pts, cost: str) -> list[str]:
    """Pareto frontier of a table of configurations (``_name`` of each row) for one cost column."""
    return pareto_front([(_name(r), float(getattr(r, cost)), float(r.top1_pct)) for r in pts.itertuples()])


# ----------------------------------------------------------------------------- figures


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise UserError("the report needs matplotlib; install it with: pip install 'petlbench[report]'") from None
    matplotlib.use("Agg")  # no display; the same pixels on every machine
    import matplotlib.pyplot as plt

    return plt


def _styles(names: list[str]) -> dict[str, tuple[str, str]]:
    """One (colour, marker) per configuration, the same in every figure; 14 distinct colours, then repeats."""
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf", "#393b79", "#e7969c", "#637939", "#7b4173"]
    markers = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "*", "h", "p", "d", "8"]
    return {n: (colours[i % len(colours)], markers[i % len(markers)]) for i, n in enumerate(names)}


def _legend_handles(styles, names: list[str], front: Sequence[str] = ()) -> tuple[list, list[str]]:
    """Marker-only legend entries (no error bars); ``front`` members get a black edge and a note."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], linestyle="", marker=styles[n][1], color=styles[n][0], markersize=8,
                      markeredgecolor="black" if n in front else styles[n][0], markeredgewidth=1.6 if n in front else 0.5)
               for n in names]
    return handles, [f"{n} (frontier)" if n in front else n for n in names]


def _scatter(ax, pts, cost: str, styles, log: bool) -> list[str]:
    """Points with ±1 std error bars, the frontier as a dashed staircase; returns the frontier names."""
    front = frontier(pts, cost)
    by_name = {_name(r): r for r in pts.itertuples()}
    for name, r in by_name.items():
        colour, marker = styles[name]
        yerr, xerr = r.top1_pct_std, getattr(r, f"{cost}_std")
        ax.errorbar(getattr(r, cost), r.top1_pct, yerr=yerr if yerr > 0 else None, xerr=xerr if xerr > 0 else None,
                    fmt=marker, color=colour, ecolor=colour, elinewidth=1, capsize=3, markersize=7, zorder=3,
                    markeredgecolor="black" if name in front else colour, markeredgewidth=1.6 if name in front else 0.5)
    xs = [getattr(by_name[n], cost) for n in front]
    ys = [by_name[n].top1_pct for n in front]
    ax.plot(xs, ys, drawstyle="steps-post", linestyle="--", color="black", linewidth=1, alpha=0.6, zorder=2)
    if log:
        ax.set_xscale("log")
    ax.grid(True, which="major", alpha=0.3)
    return front


def _xlabel(cost: str, df) -> str:
    label = COSTS[cost][0]
    if cost == "peak_mem_train_mb":
        kinds = sorted(set(df["peak_mem_kind"].dropna()) - {""})
        label = label.format(kind=" (" + " / ".join(MEM_KINDS.get(k, k) for k in kinds) + ")" if kinds else "")
    return label


def suite_figure(plt, suite, cost: str, df, styles, path: Path) -> list[str]:
    fig, ax = plt.subplots(figsize=(9.5, 5.5))
    front = _scatter(ax, suite, cost, styles, COSTS[cost][1])
    ax.set_xlabel(_xlabel(cost, df))
    ax.set_ylabel("top-1 % (mean of task means)")
    ax.set_title(f"Suite mean over {int(suite['tasks'].max())} tasks: top-1 vs {COST_TITLES[cost]}\n"
                 "error bars: ±1 std over seeds; dashed line and black edges: Pareto frontier", fontsize=10)
    ax.legend(*_legend_handles(styles, [_name(r) for r in suite.itertuples()], front), loc="center left",
              bbox_to_anchor=(1.01, 0.5), fontsize=9, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return front_labels(suite, cost, front)


def task_figure(plt, agg, cost: str, df, styles, path: Path) -> dict[str, list[str]]:
    tasks = _task_order(agg)
    cols = min(4, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows + 1.2), squeeze=False)
    fronts = {}
    for ax, task in zip(axes.flat, tasks, strict=False):
        g = agg[agg["dataset"] == task]
        fronts[task] = front_labels(g, cost, _scatter(ax, g, cost, styles, COSTS[cost][1]))
        group = g["data_group"].iloc[0]
        ax.set_title(f"{task}" + (f" ({group})" if group else ""), fontsize=10)
        ax.set_ylabel("top-1 %", fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_visible(False)
    for ax in list(axes.flat)[len(tasks) - cols : len(tasks)]:  # the bottom panel of each column
        ax.set_xlabel(AXIS_SHORT[cost], fontsize=9)
    names = list(styles)
    fig.legend(*_legend_handles(styles, names), loc="lower center", ncol=min(6, len(names)), fontsize=9,
               frameon=False)
    fig.suptitle(f"Per task: top-1 vs {COST_TITLES[cost]}; x = {_xlabel(cost, df)}\n"
                 "error bars: ±1 std over seeds; dashed line and black edges: Pareto frontier of the task", fontsize=11)
    fig.tight_layout(rect=(0, 0.07 if rows > 1 else 0.12, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return fronts


def _task_order(agg) -> list[str]:
    """Tasks by VTAB group (natural, specialized, structured, other), then name."""
    order = {"natural": 0, "specialized": 1, "structured": 2}
    groups = agg.groupby("dataset")["data_group"].first()
    return sorted(groups.index, key=lambda t: (order.get(groups[t], 3), t))


# ----------------------------------------------------------------------------- tables


def cost_table(agg, suite) -> list[list[str]]:
    """Rows (header first): per configuration, mean over tasks of the costs, with the suite-mean top-1."""
    head = ["method", "top-1 % suite mean (± std over seeds)", "trainable incl. head", "trainable excl. head",
            "GMACs", "peak train memory MiB", "train img/s", "seeds"]
    rows = [head]
    top = {(r.method, r.label, r.model): r for r in suite.itertuples()}
    order = agg.groupby(["method", "label", "model"], sort=False)["top1_pct"].mean().sort_values(ascending=False)
    for method, label, model in order.index:  # best mean top-1 first, as in the results table
        g = agg[(agg["method"] == method) & (agg["label"] == label) & (agg["model"] == model)]
        s = top.get((method, label, model))
        acc = f"{fmt(s.top1_pct)} ± {fmt(s.top1_pct_std)}" if s is not None else "– (not on every task)"
        rows.append([display_name(method, label), acc, fmt_int(g["params_trainable"].mean()),
                     fmt_int(g["params_trainable_excl_head"].mean()), fmt(g["gmacs"].mean(), 4),
                     fmt(g["peak_mem_train_mb"].mean(), 0), fmt(g["train_img_s"].mean(), 0), str(int(g["n"].min()))])
    return rows


def _cost_text(cost: str, v: float) -> str:
    return fmt_int(v) if cost == "params_trainable" else fmt(v, 4) if cost == "gmacs" else f"{fmt(v, 0)} MiB"


def front_labels(pts, cost: str, names: list[str]) -> list[str]:
    """'name (cost, top-1)' for each frontier member, in frontier order."""
    by_name = {_name(r): r for r in pts.itertuples()}
    return [f"{n} ({_cost_text(cost, getattr(by_name[n], cost))}, {by_name[n].top1_pct:.1f}%)" for n in names]


def frontier_table(suite_fronts: dict[str, list[str]], task_fronts: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Rows (header first): the frontier of each scope (suite mean, then each task) for each cost."""
    rows = [["scope", *[f"frontier: {COST_TITLES[c]}" for c in COSTS]]]
    rows.append(["suite mean", *[", ".join(suite_fronts[c]) for c in COSTS]])
    for task in next(iter(task_fronts.values())):
        rows.append([task, *[", ".join(task_fronts[c][task]) for c in COSTS]])
    return rows


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
             "(the x axis of the parameter plots, log scale: the linear probe trains only the head).")
FRONT_NOTE = ("A configuration is on the frontier when no other one has both a lower-or-equal cost and a "
              "higher-or-equal mean top-1 (one of them strictly); at equal cost only the most accurate stays. "
              "Listed by increasing cost as name (cost, mean top-1). Means only: overlapping error bars are "
              "not resolved (see compare --vs for paired tests).")

CSS = """body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2em auto;max-width:1400px;
color:#222;padding:0 1em}h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}th,td{border:1px solid #ccc;padding:.25em .5em;
text-align:right}th{background:#f3f3f3}table.num td{white-space:nowrap}table.text td,table.text th{text-align:left}
td:first-child,th:first-child{text-align:left;white-space:nowrap}img{max-width:100%;
border:1px solid #eee}p.note{color:#555;font-size:.9em}"""


def _sections(df, agg, suite, figures, fronts) -> list[tuple[str, str, object]]:
    """(kind, title or text, payload) items shared by the HTML and Markdown writers."""
    kinds = sorted(set(df["peak_mem_kind"].dropna()) - {""})
    ok = df[df["status"] == "ok"]
    intro = (f"{len(ok)} successful runs ({int((df['status'] != 'ok').sum())} not ok, left out) of "
             f"{agg.groupby(['method', 'label', 'model']).ngroups} configurations on {agg['dataset'].nunique()} "
             f"tasks; models: {', '.join(sorted(agg['model'].unique()))}; devices: "
             f"{', '.join(sorted(ok['device'].dropna().astype(str).unique()))}; peak memory = "
             f"{', '.join(MEM_KINDS.get(k, k) for k in kinds) or 'not recorded'}. Top-1 on test, evaluated once "
             "after training; mean ± std over seeds.")
    items: list[tuple[str, str, object]] = [("p", intro, None), ("h2", "Results (top-1 %)", None),
                                            ("table", "", _md_to_rows(markdown_pivot(agg))),
                                            ("h2", "Cost (mean over tasks)", None), ("table", "", cost_table(agg, suite)),
                                            ("p", COST_NOTE, None),
                                            ("h2", "Pareto frontiers (maximise top-1, minimise cost)", None),
                                            ("table", "text", frontier_table(*fronts)), ("p", FRONT_NOTE, None)]
    for cost in COSTS:
        items.append(("h2", f"Top-1 vs {COST_TITLES[cost]}", None))
        if f"suite_{cost}" in figures:
            items.append(("img", f"suite mean: top-1 vs {COST_TITLES[cost]}", figures[f"suite_{cost}"]))
        items.append(("img", f"per task: top-1 vs {COST_TITLES[cost]}", figures[f"tasks_{cost}"]))
    return items


def _write_html(items, path: Path) -> None:
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>petlbench report</title>",
             f"<style>{CSS}</style></head><body><h1>petlbench report</h1>"]
    for kind, text, payload in items:
        if kind == "p":
            parts.append(f"<p class='note'>{html.escape(text)}</p>")
        elif kind == "h2":
            parts.append(f"<h2>{html.escape(text)}</h2>")
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
        elif kind == "h2":
            parts.append(f"## {text}")
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
    suite = suite_points(df, agg)
    styles = _styles([display_name(m, lab) for m, lab in agg[["method", "label"]].drop_duplicates().itertuples(index=False)])
    figures, suite_fronts, task_fronts = {}, {}, {}
    for cost in COSTS:
        suite_fronts[cost] = []
        if len(suite):  # no configuration ran on every task: no suite mean
            figures[f"suite_{cost}"] = out / f"suite_{cost}.png"
            suite_fronts[cost] = suite_figure(plt, suite, cost, df, styles, figures[f"suite_{cost}"])
        figures[f"tasks_{cost}"] = out / f"tasks_{cost}.png"
        task_fronts[cost] = task_figure(plt, agg, cost, df, styles, figures[f"tasks_{cost}"])
    items = _sections(df, agg, suite, figures, (suite_fronts, task_fronts))
    _write_html(items, out / "index.html")
    _write_markdown(items, out / "report.md")
    return out / "index.html", out / "report.md"
