"""CI regression sweep: the smoke suite (every method it lists, on the bundled backbone), gated against the
committed reference results on exact trainable parameters and GMACs and on top-1 within a measured tolerance."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from petlbench.results import read_rows
from petlbench.suites import load_suite

# Top-1 tolerance (points, both ways). benchmarks/perf/smoke_spread.py ran the smoke suite under the kernel
# variants that differ between CPUs (native AMX/AVX-512 with 2 threads, AVX2-only and the default ISA with 1
# thread): the largest spread of any method was 0.39 points, one test image of 256 (README, "CI regression
# sweep"). 2 points (5 images) leaves room for CPUs we could not emulate here (AMD Zen's oneDNN kernels).
TOLERANCE = 2.0


def test_smoke_suite_matches_the_committed_reference(cli, tmp_path):
    ref = Path(str(resources.files("petlbench.benchmarks").joinpath("reference/smoke.csv")))
    _, _, suite_runs = load_suite("smoke")
    code, _, err = cli("suite", "smoke", "--out", tmp_path)
    assert code == 0, err
    rows = read_rows(tmp_path / "results.csv")
    assert all(r["status"] == "ok" for r in rows), [(r["method"], r["error"]) for r in rows if r["status"] != "ok"]
    # every method the suite lists ran, and the reference covers every one of them
    ref_rows = {r["method"]: r for r in read_rows(ref)}
    assert {r["method"] for r in rows} == {s.method for s in suite_runs} == set(ref_rows)
    # same data, same weights, same method configs, same identity as when the reference was recorded
    for r in rows:
        assert r["data_fingerprint"] == ref_rows[r["method"]]["data_fingerprint"]
        assert r["weights_sha256"] == ref_rows[r["method"]]["weights_sha256"]
        assert r["config_hash"] == ref_rows[r["method"]]["config_hash"], r["method"]  # the whole run identity
    code, out, err = cli("compare", tmp_path, "--baseline", ref, "--max-drop", str(TOLERANCE),
                         "--max-rise", str(TOLERANCE))
    assert code == 0, err
    assert "no regression" in out
