"""How results are shown: the runs table after ``run``, ``compare``'s per-task and summary tables (Rich), and the
Markdown pivot (``compare --markdown``) that the committed result pages are checked against."""

from __future__ import annotations

import math

from petlbench.results.aggregate import (
    CONFIG,
    check_sort,
    coverage_caption,
    display_name,
    notes_caption,
    on_track,
    tracks_of,
    vtab_summary,
)
from petlbench.results.schema import METRIC_NAMES, METRICS, RunResult, mem_kind_name


def fmt_int(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    v = int(v)
    return f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.1f}k" if v >= 1e4 else f"{v:,}"


def fmt(v: float, nd: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"


def runs_table(results: list[RunResult], title: str = "petlbench runs"):
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for col, just in [("method", "left"), ("dataset", "left"), ("seed", "right"), ("top-1 % ↑", "right"),
                      ("val % ↑", "right"), ("trainable ↓", "right"), ("excl. head ↓", "right"),
                      ("GMACs ↓", "right"), ("train img/s ↑", "right"), ("infer img/s ↑", "right"),
                      ("peak MiB ↓", "right"), ("time s", "right"), ("recipe", "left"), ("status", "left")]:
        t.add_column(col, justify=just)
    for r in results:
        t.add_row(escape(display_name(r.method, r.label, r.method_note)), r.dataset, str(r.seed), fmt(r.top1_pct), fmt(r.top1_val_pct),
                  fmt_int(r.params_trainable), fmt_int(r.params_trainable_excl_head), fmt(r.gmacs, 4),
                  fmt(r.train_img_s, 0), fmt(r.infer_img_s, 0), fmt(r.peak_mem_train_mb, 0), fmt(r.time_total_s, 1),
                  f"{r.optimizer} lr={r.lr:g} ep={r.epochs} bs={r.batch_size} {r.precision}", r.status if r.status == "ok" else f"[red]{r.status}[/]: {r.error[:60]}")
    if results:
        r = results[-1]
        notes = sorted({f"† {x.method}: {x.method_note}" for x in results if x.method_note})
        t.caption = escape(f"model {r.model} ({r.weights_source}); data {r.data_source}; device {r.device}; "
                           f"peak mem = {mem_kind_name(r.peak_mem_kind)}; img/s at the run's batch size (bs); top-1 on test, "
                           f"evaluated once after the last epoch" + "".join(f"\n{n}" for n in notes))
        t.caption_justify = "left"
    return t


def compare_tables(agg, by: str = "dataset", sort: str = "top1_pct"):
    """One Rich table per dataset (``by='dataset'``) or per method (``by='method'``), ranked by ``sort``."""
    from rich.markup import escape
    from rich.table import Table

    higher = check_sort(sort)[1]
    tables = []
    outer = "dataset" if by == "dataset" else "method"
    for key, g in agg.groupby(outer, sort=True):
        g = g.sort_values(sort, ascending=not higher, kind="stable")
        metric = METRIC_NAMES[g["metric"].iloc[0]] if outer == "dataset" else METRIC_NAMES["top1"]
        t = Table(title=f"{outer} {key}" + (f" ({g['data_group'].iloc[0]})" if outer == "dataset" and
                                            g["data_group"].iloc[0] else ""), title_justify="left")
        t.add_column("rank", justify="right")
        t.add_column("method" if outer == "dataset" else "dataset (configuration)")
        t.add_column("n", justify="right")
        t.add_column(f"{metric} % ↑ (mean ± std)", justify="right")
        t.add_column("95% CI", justify="right")
        for m in ("params_trainable", "gmacs", "train_img_s", "infer_img_s", "peak_mem_train_mb"):
            label, hi = METRICS[m]
            t.add_column(f"{label} {'↑' if hi else '↓'}", justify="right")
        t.add_column("PPT ↑", justify="right")
        for rank, r in enumerate(g.itertuples(), 1):
            name = escape(r.name if outer == "dataset" else f"{r.dataset} ({r.name})" if r.name != r.method
                          else r.dataset)
            std = fmt(r.top1_pct_std) if r.n > 1 else "–"
            t.add_row(str(rank), name, str(r.n), f"{fmt(r.top1_pct)} ± {std}",
                      f"±{fmt(r.top1_pct_ci95)}", fmt_int(r.params_trainable), fmt(r.gmacs, 4), fmt(r.train_img_s, 0),
                      fmt(r.infer_img_s, 0), fmt(r.peak_mem_train_mb, 0), fmt(r.ppt))
        t.caption = escape(_table_caption(g, sort))
        t.caption_justify = "left"
        tables.append(t)
    return tables


def _table_caption(g, sort: str) -> str:
    sizes, notes = ", ".join(str(b) for b in sorted(set(g["batch_size"]))), notes_caption(g)
    precisions = ", ".join(sorted(set(g["precision"])))
    kinds = ", ".join(mem_kind_name(k) for k in sorted(set(g["peak_mem_kind"])))
    return (f"ranked by {METRICS[sort][0]}; img/s at batch size {sizes}; precision {precisions}; peak mem = {kinds}"
            + (f"; {notes}" if notes else ""))


def summary_table(summary, track: str = "vision"):
    from rich.markup import escape
    from rich.table import Table

    title = ("VTAB-style summary over datasets (top-1 %)" if track == "vision" else
             f"{track} track: summary over its datasets (top-1 % / VQA score)")
    t = Table(title=title, title_justify="left")
    group_cols = [c for c in summary.columns if c.startswith("group_")]
    for col in ["method", "tasks", "mean of group means ↑", "mean of tasks ↑", *[c[6:] for c in group_cols],
                "trainable ↓"]:
        t.add_column(col, justify="left" if col == "method" else "right")
    for r in summary.to_dict("records"):
        tasks = str(r["tasks"]) if r["tasks"] == r["tasks_total"] else f"{r['tasks']} of {r['tasks_total']}"
        t.add_row(escape(r["name"]), tasks, fmt(r["mean_of_groups"]), fmt(r["mean_of_tasks"]),
                  *[fmt(r[c]) for c in group_cols], fmt_int(r["params_trainable"]))
    if coverage_caption(summary):
        t.caption, t.caption_justify = escape(coverage_caption(summary)), "left"
    return t


def _cell(m) -> str:
    if m.empty:
        return "–"
    std = f" ± {m['top1_pct_std'].iloc[0]:.1f}" if m["n"].iloc[0] > 1 else ""
    return f"{m['top1_pct'].iloc[0]:.1f}{std}"


def markdown_pivot(agg, track: str | None = None, sort: str = "top1_pct") -> str:
    """One Markdown table per track (vision first): configurations × datasets (top-1 / VQA score mean ± std
    over seeds), both summaries over the track's datasets, trainable parameters (excl. head, mean over datasets)
    and GMACs; rows ranked by ``sort``."""
    present = tracks_of(agg)
    if track is None and len(present) > 1:
        return "\n\n".join(markdown_pivot(agg, t, sort) for t in present)
    agg = on_track(agg, track or present[0])
    summary = vtab_summary(agg, track or present[0], sort)
    datasets = sorted(agg["dataset"].unique(), key=lambda d: (agg[agg["dataset"] == d]["data_group"].iloc[0], d))
    groups = {d: agg[agg["dataset"] == d]["data_group"].iloc[0] for d in datasets}
    short = {"natural": "nat.", "specialized": "spec.", "structured": "str."}
    head = ["method", *[f"{d} ({short.get(groups[d], groups[d])})" if groups[d] else d for d in datasets],
            "mean of groups", "mean of tasks", "trainable excl. head", "GMACs", "seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary.itertuples():
        rows = agg[(agg[CONFIG] == [r.method, r.label, r.model, r.variant]).all(axis=1)]
        cells = [_cell(rows[rows["dataset"] == d]) for d in datasets]
        n = f"{rows['n'].min()}" if rows["n"].min() == rows["n"].max() else f"{rows['n'].min()}–{rows['n'].max()}"
        lines.append("| " + " | ".join([r.name, *cells, fmt(r.mean_of_groups, 1), fmt(r.mean_of_tasks, 1),
                                         fmt_int(rows["params_trainable_excl_head"].mean()),
                                         fmt(rows["gmacs"].mean(), 4), n]) + " |")
    notes = "\n\n".join(filter(None, [coverage_caption(summary), notes_caption(agg)]))
    return "\n".join(lines) + (f"\n\n{notes}" if notes else "")
