"""THE training / evaluation loop. It never names a method: methods act through their hooks.

Order of events in ``run``:
seed -> backbone (frozen, trainable head) -> method.apply -> [search, timed apart]
-> train epochs (AdamW/SGD, cosine with warm-up, optional bf16 autocast; extra_loss, on_step)
-> eval on val each epoch (if a val split exists; never used for selection on test)
-> parameter counts (after search and training-time pruning, before finalize merges anything)
-> method.finalize -> test once -> method stats -> GMACs, inference throughput, peak memory.
"""

from __future__ import annotations

import functools
import json
import math
import os
import platform
import random
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from petlbench import measure
from petlbench.backbones import backbone_kind, create_backbone, get_classifier, head_parameters
from petlbench.config import RunConfig, build_method_config, identity_config, stable_hash, to_dict
from petlbench.data import RawData, Splits, batches, num_batches, prepare, split_off
from petlbench.errors import UserError
from petlbench.methods.base import Method, MethodConfig, MethodModule, SearchContext
from petlbench.registry import get as get_method
from petlbench.results import RunResult


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    # CPU kernels are deterministic for a fixed thread count; cuDNN needs to be told.
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def set_deterministic(enabled: bool) -> None:
    """``--deterministic``: ask torch for deterministic kernels everywhere (an op without one raises).
    cuBLAS needs a fixed workspace for that (set before its first use; PyTorch's reproducibility notes)."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled)


def make_method(name: str, overrides: dict[str, Any] | None = None) -> Method:
    cls = get_method(name)
    return cls(build_method_config(cls.Config, overrides or {}))


def build(
    method: Method, model_name: str | None, num_classes: int, *, weights: str | None = None,
    pretrained: bool = True, **timm_kwargs: Any,
) -> tuple[nn.Module, dict[str, Any], int]:
    """Backbone + ``method.apply``. Returns (model, weights provenance, backbone param count)."""
    model, info = create_backbone(model_name, num_classes, weights=weights, pretrained=pretrained, **timm_kwargs)
    kind = backbone_kind(model)
    if kind not in method.supports:
        raise UserError(
            f"method '{method.name}' does not support {kind} backbones (supports: {', '.join(sorted(method.supports))}); "
            "pick another --model"
        )
    backbone_total = sum(p.numel() for p in model.parameters())
    model = method.apply(model)
    return model, info, backbone_total


def input_size(model: nn.Module) -> tuple[int, int, int]:
    return tuple(resolve_data_config_for(model)["input_size"])


def inspect(method_name: str, model_name: str | None, num_classes: int = 1000, img_size: int | None = None,
            overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build (random init, no data), apply, count params, finalize, count GMACs."""
    torch.manual_seed(0)
    method = make_method(method_name, overrides)
    kwargs = {"img_size": img_size} if img_size else {}
    model, _, backbone_total = build(method, model_name, num_classes, pretrained=False, **kwargs)
    counts = measure.param_counts(model, backbone_total)
    size = input_size(model)
    model = method.finalize(model)
    g, g_base = measure.gmacs(model, size), backbone_gmacs(model_name, num_classes, size, img_size)
    return {
        "method": method_name, "model": model_name, "num_classes": num_classes, "input_size": list(size),
        **counts, "gmacs": g, "gmacs_backbone": g_base, "gmacs_extra": g - g_base,
        "gmacs_ratio": g / g_base if g_base else float("nan"),
        "method_config": {k: v for k, v in vars(method.cfg).items()},
    }


# ----------------------------------------------------------------------------- training


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda requested but no CUDA device is available; use --device cpu or auto")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise UserError(f"unknown device '{name}'; use auto, cpu or cuda")
    return torch.device(name)


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


def make_optimizer(params: list[nn.Parameter], mcfg: MethodConfig) -> torch.optim.Optimizer:
    if mcfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=mcfg.lr, weight_decay=mcfg.weight_decay)
    if mcfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=mcfg.lr, momentum=0.9, weight_decay=mcfg.weight_decay)
    raise UserError(f"unknown optimizer '{mcfg.optimizer}'; use --set optimizer=adamw or optimizer=sgd")


def cosine_with_warmup(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """lr multiplier: linear warm-up to 1, then cosine decay to 0 (per optimizer step)."""

    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


@torch.no_grad()
def evaluate(model: nn.Module, ds, batch_size: int, device: torch.device, autocast) -> tuple[float, float]:
    """(top-1 %, mean cross-entropy) of ``model`` on ``ds``."""
    model.eval()
    correct, loss_sum, n = 0, 0.0, 0
    for x, y in batches(ds, batch_size):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast():
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
        correct += (logits.argmax(-1) == y).sum().item()
        n += y.numel()
    return 100.0 * correct / max(n, 1), loss_sum / max(n, 1)


def _trains_head_only(model: nn.Module, method: Method) -> bool:
    """Only the classifier trains and no hook can change the backbone during training."""
    head = {id(p) for p in head_parameters(model)}
    hooks_default = (type(method).extra_loss is Method.extra_loss and type(method).on_step is Method.on_step
                     and not method.has_search())
    return hooks_default and all(id(p) in head for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def _cached_features(model: nn.Module, splits: Splits, batch_size: int, device: torch.device, autocast):
    """(train, val) TensorDatasets of pre-logit features, or None when the model is not
    ``forward_head(forward_features(x))`` (checked on a batch)."""
    from torch.utils.data import TensorDataset

    if not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
        return None
    model.eval()
    head = get_classifier(model)

    def feats(ds):
        xs, ys = [], []
        for x, y in batches(ds, batch_size):
            x = x.to(device)
            with autocast():
                f = model.forward_head(model.forward_features(x), pre_logits=True)
            if not xs and not torch.allclose(head(f).float(), model(x).float(), atol=1e-5, rtol=1e-4):
                return None
            xs.append(f.float().cpu())
            ys.append(y)
        return TensorDataset(torch.cat(xs), torch.cat(ys))

    train = feats(splits.train)
    if train is None:
        return None
    return train, feats(splits.val) if splits.val is not None else None


def _search(model: nn.Module, method: Method, splits: Splits, device: torch.device, autocast,
            gen: torch.Generator, num_workers: int, frozen_backbone_mode: str, log: Callable[[str], None]) -> None:
    """Run ``method.search`` on ``search_train`` with rewards from ``search_val``: never on data it trains
    on. Without a val split, 10% of train (fixed seed) is held out for the rewards during the search."""
    mcfg = method.cfg
    train, val = splits.search_train or splits.train, splits.search_val
    if val is None:
        train, val = split_off(train, 0.1, seed=0)
        log(f"no val split: the search holds out {len(val)} training images (10%, fixed seed) for its rewards")

    def to_dev(it: Iterator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in it:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def val_stream() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:  # fresh held-out batches, endless
            yield from to_dev(batches(val, mcfg.batch_size, shuffle=True, generator=gen))

    ctx = SearchContext(
        train_batches=lambda: to_dev(batches(train, mcfg.batch_size, True, gen, num_workers)),
        val_batches=val_stream, device=device, loss_fn=F.cross_entropy, autocast=autocast,
        make_optimizer=lambda ps: make_optimizer(list(ps), mcfg), steps_per_epoch=num_batches(train, mcfg.batch_size),
        log=log,
    )
    set_train_mode(model, frozen_backbone_mode)
    method.search(model, ctx)


@dataclass
class Outcome:
    """What the loop measured for one run (the CLI turns it into a RunResult row)."""

    metrics: dict[str, Any] = field(default_factory=dict)
    method_stats: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"
    error: str = ""


class Reporter:
    """Progress callbacks; the CLI passes a Rich implementation, tests use this silent one."""

    def start(self, total_steps: int, description: str) -> None: ...

    def step(self, loss: float, img_s: float) -> None: ...

    def stop(self) -> None: ...


def train_and_evaluate(
    model: nn.Module, method: Method, splits: Splits, *, seed: int, device: torch.device, amp: bool,
    backbone_total: int,
    frozen_backbone_mode: str = "eval", num_workers: int = 0, reporter: Reporter | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> Outcome:
    """Train ``model`` (already built and ``apply``-ed) with ``method``'s recipe; finalize; test once."""
    mcfg = method.cfg
    reporter = reporter or Reporter()
    out = Outcome()
    model.to(device)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if amp else nullcontext
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise UserError(f"method '{method.name}' left no trainable parameter; check its config")
    loss_fn = F.cross_entropy

    def to_dev(it: Iterator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in it:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    steps_per_epoch = num_batches(splits.train, mcfg.batch_size)
    memory = measure.PeakMemory(device)
    memory.start()

    search_timer = measure.Timer(device)
    if method.has_search():
        with search_timer():
            _search(model, method, splits, device, autocast, gen, num_workers, frozen_backbone_mode, log)
        params = [p for p in model.parameters() if p.requires_grad]

    # A head-only method on a frozen, eval-mode backbone without augmentation sees the same features
    # every epoch: compute them once (the linear-probe shortcut) and train the head on the cache.
    net, train_ds, val_ds, cache_s = model, splits.train, splits.val, 0.0
    if frozen_backbone_mode == "eval" and _trains_head_only(model, method):
        t0 = time.perf_counter()
        cached = _cached_features(model, splits, mcfg.batch_size, device, autocast)
        if cached is not None:
            net, train_ds, val_ds = get_classifier(model), *cached
            cache_s = time.perf_counter() - t0
            log("head-only training: frozen features computed once and cached")

    opt = make_optimizer(params, mcfg)
    total = steps_per_epoch * mcfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_with_warmup(total, steps_per_epoch * mcfg.warmup_epochs))
    train_timer, timed_images, step = measure.Timer(device), 0, 0
    train_timer.seconds = cache_s  # the feature pass is part of the training cost
    loss_ema = float("nan")
    reporter.start(total, f"{method.name}")
    t_train0 = time.perf_counter() - cache_s
    try:
        for _epoch in range(mcfg.epochs):
            set_train_mode(net, frozen_backbone_mode)
            for x, y in to_dev(batches(train_ds, mcfg.batch_size, True, gen, num_workers)):
                t0 = time.perf_counter()
                with autocast():
                    logits = net(x)
                    loss = loss_fn(logits.float(), y)
                    extra = method.extra_loss(model)
                    total_loss = loss if extra is None else loss + extra
                if not torch.isfinite(total_loss):
                    out.status, out.error = "diverged", f"non-finite loss at step {step + 1}"
                    break
                opt.zero_grad(set_to_none=True)
                total_loss.backward()
                if mcfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, mcfg.grad_clip)
                opt.step()
                sched.step()
                step += 1
                method.on_step(model, step, total)
                measure.sync(device)
                dt = time.perf_counter() - t0
                if step > 2:  # first steps warm up allocators/kernels
                    train_timer.seconds += dt
                    timed_images += y.numel()
                loss_ema = loss.item() if math.isnan(loss_ema) else 0.9 * loss_ema + 0.1 * loss.item()
                reporter.step(loss_ema, y.numel() / dt if dt > 0 else 0.0)
            if out.status != "ok":
                break
            if val_ds is not None:
                out.metrics["top1_val"], out.metrics["loss_val"] = evaluate(
                    net, val_ds, mcfg.batch_size, device, autocast)
    finally:
        reporter.stop()
    time_train = time.perf_counter() - t_train0
    peak_mb, peak_kind = memory.read()
    # counted after search and training-time pruning (masks), before finalize merges anything away
    out.metrics["counts"] = measure.param_counts(model, backbone_total)

    model = method.finalize(model)
    model.eval()
    if out.status == "ok":
        out.metrics["top1"], out.metrics["loss_test"] = evaluate(model, splits.test, mcfg.batch_size, device, autocast)
    out.method_stats = method.stats(model)  # before the random-input throughput/GMAC forwards
    size = tuple(splits.test[0][0].shape)
    out.metrics.update(
        loss_train=loss_ema,
        steps=step,
        train_img_s=timed_images / train_timer.seconds if train_timer.seconds else float("nan"),
        infer_img_s=measure.infer_throughput(model, size, device, batch_size=mcfg.batch_size, autocast=autocast),
        gmacs=measure.gmacs(model, size),
        peak_mem_train_mb=peak_mb,
        peak_mem_kind=peak_kind,
        time_search_s=search_timer.seconds,
        time_train_s=time_train,
    )
    return out


# ----------------------------------------------------------------------------- one run, end to end


def resolve_overrides(overrides: dict[str, Any], cfg_cls: type[MethodConfig], raw_epochs: int | None,
                      raw_batch: int | None) -> dict[str, Any]:
    """Apply a built-in task's compact budget unless the user set epochs/batch size.

    The method's warm-up keeps its share of the schedule (e.g. 10 of 100 epochs -> 10%).
    """
    out = dict(overrides)
    defaults = cfg_cls()
    if "epochs" not in out and raw_epochs:
        out["epochs"] = raw_epochs
    if "warmup_epochs" not in out and out.get("epochs", defaults.epochs) != defaults.epochs:
        share = defaults.warmup_epochs / max(1, defaults.epochs)
        out["warmup_epochs"] = int(round(share * out["epochs"]))
    if "batch_size" not in out and raw_batch:
        out["batch_size"] = raw_batch
    return out


def run_identity(cfg: RunConfig, method: Method, raw: RawData, weights_info: dict[str, Any]) -> dict[str, Any]:
    """Everything that determines a run's outcome (hashed into config_hash)."""
    return {
        "method": method.name, "method_config": identity_config(method.cfg), "dataset": raw.name,
        "data": raw.fingerprint(), "model": weights_info["model"], "img_size": cfg.img_size, "weights": weights_info["weights_source"],
        "weights_sha256": weights_info["weights_sha256"], "seed": cfg.seed, "limit": cfg.limit, "amp": cfg.amp,
        "trainval": cfg.trainval, "frozen_backbone_mode": cfg.frozen_backbone_mode, "label": cfg.label,
    }


@dataclass
class Prepared:
    """A validated, built run: what ``run_one`` needs and the hash the store is checked against."""

    method: Method
    model: nn.Module
    weights_info: dict[str, Any]
    backbone_total: int
    identity: dict[str, Any]
    config_hash: str


def prepare_run(cfg: RunConfig, raw: RawData) -> Prepared:
    """Validate and build everything for ``cfg`` (raises UserError before any work is stored)."""
    cls = get_method(cfg.method)
    overrides = resolve_overrides(cfg.overrides, cls.Config, raw.epochs, raw.batch_size)
    method = cls(build_method_config(cls.Config, overrides))
    seed_everything(cfg.seed)
    kwargs = {"img_size": cfg.img_size} if cfg.img_size else {}
    model, info, backbone_total = build(method, cfg.model, raw.num_classes, weights=cfg.weights,
                                        pretrained=cfg.pretrained, **kwargs)
    identity = run_identity(cfg, method, raw, info)
    return Prepared(method, model, info, backbone_total, identity, stable_hash(identity))


def run_one(cfg: RunConfig, raw: RawData, *, reporter: Reporter | None = None,
            log: Callable[[str], None] = lambda s: None, prepared: Prepared | None = None) -> RunResult:
    """Train and evaluate one (method, dataset, model, seed); failures become a row with a status."""
    t0 = time.perf_counter()
    p = prepared or prepare_run(cfg, raw)
    method, model, info, backbone_total = p.method, p.model, p.weights_info, p.backbone_total
    identity, config_hash = p.identity, p.config_hash
    device = resolve_device(cfg.device)
    counts = measure.param_counts(model, backbone_total)
    data_cfg = resolve_data_config_for(model)
    splits = prepare(raw, data_cfg, trainval=cfg.trainval)
    res = RunResult(
        run_id=f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{config_hash[:8]}-{os.getpid()}",
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        method=method.name, dataset=raw.name, model=info["model"], seed=cfg.seed, label=cfg.label,
        suite=cfg.suite, config_hash=config_hash,
        group_hash=stable_hash({k: v for k, v in identity.items() if k != "seed"}),
        **counts, **{k: getattr(method.cfg, k) for k in ("optimizer", "lr", "weight_decay", "epochs",
                                                           "warmup_epochs", "batch_size")},
        amp=cfg.amp, deterministic=cfg.deterministic, device=str(device),
        frozen_backbone_mode=cfg.frozen_backbone_mode, limit=cfg.limit or 0, method_note=method.note,
        preprocessing=splits.preprocessing,
        trainval=cfg.trainval, weights_source=info["weights_source"], weights_sha256=info["weights_sha256"],
        data_source=raw.source, data_group=raw.group or "", data_fingerprint=json.dumps(identity["data"]),
        num_classes=raw.num_classes, n_train=len(splits.train), n_val=len(splits.val) if splits.val else 0,
        n_test=len(splits.test), method_config=json.dumps(to_dict(method.cfg)), **provenance(device),
    )
    res.extra = {"identity": identity, "data_config": dict(data_cfg)}
    seed_everything(cfg.seed)
    set_deterministic(cfg.deterministic)
    try:
        outcome = train_and_evaluate(
            model, method, splits, seed=cfg.seed, device=device, amp=cfg.amp, backbone_total=backbone_total,
            frozen_backbone_mode=cfg.frozen_backbone_mode, num_workers=cfg.num_workers, reporter=reporter, log=log,
        )
    except UserError:
        raise
    except Exception as e:  # a failed run is a result too (OOM, bad data, method bug): record it
        res.status, res.error = "failed", f"{type(e).__name__}: {e}"[:500]
        res.time_total_s = time.perf_counter() - t0
        return res
    m = outcome.metrics
    res.status, res.error = outcome.status, outcome.error
    res.top1_pct = m.get("top1", math.nan)
    res.top1_val_pct = m.get("top1_val", math.nan)
    res.loss_train = m["loss_train"]
    res.steps = m["steps"]
    for k, v in m["counts"].items():
        setattr(res, k, v)
    for k in ("gmacs", "train_img_s", "infer_img_s", "peak_mem_train_mb", "peak_mem_kind", "time_search_s",
              "time_train_s"):
        setattr(res, k, m[k])
    res.gmacs_backbone = backbone_gmacs(cfg.model, raw.num_classes, tuple(data_cfg["input_size"]), cfg.img_size)
    res.method_stats = json.dumps(outcome.method_stats, default=float)
    res.time_total_s = time.perf_counter() - t0
    return res


def resolve_data_config_for(model: nn.Module) -> dict[str, Any]:
    """timm's data config (mean, std, interpolation); a ViT built with another ``img_size``
    than its pretrained config takes its real input size."""
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=model)
    img_size = getattr(getattr(model, "patch_embed", None), "img_size", None)
    if img_size is not None:
        cfg["input_size"] = (cfg["input_size"][0], *img_size)
    return cfg


@functools.lru_cache(maxsize=16)
def backbone_gmacs(model_name: str | None, num_classes: int, size: tuple[int, int, int],
                   img_size: int | None = None) -> float:
    base, _ = create_backbone(model_name, num_classes, pretrained=False, **({"img_size": img_size} if img_size else {}))
    return measure.gmacs(base, size)


def _installed_commit() -> str:
    """Commit of a non-editable install from git (``pip install git+...``), per PEP 610 direct_url.json."""
    from importlib import metadata

    try:
        info = json.loads(metadata.distribution("petlbench").read_text("direct_url.json") or "{}")
    except (metadata.PackageNotFoundError, json.JSONDecodeError):
        return ""
    return str(info.get("vcs_info", {}).get("commit_id", ""))[:12]


@functools.lru_cache(maxsize=1)
def _git_commit() -> str:
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file():  # installed into site-packages, not a source checkout
        return _installed_commit()
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return _installed_commit()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha.stdout.strip()[:12] + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def provenance(device: torch.device) -> dict[str, str]:
    import timm

    from petlbench import __version__

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {
        "git_commit": _git_commit(), "petlbench_version": __version__, "torch_version": torch.__version__,
        "timm_version": timm.__version__, "python_version": platform.python_version(),
        "device_name": f"{name} ({torch.get_num_threads()} threads)" if device.type == "cpu" else name,
        "hostname": socket.gethostname(),
    }
