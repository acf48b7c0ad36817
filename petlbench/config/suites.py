"""Suites: ``benchmarks/*.toml`` (or any TOML path) -> validated ``RunConfig`` jobs.

Keys a suite (top level or a ``[[group]]``) may set: ``methods``, ``datasets``, ``seeds``, ``label``,
``[set.<method>]`` method-config overrides, every run option declared in ``config.options.RunConfig`` with
``suite=True``, and every shared recipe key of ``MethodConfig`` (``epochs``, ``lr``, ...). Groups override
the top level. Every value is validated (types and ranges) when the suite is loaded, before anything runs.

``methods`` is a list of method names, or ``"all"``: every registered method (built-in and entry-point, in
name order, as ``petlbench list methods`` prints them) that runs on the track of the block's ``datasets``
(a dataset's track is its registered ``DatasetSpec.track``, or for a local path the track of the local
format that claims it; no ``datasets``: the default task's; ``track`` names it for data not on disk yet). The
datasets of an ``"all"`` block must share one track. A method registered later then joins the suite without
editing it (the CI smoke suites use this).

A paper suite takes its data root: ``{root}`` in its ``datasets`` (and ``weights``) is the folder given to
``petlbench suite NAME --root DIR``; ``root`` (a structure key) says what that folder holds. ``--plan`` needs none.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from petlbench.config.grid import Plan, grid_from_table
from petlbench.config.method_config import build_method_config, check_type
from petlbench.config.options import SUITE_KEYS, RunConfig, options
from petlbench.errors import UserError, did_you_mean

STRUCTURE_KEYS = frozenset({"methods", "datasets", "seeds", "set", "name", "description", "group", "tune", "root",
                            "track"})
ROOT = "{root}"  # the placeholder of a paper suite's data root


def recipe_keys() -> frozenset[str]:
    from petlbench.methods.base import MethodConfig

    return frozenset(f.name for f in dataclasses.fields(MethodConfig))


@dataclass
class SuiteRun:
    """One (method, dataset, seeds) entry of a suite, with its run options and method overrides."""

    method: str
    dataset: str | None
    seeds: list[int]
    run: dict[str, Any]
    overrides: dict[str, Any]
    label: str = ""
    grid: dict[str, list[Any]] | None = None  # a `tune = {...}` block: the tuned protocol instead of runs


def find_suite(name_or_path: str) -> Path:
    """A suite TOML: a path, or a name shipped in petlbench.benchmarks (``mini-vtab``, ``smoke``)."""
    from importlib import resources

    p = Path(name_or_path)
    if p.is_file():
        return p
    shipped = resources.files("petlbench.benchmarks")
    names = sorted(f.name[:-5] for f in shipped.iterdir() if f.name.endswith(".toml"))
    if name_or_path in names:
        return Path(str(shipped.joinpath(f"{name_or_path}.toml")))
    raise UserError(f"unknown suite '{name_or_path}'{did_you_mean(name_or_path, names)}; shipped suites: "
                    f"{', '.join(names)} (or pass a .toml path)")


def _run_options(merged: dict[str, Any], where: str) -> dict[str, Any]:
    """The run options a suite block sets, type-checked against their declaration."""
    import typing

    hints = typing.get_type_hints(RunConfig)
    out = {}
    for f in options():
        if f.name in merged and f.name in SUITE_KEYS:
            ok, value = check_type(merged[f.name], hints[f.name])
            if not ok:
                raise UserError(f"suite '{where}': '{f.name}' = {merged[f.name]!r} has the wrong type; "
                                f"expected {hints[f.name]} (default {f.default!r})")
            out[f.name] = value
    return out


def track_methods(datasets: list[str] | None, where: str, model: str | None = None,
                  track: str | None = None) -> list[str]:
    """``methods = "all"``: every registered method, in name order, that runs on the one track of ``datasets`` (or
    the suite's ``track``) and on a kind of the block's model's family (no model: the track's default model)."""
    from petlbench.datasets import track_of
    from petlbench.registry import METHODS
    from petlbench.tracks import default_model, family, supported_kinds

    found = {track} if track else {track_of(d) for d in datasets or [None]}
    if len(found) != 1:
        raise UserError(f"suite '{where}': methods = \"all\" needs datasets of one track, but they are "
                        f"{' and '.join(sorted(found))}; split them into [[group]] blocks")
    (track,) = found
    kinds = family(model or default_model(track)).kinds
    return [n for n, cls in METHODS.all().items() if kinds & set(supported_kinds(cls.supports))]


def _runs_of_block(merged: dict[str, Any], where: str) -> list[SuiteRun]:
    from petlbench.registry import METHODS

    allowed = SUITE_KEYS | recipe_keys() | STRUCTURE_KEYS
    unknown = set(merged) - allowed
    if unknown:
        k = sorted(unknown)[0]
        if k == "amp":  # the key before --precision
            raise UserError(f"suite '{where}': 'amp' is now precision = \"bf16\" (or \"fp32\", \"auto\"); rename it")
        raise UserError(f"suite '{where}' has unknown key '{k}'{did_you_mean(k, allowed)}")
    if not merged.get("methods"):
        raise UserError(f"suite '{where}' lists no methods; add methods = [\"linear\", ...]")
    methods = merged["methods"]
    if methods == "all":
        methods = track_methods(merged.get("datasets"), where, merged.get("model"), merged.get("track"))
    elif not (isinstance(methods, list) and all(isinstance(m, str) for m in methods)):
        raise UserError(f"suite '{where}': methods must be a list of method names or \"all\", "
                        f"e.g. methods = [\"linear\", \"lora\"]; got {methods!r}")
    seeds = merged.get("seeds", [0])
    if not (isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise UserError(f"suite '{where}': seeds must be a list of integers, e.g. seeds = [0, 1, 2]")
    run = _run_options(merged, where)
    label = run.pop("label", "")
    runs = []
    for method in methods:
        overrides = {k: merged[k] for k in recipe_keys() if k in merged}
        overrides.update(merged.get("set", {}).get(method, {}))
        build_method_config(METHODS.get(method).Config, overrides, method)  # validate now, before any run
        grid = grid_from_table(merged["tune"], method) if "tune" in merged else None
        for dataset in merged.get("datasets") or [None]:
            runs.append(SuiteRun(method, dataset, list(seeds), run, overrides, label=label, grid=grid))
    return runs


def load_suite(name_or_path: str) -> tuple[str, str, list[SuiteRun]]:
    """Parse and validate a suite TOML into (name, description, runs). Unknown keys and bad values are errors."""
    import tomllib

    path = find_suite(name_or_path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"suite '{path}' is not valid TOML ({e}); fix the file") from None
    runs: list[SuiteRun] = []
    for g in [{}] + list(data.get("group", [])):
        merged = {k: v for k, v in data.items() if k != "group"}
        for k, v in g.items():
            merged[k] = _merge_sets(merged.get("set", {}), v) if k == "set" else v
        runs += _runs_of_block(merged, path.name)
    return data.get("name", path.stem), data.get("description", ""), runs


def _merge_sets(top: dict[str, Any], group: dict[str, Any]) -> dict[str, Any]:
    """A group's ``[set.<method>]`` over the suite's: per method, the group's keys over the suite's."""
    return {**top, **{m: {**top.get(m, {}), **keys} for m, keys in group.items()}}


def suite_root(name_or_path: str) -> str:
    """What a paper suite's data root holds (its ``root`` key), '' for a suite without one."""
    import tomllib

    return str(tomllib.loads(find_suite(name_or_path).read_text()).get("root", ""))


def _rooted(value: Any, root: str | None, suite: str) -> Any:
    """``value`` with ``{root}`` replaced by ``root``; UserError naming what the root holds when none is given."""
    if not (isinstance(value, str) and ROOT in value):
        return value
    if root is None:
        raise UserError(f"suite '{suite}' takes its data root: pass --root DIR ({suite_root(suite) or 'see the suite'}"
                        f"; `petlbench fetch {suite} --to DIR` fetches it), or --plan to see its cost first")
    return value.replace(ROOT, str(Path(root)))


def suite_jobs(name_or_path: str, seeds: list[int] | None = None, root: str | None = None, need_root: bool = True,
               **run_overrides: Any) -> tuple[str, list[RunConfig], list[Plan]]:
    """(suite name, one ``RunConfig`` per plain job, one tune ``Plan`` per tuned (method, dataset));
    ``run_overrides`` (e.g. limit, device) replace the suite's; ``root`` fills a paper suite's ``{root}`` (left in
    place without one when not ``need_root``: ``--plan``)."""
    name, _, runs = load_suite(name_or_path)
    fill = (lambda v: _rooted(v, root, name_or_path)) if root is not None or need_root else (lambda v: v)
    jobs, plans = [], []
    for r in runs:
        opts = {k: fill(v) for k, v in {**r.run, **{k: v for k, v in run_overrides.items() if v is not None}}.items()}
        base = RunConfig(method=r.method, dataset=fill(r.dataset), overrides=dict(r.overrides), label=r.label,
                         suite=name, **opts)
        if r.grid is not None:
            plans.append(Plan(base, r.grid, list(seeds or r.seeds)))
            continue
        jobs += [replace(base, seed=s) for s in seeds or r.seeds]
    return name, jobs, plans
