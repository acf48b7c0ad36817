"""One run on two CPU processes (DDP over gloo, started as torchrun would: RANK / WORLD_SIZE / MASTER_* in the
environment) trains the same loss curve as one process at the same global batch and stores one row; the
hooks' arithmetic (parts, loss weights, evaluation sums) is checked without processes."""

from __future__ import annotations

import json
import os
import pickle
import socket

import pytest
import torch

from petlbench.config.options import RunConfig
from petlbench.engine import distributed
from petlbench.engine.loop import Reporter
from petlbench.results.store import read_rows

pytestmark = pytest.mark.integration

# batch 5 over 16 training images: uneven parts (3 + 2) and a last batch of 1 image (process 1 gets a
# stand-in with weight 0); 2 epochs = 8 steps. lora: the model path; linear: the feature cache; das: a search.
# fp32 on every machine: the curves agree to float tolerance (bf16 autocast rounds differently per batch split)
TINY = dict(dataset="shapes-loc", model="test_vit", img_size=32, pretrained=False, limit=16, device="cpu",
            precision="fp32")
RECIPE = {"epochs": 2, "batch_size": 5, "warmup_epochs": 0}
JOBS = [RunConfig(method="lora", overrides=dict(RECIPE), **TINY),
        RunConfig(method="linear", overrides=dict(RECIPE), **TINY),
        RunConfig(method="das", overrides=dict(RECIPE, search_epochs=2, gate_updates_per_epoch=2), **TINY)]


class Curve(Reporter):
    """Records the loss the loop reports after every step (an EMA of the global batch losses), per run."""

    def __init__(self) -> None:
        self.curves: list[list[float]] = []

    def start(self, total_steps: int, description: str) -> None:
        self.curves.append([])

    def step(self, loss: float, img_s: float) -> None:
        self.curves[-1].append(loss)


def _worker(rank: int, world: int, port: int, out: str, dump: str) -> None:
    """One torchrun-like process: the environment torchrun sets, then the ordinary ``runner.execute``."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from petlbench.engine.runner import execute

    curve, said = Curve(), []
    results = execute(JOBS, out, False, curve, said.append)
    with open(f"{dump}.{rank}", "wb") as f:
        pickle.dump({"curves": curve.curves, "said": said, "results": results}, f)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_processes(tmp_path) -> tuple[dict, dict]:
    import torch.multiprocessing as mp

    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available on this platform")
    dump = str(tmp_path / "dump")
    try:
        mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "ddp"), dump), nprocs=2, join=True)
    except OSError as e:  # no process spawning on this platform (a failing worker raises ProcessRaisedException)
        pytest.skip(f"cannot spawn processes here: {e}")
    return tuple(pickle.load(open(f"{dump}.{r}", "rb")) for r in (0, 1))


def test_two_processes_train_the_single_process_curve_and_store_one_row(tmp_path):
    from petlbench.engine.runner import execute

    torch.set_num_threads(1)
    alone = Curve()
    single = execute(JOBS, str(tmp_path / "one"), False, alone, lambda _t: None)
    main, other = _two_processes(tmp_path)

    assert len(alone.curves) == len(main["curves"]) == 3 and other["curves"] == [] and other["said"] == []
    for method, one, two in zip(("lora", "linear", "das"), alone.curves, main["curves"], strict=True):
        assert len(one) == len(two) == 8, method
        assert two == pytest.approx(one, rel=1e-5, abs=1e-6), method  # same global batches, same steps
    for res_one, res_two in zip(single, main["results"], strict=True):
        assert res_two.status == res_one.status == "ok"
        assert res_two.processes == 2 and res_one.processes == 1
        assert res_two.config_hash == res_one.config_hash  # the same run, on two processes
        assert res_two.top1_pct == pytest.approx(res_one.top1_pct)  # every test image counted once
        assert res_two.top1_val_pct == pytest.approx(res_one.top1_val_pct)
        assert res_two.loss_train == pytest.approx(res_one.loss_train, rel=1e-5)
        assert res_two.steps == res_one.steps == 8
    assert json.loads(main["results"][2].method_stats)["das_skipped_blocks"] == \
        json.loads(single[2].method_stats)["das_skipped_blocks"]

    rows = read_rows(tmp_path / "ddp" / "results.csv")
    assert len(rows) == 3 and {r["processes"] for r in rows} == {"2"}  # rank 0 alone wrote
    assert len(list((tmp_path / "ddp" / "runs").glob("*.json"))) == 3


def test_parts_cover_every_item_once_in_order():
    for n in range(0, 13):
        for world in (1, 2, 3, 5):
            bounds = [distributed.part(n, r, world) for r in range(world)]
            assert [i for lo, hi in bounds for i in range(lo, hi)] == list(range(n))
            assert max(hi - lo for lo, hi in bounds) - min(hi - lo for lo, hi in bounds) <= 1


def test_loss_weights_make_the_gradient_average_the_global_mean():
    """sum over processes of weight * (mean loss of its part) / world = the global batch's mean loss."""
    losses = torch.tensor([0.5, 1.0, 2.0, 4.0, 8.0])  # per-image losses of a global batch of 5
    for world in (2, 3, 7):  # 7 > 5: two processes train on a weight-0 stand-in
        total = 0.0
        for rank in range(world):
            d = distributed.DDP(rank, world, rank)
            _, y = d.shard_batch(torch.zeros(5, 1), losses)
            weight, n = d._share
            assert n == 5
            total += weight * float(y.mean()) / world
        assert total == pytest.approx(float(losses.mean()))


def test_alone_every_hook_is_the_identity(monkeypatch):
    d, x, y = distributed.Dist(), torch.randn(3, 2), torch.arange(3)
    loss = torch.tensor(1.5)
    assert d.shard_batch(x, y) == (x, y) and d.batch_loss(loss, 3) == (loss, loss, 3)
    assert d.sum(1.0, 2.0) == (1.0, 2.0) and d.agree("x") == "x" and d.world == 1 and d.is_main
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.launched() is None and distributed.is_main()
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun --nproc-per-node 1: one process, as today
    assert distributed.launched() is None
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.launched() == (1, 2, 1) and not distributed.is_main()


@pytest.mark.slow
def test_torchrun_command_line_two_processes_one_row_one_table(tmp_path):
    """The documented command: ``torchrun --nproc-per-node 2 -m petlbench run ...`` (gloo on the CPU)."""
    import subprocess
    import sys

    out = tmp_path / "store"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PETLBENCH_PROGRESS": "plain", "PETLBENCH_PROGRESS_INTERVAL": "0"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           "--master-port", str(_free_port()), "-m", "petlbench", "run", "lora",
                           "--dataset", "shapes-loc", "--model", "test_vit", "--img-size", "32", "--no-pretrained",
                           "--limit", "16", "--epochs", "2", "--batch-size", "5", "--device", "cpu", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = read_rows(out / "results.csv")
    assert len(rows) == 1 and rows[0]["processes"] == "2" and rows[0]["steps"] == "8"
    assert proc.stdout.count("petlbench runs") == 1 and proc.stdout.count("lora step 8/8") == 1  # rank 1 silent
