"""Denormals flushed to zero on every compute thread (torch's own switch reaches only the calling thread)."""

from __future__ import annotations

import torch

from petlbench.engine import numerics


def test_flush_denormal_reaches_every_thread_and_is_restored():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # a worker thread besides the calling one, even on a 1-core machine
    try:
        assert not numerics.flushing_everywhere()
        with numerics.flush_denormal() as on:
            assert on and numerics.flushing_everywhere()
        assert not numerics.flushing_everywhere()
        with numerics.flush_denormal(False) as on:
            assert not on and not numerics.flushing_everywhere()
    finally:
        torch.set_num_threads(threads)


def test_a_cpu_run_records_that_it_flushed():
    from petlbench.config.options import RunConfig
    from petlbench.datasets import load_data
    from petlbench.engine.runner import run_one

    raw = load_data("shapes-loc", limit=24)
    res = run_one(RunConfig(method="linear", dataset="shapes-loc", device="cpu", limit=24,
                            overrides={"epochs": 1}), raw)
    assert res.status == "ok" and res.flush_denormal and not res.compile
    assert not numerics.flushing_everywhere()  # the process is left as it was
