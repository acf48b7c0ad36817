"""How results are shown: the runs table after ``run``, ``compare``'s per-task and summary tables (Rich), and the
Markdown pivot (``compare --markdown``) that the committed result pages are checked against.

The "what is real" views of a ranking (``stats.rankings``) are here too: Rich tables for ``compare``, Markdown
and rows for ``report`` and the docs, and the results sentence. Every Rich table is built by ``fitted``: names are escaped for Rich (``linear [random-init]`` is text, not markup),
and on a narrow console the low-priority columns are left out (and named in the caption) while names wrap, so
that at 80 columns no cell is cut to "lo…". Where a track has several models, each model is a section (a table of
its own, the model in the title) in Rich and a column in Markdown, never part of a configuration's name."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from petlbench.results.aggregate import (
    CONFIG,
    by_model,
    check_sort,
    display_name,
    notes_caption,
    on_track,
    partial_caption,
    tracks_of,
    vtab_summary,
)
from petlbench.results.schema import METRIC_NAMES, METRICS, RunResult, mem_kind_name
from petlbench.results.stats import ALPHA, POWER, RESAMPLES, SEED_CAP, Ranking


def fmt_int(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    v = int(v)
    return f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.1f}k" if v >= 1e4 else f"{v:,}"


def fmt(v: float, nd: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"


# ----------------------------------------------------------------------------- tables that fit the console


@dataclass(frozen=True)
class Col:
    """A column of a Rich table. ``drop``: 0 is always shown; on a narrow console the highest goes first.
    ``wrap``: a name column, whose text wraps inside it instead of widening the table."""

    header: str
    drop: int = 0
    justify: str = "right"
    wrap: bool = False


NAME_WIDTH = 14  # the narrowest a wrapped name column gets ('[random-init]' stays on one line)


def console_width() -> int:
    from petlbench.progress import console

    return console.width


def _cell_width(text: str) -> int:
    from rich.text import Text

    return Text.from_markup(text).cell_len


def _natural(col: Col, cells: list[str]) -> int:
    """The width a column needs: its widest cell (a wrapped column: its longest word, at least ``NAME_WIDTH``)
    or its header's longest word (headers wrap), whichever is wider."""
    widest = max([_cell_width(c) for c in cells] or [0])
    if col.wrap:
        words = max([_cell_width(w) for c in cells for w in c.split()] or [0])
        widest = min(widest, max(words, NAME_WIDTH))
    return max([widest, *(len(w) for w in col.header.split())])


def _overhead(n: int, compact: bool) -> int:
    """Cells a table adds to its columns: padding and a border per column and one border; compact (no box, no
    padding at the edges): the padding between columns."""
    return 2 * n - 2 if compact else 3 * n + 1


def _layout(cols: Sequence[Col], rows: Sequence[Sequence[str]], width: int,
            compact: bool = False) -> tuple[list[int], list[int]]:
    """The columns kept at ``width`` (dropped by ``Col.drop``) and every column's width: each its natural width,
    then what room is left goes to the wrapped columns (up to their widest cell) and then to headers that would
    wrap. Widths are set, not left to Rich, which would cut cells to 'lo…' to fit."""
    natural = [_natural(c, [r[i] for r in rows]) for i, c in enumerate(cols)]
    keep = list(range(len(cols)))
    while sum(natural[i] for i in keep) + _overhead(len(keep), compact) > width:
        droppable = [i for i in keep if cols[i].drop]
        if not droppable:
            break
        keep.remove(max(droppable, key=lambda i: (cols[i].drop, i)))
    spare = width - sum(natural[i] for i in keep) - _overhead(len(keep), compact)
    widths = list(natural)
    for wrapped in (True, False):
        for i in (i for i in keep if cols[i].wrap == wrapped):
            want = max([_cell_width(r[i]) for r in rows] or [0]) if wrapped else len(cols[i].header)
            extra = max(0, min(spare, want - widths[i]))
            widths[i], spare = widths[i] + extra, spare - extra
    return keep, widths


def fitted(title: str, cols: Sequence[Col], rows: Sequence[Sequence[str]], width: int | None = None,
           caption: str = "", sections: Sequence[int] = (), compact: bool = False):
    """A Rich table of ``rows`` (cells already escaped: they may hold markup) that fits ``width`` (default: the
    console's), with a line above each row index in ``sections``; the caption names the columns left out.
    ``compact``: no box (a matrix of many narrow columns)."""
    from rich.markup import escape
    from rich.table import Table

    width = width or console_width()
    keep, widths = _layout(cols, rows, width, compact)
    t = Table(title=title, title_justify="left", caption_justify="left",
              **({"box": None, "pad_edge": False} if compact else {}))
    for i in keep:
        c = cols[i]
        t.add_column(c.header, justify=c.justify, overflow="fold", width=widths[i])
    for j, r in enumerate(rows):
        if j in sections:
            t.add_section()
        t.add_row(*[r[i] for i in keep])
    dropped = [cols[i].header for i in range(len(cols)) if i not in keep]
    note = f"left out at {width} columns: {', '.join(dropped)} (a wider terminal shows them)" if dropped else ""
    t.caption = "\n".join(filter(None, [caption, escape(note)])) or None
    return t


def escape_text(text: str) -> str:
    """Text as Rich shows it literally ('linear [random-init]' is no markup tag)."""
    from rich.markup import escape

    return escape(text)


def titled(title: str, model: str) -> str:
    """A table's title, escaped, with its model section where there is one."""
    return escape_text(title + (f" · model {model}" if model else ""))


# ----------------------------------------------------------------------------- the views


RUN_COLS = [Col("method", 0, "left", True), Col("dataset", 0, "left", True), Col("seed"), Col("top-1 % ↑"),
            Col("val % ↑", 3), Col("trainable ↓", 1), Col("excl. head ↓", 4), Col("GMACs ↓", 2),
            Col("train img/s ↑", 3), Col("infer img/s ↑", 4), Col("peak MiB ↓", 3), Col("time s", 2),
            Col("recipe", 5, "left", True), Col("status", 0, "left", True)]


def runs_table(results: list[RunResult], title: str = "petlbench runs", width: int | None = None):
    from rich.markup import escape

    rows = [[escape(display_name(r.method, r.label, r.method_note)), escape(r.dataset), str(r.seed), fmt(r.top1_pct),
             fmt(r.top1_val_pct), fmt_int(r.params_trainable), fmt_int(r.params_trainable_excl_head), fmt(r.gmacs, 4),
             fmt(r.train_img_s, 0), fmt(r.infer_img_s, 0), fmt(r.peak_mem_train_mb, 0), fmt(r.time_total_s, 1),
             escape(f"{r.optimizer} lr={r.lr:g} ep={r.epochs} bs={r.batch_size} {r.precision}"),
             "ok" if r.status == "ok" else f"[red]{escape(r.status)}[/]: {escape(r.error[:60])}"] for r in results]
    caption = ""
    if results:
        r = results[-1]
        notes = sorted({f"† {x.method}: {x.method_note}" for x in results if x.method_note})
        caption = escape(f"model {r.model} ({r.weights_source}); data {r.data_source}; device {r.device}; "
                         f"peak mem = {mem_kind_name(r.peak_mem_kind)}; img/s at the run's batch size (bs); top-1 on "
                         "test, evaluated once after the last epoch" + "".join(f"\n{n}" for n in notes))
    return fitted(escape(title), RUN_COLS, rows, width, caption)


def _compare_cols(metric: str, what: str) -> list[Col]:
    costs = [Col(f"{METRICS[m][0]} {'↑' if METRICS[m][1] else '↓'}", drop) for m, drop in
             (("params_trainable", 1), ("gmacs", 2), ("train_img_s", 4), ("infer_img_s", 4), ("peak_mem_train_mb", 3))]
    return [Col("rank"), Col(what, 0, "left", True), Col("n", 2), Col(f"{metric} % ↑ (mean ± std)"),
            Col("95% CI", 3), *costs, Col("PPT ↑", 3)]


def compare_tables(agg, by: str = "dataset", sort: str = "top1_pct", width: int | None = None):
    """One Rich table per dataset (``by='dataset'``) or per method (``by='method'``), a section per model where
    there are several, ranked by ``sort``."""
    from rich.markup import escape

    higher = check_sort(sort)[1]
    tables = []
    outer = "dataset" if by == "dataset" else "method"
    for key, whole in agg.groupby(outer, sort=True):
        for model, g in by_model(whole):
            g = g.sort_values(sort, ascending=not higher, kind="stable")
            metric = METRIC_NAMES[g["metric"].iloc[0]] if outer == "dataset" else METRIC_NAMES["top1"]
            group = g["data_group"].iloc[0] if outer == "dataset" else ""
            rows = [[str(rank), escape(r.name if outer == "dataset" else f"{r.dataset} ({r.name})" if r.name != r.method
                                       else r.dataset), str(r.n),
                     f"{fmt(r.top1_pct)} ± {fmt(r.top1_pct_std) if r.n > 1 else '–'}", f"±{fmt(r.top1_pct_ci95)}",
                     fmt_int(r.params_trainable), fmt(r.gmacs, 4), fmt(r.train_img_s, 0), fmt(r.infer_img_s, 0),
                     fmt(r.peak_mem_train_mb, 0), fmt(r.ppt)] for rank, r in enumerate(g.itertuples(), 1)]
            what = "method" if outer == "dataset" else "dataset (configuration)"
            title = titled(f"{outer} {key}" + (f" ({group})" if group else ""), model)
            tables.append(fitted(title, _compare_cols(metric, what), rows, width, escape(_table_caption(g, sort))))
    return tables


def _table_caption(g, sort: str) -> str:
    sizes, notes = ", ".join(str(b) for b in sorted(set(g["batch_size"]))), notes_caption(g)
    precisions = ", ".join(sorted(set(g["precision"])))
    kinds = ", ".join(mem_kind_name(k) for k in sorted(set(g["peak_mem_kind"])))
    return (f"ranked by {METRICS[sort][0]}; img/s at batch size {sizes}; precision {precisions}; peak mem = {kinds}"
            + (f"; {notes}" if notes else ""))


def summary_table(summary, track: str = "vision", width: int | None = None, model: str = ""):
    """The summary over a track's datasets (``vtab_summary``): complete configurations ranked, then the partial
    ones in a section of their own ("k of n" tasks, no means: theirs would be over other tasks)."""
    from rich.markup import escape

    title = ("VTAB-style summary over datasets (top-1 %)" if track == "vision" else
             f"{track} track: summary over its datasets (top-1 % / VQA score)")
    groups = [c for c in summary.columns if c.startswith("group_")]
    cols = [Col("method", 0, "left", True), Col("tasks"), Col("mean of group means ↑"), Col("mean of tasks ↑", 1),
            *[Col(c[6:], 2) for c in groups], Col("trainable ↓", 1)]
    rows = [[escape(r["name"]), str(r["tasks"]) if r["complete"] else f"{r['tasks']} of {r['tasks_total']}",
             fmt(r["mean_of_groups"]) if r["complete"] else "–", fmt(r["mean_of_tasks"]) if r["complete"] else "–",
             *[fmt(r[c]) for c in groups], fmt_int(r["params_trainable"])] for r in summary.to_dict("records")]
    first_partial = [i for i, c in enumerate(summary["complete"]) if not c][:1]
    return fitted(titled(title, model), cols, rows, width, escape(partial_caption(summary)),
                  sections=first_partial if first_partial != [0] else [])


def _cell(m) -> str:
    if m.empty:
        return "–"
    std = f" ± {m['top1_pct_std'].iloc[0]:.1f}" if m["n"].iloc[0] > 1 else ""
    return f"{m['top1_pct'].iloc[0]:.1f}{std}"


def markdown_pivot(agg, track: str | None = None, sort: str = "top1_pct") -> str:
    """One Markdown table per track (vision first): configurations × datasets (top-1 / VQA score mean ± std
    over seeds), both summaries over the track's datasets, trainable parameters (excl. head, mean over datasets)
    and GMACs; a model column where the track has several models; the complete configurations ranked by ``sort``,
    then the partial ones in a table of their own (their means would be over other tasks: "k of n tasks")."""
    present = tracks_of(agg)
    if track is None and len(present) > 1:
        return "\n\n".join(markdown_pivot(agg, t, sort) for t in present)
    agg = on_track(agg, track or present[0])
    summary = vtab_summary(agg, track or present[0], sort)
    datasets = sorted(agg["dataset"].unique(), key=lambda d: (agg[agg["dataset"] == d]["data_group"].iloc[0], d))
    groups = {d: agg[agg["dataset"] == d]["data_group"].iloc[0] for d in datasets}
    short = {"natural": "nat.", "specialized": "spec.", "structured": "str."}
    models = agg["model"].nunique() > 1
    head = ["method", *(["model"] if models else []),
            *[f"{d} ({short.get(groups[d], groups[d])})" if groups[d] else d for d in datasets],
            "mean of groups", "mean of tasks", "trainable excl. head", "GMACs", "seeds"]
    tables: dict[bool, list[str]] = {True: [], False: []}
    for r in summary.itertuples():
        rows = agg[(agg[CONFIG] == [r.method, r.label, r.model, r.variant]).all(axis=1)]
        cells = [_cell(rows[rows["dataset"] == d]) for d in datasets]
        n = f"{rows['n'].min()}" if rows["n"].min() == rows["n"].max() else f"{rows['n'].min()}–{rows['n'].max()}"
        means = [fmt(r.mean_of_groups, 1), fmt(r.mean_of_tasks, 1)] if r.complete else \
            [f"{r.tasks} of {r.tasks_total} tasks", "–"]
        tables[r.complete].append("| " + " | ".join([r.name, *([r.model] if models else []), *cells, *means,
                                                    fmt_int(rows["params_trainable_excl_head"].mean()),
                                                    fmt(rows["gmacs"].mean(), 4), n]) + " |")
    top = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    parts = ["\n".join(top + tables[True])] if tables[True] else []
    if tables[False]:
        parts.append("Not ranked (run on fewer tasks than the others):\n\n" + "\n".join(top + tables[False]))
    return "\n\n".join(parts + list(filter(None, [notes_caption(agg)])))


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


def md_table(rows: list[list[str]]) -> str:
    """Rows (header first) as a Markdown table."""
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return "\n".join(out + ["| " + " | ".join(r) + " |" for r in rows[1:]])


def ranking_markdown(r: Ranking) -> str:
    """The section as Markdown (the report's and docs/results.md's): the three tables with their notes."""
    return "\n\n".join([f"**{section_title(r)}**", md_table(rank_rows(r)), rank_caption(r), md_table(poi_rows(r)),
                        POI_NOTE, md_table(step_rows(r)), STEP_NOTE])


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
