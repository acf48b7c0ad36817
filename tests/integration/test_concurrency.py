"""The results store under several processes at once: concurrent appends never interleave."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from petlbench.results.schema import RunResult
from petlbench.results.store import Store, read_rows

pytestmark = pytest.mark.integration



def _res(i: int, method: str = "m", seed: int = 0, top1: float = 50.0, dataset: str = "d", group: str = "") -> RunResult:
    return RunResult(run_id=f"r{i}", method=method, dataset=dataset, seed=seed, config_hash=f"h{i}",
                     group_hash=f"g-{method}-{dataset}", top1_pct=top1, params_trainable=10, data_group=group,
                     error="comma, \"quote\"\nnewline")


def _writer(root: str, start: int, n: int) -> None:
    store = Store(root)
    for i in range(start, start + n):
        store.append(_res(i))


def test_concurrent_appends_never_interleave(tmp_path):
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), k * 100, 25)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    rows = read_rows(tmp_path / "results.csv")
    assert len(rows) == 75
    assert sorted(r["run_id"] for r in rows) == sorted(f"r{k * 100 + i}" for k in range(3) for i in range(25))
    assert all(r["method"] == "m" and r["error"].endswith("newline") for r in rows)
    assert (tmp_path / "results.csv").read_text().count("run_id,timestamp") == 1
