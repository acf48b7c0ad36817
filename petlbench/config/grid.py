"""The tuned VTAB-1k protocol: choose hyper-parameters on val, then train on train+val and test once.

1. Every point of the grid (the product of ``--grid key=v1,v2,...``) trains on ``train`` and is scored on
   ``val`` with the first seed: a *selection run* (``selection=True``; it is stored like any run, so a
   killed tune resumes without training anything twice, but it has no test split at all).
2. The best point by val top-1 is chosen. Ties go to the point that comes first in grid order (the order
   of the ``--grid`` flags and of their values as given) — a documented, deterministic rule.
3. For each seed the chosen point trains on train+val (``trainval``) and is evaluated once on test; each
   final row records the grid, every point's val score and the choice (``RunResult.tune``).

The test split is never read before the choice: selection runs do not even load it (``Data.prepare``
with ``selection=True``). ``--print-commands`` prints the grid's runs while the grid is incomplete and the
final runs once it is complete (run it twice with an external engine).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, replace
from typing import Any

from petlbench.config.method_config import _coerce, build_method_config, field_types
from petlbench.config.options import RunConfig
from petlbench.errors import UserError
from petlbench.registry import METHODS


def parse_grid(pairs: list[str], method: str) -> dict[str, list[Any]]:
    """``["lr=1e-3,3e-3", "weight_decay=0,1e-4"]`` -> {key: [typed values]} (``grid_from_table`` validates)."""
    types_ = field_types(METHODS.get(method).Config)
    table: dict[str, list[Any]] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not raw.strip():
            raise UserError(f"--grid expects key=v1,v2,..., got '{pair}' (e.g. --grid lr=1e-3,3e-3)")
        tp = types_.get(key)
        table[key] = [_coerce(v.strip(), tp, key) if tp else v for v in raw.split(",") if v.strip()]
    return grid_from_table(table, method, "tune needs at least one --grid key=v1,v2,... (e.g. --grid lr=1e-3,3e-3)")


def grid_from_table(table: dict[str, Any], method: str,
                    empty: str = "a suite's tune table is empty; e.g. tune = { lr = [1e-3, 3e-3] }") -> dict[str, list[Any]]:
    """{key: value or [values]} (a suite's ``tune`` table, or parsed ``--grid`` flags) -> a grid, each value
    through the one validation path (an unknown key or a bad value is a one-line UserError)."""
    cls = METHODS.get(method).Config
    grid = {}
    for key, values in table.items():
        values = values if isinstance(values, list) else [values]
        for v in values:
            build_method_config(cls, {key: v}, method)
        grid[key] = list(values)
    if not grid:
        raise UserError(empty)
    return grid


def points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The grid's points in grid order (the first key varies slowest)."""
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]


@dataclass
class Plan:
    """One tune: the selection jobs (one per grid point) and, once they are all stored, the final jobs."""

    base: RunConfig
    grid: dict[str, list[Any]]
    seeds: list[int]

    def selection_jobs(self) -> list[RunConfig]:
        return [replace(self.base, seed=self.seeds[0], selection=True, trainval=False,
                        overrides={**self.base.overrides, **pt}) for pt in points(self.grid)]

    def final_jobs(self, choice: dict[str, Any]) -> list[RunConfig]:
        """One train+val run per seed at the chosen grid point."""
        return [replace(self.base, seed=s, selection=False, trainval=True,
                        overrides={**self.base.overrides, **choice}) for s in self.seeds]


def choose(grid: dict[str, list[Any]], scores: list[float]) -> tuple[int, dict[str, Any]]:
    """(index, point) of the best val score; ties -> the first in grid order."""
    pts = points(grid)
    if len(scores) != len(pts) or any(s != s for s in scores):  # NaN: a point without a val score
        raise UserError("a grid point has no val score (no val split, or the run failed); tune needs a val split")
    best = max(range(len(pts)), key=lambda i: (scores[i], -i))
    return best, pts[best]


def tune_record(grid: dict[str, list[Any]], scores: list[float], best: int, seed: int) -> dict[str, Any]:
    """What each final row stores about how its hyper-parameters were chosen."""
    return {"grid": grid, "selection_seed": seed, "val_top1_pct": {json.dumps(p, sort_keys=True): s for p, s in
                                                                   zip(points(grid), scores, strict=True)},
            "choice": points(grid)[best], "tie_rule": "highest val top-1; ties -> first in grid order"}
