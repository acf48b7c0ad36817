"""THE training / evaluation loop. It never names a method (methods act through their hooks) and never
looks inside a batch (whatever the data yields, the model consumes: an image tensor or a mapping of
tensors; the task's loss and metric read the target).

``train_and_evaluate(built, method, splits, runtime, reporter)``:
[search, timed apart, on train with rewards from held-out data] -> train epochs (AdamW/SGD, cosine with
warm-up, optional bf16 autocast; extra_loss, on_step) -> val each epoch (recorded, never used to select on
test) -> parameter counts (after search and training-time pruning, before finalize merges anything) ->
method.finalize -> test once -> method stats -> GMACs, inference throughput, peak memory.
Orchestration (building, identity, the store, provenance) lives in ``engine.build`` and ``engine.runner``.

``fit(net, objective, batches, recipe)``: the same optimizer steps (recipe optimizer, schedule, step) alone, for
training that is not a benchmark run: pretraining the bundled backbones, tests, benchmarks/perf scripts.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from petlbench.data.batching import batches, map_tensors, num_batches, split_off, tensor_shapes
from petlbench.data.types import Splits
from petlbench.engine import numerics
from petlbench.engine.distributed import Dist
from petlbench.engine.optim import head_lr_mult, make_optimizer, optimizer_step, warmup_then_decay
from petlbench.errors import UserError
from petlbench.methods.base import Method, MethodConfig, MethodModule, SearchContext, SearchDiverged
from petlbench.models import measure
from petlbench.models.family import Built
from petlbench.models.heads import get_classifier, head_parameters


@dataclass
class Runtime:
    """How to run (not what): device, precision, frozen-backbone policy, data workers, the seed of the data
    order, the processes (``distributed.Dist``: DDP under torchrun, the identity alone), ``torch.compile``,
    how often losses are read back. Global RNGs are seeded once, by the caller, before the model is built."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "fp32"  # resolved: fp32 | bf16 (``engine.build.choose_precision``)
    frozen_backbone_mode: str = "eval"
    num_workers: int = 0
    seed: int = 0
    dist: Dist = field(default_factory=Dist)
    compile: bool = False
    # steps between loss read-backs (progress, loss EMA, divergence check); each read-back is a host
    # synchronisation on a GPU. None: every step on the CPU (free there), every 32 on a GPU (our choice)
    readback_every: int | None = None

    def autocast(self):
        """The run's precision as an autocast (``numerics.autocast``)."""
        return numerics.autocast(self.device, self.precision)

    @property
    def readback(self) -> int:
        return self.readback_every or (32 if self.device.type == "cuda" else 1)

    @property
    def pin_memory(self) -> bool:
        """Batches go to a GPU from pinned host memory, copied without blocking the host."""
        return self.device.type == "cuda"


class Reporter:
    """Progress and log callbacks; the CLI passes a Rich / plain-text one, tests use this silent one."""

    def start(self, total_steps: int, description: str) -> None: ...

    def step(self, loss: float, img_s: float) -> None: ...

    def stop(self) -> None: ...

    def log(self, message: str) -> None: ...


@dataclass
class Outcome:
    """What the loop measured for one run (the runner turns it into a RunResult row)."""

    metrics: dict[str, Any] = field(default_factory=dict)
    method_stats: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"
    error: str = ""


def to_device(batch: Any, device: torch.device, pin: bool = False) -> Any:
    """A tensor, or a mapping / tuple of them, on ``device``; ``pin``: staged through pinned host memory so
    the copy does not block the host (CUDA)."""
    def move(t: torch.Tensor) -> torch.Tensor:
        if pin and t.device.type == "cpu" and not t.is_pinned():
            t = t.pin_memory()
        return t.to(device, non_blocking=True)

    return map_tensors(batch, move)


def training_step(model: nn.Module, mcfg: MethodConfig, example: Any, device: torch.device,
                  frozen_backbone_mode: str) -> Callable[[str], None]:
    """``step(precision)``: one training step of a copy of ``model`` (``model`` itself is left untouched) on the
    batch ``example``, in "fp32" or "bf16" autocast: forward, a loss on the logits in fp32, backward, the recipe's
    optimizer step. What ``--precision auto`` times in both precisions (``numerics.time_precisions``)."""
    net = copy.deepcopy(model).to(device)
    set_train_mode(net, frozen_backbone_mode)
    params = [p for p in net.parameters() if p.requires_grad]
    opt, x = make_optimizer(params, mcfg), to_device(example, device)

    def step(precision: str) -> None:
        with numerics.autocast(device, precision):
            loss = net(x).float().logsumexp(-1).mean()  # a cross-entropy's cost, without needing labels
        optimizer_step(opt, loss, params)

    return step


def batch_size_of(target: torch.Tensor) -> int:
    return int(target.shape[0])


def set_train_mode(model: nn.Module, frozen_backbone_mode: str) -> None:
    """``model.train()``; with policy 'eval', frozen backbone modules (outside any MethodModule,
    no trainable parameter inside) go to eval mode: no dropout / drop-path in what does not learn."""
    model.train()
    if frozen_backbone_mode != "eval":
        return

    def visit(mod: nn.Module) -> None:
        for child in mod.children():
            if isinstance(child, MethodModule):
                continue
            if not any(p.requires_grad for p in child.parameters()):
                child.eval()
            else:
                visit(child)

    visit(model)


@torch.no_grad()
def evaluate(model: nn.Module, ds, splits: Splits, batch_size: int, rt: Runtime) -> tuple[float, float]:
    """(metric %, mean loss) of ``model`` on ``ds`` under the task's metric and loss."""
    model.eval()
    score, loss_sum, n = 0.0, 0.0, 0
    for x, y in batches(rt.dist.shard(ds), batch_size):  # DDP: this process's part of the split
        x, y = to_device(x, rt.device), to_device(y, rt.device)
        with rt.autocast():
            logits = model(x)
        loss_sum += float(splits.task.loss(logits.float(), y)) * batch_size_of(y)
        score += float(splits.task.score(logits.float(), y))
        n += batch_size_of(y)
    score, loss_sum, n = rt.dist.sum(score, loss_sum, n)  # DDP: every image counted once
    return 100.0 * score / max(n, 1), loss_sum / max(n, 1)


def _trains_head_only(model: nn.Module, method: Method) -> bool:
    """Only the classifier trains and no hook can change the backbone during training."""
    head = {id(p) for p in head_parameters(model)}
    hooks_default = (type(method).extra_loss is Method.extra_loss and type(method).on_step is Method.on_step
                     and not method.has_search())
    return hooks_default and all(id(p) in head for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def _cached_features(model: nn.Module, splits: Splits, batch_size: int, rt: Runtime):
    """(train, val) TensorDatasets of pre-logit features computed in the run's precision, or the reason (a
    string) why the model is not ``forward_head(forward_features(x))`` (checked on a batch, in the same
    precision: a bf16 check against fp32 logits would fail on rounding alone)."""
    from torch.utils.data import TensorDataset

    if not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
        return "the model has no forward_features / forward_head split"
    model.eval()
    head = get_classifier(model)
    tol = 2e-2 if rt.precision == "bf16" else 1e-4  # bf16 keeps 8 bits of mantissa (relative step 7.8e-3)

    def feats(ds):
        xs, ys = [], []
        for x, y in batches(ds, batch_size):
            x = to_device(x, rt.device)
            with rt.autocast():
                f = model.forward_head(model.forward_features(x), pre_logits=True)
                if not xs and not torch.allclose(head(f).float(), model(x).float(), atol=tol, rtol=tol):
                    return "head(features) differs from the model's output on a batch"
            xs.append(f.float().cpu())
            ys.append(y)
        return TensorDataset(torch.cat(xs), torch.cat(ys))

    train = feats(splits.train)
    if isinstance(train, str):
        return train
    return train, feats(splits.val) if splits.val is not None else None


def _compiled(net: nn.Module, device: torch.device) -> nn.Module:
    """``torch.compile(net)`` (same parameters). Off a GPU, torch's C++ build helper logs "No CUDA runtime is
    found" when a CUDA toolkit is installed: a note about GPU builds, silenced for CPU runs."""
    if device.type != "cuda":
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    return torch.compile(net)


@dataclass
class _Fit:
    """The training phase's running state (what the loop measures while it trains)."""

    steps: int = 0
    loss_ema: float = float("nan")
    timed_s: float = 0.0  # a cached-feature pass before head-only training; the step clock adds the rest
    shapes: set = field(default_factory=set)  # --compile: batch shapes seen so far (a new one compiles)
    # (task loss, total loss) of the steps not yet read back, kept on the device
    pending: list[torch.Tensor] = field(default_factory=list)


class _Loop:
    """One run of the loop: ``search`` -> ``train`` -> ``finish`` over shared state (the model, the method,
    the splits, the runtime, the reporter, the data-order generator and the outcome)."""

    def __init__(self, built: Built, method: Method, splits: Splits, rt: Runtime, reporter: Reporter) -> None:
        self.built, self.method, self.splits, self.rt, self.reporter = built, method, splits, rt, reporter
        self.model, self.cfg = built.model.to(rt.device), method.cfg
        self.gen = torch.Generator().manual_seed(rt.seed)  # data order and search sampling, same for every method
        self.out, self.fit, self.clock = Outcome(), _Fit(), measure.StepClock(rt.device)

    def run(self) -> Outcome:
        if not any(p.requires_grad for p in self.model.parameters()):
            raise UserError(f"method '{self.method.name}' left no trainable parameter; check its config")
        memory, search_timer = measure.PeakMemory(self.rt.device), measure.Timer(self.rt.device)
        memory.start()
        if self.method.has_search():
            with search_timer():
                self.search()
        t0 = time.perf_counter()
        if self.out.status == "ok":  # a diverged search leaves nothing to train
            self.train(*self._what_trains())
        m = self.out.metrics
        m.update(time_train_s=time.perf_counter() - t0, time_search_s=search_timer.seconds,
                 loss_train=self.fit.loss_ema, steps=self.fit.steps,
                 train_img_s=self._train_img_s())
        m["peak_mem_train_mb"], m["peak_mem_kind"] = memory.read()
        # counted after search and training-time pruning (masks), before finalize merges anything away
        m["counts"] = measure.param_counts(self.model, self.built.backbone_total)
        self.finish(self.method.finalize(self.model))
        return self.out

    def _train_img_s(self) -> float:
        seconds = self.fit.timed_s + self.clock.timed_s
        return self.clock.timed_images / seconds if seconds and self.clock.timed_images else float("nan")

    def batches(self, ds, shuffle: bool = True, shard: bool = False) -> Iterator:
        rt = self.rt
        for x, y in batches(ds, self.cfg.batch_size, shuffle, self.gen, rt.num_workers, rt.pin_memory):
            if shard:  # DDP: this process's part of the global batch (alone: all of it)
                x, y = rt.dist.shard_batch(x, y)
            yield to_device(x, rt.device, rt.pin_memory), to_device(y, rt.device, rt.pin_memory)

    def search(self) -> None:
        """``method.search`` on ``search_train`` with rewards from ``search_val``: never on data it trains
        on. Without a val split, 10% of train (fixed seed) is held out for the rewards during the search."""
        train, val = self.splits.search_train or self.splits.train, self.splits.search_val
        if val is None:
            train, val = split_off(train, 0.1, seed=0)
            self.reporter.log(f"no val split: the search holds out {len(val)} training images (10%, fixed seed) "
                              "for its rewards")

        def val_stream() -> Iterator:
            while True:  # fresh held-out batches, endless
                yield from self.batches(val)

        ctx = SearchContext(
            train_batches=lambda: self.batches(train), val_batches=val_stream, device=self.rt.device,
            loss_fn=self.splits.task.loss, autocast=self.rt.autocast,
            make_optimizer=self.optimizer,
            steps_per_epoch=num_batches(train, self.cfg.batch_size), log=self.reporter.log,
            schedule=self.schedule,
        )
        set_train_mode(self.model, self.rt.frozen_backbone_mode)
        try:
            self.method.search(self.model, ctx)
        except SearchDiverged as e:
            self.out.status, self.out.error = "diverged", str(e)

    def schedule(self, opt: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
        """The recipe's warm-up (its share of the epochs) then decay over ``steps`` optimizer steps (a search's)."""
        warmup = int(round(steps * self.cfg.warmup_epochs / max(1, self.cfg.epochs)))
        return torch.optim.lr_scheduler.LambdaLR(opt, warmup_then_decay(steps, warmup, self.cfg.decay))

    def optimizer(self, params: Iterable[nn.Parameter], model: nn.Module | None = None,
                  lr: float | None = None) -> torch.optim.Optimizer:
        """The recipe's optimizer over ``params`` (training and searches), the classifier head of ``model`` (default:
        the run's) at its lr multiplier; ``lr`` replaces the recipe's (a search's own lr)."""
        model = model if model is not None else self.model
        head = {id(p) for p in head_parameters(model)}
        fusion = {id(p) for p in self.built.family.fusion_parameters(model)} if self.built.family else set()
        cfg = self.cfg if lr is None else replace(self.cfg, lr=lr)
        return make_optimizer(list(params), cfg, head, head_lr_mult(self.cfg, self.splits.task), fusion=fusion)

    def _what_trains(self) -> tuple[nn.Module, Any, Any]:
        """(net, train, val): the model on the splits, or — for a head-only method on a frozen eval-mode
        backbone without augmentation, which sees the same features every epoch — its head on features
        computed once (the linear-probe shortcut). Whether the shortcut ran, and why not, is recorded."""
        if not _trains_head_only(self.model, self.method):
            return self.model, self.splits.train, self.splits.val
        t0 = time.perf_counter()
        cached: Any = "--frozen-backbone-mode train: dropout in the backbone changes the features every step"
        if self.rt.frozen_backbone_mode == "eval":
            cached = self.rt.dist.cached_features(  # DDP: each process computes its part, gathered in order
                lambda splits: _cached_features(self.model, splits, self.cfg.batch_size, self.rt), self.splits)
        if isinstance(cached, str):
            self.out.metrics["feature_cache"] = f"off: {cached}"
            self.reporter.log(f"head-only training through the whole model every step: {cached}")
            return self.model, self.splits.train, self.splits.val
        self.fit.timed_s = time.perf_counter() - t0  # the feature pass is part of the training cost
        self.out.metrics["feature_cache"] = "on"
        self.reporter.log("head-only training: frozen features computed once and cached")
        return get_classifier(self.model), *cached

    def train(self, net: nn.Module, train_ds, val_ds) -> None:
        """The epochs of optimizer steps; val after each epoch (recorded only)."""
        params = [p for p in net.parameters() if p.requires_grad]
        opt = self.optimizer(params)
        per_epoch = num_batches(train_ds, self.cfg.batch_size)
        total = per_epoch * self.cfg.epochs
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, warmup_then_decay(total, per_epoch * self.cfg.warmup_epochs, self.cfg.decay))
        stepped = self.rt.dist.wrap(net)  # DDP: gradients averaged over the processes (alone: net itself)
        forward = _compiled(stepped, self.rt.device) if self.rt.compile else stepped  # eval stays eager
        self.reporter.start(total, self.method.name)
        try:
            for _epoch in range(self.cfg.epochs):
                set_train_mode(net, self.rt.frozen_backbone_mode)
                for x, y in self.batches(train_ds, shard=True):
                    if not self.step(forward, params, opt, x, y, total):
                        return
                    sched.step()
                if not self.read_back():
                    return
                if val_ds is not None:
                    self.out.metrics["top1_val"], self.out.metrics["loss_val"] = evaluate(
                        net, val_ds, self.splits, self.cfg.batch_size, self.rt)
        finally:
            self.reporter.stop()

    def step(self, net: nn.Module, params: list, opt: torch.optim.Optimizer, x: Any, y: torch.Tensor,
             total: int) -> bool:
        """One optimizer step. Its loss stays on the device until the next read-back (every
        ``rt.readback`` steps); False (and status 'diverged') once a read-back finds a non-finite loss."""
        compiling = self.rt.compile and self._new_shape(x)
        t0 = time.perf_counter() if compiling else 0.0
        self.clock.start()
        with self.rt.autocast():
            loss = self.splits.task.loss(net(x).float(), y)
            extra = self.method.extra_loss(self.model)
        # DDP: back-propagate this process's weighted share; log and check the global batch's loss (alone: loss)
        share, loss, n = self.rt.dist.batch_loss(loss, batch_size_of(y))
        total_loss = share if extra is None else share + extra
        optimizer_step(opt, total_loss, params, self.cfg.grad_clip)
        self.fit.steps += 1
        self.method.on_step(self.model, self.fit.steps, total)
        self.clock.stop(n, timed=not compiling)  # a compiling step is kept out of the throughput
        if compiling:
            self.reporter.log(f"torch.compile: a step with a new batch shape took {time.perf_counter() - t0:.1f} s "
                              "(compiling; kept out of train img/s)")
        logged = loss if extra is None else loss + extra
        self.fit.pending.append(torch.stack([loss.detach().float(), logged.detach().float()]))
        return len(self.fit.pending) < self.rt.readback or self.read_back()

    def _new_shape(self, x: Any) -> bool:
        """Whether this batch's shapes are new to the compiled model (torch.compile compiles once per shape)."""
        shape = tensor_shapes(x)
        new = shape not in self.fit.shapes
        self.fit.shapes.add(shape)
        return new

    def read_back(self) -> bool:
        """Read the pending losses back (one host synchronisation): loss EMA, progress, divergence check.
        False (and status 'diverged') at the first non-finite loss; the steps after it within the same
        read-back window have run (on a GPU; on the CPU the window is one step)."""
        fit = self.fit
        if not fit.pending:
            return True
        losses, first = torch.stack(fit.pending).tolist(), fit.steps - len(fit.pending) + 1
        fit.pending.clear()
        seconds, images = self.clock.read()
        img_s = images / seconds if seconds > 0 else 0.0
        for i, (loss, total_loss) in enumerate(losses):
            if not math.isfinite(total_loss):
                self.out.status, self.out.error = "diverged", f"non-finite loss at step {first + i}"
                return False
            fit.loss_ema = ema(None if math.isnan(fit.loss_ema) else fit.loss_ema, loss, 0.1)
            self.reporter.step(fit.loss_ema, img_s)
        return True

    def finish(self, model: nn.Module) -> None:
        """Test once, then what is measured on the final model: method stats, GMACs, inference throughput."""
        model.eval()
        m = self.out.metrics
        if self.out.status == "ok" and self.splits.test is not None:  # no test split: a selection run
            m["top1"], m["loss_test"] = evaluate(model, self.splits.test, self.splits, self.cfg.batch_size, self.rt)
        self.out.method_stats = self.method.stats(model)  # before the random-input throughput/GMAC forwards
        example = measure.example_like(self.splits.train[0][0])
        m["gmacs"] = measure.gmacs(model, example)
        with self.rt.dist.in_turn():  # DDP on shared CPUs: processes measure one after the other
            m["infer_img_s"] = measure.infer_throughput(model, example, self.rt.device, self.cfg.batch_size,
                                                        autocast=self.rt.autocast)


def fit(net: nn.Module, objective: Callable[[Any], torch.Tensor], batches: Iterable[Any] | int,
        recipe: MethodConfig, *, steps: int | None = None, warmup_steps: int = 0,
        schedule: Callable[[int], float] | None = None, no_decay: Collection[int] = (),
        frozen_backbone_mode: str = "eval", on_step: Callable[[int, int], None] | None = None,
        reporter: Reporter | None = None, description: str = "fit", ema_weight: float = 0.1,
        images_per_step: int = 0) -> list[float]:
    """Fit ``net`` to ``batches``, the way the loop steps: per batch (an int ``n``: the step numbers 0 .. n-1
    stand for the batches), train mode under ``frozen_backbone_mode`` (``set_train_mode``), the scalar loss
    ``objective(batch)``, one step of the recipe's optimizer over ``net``'s trainable parameters
    (``make_optimizer``; ``no_decay``: ids of further parameters without weight decay; the recipe's
    ``grad_clip``), then ``on_step(step, steps)`` (1-based). The lr is the recipe's × ``schedule(step)``; None:
    ``warmup_then_decay`` over ``steps`` (None: ``len(batches)``) with ``warmup_steps`` of warm-up and the
    recipe's decay; ``optim.constant``: a constant lr. ``reporter`` (optional) shows ``description``, the loss
    EMA (``ema_weight`` on the newest loss) and ``images_per_step`` over the step's time. Returns each step's
    loss. Batches are used as they come (no device move, no autocast)."""
    batches = range(batches) if isinstance(batches, int) else batches
    steps = len(batches) if steps is None else steps
    params = [p for p in net.parameters() if p.requires_grad]
    opt = make_optimizer(params, recipe, no_decay=no_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule or warmup_then_decay(steps, warmup_steps, recipe.decay))
    losses: list[float] = []
    avg, reporter = None, reporter or Reporter()
    reporter.start(steps, description)
    try:
        for step, batch in enumerate(batches, 1):
            t0 = time.perf_counter()
            set_train_mode(net, frozen_backbone_mode)
            loss = objective(batch)
            optimizer_step(opt, loss, params, recipe.grad_clip)
            sched.step()
            losses.append(loss.item())
            if on_step is not None:
                on_step(step, steps)
            avg = ema(avg, losses[-1], ema_weight)
            reporter.step(avg, images_per_step / max(time.perf_counter() - t0, 1e-9))
    finally:
        reporter.stop()
    return losses


def ema(avg: float | None, value: float, weight: float) -> float:
    """One update of an exponential moving average: ``value`` first (``avg`` None), then ``weight`` on it."""
    return value if avg is None else (1 - weight) * avg + weight * value


def train_and_evaluate(built: Built, method: Method, splits: Splits, rt: Runtime,
                       reporter: Reporter | None = None) -> Outcome:
    """Train ``built.model`` (already ``apply``-ed) with ``method``'s recipe; finalize; test once."""
    return _Loop(built, method, splits, rt, reporter or Reporter()).run()
