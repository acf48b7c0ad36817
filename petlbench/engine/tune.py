"""TODO docstring (runner -> engine.tune)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import replace

from petlbench.config.options import RunConfig
from petlbench.engine.build import prepare_run
from petlbench.engine.loop import Reporter
from petlbench.engine.runner import execute
from petlbench.results.schema import RunResult


def execute_tune(plan, out: str, force: bool, reporter: Reporter, say: Callable[[str], None]) -> list[RunResult]:
    """The tuned protocol (``petlbench.tune``): the grid's selection runs, the choice on val, then one final
    train+val run per seed, all through ``execute`` (stored, resumable)."""
    from petlbench.config.grid import choose, tune_record

    select = plan.selection_jobs()
    execute(select, out, force, reporter, say)
    scores = stored_val_scores(select, out)
    best, choice = choose(plan.grid, scores)
    record = tune_record(plan.grid, scores, best, plan.seeds[0])
    say(f"tune: val top-1 per grid point {[round(s, 2) for s in scores]} -> chose {choice}")
    finals = [replace(j, tune=json.dumps(record, sort_keys=True)) for j in plan.final_jobs(choice, record)]
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
