"""``--executor local|slurm``: the same jobs through submitit (one job per run, a job array) into the same store.
The local executor runs two tiny real jobs; Slurm submission is checked against a stand-in ``sbatch`` (the
script it would submit); resubmission is checked on stand-in jobs."""

from __future__ import annotations

import json
import os
import sys
from types import SimpleNamespace

import pytest

from petlbench.config.options import RunConfig
from petlbench.engine.executors import Execution, JobOutcome, RunJob, collect
from petlbench.engine.loop import Reporter
from petlbench.results.schema import RunResult
from petlbench.results.store import read_rows

pytest.importorskip("submitit")
pytestmark = pytest.mark.integration

TINY_RUN = ["--dataset", "shapes-loc", "--model", "test_vit", "--img-size", "32", "--no-pretrained", "--limit", "16",
            "--epochs", "1", "--device", "cpu"]


def test_local_executor_runs_one_job_per_run_into_the_store(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # two job processes on a shared machine
    out = tmp_path / "store"
    code, stdout, err = cli("run", "lora", "--seeds", "0,1", *TINY_RUN, "--out", out, "--executor", "local",
                            "--slurm-cpus", "1")
    assert code == 0, err + stdout
    rows = read_rows(out / "results.csv")
    assert sorted(int(r["seed"]) for r in rows) == [0, 1] and {r["status"] for r in rows} == {"ok"}
    assert {r["processes"] for r in rows} == {"1"}
    # each row records the load it started under and what preprocessing ran (not timm's default data config)
    assert all(int(r["cpu_cores"]) >= 1 and float(r["load_avg_1m"]) >= 0 for r in rows)
    record = json.loads((out / "runs" / f"{rows[0]['run_id']}.json").read_text())
    assert record["extra"]["data_config"] == {"preprocessing": rows[0]["preprocessing"], "input_size": [3, 32, 32],
                                              "mean": record["extra"]["data_config"]["mean"],
                                              "std": record["extra"]["data_config"]["std"]}
    assert "squash" in rows[0]["preprocessing"] and "bicubic" not in json.dumps(record["extra"])
    assert "submitted 2 local job(s)" in stdout and stdout.count("top-1") >= 2
    logs = sorted((out / "slurm").glob("*_log.out"))
    assert len(logs) == 2 and all("lora on shapes-loc seed" in log.read_text() for log in logs)
    pids = {r["run_id"].rsplit("-", 1)[1] for r in rows}
    assert len(pids) == 2 and str(os.getpid()) not in pids  # each run trained in its own job process


def _stand_in_sbatch(tmp_path, monkeypatch) -> SimpleNamespace:
    """An ``sbatch`` on PATH that keeps the script it is given and answers like Slurm."""
    bin_dir, kept = tmp_path / "bin", tmp_path / "submitted.sh"
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(f"#!/bin/sh\ncp \"$1\" {kept}\necho 'Submitted batch job 4242'\n")
    sbatch.chmod(0o755)
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")  # only looked for (submitit: 'are we on Slurm?')
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return SimpleNamespace(script=kept)


def test_slurm_submits_a_job_array_with_the_options(cli, tmp_path, monkeypatch):
    fake = _stand_in_sbatch(tmp_path, monkeypatch)
    out = tmp_path / "store"
    code, stdout, err = cli("run", "lora", "--seeds", "0,1,2", *TINY_RUN, "--out", out, "--executor", "slurm",
                            "--slurm-partition", "gpu", "--slurm-account", "lab", "--slurm-time", "30",
                            "--slurm-gpus", "1", "--slurm-cpus", "4", "--slurm-mem", "16", "--slurm-parallel", "2",
                            "--no-wait")
    assert code == 0, err + stdout
    assert "submitted 3 slurm job(s) (4242)" in stdout and "not waiting" in stdout
    script = fake.script.read_text()
    for line in ("--array=0-2%2", "--partition=gpu", "--account=lab", "--time=30", "--gpus-per-node=1",
                 "--cpus-per-task=4", "--mem=16GB", "--job-name=petlbench-lora", f"--output={out / 'slurm'}/%A_%a_0_log.out"):
        assert f"#SBATCH {line}" in script
    assert not (out / "results.csv").exists()  # nothing ran here


@pytest.mark.parametrize("args, expected", [
    (["--slurm-partition", "gpu"], "--slurm-partition applies to --executor slurm or local"),
    (["--no-wait"], "--no-wait applies to --executor slurm or local"),
    (["--executor", "slurm"], "needs Slurm's sbatch and srun on PATH"),
    (["--executor", "local", "--slurm-time", "0"], "--slurm-time must be positive"),
    (["--executor", "local", "--retries", "-1"], "--retries must be 0 or more"),
    (["--executor", "local", "--set", "rank=0"], "rank"),  # method configs are checked before submitting
])
def test_bad_execution_options_are_one_line_errors(cli, tmp_path, monkeypatch, args, expected):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    code, _, err = cli("run", "lora", *TINY_RUN, "--out", tmp_path / "store", *args)
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "store" / "slurm").exists()


def test_without_submitit_the_error_names_the_pip_line(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit -> ImportError
    code, _, err = cli("suite", "smoke", "--out", tmp_path / "store", "--executor", "local")
    assert code == 2 and "pip install 'petlbench[slurm]'" in err and len(err.strip().splitlines()) == 1


def test_print_commands_and_torchrun_refuse_an_executor(cli, tmp_path, monkeypatch):
    code, _, err = cli("suite", "smoke", "--print-commands", "--executor", "local")
    assert code == 2 and "--print-commands prints the jobs" in err
    code, printed, _ = cli("suite", "smoke", "--print-commands")
    assert code == 0 and printed.startswith("petlbench run")  # GNU parallel's input, unchanged
    for k, v in {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(k, v)
    code, _, err = cli("run", "lora", *TINY_RUN, "--out", tmp_path / "store", "--executor", "local")
    assert code == 2 and "not under torchrun" in err


# ----------------------------------------------------------------------------- resubmission, on stand-ins


class _Job:
    """A finished submitit job: its result, or the exception its process died with."""

    def __init__(self, job_id: str, outcome: JobOutcome | None = None, error: Exception | None = None,
                 state: str = "COMPLETED") -> None:
        self.job_id, self.outcome, self.error, self.state = job_id, outcome, error, state
        self.paths = SimpleNamespace(stderr=f"slurm/{job_id}_0_log.err")

    def done(self) -> bool:
        return True

    def exception(self) -> Exception | None:
        return self.error

    def result(self) -> JobOutcome:
        return self.outcome


def _ok(cfg: RunConfig) -> JobOutcome:
    return JobOutcome([RunResult(method=cfg.method, seed=cfg.seed, top1_pct=50.0, time_total_s=1.0)])


def test_failed_jobs_are_resubmitted_until_they_succeed_or_retries_run_out():
    jobs = [RunConfig(method="lora", seed=0), RunConfig(method="lora", seed=1)]
    from submitit.core.utils import FailedJobError

    crash = FailedJobError("Job (task=0) failed during processing with trace:\nTraceback ...\nRuntimeError: node n17 died")
    resubmitted, said = [], []

    def resubmit(cfgs):
        resubmitted.append([c.seed for c in cfgs])
        return [_Job(f"2_{i}", _ok(c)) for i, c in enumerate(cfgs)]

    results, errors, failed = collect([_Job("1_0", _ok(jobs[0])), _Job("1_1", error=crash)], jobs, resubmit,
                                      retries=1, say=said.append, poll_s=0)
    assert sorted(r.seed for r in results) == [0, 1] and errors == [] and failed == []
    assert resubmitted == [[1]]
    assert any("node n17 died" in s and "slurm/1_1_0_log.err" in s for s in said)

    def crash_again(cfgs):
        resubmitted.append([c.seed for c in cfgs])
        return [_Job("3_0", error=crash) for _ in cfgs]

    resubmitted.clear()
    results, _, failed = collect([_Job("1_0", error=crash)], jobs[:1], crash_again, retries=2, say=said.append,
                                 poll_s=0)
    assert results == [] and resubmitted == [[0], [0]] and failed == ["lora on the default task seed 0"]

    resubmitted.clear()  # cancelled (scancel): reported, never resubmitted
    _, _, failed = collect([_Job("1_0", error=crash, state="CANCELLED by 1000")], jobs[:1], crash_again, retries=2,
                           say=said.append, poll_s=0)
    assert resubmitted == [] and failed == ["lora on the default task seed 0"]


def test_bad_input_in_a_job_is_reported_not_retried(tmp_path):
    cfg = RunConfig(method="lora", dataset=str(tmp_path / "missing"), model="test_vit")
    outcome = RunJob()(cfg, str(tmp_path / "store"), False, Reporter, None)
    assert outcome.results == [] and "missing" in outcome.error
    resubmitted = []
    _, errors, failed = collect([_Job("1_0", outcome)], [cfg], resubmitted.append, retries=3, say=lambda _s: None,
                                poll_s=0)
    assert errors == [outcome.error] and failed == [] and resubmitted == []


def test_a_timed_out_job_requeues_the_same_run():
    """submitit calls ``checkpoint`` on timeout / preemption and resubmits what it returns."""
    job, cfg = RunJob(), RunConfig(method="lora")
    delayed = job.checkpoint(cfg, "out", False, Reporter, 2)
    assert delayed.function is job and delayed.args == (cfg, "out", False, Reporter, 2)


def test_execution_options_are_not_run_options():
    from petlbench.config.options import options

    assert not {f.name for f in options()} & set(Execution.__dataclass_fields__)
    assert Execution(executor="local").parameters("x") == {"name": "x", "timeout_min": 120, "gpus_per_node": 0,
                                                            "nodes": 1, "tasks_per_node": 1}


def test_local_jobs_start_no_more_than_the_cores_allow(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert Execution(executor="local").at_once() == 1  # each job's torch uses every core: one at a time
    assert Execution(executor="local", slurm_cpus=2).at_once() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert Execution(executor="local").at_once() == 4
    assert Execution(executor="local", slurm_parallel=3).at_once() == 3
    assert Execution(executor="slurm").at_once() is None  # Slurm: the array's own limit, if any

    jobs = [RunConfig(method="lora", seed=s) for s in range(5)]
    batches = []

    def submit_more(cfgs):
        batches.append([c.seed for c in cfgs])
        return [_Job(f"2_{c.seed}", _ok(c)) for c in cfgs]

    results, _, failed = collect([_Job("1_0", _ok(jobs[0])), _Job("1_1", _ok(jobs[1]))], jobs[:2], submit_more,
                                 retries=0, say=lambda _s: None, poll_s=0, waiting=jobs[2:], at_once=2)
    assert batches == [[2, 3], [4]] and sorted(r.seed for r in results) == [0, 1, 2, 3, 4] and failed == []
