"""Per-question-type test scores of one ``petlbench run`` on a built-in VL task (where a model fails, not only how much).

A run reports one number per task; on ``shapes-vqa`` that averages five question types (colour, shape, count,
exist, relation; ``vl.data.tasks.question_type``) whose chance levels differ (25 / 25 / 25 / 50 / 50). This script runs
the CLI's ``run`` in-process with the engine's ``evaluate`` wrapped so that the task's own ``score`` (the VQA soft
score of the argmax answer, or 0/1 for entailment) is also taken per sample, then prints the mean per type of the
last evaluation on the test split. The run itself is unchanged (same recipe, seed, forward passes and row in
``--out``).

Usage: ``OMP_NUM_THREADS=1 python benchmarks/perf/vl_per_type.py run full --dataset shapes-vqa --model
petl_vilt_micro_scenes --precision fp32 --set epochs=12 --set batch_size=32 --seeds 0 --out /tmp/per-type``
(the arguments of ``petlbench run``, one seed). Prints one JSON line ``PER_TYPE {...}``.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np

from petlbench.engine import loop

SCORES: list[np.ndarray] = []  # per-sample scores of every evaluation, in order
_evaluate = loop.evaluate


class Recording:
    """The task, with ``score`` also taken per sample (into ``per``); everything else is the task's."""

    def __init__(self, task) -> None:
        self.task, self.per = task, []

    def __getattr__(self, name: str):
        return getattr(self.task, name)

    def score(self, logits, target) -> float:
        self.per.extend(self.task.score(logits[i:i + 1], target[i:i + 1]) for i in range(len(logits)))
        return self.task.score(logits, target)


def evaluate(model, ds, splits, batch_size, rt):
    """The engine's evaluate on the same forward passes and batches, its task's score also recorded per sample."""
    task = Recording(splits.task)
    try:
        return _evaluate(model, ds, dataclasses.replace(splits, task=task), batch_size, rt)
    finally:
        SCORES.append(np.asarray(task.per))


def main() -> None:
    from petlbench.cli import main as cli
    from petlbench.datasets import load_data
    from petlbench.vl.data.tasks import question_type

    args = sys.argv[1:]
    loop.evaluate = evaluate
    sys.argv = ["petlbench", *args]
    try:
        cli()
    except SystemExit as e:
        if e.code:
            raise
    dataset = args[args.index("--dataset") + 1]
    limit = int(args[args.index("--limit") + 1]) if "--limit" in args else None
    types = np.asarray([question_type(t) for t in load_data(dataset, limit=limit).splits["test"].texts])
    tests = [s for s in SCORES if len(s) == len(types)]
    if not tests:
        sys.exit("no test evaluation ran: `petlbench run` skips a configuration already stored in --out; use a fresh --out")
    scores = tests[-1]
    out = {t: round(100 * float(scores[types == t].mean()), 1) for t in sorted(set(types))}
    print("PER_TYPE", json.dumps({**out, "all": round(100 * float(scores.mean()), 2)}))


if __name__ == "__main__":
    main()
