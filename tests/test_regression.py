"""CI regression sweep: the smoke suite on the bundled backbone, gated against committed reference results."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from petlbench.results import read_rows


def test_smoke_suite_matches_the_committed_reference(cli, tmp_path):
    ref = Path(str(resources.files("petlbench.benchmarks").joinpath("reference/smoke.csv")))
    code, _, err = cli("suite", "smoke", "--out", tmp_path)
    assert code == 0, err
    rows = read_rows(tmp_path / "results.csv")
    assert {r["method"] for r in rows} == {"linear", "lora"} and all(r["status"] == "ok" for r in rows)
    # same data, same weights, same method configs, same identity as when the reference was recorded
    ref_rows = {r["method"]: r for r in read_rows(ref)}
    for r in rows:
        assert r["data_fingerprint"] == ref_rows[r["method"]]["data_fingerprint"]
        assert r["weights_sha256"] == ref_rows[r["method"]]["weights_sha256"]
        assert r["config_hash"] == ref_rows[r["method"]]["config_hash"]  # the whole run identity
    code, out, err = cli("compare", tmp_path, "--baseline", ref, "--max-drop", "5")
    assert code == 0, err
    assert "no regression" in out
