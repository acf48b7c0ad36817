"""Progress reporting of long work: a Rich bar on a terminal (steps, loss, img/s, ETA), plain lines otherwise
(``--progress`` / ``PETLBENCH_PROGRESS``), nothing under ``off``; and the consoles commands print to."""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from petlbench.errors import UserError

console = Console(width=None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", 180)))
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 400)


class RichReporter:
    """Progress bar for a terminal (steps, loss, img/s, ETA) and log lines above it."""

    def __init__(self, progress: Progress) -> None:
        self.progress, self.task = progress, None

    def start(self, total_steps: int, description: str) -> None:
        self.task = self.progress.add_task(description, total=total_steps, loss=float("nan"), img_s=0.0)

    def step(self, loss: float, img_s: float) -> None:
        self.progress.update(self.task, advance=1, loss=loss, img_s=img_s)

    def stop(self) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None

    def log(self, message: str) -> None:
        self.progress.console.print(f"  {message}")


class PlainReporter:
    """Progress as plain lines when output is not a terminal (CI logs, nohup, Slurm): one line every
    ``interval`` seconds with steps, loss, img/s and the ETA, plus a line when training starts and ends."""

    def __init__(self, say, interval: float) -> None:
        self.say, self.interval = say, interval

    def start(self, total_steps: int, description: str) -> None:
        self.total, self.name, self.done = total_steps, description, 0
        self.t0 = self.last = time.monotonic()
        self.first: float | None = None  # end of the first step
        self.say(f"  {description}: {total_steps} steps")

    def step(self, loss: float, img_s: float) -> None:
        self.done += 1
        now = time.monotonic()
        if self.first is None:
            self.first = now  # the rate leaves the first step out: its one-time costs (torch.compile) do not repeat
        if now - self.last >= self.interval:
            rate = (self.done - 1) / (now - self.first) if now > self.first else 0.0
            self.last = now
            eta = f"{(self.total - self.done) / rate:.0f}s" if rate else "? (after the first step)"
            self.say(f"  {self.name} step {self.done}/{self.total} ({100 * self.done / max(self.total, 1):.0f}%) "
                     f"loss {loss:.3f} {img_s:.0f} img/s elapsed {now - self.t0:.0f}s ETA {eta}")

    def stop(self) -> None:
        self.say(f"  {self.name}: {self.done} steps in {time.monotonic() - self.t0:.1f}s")

    def log(self, message: str) -> None:
        self.say(f"  {message}")


PROGRESS_MODES = ("auto", "bar", "plain", "off")


@contextmanager
def reporting():
    """The progress reporter ``PETLBENCH_PROGRESS`` asks for: ``auto`` (default: a bar on a terminal, plain
    lines every ``PETLBENCH_PROGRESS_INTERVAL`` seconds (default 30) otherwise), ``bar``, ``plain`` or ``off``.
    Yields (reporter, print function for lines above the progress)."""
    from petlbench.engine.loop import Reporter

    mode = os.environ.get("PETLBENCH_PROGRESS", "auto").lower()
    mode = {"1": "bar", "0": "off"}.get(mode, mode)
    if mode not in PROGRESS_MODES:
        raise UserError(f"PETLBENCH_PROGRESS={mode!r} is not one of {', '.join(PROGRESS_MODES)}")
    if mode == "bar" or (mode == "auto" and console.is_terminal):
        with _progress() as progress:
            yield RichReporter(progress), progress.console.print
        return
    say = lambda text: console.print(text, highlight=False, soft_wrap=True)  # noqa: E731
    if mode == "off":
        quiet = Reporter()
        quiet.log = lambda message: say(f"  {message}")
        yield quiet, say
        return
    yield PlainReporter(say, progress_interval()), say


def progress_interval() -> float:
    try:
        return float(os.environ.get("PETLBENCH_PROGRESS_INTERVAL", "30"))
    except ValueError:
        raise UserError("PETLBENCH_PROGRESS_INTERVAL must be a number of seconds, e.g. 30") from None


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"), TextColumn("{task.fields[img_s]:.0f} img/s"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True,
    )
