"""The GitHub Actions workflow in docs/ci/: it runs both smoke sweeps and gates each against its reference, and every
petlbench command in it is one the CLI accepts (its subcommand and every option it passes are in that subcommand's
--help)."""

from __future__ import annotations

import re
import shlex

import yaml

from ...sweeps import BENCH, SMOKE_TOLERANCE

WORKFLOW = BENCH.parent / "docs" / "ci" / "petlbench-regression.yml"


def _commands() -> list[list[str]]:
    flow = yaml.safe_load(WORKFLOW.read_text())
    steps = [s for job in flow["jobs"].values() for s in job["steps"]]
    lines = [ln.strip() for s in steps for ln in s.get("run", "").splitlines()]
    return [shlex.split(ln) for ln in lines if ln.startswith("petlbench ")]


def test_the_workflow_runs_both_smoke_sweeps_and_gates_each():
    flow = yaml.safe_load(WORKFLOW.read_text())
    assert set(flow[True]) == {"push", "pull_request"}  # YAML 1.1 reads the key `on` as True
    cmds = _commands()
    suites = [c[2] for c in cmds if c[1] == "suite"]
    gates = [(c[2], c[c.index("--baseline") + 1]) for c in cmds if c[1] == "compare" and "--baseline" in c]
    assert suites == ["smoke", "smoke-vl"]
    assert gates == [("results/smoke", "benchmarks/reference/smoke.csv"),
                     ("results/smoke-vl", "benchmarks/reference/smoke-vl.csv")]
    assert all((BENCH.parent / ref).exists() for _, ref in gates)
    for c in (c for c in cmds if c[1] == "compare"):  # the test's measured tolerance, both ways
        tol = SMOKE_TOLERANCE[c[2].split("/")[-1]]
        assert float(c[c.index("--max-drop") + 1]) == float(c[c.index("--max-rise") + 1]) == tol, c


def test_every_command_and_option_in_the_workflow_is_in_its_help(cli):
    for cmd in _commands():
        code, out, err = cli(cmd[1], "--help")
        assert code == 0, err
        for option in (t.split("=")[0] for t in cmd[2:] if t.startswith("--")):
            assert re.search(rf"{re.escape(option)}\b", out), (cmd[1], option)
