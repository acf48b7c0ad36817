"""Running the tuned protocol (``config.grid``): the grid's selection runs, the choice on val, then the final
train+val runs, all through ``engine.runner.execute`` (stored, resumable); and the same as ``petlbench run`` commands
for an external engine."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import replace

from petlbench.config.grid import Plan, choose, tune_record
from petlbench.config.options import RunConfig, as_command
from petlbench.engine.build import prepare_run
from petlbench.engine.loop import Reporter
from petlbench.engine.runner import execute
from petlbench.results.schema import RunResult


def execute_tune(plan, out: str, force: bool, reporter: Reporter, say: Callable[[str], None]) -> list[RunResult]:
    """The tuned protocol (``config.grid``): the grid's selection runs, the choice on val, then one final
    train+val run per seed, all through ``execute`` (stored, resumable)."""
    select = plan.selection_jobs()
    execute(select, out, force, reporter, say)
    scores = stored_val_scores(select, out)
    best, choice = choose(plan.grid, scores)
    record = tune_record(plan.grid, scores, best, plan.seeds[0])
    say(f"tune: val top-1 per grid point {[round(s, 2) for s in scores]} -> chose {choice}")
    finals = [replace(j, tune=json.dumps(record, sort_keys=True)) for j in plan.final_jobs(choice)]
    return execute(finals, out, force, reporter, say)


def stored_val_scores(jobs: list[RunConfig], out: str) -> list[float]:
    """The stored val top-1 of each (selection) job, NaN where it is not stored yet."""
    from petlbench.datasets import load_data
    from petlbench.results.store import Store, read_rows

    store = Store(out)
    rows = {r["config_hash"]: r for r in read_rows(store.csv) if r.get("status") == "ok"} if store.csv.exists() else {}
    scores = []
    for job in jobs:
        row = rows.get(prepare_run(job, load_data(job.dataset, limit=job.limit)).config_hash)
        scores.append(float(row["top1_val_pct"]) if row and row.get("top1_val_pct") else math.nan)
    return scores


def commands(plan: Plan, out: str) -> list[str]:
    """The `petlbench run` commands of a tune for an external engine: the grid's while it is incomplete, the
    final runs (with the tune record) once every grid point is stored."""
    select = plan.selection_jobs()
    scores = stored_val_scores(select, out)
    if any(s != s for s in scores):
        return [as_command(j, out) for j in select]
    best, choice = choose(plan.grid, scores)
    record = json.dumps(tune_record(plan.grid, scores, best, plan.seeds[0]), sort_keys=True)
    return [as_command(replace(j, tune=record), out) for j in plan.final_jobs(choice)]
