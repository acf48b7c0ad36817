"""Start-up cost: commands that need no model never import torch (which takes seconds to import).

Checked by what a fresh interpreter has imported after the command, not by timing it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

_PROBE = """
import sys
from petlbench.cli import app
try:
    app(sys.argv[1:], prog_name="petlbench")
except SystemExit:
    pass
heavy = sorted(m for m in ("torch", "timm", "transformers", "datasets", "pandas") if m in sys.modules)
print("IMPORTED:" + ",".join(heavy))
"""


def _imported(*args: str, env: dict[str, str] | None = None) -> tuple[set[str], str]:
    proc = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})
    last = [ln for ln in proc.stdout.splitlines() if ln.startswith("IMPORTED:")]
    assert last, proc.stdout + proc.stderr
    return {m for m in last[-1].removeprefix("IMPORTED:").split(",") if m}, proc.stdout


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["run", "--help"], ["suite", "--help"],
                                  ["compare", "--help"], ["inspect", "--help"]])
def test_help_and_version_import_no_torch(args):
    heavy, out = _imported(*args)
    assert heavy == set(), f"{args} imported {heavy}"
    assert "petlbench" in out.lower()


def test_shell_completion_imports_no_torch():
    heavy, out = _imported(env={"_PETLBENCH_COMPLETE": "complete_bash", "COMP_WORDS": "petlbench co",
                                "COMP_CWORD": "1"})
    assert heavy == set()
    assert "compare" in out  # the completion itself still works


REFERENCE = Path(__file__).parents[2] / "benchmarks" / "reference"


@pytest.mark.parametrize("args", [["compare", "smoke.csv"], ["compare", "mini-vtab.csv", "--markdown"],
                                  ["compare", "smoke.csv", "--baseline", "smoke.csv"], ["report", "vl-mini.csv"]])
def test_compare_and_report_read_the_store_without_torch(args, tmp_path):
    """compare and report read CSVs: they import pandas (and matplotlib), never torch or the model libraries."""
    argv = [str(REFERENCE / a) if a.endswith(".csv") else a for a in args]
    if args[0] == "report":
        argv += ["--out", str(tmp_path / "report")]
    heavy, out = _imported(*argv)
    assert heavy == {"pandas"}
    assert "Traceback" not in out
