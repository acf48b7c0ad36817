"""One run on several processes: ``torchrun --nproc-per-node N -m petlbench run ...`` trains with
DistributedDataParallel. The loop and the runner call a ``Dist`` at a few hooks; alone (no torchrun
environment, or ``WORLD_SIZE`` 1) every hook is the identity, so one process runs exactly as before.

Under torchrun (``WORLD_SIZE`` > 1; rank, world size and the rendezvous come from torchrun's environment):

- ``batch_size`` stays the **global** batch (as in a single-process run of the same config). Every process
  draws the same global batches in the same order (the run's data-order generator is seeded alike) and trains
  on its contiguous part of each (sizes differ by at most one image). Its loss is weighted by
  ``n_local * world / n_global``, so DDP's gradient average is exactly the gradient of the global batch's
  mean loss, for uneven parts and a last partial batch too (a process left without an image trains on a
  stand-in with weight 0). The loss that is logged and checked for divergence is the global batch's.
- evaluation: each process scores a contiguous part of the split; metric and loss sums are all-reduced, so
  every test image counts exactly once.
- the linear-probe feature cache: each process computes the features of its part; they are gathered in
  order, giving the single-process cache.
- a search (DAS) runs in full and identically on every process (same seed, same batches, no speed-up); the
  model is checked to be the same on all processes before DDP wraps it.
- only rank 0 prints and writes the store. A run that raises ends the job (torchrun stops every process)
  instead of becoming a ``failed`` row: the other processes would wait in a collective forever.
Backends: gloo for CPU tensors, NCCL for CUDA tensors (``cpu:gloo,cuda:nccl`` where CUDA is present); each
process uses the GPU of its ``LOCAL_RANK``.
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, Subset, TensorDataset

from petlbench.data.batching import map_tensors
from petlbench.errors import UserError


def part(n: int, rank: int, world: int) -> tuple[int, int]:
    """[lo, hi) of process ``rank``'s contiguous part of ``n`` items (the first ``n % world`` get one more)."""
    base, extra = divmod(n, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def _take(batch: Any, lo: int, hi: int) -> Any:
    """Rows [lo, hi) of every tensor of a batch (the batch dimension is dim 0)."""
    return map_tensors(batch, lambda t: t[lo:hi])


def signature(model: nn.Module) -> str:
    """A hash of the model's structure: parameter / buffer names and shapes, which parameters train."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(f"{name}:{tuple(p.shape)}:{p.requires_grad};".encode())
    for name, b in model.named_buffers():
        h.update(f"{name}:{tuple(b.shape)};".encode())
    return h.hexdigest()[:16]


class Dist:
    """One process: every hook is the identity (the loop's behaviour without torchrun)."""

    rank, world, local_rank = 0, 1, 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def place(self, device: torch.device) -> torch.device:
        """The device this process trains on."""
        return device

    def shard(self, ds: Dataset) -> Dataset:
        """This process's contiguous part of a dataset (evaluation, the feature cache)."""
        return ds

    def shard_batch(self, x: Any, y: torch.Tensor) -> tuple[Any, torch.Tensor]:
        """This process's part of a global training batch (remembered for ``batch_loss``)."""
        return x, y

    def batch_loss(self, loss: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(loss to back-propagate here, the global batch's mean loss, images in the global batch) from this
        process's mean ``loss`` over its ``n`` images."""
        return loss, loss, n

    def sum(self, *values: float) -> tuple[float, ...]:
        """``values`` summed over the processes."""
        return values

    def wrap(self, net: nn.Module) -> nn.Module:
        """The module the training step runs (gradients averaged over the processes)."""
        return net

    def cached_features(self, compute: Callable[[Any], Any], splits: Any) -> Any:
        """``compute(splits)`` -> (train, val) feature datasets (or the reason they are not), over all processes."""
        return compute(splits)

    def agree(self, value: Any) -> Any:
        """Rank 0's ``value`` on every process (decisions that read shared state, e.g. the store)."""
        return value

    @contextmanager
    def in_turn(self) -> Iterator[None]:
        """Run the body one process after the other (timings without the others competing for the CPU)."""
        yield


class DDP(Dist):
    """Several processes started by torchrun, one process group (see the module docstring)."""

    def __init__(self, rank: int, world: int, local_rank: int) -> None:
        self.rank, self.world, self.local_rank = rank, world, local_rank
        self._share = (1.0, 0)  # (this process's loss weight, images in the global batch) of the last batch

    def place(self, device: torch.device) -> torch.device:
        if device.type != "cuda":
            return device
        if device.index is not None:
            raise UserError(f"under torchrun each process uses the GPU of its LOCAL_RANK; pass --device cuda or "
                            f"auto, not {device}")
        if self.local_rank >= torch.cuda.device_count():
            raise UserError(f"process {self.local_rank} has no GPU ({torch.cuda.device_count()} visible); start "
                            f"at most {torch.cuda.device_count()} processes per node")
        torch.cuda.set_device(self.local_rank)
        return torch.device("cuda", self.local_rank)

    def shard(self, ds: Dataset) -> Dataset:
        lo, hi = part(len(ds), self.rank, self.world)
        if isinstance(ds, TensorDataset):  # stays a tensor set: batched by slicing
            return TensorDataset(*(t[lo:hi] for t in ds.tensors))
        return Subset(ds, range(lo, hi))

    def shard_batch(self, x: Any, y: torch.Tensor) -> tuple[Any, torch.Tensor]:
        n = int(y.shape[0])
        lo, hi = part(n, self.rank, self.world)
        weight = (hi - lo) * self.world / n
        if hi == lo:  # fewer images than processes: a stand-in image with weight 0 keeps every process stepping
            lo, hi = 0, 1
        self._share = (weight, n)
        return _take(x, lo, hi), _take(y, lo, hi)

    def batch_loss(self, loss: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        import torch.distributed as td

        weight, n_global = self._share
        # sum over processes of weight * loss / world = sum of n_local * loss_local / n_global: the global mean
        mean = loss.detach().float().reshape(1) * (weight / self.world)
        td.all_reduce(mean)
        return loss * weight, mean[0], n_global

    def sum(self, *values: float) -> tuple[float, ...]:
        import torch.distributed as td

        t = torch.tensor(values, dtype=torch.float64)  # on the CPU: gloo
        td.all_reduce(t)
        return tuple(t.tolist())

    def gather(self, value: Any) -> list[Any]:
        """Every process's ``value``, in rank order."""
        import torch.distributed as td

        out: list[Any] = [None] * self.world
        td.all_gather_object(out, value)
        return out

    def agree(self, value: Any) -> Any:
        import torch.distributed as td

        box = [value]
        td.broadcast_object_list(box, src=0)
        return box[0]

    def wrap(self, net: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        if len(set(self.gather(signature(net)))) > 1:
            raise RuntimeError("the processes built different models (a search decided differently?); rerun with "
                               "--deterministic, or on one process")
        device = next(net.parameters()).device
        # static_graph: the trainable parameters a forward uses (and leaves out: allowed) are the same every step,
        # found on the first one, without find_unused_parameters' graph walk per step; gradient_as_bucket_view:
        # gradients live in the all-reduce buckets (no copy, whatever their strides)
        return DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None,
                                       static_graph=True, gradient_as_bucket_view=True)

    def cached_features(self, compute: Callable[[Any], Any], splits: Any) -> Any:
        if min(len(ds) for ds in (splits.train, splits.val) if ds is not None) < self.world:
            return compute(splits)  # too few images to split: each process computes all (the same result)
        val = self.shard(splits.val) if splits.val is not None else None
        local = compute(dataclasses.replace(splits, train=self.shard(splits.train), val=val))
        reasons = [r for r in self.gather(local if isinstance(local, str) else "") if r]
        if reasons:  # the shortcut is off on every process when it is off on one (with its reason)
            return reasons[0]
        return tuple(None if ds is None else self._gather_tensors(ds) for ds in local)

    def _gather_tensors(self, ds: TensorDataset) -> TensorDataset:
        parts = self.gather(tuple(t.cpu() for t in ds.tensors))  # rank order = the dataset's order
        return TensorDataset(*(torch.cat(ts) for ts in zip(*parts, strict=True)))

    @contextmanager
    def in_turn(self) -> Iterator[None]:
        import torch.distributed as td

        for _ in range(self.rank):  # barrier i is passed once process i - 1 has finished its body
            td.barrier()
        try:
            yield
        finally:
            for _ in range(self.rank, self.world):
                td.barrier()


def launched() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) from torchrun's environment, or None for one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    return int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """Whether this process prints and stores (rank 0, or the only process)."""
    env = launched()
    return env is None or env[0] == 0


_SESSION: Dist | None = None


def session() -> Dist:
    """This process's ``Dist``: the process group is joined once, on first use, when torchrun started us."""
    global _SESSION
    if _SESSION is None:
        env = launched()
        _SESSION = Dist() if env is None else _join(*env)
    return _SESSION


def _join(rank: int, world: int, local_rank: int) -> DDP:
    import torch.distributed as td

    if not td.is_available():
        raise UserError("this torch build has no torch.distributed; run on one process (plain petlbench run)")
    if not td.is_initialized():
        td.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
        atexit.register(td.destroy_process_group)
    return DDP(rank, world, local_rank)
