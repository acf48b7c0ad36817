"""How a list of runs is executed: ``--executor inline`` (default: one after the other in this process),
``slurm`` (one Slurm job per run, submitted through submitit as a job array) or ``local`` (the same submitit
jobs as processes on this machine: the code path of ``slurm`` without a cluster, used by the tests).

Every job runs ``engine.runner.execute([cfg])`` into the same store (``results.store.Store``: locked, safe across
processes and machines sharing the file system), so a job skips a configuration that is stored already and
a resubmitted job never adds a second row. Submission pickles and each job's stdout/stderr go to
``<out>/slurm/`` (named by job id). A job whose process fails (crash, node failure, killed) is resubmitted up to
``--retries`` times; a Slurm job that times out or is preempted is requeued by submitit (the job is
checkpointable: it starts the run again). A run that fails inside the loop is a stored ``failed`` row, as
inline, not a job failure. The options are execution options: never part of a run's identity.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from petlbench.config.options import RunConfig, opt, option_parameters, with_parameters
from petlbench.errors import UserError
from petlbench.results.provenance import cores

EXECUTORS = ("inline", "local", "slurm")
PIP_LINE = "pip install 'petlbench[slurm]'"


@dataclass(frozen=True)
class Execution:
    """How a command's list of runs is executed (declared once: the Typer options of ``run`` and ``suite``)."""

    executor: Literal["inline", "local", "slurm"] = opt(
        "inline", "inline: one run after the other in this process; slurm: one Slurm job per run (submitit job "
                  "array); local: the same jobs as processes on this machine")
    slurm_partition: str | None = opt(None, "Slurm partition (default: the cluster's)")
    slurm_account: str | None = opt(None, "Slurm account (default: yours)")
    # our choice: a mini-VTAB run of a ViT-B takes minutes on a GPU; submitit's own default is 5 minutes
    slurm_time: int = opt(120, "time limit per job in minutes (Slurm --time; local: the job's timeout)")
    slurm_gpus: int = opt(0, "GPUs per job (local: the GPUs the job sees)")
    slurm_cpus: int | None = opt(None, "CPU cores per job; the job uses that many torch threads (default: the "
                                       "cluster's / torch's)")
    slurm_mem: float | None = opt(None, "memory per job in GB (default: the cluster's)")
    slurm_parallel: int | None = opt(None, "at most this many jobs at once (slurm: of the array, default no limit; "
                                           "local: default the machine's cores / the threads per job)")
    # our choice: one retry covers a transient node failure without hiding a failure that repeats
    retries: int = opt(1, "resubmit a job whose process failed (crash, node failure) up to this many times")
    wait: bool = opt(True, "wait for the jobs (retries, the table); --no-wait: submit, print the job ids, return",
                     flag="--wait/--no-wait")

    @classmethod
    def take(cls, kwargs: dict[str, Any]) -> Execution:
        """The execution options out of a command's keyword arguments (removed from ``kwargs``), checked."""
        ex = cls(**{f.name: kwargs.pop(f.name) for f in fields(cls) if f.name in kwargs})
        ex.check()
        return ex

    def changed(self) -> list[str]:
        """The flags set to something other than their default, other than ``--executor``."""
        out = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "executor" and value != f.default:
                pos, _, neg = (f.metadata["opt"].flag or f"--{f.name.replace('_', '-')}").partition("/")
                out.append(neg if value is False and neg else pos)
        return out

    def check(self) -> None:
        if self.executor not in EXECUTORS:
            raise UserError(f"--executor must be one of {', '.join(EXECUTORS)}, got '{self.executor}'")
        for name in ("slurm_time", "slurm_cpus", "slurm_mem", "slurm_parallel"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UserError(f"--{name.replace('_', '-')} must be positive, got {value}")
        for name in ("slurm_gpus", "retries"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}")
        if self.executor == "inline" and self.changed():
            raise UserError(f"{self.changed()[0]} applies to --executor slurm or local; add one of them or drop it")

    def at_once(self) -> int | None:
        """How many jobs may run at once: ``--slurm-parallel``; for ``local`` by default what this machine's cores
        allow for each job's threads (``--slurm-cpus``, else ``OMP_NUM_THREADS``, else all cores: one at a time),
        so that jobs never oversubscribe the cores and their img/s stay meaningful. None: no limit."""
        if self.slurm_parallel or self.executor != "local":
            return self.slurm_parallel
        threads = self.slurm_cpus or _int_env("OMP_NUM_THREADS") or cores()
        return max(1, cores() // threads)

    def parameters(self, name: str) -> dict[str, Any]:
        """submitit ``update_parameters`` keywords (None = the cluster's default)."""
        params: dict[str, Any] = dict(name=name, timeout_min=self.slurm_time, gpus_per_node=self.slurm_gpus,
                                      cpus_per_task=self.slurm_cpus, mem_gb=self.slurm_mem, nodes=1,
                                      tasks_per_node=1)
        if self.executor == "slurm":
            params.update(slurm_partition=self.slurm_partition, slurm_account=self.slurm_account,
                          slurm_array_parallelism=self.slurm_parallel)
        return {k: v for k, v in params.items() if v is not None}


def _int_env(name: str) -> int | None:
    try:
        return max(1, int(os.environ[name]))
    except (KeyError, ValueError):
        return None


def with_execution_options(fn):
    """Give a command the ``Execution`` options (it gets them in ``**kwargs``; ``Execution.take`` reads them)."""
    return with_parameters(fn, option_parameters(Execution))


# ----------------------------------------------------------------------------------------- the job


@dataclass
class JobOutcome:
    """What one job returns: its finished runs, or the one-line error of bad input (not retried)."""

    results: list = field(default_factory=list)
    error: str = ""


def _plain(text: str) -> str:
    from rich.text import Text

    return Text.from_markup(text).plain


class RunJob:
    """One job: ``engine.runner.execute([cfg])`` into the shared store. Checkpointable: a Slurm job that times out or
    is preempted is requeued by submitit and runs the configuration again (a stored one is skipped)."""

    def __call__(self, cfg: RunConfig, out: str, force: bool, reporter: Callable[[], Any],
                 threads: int | None) -> JobOutcome:
        import torch

        from petlbench.engine.runner import execute

        if threads:
            torch.set_num_threads(threads)
        try:
            return JobOutcome(execute([cfg], out, force, reporter(), lambda t: print(_plain(t), flush=True)))
        except UserError as e:  # bad input fails the same way every time: reported, not retried
            print(f"error: {e}", flush=True)
            return JobOutcome(error=str(e))

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


# ---------------------------------------------------------------------------------- submit and wait


def _submitit():
    try:
        import submitit
    except ImportError:
        raise UserError(f"--executor slurm/local needs submitit: {PIP_LINE}") from None
    return submitit


def preflight(jobs: list[RunConfig], out: str, ex: Execution) -> None:
    """Everything checkable before submitting: submitit and sbatch present, not under torchrun, the store
    writable, every job's method and method config valid (data and models are checked by the jobs)."""
    from petlbench.engine import distributed
    from petlbench.engine.build import make_method
    from petlbench.results.store import Store

    _submitit()
    if distributed.launched():
        raise UserError("--executor submits jobs of its own; run it as a plain command, not under torchrun")
    missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
    if ex.executor == "slurm" and missing:
        raise UserError(f"--executor slurm needs Slurm's {' and '.join(missing)} on PATH (run it on a login node); "
                        "--executor local runs the same jobs on this machine")
    Store(out).check_writable()
    for cfg in jobs:
        make_method(cfg.method, cfg.overrides)


def submit(jobs: list[RunConfig], out: str, force: bool, ex: Execution, reporter: Callable[[], Any],
           name: str = "petlbench") -> list:
    """Submit one job per run (a job array); returns the submitit jobs, in the order of ``jobs``."""
    submitit = _submitit()
    executor = submitit.AutoExecutor(folder=Path(out) / "slurm", cluster=ex.executor)
    executor.update_parameters(**ex.parameters(name))
    n = len(jobs)
    return executor.map_array(RunJob(), jobs, [out] * n, [force] * n, [reporter] * n, [ex.slurm_cpus] * n)


def _failure(job) -> str:
    """One line on a failed job: the exception its run raised (last line of the traceback), or that its process
    ended without a result (killed, node failure, cancelled); the full story is in its log."""
    from submitit.core.utils import FailedJobError

    exc = job.exception()
    if isinstance(exc, FailedJobError):
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        what = lines[-1] if lines else "no error message"
    else:
        what = f"no result (state {getattr(job, 'state', 'unknown')})"
    return f"{what} (log: {job.paths.stderr})"


def _describe(cfg: RunConfig) -> str:
    return f"{cfg.method} on {cfg.dataset or 'the default task'} seed {cfg.seed}"


def _finished(job, cfg, say: Callable[[str], None], out: tuple[list, list[str]]) -> str:
    """Take one finished job's outcome into ``out`` (results, errors); returns 'ok', 'failed' or 'cancelled'."""
    results, errors = out
    if job.exception() is not None:  # a job cancelled by someone (scancel) is not resubmitted
        say(f"job {job.job_id} ({_describe(cfg)}) failed: {_failure(job)}")
        return "cancelled" if str(getattr(job, "state", "")).startswith("CANCELLED") else "failed"
    outcome = job.result()
    results += outcome.results
    if outcome.error:
        errors.append(outcome.error)
    say(f"job {job.job_id} ({_describe(cfg)}): " + (f"error: {outcome.error}" if outcome.error else
        ", ".join(r.summary() for r in outcome.results) or "nothing to do"))
    return "ok"


def collect(submitted: list, jobs: list[RunConfig], resubmit: Callable[[list[RunConfig]], list], retries: int,
            say: Callable[[str], None], poll_s: float, waiting: list[RunConfig] | None = None,
            at_once: int | None = None) -> tuple[list, list[str], list[str]]:
    """Wait for ``submitted`` (one job per config of ``jobs``), resubmit the configs whose job failed up to
    ``retries`` times each (not those cancelled), and submit the ``waiting`` configs as jobs finish, keeping at
    most ``at_once`` running. Returns (finished RunResults, bad-input errors, the runs whose job failed at the
    last attempt or was cancelled)."""
    out: tuple[list, list[str]] = ([], [])
    gone, pending, waiting = [], list(zip(submitted, jobs, strict=True)), list(waiting or [])
    attempts: dict[int, int] = {}
    while pending or waiting:
        done = [(job, cfg) for job, cfg in pending if job.done()]
        if not done and pending:
            time.sleep(poll_s)
            continue
        pending = [p for p in pending if p not in done]
        failed = []
        for job, cfg in done:
            state = _finished(job, cfg, say, out)
            if state == "failed" and attempts.get(id(cfg), 0) < retries:
                failed.append(cfg)
            elif state != "ok":
                gone.append(cfg)
        if failed:
            for cfg in failed:
                attempts[id(cfg)] = attempts.get(id(cfg), 0) + 1
            say(f"resubmitting {len(failed)} failed job(s) (retry {max(attempts[id(c)] for c in failed)} of {retries})")
            waiting = failed + waiting
        free = len(waiting) if at_once is None else max(0, at_once - len(pending))
        if free and waiting:
            batch, waiting = waiting[:free], waiting[free:]
            pending += list(zip(resubmit(batch), batch, strict=True))
    return *out, [_describe(cfg) for cfg in gone]


def run_jobs(jobs: list[RunConfig], out: str, force: bool, ex: Execution, reporter: Callable[[], Any],
             say: Callable[[str], None], name: str = "petlbench") -> tuple[list, list[str], list[str]]:
    """Submit ``jobs`` through submitit and (unless ``--no-wait``) wait for them; see ``collect``."""
    out = str(Path(out).resolve())  # the jobs may start elsewhere
    preflight(jobs, out, ex)
    if not jobs:
        return [], [], []
    resubmit = lambda cfgs: submit(cfgs, out, force, ex, reporter, name)  # noqa: E731
    at_once = ex.at_once() if ex.executor == "local" else None  # Slurm holds its own array back
    if at_once is not None and not ex.wait:
        raise UserError("--executor local --no-wait would start every job at once; wait for them (drop --no-wait)")
    first = jobs if at_once is None else jobs[:at_once]
    submitted = resubmit(first)
    ids = sorted({str(job.job_id).split("_")[0] for job in submitted})
    say(f"submitted {len(submitted)} {ex.executor} job(s) ({', '.join(ids)}); logs in {Path(out) / 'slurm'}"
        + (f"; {len(jobs) - len(first)} more as these finish (at most {at_once} at once)" if len(first) < len(jobs)
           else ""))
    if not ex.wait:
        say(f"not waiting: results land in {Path(out) / 'results.csv'} as the jobs finish ('petlbench compare "
            f"{out}'); the same command again submits every run, and the stored ones are skipped")
        return [], [], []
    try:  # our choice: the local processes are checked every second, Slurm's accounting every 30 s
        return collect(submitted, first, resubmit, ex.retries, say, poll_s=1.0 if ex.executor == "local" else 30.0,
                       waiting=jobs[len(first):], at_once=at_once)
    except KeyboardInterrupt:
        say(f"interrupted while waiting: submitted jobs are not cancelled (Slurm: scancel {' '.join(ids)}); "
            f"finished runs are in {Path(out) / 'results.csv'}")
        raise
