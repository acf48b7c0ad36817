"""CI regression sweeps: the smoke suites (every vision method on the bundled backbone; every VL method on the
offline VL pair), gated against committed reference results on exact trainable parameters and GMACs and on
top-1 (VQA score on shapes-vqa) within a measured tolerance."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from petlbench.config.suites import load_suite
from petlbench.results.store import read_rows

from ..sweeps import SMOKE_TOLERANCE

pytestmark = pytest.mark.integration

# Top-1 tolerance per suite: tests/sweeps.py, SMOKE_TOLERANCE (the CI workflow in docs/ci/ gates with the same).
SUITES = SMOKE_TOLERANCE


def _key(row) -> tuple[str, str]:
    return row["method"], row["label"]


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_smoke_suite_matches_the_committed_reference(cli, tmp_path, suite):
    ref = Path(str(resources.files("petlbench.benchmarks").joinpath(f"reference/{suite}.csv")))
    _, _, suite_runs = load_suite(suite)
    ref_rows = {_key(r): r for r in read_rows(ref)}
    missing = sorted({s.method for s in suite_runs} - {m for m, _ in ref_rows})  # e.g. a newly registered method
    assert not missing, (f"benchmarks/reference/{suite}.csv has no row for {', '.join(missing)}; "
                         "run `make reference` to regenerate it")
    code, _, err = cli("suite", suite, "--out", tmp_path)
    assert code == 0, err
    rows = read_rows(tmp_path / "results.csv")
    assert all(r["status"] == "ok" for r in rows), [(r["method"], r["error"]) for r in rows if r["status"] != "ok"]
    # every configuration the suite lists ran, and the reference covers every one of them
    assert {_key(r) for r in rows} == {(s.method, s.label) for s in suite_runs} == set(ref_rows)
    # same data, same weights, same method configs, same identity as when the reference was recorded
    for r in rows:
        want = ref_rows[_key(r)]
        assert r["data_fingerprint"] == want["data_fingerprint"]
        assert r["weights_sha256"] == want["weights_sha256"]
        assert r["config_hash"] == want["config_hash"], _key(r)  # the whole run identity
    tol = str(SUITES[suite])
    code, out, err = cli("compare", tmp_path, "--baseline", ref, "--max-drop", tol, "--max-rise", tol)
    assert code == 0, err
    assert "no regression" in out
    assert [ln for ln in err.splitlines() if ln.startswith("gate summary, ")] == [
        f"gate summary, {kind}: 0" for kind in ("regression", "configuration differs", "missing", "not in the reference")]
