"""Orchestration of runs: build (``engine.build.prepare_run``), train through the loop (``run_one``), store
(``execute``). The flow of one run:

    RunConfig -> prepare_run: method config (one validation path, task budget) + model built from the seed
              -> identity / config_hash (skip if stored) -> run_one: data preprocessed for the model,
              global RNGs seeded once, loop.train_and_evaluate -> RunResult -> Store.append
"""

from __future__ import annotations

import json
import math
import os
import random
import secrets
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from petlbench.config.method_config import to_dict
from petlbench.config.options import RunConfig, group_hash
from petlbench.data import cache as datacache
from petlbench.data import diskcache
from petlbench.data.protocols import with_protocol
from petlbench.data.types import Data
from petlbench.engine import distributed, numerics
from petlbench.engine.build import Prepared, backbone_gmacs, prepare_run
from petlbench.engine.loop import Reporter, Runtime, train_and_evaluate
from petlbench.engine.optim import head_lr_mult
from petlbench.errors import UserError
from petlbench.methods.base import MethodConfig
from petlbench.models import measure
from petlbench.results.provenance import machine_load, provenance
from petlbench.results.schema import RunResult

RECIPE_COLUMNS = ("optimizer", "lr", "weight_decay", "epochs", "warmup_epochs", "batch_size")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    # CPU kernels are deterministic for a fixed thread count; cuDNN needs to be told.
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    # fp32 means fp32 on CUDA too: cuDNN convolutions (a ViT's patch embedding) default to TF32 on Ampere and later
    # (PyTorch notes, "TensorFloat-32 (TF32) on Ampere (and later) devices"); bf16 runs are under autocast anyway.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def set_deterministic(enabled: bool) -> None:
    """``--deterministic``: ask torch for deterministic kernels everywhere (an op without one raises).
    cuBLAS needs a fixed workspace for that (set before its first use; PyTorch's reproducibility notes)."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled)


def _row(p: Prepared, raw: Data, splits, device: torch.device, data_cfg: dict) -> RunResult:
    """The result row before training: identity, recipe, provenance."""
    cfg, method, info = p.cfg, p.method, p.built.weights_info
    res = RunResult(
        run_id=f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{p.config_hash[:8]}-{secrets.token_hex(3)}-{os.getpid()}",
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        method=method.name, dataset=raw.name, model=info["model"], seed=cfg.seed, label=cfg.label,
        track=raw.track, metric=splits.task.metric, modality=cfg.modality,
        method_note=method.note, suite=cfg.suite, config_hash=p.config_hash, group_hash=group_hash(p.identity),
        **measure.param_counts(p.built.model, p.built.backbone_total),
        **{k: getattr(method.cfg, k) for k in RECIPE_COLUMNS},
        precision=cfg.precision, amp=cfg.precision == "bf16", precision_reason=p.precision_reason, deterministic=cfg.deterministic, compile=cfg.compile, device=str(device),
        frozen_backbone_mode=cfg.frozen_backbone_mode,
        limit=cfg.limit or 0, trainval=cfg.trainval, weights_source=info["weights_source"],
        weights_sha256=info["weights_sha256"], data_source=raw.source, data_group=raw.group or "",
        data_fingerprint=json.dumps(p.identity["data"]), preprocessing=splits.preprocessing, protocol=cfg.protocol,
        num_classes=raw.num_classes, n_train=len(splits.train), n_val=len(splits.val) if splits.val else 0,
        n_test=len(splits.test) if splits.test is not None else 0, selection=cfg.selection, tune=cfg.tune,
        method_config=json.dumps(to_dict(method.cfg)), **provenance(device), **machine_load(),
    )
    # what ran: the preprocessing's own description (data.Preprocess / the VL batches) and the values it was given;
    # not the backbone's default data config (timm's crop and interpolation are never applied: squash, bilinear)
    ran = {k: data_cfg[k] for k in ("input_size", "mean", "std", "tokenizer", "max_text_len") if k in data_cfg}
    res.extra = {"identity": p.identity, "data_config": {"preprocessing": splits.preprocessing, **ran}}
    return res


def _record(res: RunResult, outcome, p: Prepared, data_cfg: dict, splits) -> None:
    m = outcome.metrics
    res.status, res.error = outcome.status, outcome.error
    res.top1_pct, res.top1_val_pct = m.get("top1", math.nan), m.get("top1_val", math.nan)
    for k, v in m["counts"].items():
        setattr(res, k, v)
    res.feature_cache = m.get("feature_cache", "")
    for k in ("loss_train", "steps", "gmacs", "train_img_s", "infer_img_s", "peak_mem_train_mb", "peak_mem_kind",
              "time_search_s", "time_train_s"):
        setattr(res, k, m[k])
    size = p.built.family.count_size(p.built.model, data_cfg, splits.train)
    res.gmacs_backbone = backbone_gmacs(p.cfg.model, res.num_classes, size, p.cfg.img_size,
                                        p.cfg.modality)
    res.gmacs_vision = p.built.family.encoder_gmacs(p.built.model, data_cfg)
    res.method_stats = json.dumps(outcome.method_stats, default=float)


def run_one(cfg: RunConfig, raw: Data, *, reporter: Reporter | None = None,
            prepared: Prepared | None = None) -> RunResult:
    """Train and evaluate one (method, dataset, model, seed); failures become a row with a status."""
    t0 = time.perf_counter()
    p = prepared or prepare_run(cfg, raw)
    dist = distributed.session()  # torchrun: DDP over its processes; alone: the identity
    device = p.device
    data_cfg = {**with_protocol(p.built.family.data_config(p.built.model), p.cfg.protocol),
                **({"augment": "randaugment"} if p.method.cfg.randaugment else {})}
    splits = raw.prepare(data_cfg, trainval=p.cfg.trainval, selection=p.cfg.selection)
    res = _row(p, raw, splits, device, data_cfg)
    res.processes = dist.world
    seed_everything(p.cfg.seed)  # once per run, right before training
    set_deterministic(p.cfg.deterministic)
    rt = Runtime(device, p.cfg.precision, p.cfg.frozen_backbone_mode, p.cfg.num_workers, p.cfg.seed,
                 dist, p.cfg.compile)
    try:
        # lazily decoded train / val: decoded once (memory or a memory-mapped file), not once per epoch; an
        # image that cannot be decoded fails the run here (a stored 'failed' row), as it did in epoch 1
        splits = datacache.cache_splits(splits, p.identity["data"], diskcache.cache_dir(), p.cfg.num_workers)
        # on the CPU, training and evaluation run with denormals flushed to zero on every thread (numerics.py)
        with numerics.flush_denormal(device.type == "cpu") as res.flush_denormal:
            outcome = train_and_evaluate(p.built, p.method, splits, rt, reporter)
    except UserError:
        raise
    except Exception as e:  # a failed run is a result too (OOM, bad data, method bug): record it
        if dist.world > 1:  # DDP: the other processes would wait in a collective; torchrun ends them all
            raise
        res.status, res.error = "failed", f"{type(e).__name__}: {e}"[:500]
    else:
        _record(res, outcome, p, data_cfg, splits)
    res.time_total_s = time.perf_counter() - t0
    return res


def describe_recipe(mcfg: MethodConfig, raw: Data, trainval: bool) -> str:
    """The resolved recipe and the number of optimizer steps, said before training starts."""
    n = raw.size("train") + (raw.size("val") if trainval and "val" in raw.splits else 0)
    steps = -(-n // mcfg.batch_size) * mcfg.epochs
    return (f"recipe: {mcfg.optimizer} lr {mcfg.lr:g} wd {mcfg.weight_decay:g}, {mcfg.epochs} epochs "
            f"({mcfg.warmup_epochs} warm-up) of batch {mcfg.batch_size} on {n} images = {steps} steps"
            + "".join(f", {k} {v}" for k, v in off_neutral(mcfg, raw.task).items()))


def off_neutral(mcfg: MethodConfig, task: Any) -> dict[str, Any]:
    """The shared-recipe keys that hold a non-neutral value in ``mcfg`` (``MethodConfig.NEUTRAL``), resolved
    for ``task`` (a ``data.Task`` or ``VLTask``: what ``head_lr_mult`` None means on it)."""
    keys = {k: getattr(mcfg, k) for k, v in MethodConfig.NEUTRAL.items() if getattr(mcfg, k) != v}
    if "head_lr_mult" in keys and keys["head_lr_mult"] is None:
        keys["head_lr_mult"] = f"{head_lr_mult(mcfg, task):g} (by task)"
    return keys


def execute(jobs: list[RunConfig], out: str, force: bool, reporter: Reporter,
            say: Callable[[str], None], results: list[RunResult] | None = None) -> list[RunResult]:
    """Run ``jobs`` in order into the store at ``out``; each is validated and built before anything of it
    is stored, and a job whose config hash is stored already is skipped unless ``force`` (which replaces
    the stored row). Finished runs are appended to ``results`` as they complete (so a caller that is
    interrupted knows what was kept)."""
    from petlbench.datasets import load_data
    from petlbench.results.store import Store

    store = Store(out)
    store.check_writable()  # before any work: a run must never train and then fail to store
    dist = distributed.session()
    if not dist.is_main:  # torchrun: rank 0 prints and stores, the other processes are silent
        reporter, say = Reporter(), lambda _text: None
    done, results = store.hashes(), results if results is not None else []
    raw_cache: dict = {}
    for i, cfg in enumerate(jobs, 1):
        key = (cfg.dataset, cfg.limit)
        if key not in raw_cache:
            raw_cache[key] = load_data(cfg.dataset, limit=cfg.limit)
            if raw_cache[key].note:
                say(f"data {raw_cache[key].name}: {raw_cache[key].note}")
        raw = raw_cache[key]
        prepared = prepare_run(cfg, raw, say)
        tag = f"[{i}/{len(jobs)}] {cfg.method} on {raw.name} seed {cfg.seed}"
        if dist.agree(prepared.config_hash in done and not force):  # rank 0 read the store
            say(f"{tag}: skipped, already in {store.csv} (config {prepared.config_hash}; --force to rerun)")
            continue
        say(f"{tag} ...")
        say(f"  {describe_recipe(prepared.method.cfg, raw, cfg.trainval)}")
        if cost := prepared.method.search_cost():
            say(f"  {cost}")
        res = run_one(cfg, raw, reporter=reporter, prepared=prepared)
        if dist.is_main and not store.append(res, replace=force):
            say(f"  another process stored this configuration meanwhile (run {res.extra['duplicate_of']}); "
                f"this run is kept as history in {store.root / 'runs'}, not as a second row")
        done.add(res.config_hash)
        results.append(res)
        say(f"  {res.summary()}" if res.status == "ok" else f"  [red]{res.summary()}[/]")
    return results
