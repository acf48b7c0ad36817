"""The ``petlbench`` command line: wiring only (parse -> configs -> loop -> results)."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from petlbench.config.options import with_run_options
from petlbench.engine.executors import with_execution_options
from petlbench.errors import UserError, did_you_mean
from petlbench.progress import PlainReporter, console, err_console, progress_interval, reporting


def _text_help(command):
    """A command whose help texts are escaped, once: typer renders them as Rich markup, where the '[random-init]' of
    "'linear [random-init]'" is a tag and vanishes."""
    if not getattr(command, "_text_help", False):
        command.help = escape(command.help) if command.help else command.help
        for param in command.params:
            if getattr(param, "help", None):
                param.help = escape(param.help)
        command._text_help = True
    return command


class TextHelpGroup(TyperGroup):
    """The command group: every subcommand it resolves (to run it, or to show its help) has text help."""

    def get_command(self, ctx, cmd_name):
        command = super().get_command(ctx, cmd_name)
        return _text_help(command) if command is not None else None


app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, cls=TextHelpGroup,
                  help="Benchmark parameter-efficient transfer learning (PETL) methods on vision transformers.")


DEFAULT_OUT = "results"


def _version(value: bool) -> None:
    if value:
        from petlbench import __version__

        print(f"petlbench {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="print the version and exit")] = False) -> None:
    """Benchmark parameter-efficient transfer learning (PETL) methods on vision transformers."""


def _parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds expects comma-separated integers like 0,1,2, got '{text}'") from None
    if not seeds:
        raise UserError("--seeds is empty; pass e.g. --seeds 0,1,2")
    return seeds


def _execute(jobs: list, out: str, force: bool) -> list:
    from petlbench.engine.runner import execute

    finished: list = []
    try:
        with reporting() as (reporter, say):
            return execute(jobs, out, force, reporter, say, finished)
    except KeyboardInterrupt:
        ok = sum(r.status == "ok" for r in finished)
        err_console.print(f"interrupted: {len(finished)} of {len(jobs)} runs finished and are stored in "
                          f"{Path(out) / 'results.csv'} ({ok} ok); the run in progress was not stored. Run the same "
                          "command again to resume: stored configurations are skipped.", highlight=False)
        raise SystemExit(130) from None


def _run_jobs(jobs: list, out: str, force: bool, execution, methods: set[str], name: str) -> None:
    """Run ``jobs`` as ``--executor`` says (inline here, or submitit jobs), then print the table."""
    if execution.executor == "inline":
        _finish(_execute(jobs, out, force), methods)
        return
    from functools import partial

    from petlbench.engine.executors import run_jobs

    with reporting() as (_, say):
        results, errors, failed = run_jobs(jobs, out, force, execution,
                                           partial(PlainReporter, print, progress_interval()), say, name)
    problems = [f"{len(failed)} run(s) not done (job failed after {execution.retries} retries, or cancelled): "
                f"{', '.join(failed)}"] if failed else []
    _finish(results, methods, problems)
    if errors:
        raise UserError(errors[0] + (f" (and {len(errors) - 1} more job(s) with errors)" if len(errors) > 1 else ""))


def _note_for(methods: set[str]) -> str:
    from petlbench.registry import METHODS

    notes = [f"{m}: {METHODS.get(m).note}" for m in sorted(methods) if METHODS.get(m).note]
    return "; ".join(notes)


def _overrides(method: str, sets: list[str] | None, options: dict[str, Any]) -> dict[str, Any]:
    """The method config overrides of a command: ``--set key=value`` pairs, then the recipe flags given
    (``--lr``, ``--epochs``, ...; taken out of ``options``)."""
    from petlbench.config.method_config import parse_sets
    from petlbench.config.options import recipe_flags
    from petlbench.registry import METHODS

    overrides = parse_sets(sets or [], METHODS.get(method).Config, method)
    overrides.update({k: v for k in recipe_flags() if (v := options.pop(k)) is not None})
    return overrides


@app.command()
@with_run_options
@with_execution_options
def run(
    method: Annotated[str, typer.Argument(help="method name (see 'petlbench list methods')")],
    seeds: Annotated[str, typer.Option(help="comma-separated seeds")] = "0",
    set_: Annotated[list[str] | None, typer.Option("--set", help="method config key=value (repeatable)")] = None,
    out: Annotated[str, typer.Option(help="results store directory")] = DEFAULT_OUT,
    force: Annotated[bool, typer.Option("--force", help="re-run configs already stored")] = False,
    **options: Any,
) -> None:
    """Train and evaluate METHOD on one dataset (default: the embedded offline task)."""
    from petlbench.config.options import RunConfig
    from petlbench.engine.executors import Execution

    execution = Execution.take(options)
    seed_list = _parse_seeds(seeds)
    overrides = _overrides(method, set_, options)
    for key in ("limit", "img_size"):
        if options[key] is not None and options[key] <= 0:
            raise UserError(f"--{key.replace('_', '-')} must be positive, got {options[key]}")
    base = RunConfig(method=method, overrides=overrides, **options)
    _run_jobs([replace(base, seed=s) for s in seed_list], out, force, execution, {method}, f"petlbench-{method}")


def _finish(results: list, methods: set[str], problems: list[str] | None = None) -> None:
    """The runs table (rank 0 only under torchrun), then ``problems``; exit 1 if a run or job was not ok."""
    from petlbench.engine.distributed import is_main
    from petlbench.results.tables import runs_table

    if results and is_main():
        console.print(runs_table(results))
        note = _note_for(methods)
        if note:
            console.print(f"[dim]note: {note}[/]")
    for problem in problems or []:
        err_console.print(f"[red]{escape(problem)}[/]", highlight=False)
    if problems or any(r.status != "ok" for r in results):
        raise typer.Exit(1)


@app.command()
@with_execution_options
def suite(
    name: Annotated[str, typer.Argument(help="suite name (mini-vtab, smoke) or a .toml path")],
    out: Annotated[str, typer.Option(help="results store directory")] = DEFAULT_OUT,
    seeds: Annotated[str | None, typer.Option(help="override the suite's seeds")] = None,
    limit: Annotated[int | None, typer.Option(help="cap images per split")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda")] = None,
    force: Annotated[bool, typer.Option("--force")] = False,
    print_commands: Annotated[bool, typer.Option("--print-commands",
                                                 help="print one 'petlbench run' per job for an external engine")] = False,
    root: Annotated[str | None, typer.Option(help="a paper suite's data root (what `petlbench fetch SUITE --to DIR` "
                                                  "fetched; its hub/ cache serves the models offline)")] = None,
    plan: Annotated[bool, typer.Option("--plan", help="print the cost first: jobs, steps, GMACs, device-hours, "
                                                      "downloads, peak memory (offline; runs nothing)")] = False,
    device_kind: Annotated[str | None, typer.Option(help="--plan: the device to estimate for (H100, H200, A100, "
                                                         "cpu; default: this machine's)")] = None,
    **execution_options: Any,
) -> None:
    """Run a benchmark suite (benchmarks/*.toml) here, as Slurm jobs (--executor slurm), or print its jobs."""
    from petlbench.config.options import as_command
    from petlbench.config.suites import suite_jobs
    from petlbench.engine.distributed import is_main
    from petlbench.engine.executors import Execution
    from petlbench.engine.tune import commands

    if plan:
        _print_plan(name, device_kind)
        return
    execution = Execution.take(execution_options)
    if print_commands and execution.executor != "inline":
        raise UserError("--print-commands prints the jobs instead of running them; drop --executor (or the other)")
    _use_root(root)
    sname, jobs, plans = suite_jobs(name, _parse_seeds(seeds) if seeds else None, root=root, limit=limit,
                                    device=device)
    if plans and execution.executor != "inline":
        raise UserError(f"suite '{sname}' has tune blocks, which run inline; drop --executor, or hand its runs to an "
                        "engine with --print-commands (twice: the grid, then the final runs)")
    if print_commands:
        for line in [as_command(cfg, out) for cfg in jobs] + [c for plan in plans for c in commands(plan, out)]:
            print(line)
        return
    if is_main():  # under torchrun, rank 0 speaks
        console.print(f"suite {sname}: {len(jobs)} runs" + (f" + {len(plans)} tuned" if plans else "")
                      + f" -> {out}/results.csv")
    if not plans:
        _run_jobs(jobs, out, force, execution, {cfg.method for cfg in jobs}, f"petlbench-{sname}")
        return
    results = _execute(jobs, out, force) + [r for plan in plans for r in _execute_tune(plan, out, force)]
    _finish(results, {cfg.method for cfg in jobs} | {plan.base.method for plan in plans})


def _use_root(root: str | None) -> None:
    """``--root``: it must exist; a fetched folder's Hugging Face cache (``DIR/hub``) serves every hub load, offline."""
    if root is None:
        return
    if not Path(root).is_dir():
        raise UserError(f"--root '{root}' is not a folder; pass the folder `petlbench fetch SUITE --to DIR` filled")
    from petlbench.fetch import HUB_DIR, use_local_hub

    if (Path(root) / HUB_DIR).is_dir():
        use_local_hub(Path(root) / HUB_DIR)


def _print_plan(name: str, device_kind: str | None) -> None:
    """``suite --plan``: one row per (method, label, dataset, model), then the totals and where the numbers come from."""
    from petlbench.engine.plan import DEVICES, downloads, plan_suite
    from petlbench.fetch import assets

    if device_kind is not None and device_kind not in DEVICES:
        raise UserError(f"unknown --device-kind '{device_kind}'{did_you_mean(device_kind, DEVICES)}; "
                        f"choose {', '.join(DEVICES)}")
    from petlbench.config.suites import load_suite

    rows = plan_suite(name, device_kind)
    t = Table(title=f"plan: suite {load_suite(name)[0]} on {DEVICES[device_kind or _here()].name}",
              title_justify="left")
    for col in ("method", "label", "dataset", "model", "seeds", "precision", "steps/seed", "GMACs", "PFLOP",
                "device-h", "peak GB"):
        t.add_column(col, justify="left" if col in ("method", "label", "dataset", "model") else "right")
    for r in rows:
        t.add_row(r.method, escape(r.label), escape(r.dataset), escape(r.model or "default"), str(r.seeds),
                  r.precision, f"{r.steps:,}", f"{r.gmacs:.2f}", f"{r.train_flop * r.seeds / 1e15:.2f}",
                  f"{r.hours * r.seeds:.2f}", f"{r.peak_gb:.1f}")
    console.print(t)
    runs, hours, gb = sum(r.seeds for r in rows), sum(r.hours * r.seeds for r in rows), downloads(name)
    console.print(f"{runs} runs, {hours:,.1f} device-hours; throughput: "
                  + "; ".join(sorted({r.throughput_source for r in rows})), highlight=False)
    console.print(f"downloads: {gb['data']:,.1f} GB data, {gb['weights']:,.2f} GB weights"
                  + "".join(f"; by hand: {a.name} ({a.note})" for a in assets(name) if a.kind == "manual"),
                  highlight=False)


def _here() -> str:
    from petlbench.engine.plan import this_device

    return this_device()[0]


def _execute_tune(plan, out: str, force: bool) -> list:
    from petlbench.engine.tune import execute_tune

    with reporting() as (reporter, say):
        return execute_tune(plan, out, force, reporter, say)


@app.command()
@with_run_options
def tune(
    method: Annotated[str, typer.Argument(help="method name (see 'petlbench list methods')")],
    grid: Annotated[list[str], typer.Option(help="key=v1,v2,... of the method config (repeatable; the product is "
                                                  "the grid)")],
    seeds: Annotated[str, typer.Option(help="comma-separated seeds of the final runs (the grid uses the first)")] = "0",
    set_: Annotated[list[str] | None, typer.Option("--set", help="fixed method config key=value (repeatable)")] = None,
    out: Annotated[str, typer.Option(help="results store directory")] = DEFAULT_OUT,
    force: Annotated[bool, typer.Option("--force", help="re-run configs already stored")] = False,
    print_commands: Annotated[bool, typer.Option("--print-commands", help="print the grid's runs (or, once they "
                                                 "are stored, the final runs) for an external engine")] = False,
    **options: Any,
) -> None:
    """The tuned VTAB-1k protocol: choose on val (train -> val), then train+val -> test once per seed."""
    from petlbench.config.grid import Plan, parse_grid
    from petlbench.config.options import RunConfig
    from petlbench.engine.tune import commands

    overrides = _overrides(method, set_, options)
    plan = Plan(RunConfig(method=method, overrides=overrides, **options), parse_grid(grid, method), _parse_seeds(seeds))
    if print_commands:
        for line in commands(plan, out):
            print(line)
        return
    _finish(_execute_tune(plan, out, force), {method})


@app.command("list")
def list_(what: Annotated[str, typer.Argument(help="methods | datasets | models | recipes")]) -> None:
    """List registered methods, datasets, backbones or pretraining recipes."""
    choices = ("methods", "datasets", "models", "recipes")
    if what not in choices:
        raise UserError(f"cannot list '{what}'{did_you_mean(what, choices)}; choose {', '.join(choices[:-1])} or "
                        f"{choices[-1]}")
    t = Table(title=what, title_justify="left")
    if what == "methods":
        from petlbench.registry import METHODS
        from petlbench.tracks import supported_kinds

        for col in ("name", "runs on", "description"):
            t.add_column(col)
        for name, cls in METHODS.all().items():
            t.add_row(name, ",".join(supported_kinds(cls.supports)),
                      cls.description + (f" ({cls.note})" if cls.note else ""))
    elif what == "datasets":
        from petlbench.datasets import DEFAULT, list_datasets

        for col in ("name", "track", "kind", "notes"):
            t.add_column(col)
        for name, track, kind, note in list_datasets():
            t.add_row(name + (" (default)" if name == DEFAULT else ""), track, kind, note)
    elif what == "recipes":
        from petlbench.pretrain.base import list_recipes

        for col in ("name (--data)", "makes", "options (--set, default)", "description"):
            t.add_column(col)
        for row in list_recipes():
            t.add_row(*row)
    else:
        from petlbench.tracks import list_models

        for col in ("name", "track", "notes"):
            t.add_column(col)
        for name, track, note, default in list_models():
            t.add_row(name + (" (default)" if default else ""), track, note)
    console.print(t)


@app.command()
def inspect(
    method: Annotated[str, typer.Argument()],
    model: Annotated[str | None, typer.Option(help="timm model name or VL pair TEXT+VISION (default: the bundled "
                                                "one; the VL default for VL-only methods)")] = None,
    num_classes: Annotated[int, typer.Option(help="classifier size")] = 1000,
    img_size: Annotated[int | None, typer.Option(help="input resolution")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="method config key=value")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    text_len: Annotated[int, typer.Option(help="VL models: text tokens the GMACs are counted on")] = 16,
) -> None:
    """Build the model (random init, no data), apply METHOD, report parameter counts and GMACs."""
    from petlbench.config.method_config import parse_sets
    from petlbench.engine.build import inspect as do_inspect
    from petlbench.registry import METHODS

    if num_classes <= 0:
        raise UserError(f"--num-classes must be positive, got {num_classes}")
    overrides = parse_sets(set_ or [], METHODS.get(method).Config, method)
    if text_len <= 0:
        raise UserError(f"--text-len must be positive, got {text_len}")
    info = do_inspect(method, model, num_classes, img_size, overrides, text_len)
    if as_json:
        print(json.dumps(info))
        return
    t = Table(title=f"{method} on {info['model'] or 'default'} ({info['num_classes']} classes, "
                    f"input {'×'.join(map(str, info['input_size']))})", title_justify="left")
    t.add_column("quantity")
    t.add_column("value", justify="right")
    for k in ("params_total", "params_trainable", "params_trainable_excl_head", "params_added"):
        t.add_row(k, f"{info[k]:,}")
    for k in ("gmacs", "gmacs_backbone", "gmacs_extra", "gmacs_vision", "gmacs_text", "gmacs_text_backbone"):
        if k in info:  # the last three: VL models (the frozen visual encoder apart)
            t.add_row(k, f"{info[k]:.4f}")
    t.add_row("gmacs_ratio", f"{info['gmacs_ratio']:.4f}")
    if "gmacs_extra_counterpart" in info:  # the conventional method this one makes cheaper (APT)
        t.add_row(f"gmacs_extra of {info['counterpart']}", f"{info['gmacs_extra_counterpart']:.4f}")
    for k in ("gmacs_change_pct", "gmacs_text_change_pct", "gmacs_extra_vs_counterpart_pct"):
        if k in info:
            t.add_row(k, f"{info[k]:+.2f}")
    console.print(t)
    for c in info["published_claims"]:  # published relative claims about this method, beside what we measure
        console.print(f"published: {c['metric']} {c['value']:+.2f} ({c['task']}, {c['backbone']}; {c['source']}) "
                      f"— measured here {c['measured']:+.2f}")
    console.print(f"method config: {info['method_config']}")


@app.command()
def compare(
    results: Annotated[list[str] | None, typer.Argument(help="results CSVs or store dirs")] = None,
    by: Annotated[str, typer.Option(help="dataset | method")] = "dataset",
    sort: Annotated[str | None, typer.Option(help="metric to rank by (default top1_pct): the tables, --markdown, "
                                                  "the summaries and --csv")] = None,
    csv: Annotated[str | None, typer.Option(help="write the aggregate table to this CSV")] = None,
    baseline: Annotated[str | None, typer.Option(help="reference results CSV to gate against")] = None,
    max_drop: Annotated[float, typer.Option(help="allowed top-1 drop (points) vs --baseline")] = 2.0,
    max_rise: Annotated[float | None, typer.Option(help="also fail when top-1 rises more than this many points "
                                                        "above --baseline (the numbers changed)")] = None,
    markdown: Annotated[bool, typer.Option("--markdown", help="print one Markdown pivot table instead")] = False,
    dataset: Annotated[list[str] | None, typer.Option(help="only these datasets (repeatable; the --baseline "
                                                           "reference too)")] = None,
    vs: Annotated[str | None, typer.Option(help="baseline for paired top-1 differences over seeds, e.g. linear, "
                                                  "'linear [random-init]' or 'linear (trainval)' (per dataset, "
                                                  "ranked with ties)")] = None,
    vs_model: Annotated[str | None, typer.Option(help="pair each configuration with the same method on this model "
                                                        "(per dataset and seed), e.g. the micro VLP model's rows "
                                                        "against the PLM pair's")] = None,
    published: Annotated[bool, typer.Option("--published", help="show ours − published next to each cell "
                                                                 "that has a published number")] = False,
) -> None:
    """Aggregate seeds (mean ± std, 95% CI) per configuration, rank them, show accuracy next to cost, and say
    which differences over tasks and seeds are real. Exit code 0: done (with --baseline: no regression); 1: the
    --baseline gate failed; 2: bad input (one line naming the problem and the fix)."""
    from petlbench.results.aggregate import check_sort
    from petlbench.results.store import load_frame

    if by not in ("dataset", "method"):
        raise UserError(f"--by must be 'dataset' or 'method', got '{by}'")
    if vs and vs_model:
        raise UserError("--vs and --vs-model are two baselines; pass one")
    if (vs or vs_model) and sort not in (None, "top1_pct"):
        raise UserError("--vs / --vs-model rank by paired top-1 differences, so --sort cannot apply; drop --sort")
    check_sort(sort or "top1_pct")
    df = _only_datasets(load_frame(results or [DEFAULT_OUT]), dataset)
    agg = _compare_views(df, by, sort or "top1_pct", markdown, (vs, vs_model), published)
    if csv:
        from petlbench.results.aggregate import sorted_aggregate

        Path(csv).parent.mkdir(parents=True, exist_ok=True)
        sorted_aggregate(agg, sort or "top1_pct").to_csv(csv, index=False)
        console.print(f"aggregate written to {csv}")
    if baseline:
        _gate(agg, _only_datasets(load_frame([baseline]), dataset, baseline), baseline, max_drop, max_rise)


def _only_datasets(df, dataset: list[str] | None, what: str = ""):
    """``--dataset``: the rows of those datasets; a one-line error for one the results (or ``what``) lack."""
    if not dataset:
        return df
    missing = sorted(set(dataset) - set(df["dataset"]))
    if missing:
        where = f" in the reference {what}" if what else ""
        raise UserError(f"no results for dataset '{missing[0]}'{where}{did_you_mean(missing[0], set(df['dataset']))}")
    return df[df["dataset"].isin(dataset)]


def _compare_views(df, by: str, sort: str, markdown: bool, pairing: tuple[str | None, str | None], published: bool):
    """Print what ``compare`` shows (Markdown, or the tables / the paired tables of --vs or --vs-model
    (``pairing``), the summaries per track and model, what is real in each ranking, --published); returns the
    aggregate."""
    from petlbench.results.aggregate import aggregate
    from petlbench.results.paired import paired_markdown, paired_tables, paired_vs, paired_vs_model
    from petlbench.results.paired import summary_table as paired_summary
    from petlbench.results.tables import compare_tables, markdown_pivot

    agg = aggregate(df)
    if agg.empty:
        raise UserError("no successful runs to compare (all rows failed); see the status/error columns")
    vs, vs_model = pairing
    paired = paired_vs(df, vs) if vs else paired_vs_model(df, vs_model) if vs_model else None
    if markdown:
        print(paired_markdown(paired) if paired else markdown_pivot(agg, sort=sort))
        return agg
    width = console.width
    for t in paired_tables(df, paired, width) if paired else compare_tables(agg, by, sort, width):
        console.print(t)
    _summaries(df, agg, sort, width)
    if paired and paired.per_task["dataset"].nunique() > 1:
        for t in paired_summary(paired, width):
            console.print(t)
    if published:
        _compare_published(df, agg, sort)
    failed = int((df["status"] != "ok").sum())
    if failed:
        console.print(f"[yellow]{failed} run(s) not ok were left out (status/error columns of the CSV)[/]")
    return agg


def _summaries(df, agg, sort: str, width: int) -> None:
    """Per track with several tasks: the summary over its tasks (a table per model), then what is real in each
    ranking (``results.stats.rankings``). VL tasks never enter the VTAB means."""
    from petlbench.results.aggregate import by_model, on_track, tracks_of, vtab_summary
    from petlbench.results.stats import rankings
    from petlbench.results.tables import ranking_tables, summary_table

    several = [t for t in tracks_of(agg) if on_track(agg, t)["dataset"].nunique() > 1]
    for track in several:
        for model, g in by_model(on_track(agg, track)):
            console.print(summary_table(vtab_summary(g, track, sort), track, width, model))
    for ranking in rankings(df, agg) if several else []:
        for t in ranking_tables(ranking, width):
            console.print(t)


GATE_OUTCOMES = ("regression", "configuration differs", "missing", "not in the reference")


def _gate(agg, reference, baseline: str, max_drop: float, max_rise: float | None) -> None:
    """``compare --baseline``: print what keeps the results from passing (regressions, configurations that
    differ from the reference's, missing ones), one summary line per outcome and how to regenerate the reference,
    and exit 1; or say there is none."""
    from petlbench.results.aggregate import aggregate
    from petlbench.results.gate import gate

    problems = gate(agg, aggregate(reference), max_drop, max_rise)
    for p in problems:
        kind, _, text = p.partition(": ")
        err_console.print(f"[red]{escape(kind)}[/]: {escape(text)}", highlight=False)
    rise = "" if max_rise is None else f", max rise {max_rise}"
    counts = {k: sum(p.startswith(f"{k}: ") for p in problems) for k in GATE_OUTCOMES}
    for kind, n in counts.items():
        err_console.print(f"gate summary, {kind}: {n}", highlight=False)
    if problems:
        err_console.print(f"gate failed against {escape(baseline)} (max drop {max_drop} points{rise}). If the change is "
                          "meant (a new method, a changed recipe or identity), regenerate the reference with `make "
                          "reference` (benchmarks/reference/smoke*.csv) or copy a fresh run's results.csv over it, "
                          "and commit it", highlight=False)
        raise typer.Exit(1)
    console.print(f"[green]no regression against {escape(baseline)} (same configurations; max drop {max_drop} "
                  f"points{rise})[/]")


def _compare_published(df, agg, sort: str = "top1_pct") -> None:
    """``compare --published``: ours − published where a published number exists, the reason elsewhere."""
    from petlbench.results.published import load_published, published_deltas, published_tables

    for t in published_tables(published_deltas(df, agg, load_published()), sort):
        console.print(t)


@app.command()
def fetch(
    suite: Annotated[str, typer.Argument(help="a paper suite: vtab-1k, apt-vilt, apt-meter, dvp")],
    to: Annotated[Path, typer.Option("--to", help="the folder to fill (then: petlbench suite SUITE --root DIR)")],
) -> None:
    """On a machine with a network: fetch what a paper suite needs (data, weights, tokenizers) into one folder, for
    runs on machines without one."""
    from petlbench.fetch import HUB_DIR, data_root
    from petlbench.fetch import fetch as do_fetch

    with reporting() as (_, say):
        manual = do_fetch(suite, to, say)
    root = data_root(to)
    for a in manual:
        err_console.print(f"by hand: {a.name} from {a.source}: {a.note}", highlight=False)
    console.print(f"fetched into {to}; run offline: petlbench suite {Path(suite).stem} --root {root}"
                  + (f"  (single runs: HF_HUB_CACHE={to / HUB_DIR} HF_HUB_OFFLINE=1 petlbench run ...)"
                     if (to / HUB_DIR).is_dir() else ""), highlight=False)


@app.command()
def report(
    results: Annotated[list[str] | None, typer.Argument(help="results CSVs or store dirs")] = None,
    out: Annotated[Path, typer.Option(help="output directory (index.html, report.md, PNGs)")] = Path("report"),
) -> None:
    """Write a self-contained HTML page and a Markdown report with tables and Pareto plots."""
    from petlbench.results.report import write_report
    from petlbench.results.store import load_frame

    page, md = write_report(load_frame(results or [DEFAULT_OUT]), out)
    console.print(f"report written: {page} (self-contained) and {md} (with PNGs next to it)")


@app.command()
def pretrain(
    data: Annotated[str | None, typer.Option(help="the recipe: what to pretrain, on what (`petlbench list recipes`; "
                                                  "default: the default backbone's)")] = None,
    out: Annotated[Path | None, typer.Option(help="output .safetensors (default: <model>.safetensors)")] = None,
    steps: Annotated[int | None, typer.Option(help="optimizer steps (default: the recipe's)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="default: the recipe's")] = None,
    lr: Annotated[float | None, typer.Option(help="default: the recipe's")] = None,
    seed: Annotated[int | None, typer.Option(help="default: the recipe's (0)")] = None,
    held_out: Annotated[int | None, typer.Option(help="held-out samples scored after training (default: the "
                                                      "recipe's)")] = None,
    threads: Annotated[int | None, typer.Option(help="torch threads (default: torch's)")] = None,
    device: Annotated[str | None, typer.Option(help="cpu | cuda[:N] (recipes that may leave the CPU; the bundled "
                                                    "files were made on the CPU)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="a research option of the recipe, key=value "
                                                                 "(repeatable; `petlbench list recipes`)")] = None,
) -> None:
    """Re-create a bundled backbone's weights from scratch (offline), by its registered recipe
    (petlbench/pretrain/); prints the provenance written next to the file."""
    from petlbench.pretrain.base import pretrain as do_pretrain

    given = {"data": data, "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "held_out": held_out,
             "device": device}
    with reporting() as (reporter, _):
        info = do_pretrain(out=out, threads=threads, reporter=reporter, sets=set_ or [],
                           **{k: v for k, v in given.items() if v is not None})
    console.print_json(json.dumps(info, default=str))


def main() -> None:
    """Entry point: user errors print one line and exit 2, without a traceback."""
    try:
        app()
    except UserError as e:
        # escaped: a message naming 'linear [random-init]' is text, not Rich markup
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
