"""The committed references (benchmarks/reference/<suite>.csv) keep their run identities: the jobs each suite builds
today (built, not run: ``prepare_run`` gives a job's config hash) are exactly the committed rows, hash for hash,
pinned to fp32 on every machine. A registered method that a reference lacks fails with a message naming it and
saying how to regenerate the reference (``make reference``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from petlbench import tracks
from petlbench.config.suites import load_suite, suite_jobs
from petlbench.datasets import DATASETS, load_data
from petlbench.engine import build, numerics
from petlbench.registry import METHODS
from petlbench.results.store import read_rows

from ...sweeps import STALE_METER

REFERENCE = Path(__file__).resolve().parents[3] / "benchmarks" / "reference"
# the two CI smoke suites are cheap to build (19 jobs); the full sweeps (264 + 66 + 48 + 54 jobs) run with the
# integration tests
SUITES = ["smoke", "smoke-vl", pytest.param("mini-vtab", marks=pytest.mark.integration),
          pytest.param("vl-mini", marks=pytest.mark.integration),
          pytest.param("vlp-mini", marks=pytest.mark.integration),
          pytest.param("vlp-meter-mini", marks=[pytest.mark.integration, STALE_METER])]


def missing_from_reference(suite: str) -> list[str]:
    """Methods a suite runs (for ``methods = "all"``: every registered method of its track) with no row in its
    committed reference."""
    have = {r["method"] for r in read_rows(REFERENCE / f"{suite}.csv")}
    return sorted({r.method for r in load_suite(suite)[2]} - have)


@pytest.mark.parametrize("suite", SUITES)
def test_every_job_of_a_reference_suite_keeps_its_committed_config_hash(suite, monkeypatch, backbones_built_once):
    """``backbones_built_once``: the identity reads only the weights' provenance (file names and hashes), not the
    weights' values, so the hashes are the same."""
    monkeypatch.setattr(numerics, "cpu_has_bf16", lambda: True)  # pinned to fp32 even where bf16 would be faster
    _, jobs, plans = suite_jobs(suite)
    rows = read_rows(REFERENCE / f"{suite}.csv")
    ref = {(r["method"], r["label"], r["dataset"], r["seed"]): r["config_hash"] for r in rows}
    assert not plans and len(jobs) == len(rows) == len(ref)
    data = {}
    for job in jobs:
        raw = data.get((job.dataset, job.limit)) or data.setdefault((job.dataset, job.limit),
                                                                      load_data(job.dataset, limit=job.limit))
        p = build.prepare_run(job, raw)
        assert p.cfg.precision == "fp32" and p.precision_reason == "asked"
        key = (job.method, job.label, p.cfg.dataset, str(job.seed))
        assert key in ref, (f"benchmarks/reference/{suite}.csv has no row for method '{job.method}' "
                            f"{key[1:]}; run `make reference` to regenerate it")
        assert p.config_hash == ref[key], f"{suite}: {key} changed its run identity"


@pytest.mark.parametrize("suite", ["smoke", "smoke-vl"])
def test_ci_suites_run_every_registered_method_of_their_track(suite):
    """``methods = "all"``: the suite's methods come from the registry (every method that runs on a kind of the track's
    default model), so a method registered later is gated too."""
    _, _, runs = load_suite(suite)
    (track,) = {DATASETS.get(r.dataset).track for r in runs}
    kinds = tracks.family(tracks.default_model(track)).kinds
    fits = [n for n, c in METHODS.all().items() if kinds & set(tracks.supported_kinds(c.supports))]
    assert [r.method for r in runs if not r.label] == fits
    missing = missing_from_reference(suite)
    assert not missing, (f"benchmarks/reference/{suite}.csv has no row for {', '.join(missing)}; "
                         "run `make reference` to regenerate it")


def test_a_method_missing_from_a_reference_is_named_with_the_fix(monkeypatch):
    """What a contributor sees after registering a method: the method's name and `make reference`."""
    from petlbench.methods.linear import Linear

    class Newcomer(Linear):
        name = "newcomer"

    monkeypatch.setitem(METHODS._entries, "newcomer", Newcomer)
    assert missing_from_reference("smoke") == ["newcomer"]
    with pytest.raises(AssertionError, match=r"no row for newcomer; run `make reference`"):
        test_ci_suites_run_every_registered_method_of_their_track("smoke")
