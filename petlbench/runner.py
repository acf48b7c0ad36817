"""Orchestration of runs: validate and build (``prepare_run``), train through the loop (``run_one``), store
(``execute``); and ``inspect`` (build and count, no data). The flow of one run:

    RunConfig -> prepare_run: method config (one validation path, task budget) + model built from the seed
              -> identity / config_hash (skip if stored) -> run_one: data preprocessed for the model,
              global RNGs seeded once, loop.train_and_evaluate -> RunResult -> Store.append
"""

from __future__ import annotations

import functools
import json
import math
import os
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from petlbench import datacache, distributed, measure, numerics, offline, tracks
from petlbench.backbones import Built, build, create_backbone, data_config, input_size
from petlbench.config import build_method_config, to_dict
from petlbench.data import CLASSIFICATION, RawData, map_tensors, prepare, tensor_shapes
from petlbench.errors import UserError
from petlbench.executors import machine_load
from petlbench.loop import Reporter, Runtime, head_lr_mult, train_and_evaluate, training_step
from petlbench.methods.base import Method, MethodConfig
from petlbench.options import RunConfig, config_hash, group_hash, identity
from petlbench.provenance import provenance
from petlbench.registry import METHODS
from petlbench.results import RunResult

RECIPE_COLUMNS = ("optimizer", "lr", "weight_decay", "epochs", "warmup_epochs", "batch_size")


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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda requested but no CUDA device is available; use --device cpu or auto")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise UserError(f"unknown device '{name}'; use auto, cpu or cuda")
    return torch.device(name)


def make_method(name: str, overrides: dict[str, Any] | None = None) -> Method:
    cls = METHODS.get(name)
    return cls(build_method_config(cls.Config, overrides or {}, name))


def resolve_overrides(overrides: dict[str, Any], cfg_cls: type[MethodConfig], raw: RawData) -> dict[str, Any]:
    """Apply a built-in task's compact budget unless the user set epochs/batch size.

    The method's warm-up keeps its share of the schedule (e.g. 10 of 100 epochs -> 10%).
    """
    out = dict(overrides)
    defaults = cfg_cls()
    if "epochs" not in out and raw.epochs:
        out["epochs"] = raw.epochs
    if "warmup_epochs" not in out and out.get("epochs", defaults.epochs) != defaults.epochs:
        share = defaults.warmup_epochs / max(1, defaults.epochs)
        out["warmup_epochs"] = int(round(share * out["epochs"]))
    if "batch_size" not in out and raw.batch_size:
        out["batch_size"] = raw.batch_size
    return out


def build_seeded(method: Method, cfg: RunConfig, num_classes: int) -> Built:
    """The model for ``cfg``, initialised from its seed inside its own RNG scope (the global RNG state is
    left as it was: the run seeds it once, right before training)."""
    kwargs = {"img_size": cfg.img_size} if cfg.img_size else {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return build(method, cfg.model, num_classes, weights=cfg.weights, pretrained=cfg.pretrained,
                     modality=cfg.modality, **kwargs)


@dataclass
class Prepared:
    """A validated, built run: the resolved config, the method, the model and the run's identity."""

    cfg: RunConfig  # dataset / model names resolved
    method: Method
    built: Built
    identity: dict[str, Any]
    config_hash: str
    precision_reason: str = ""


def prepare_run(cfg: RunConfig, raw: RawData) -> Prepared:
    """Validate and build everything for ``cfg`` (raises UserError before any work is stored)."""
    cls = METHODS.get(cfg.method)
    cfg = replace(cfg, model=tracks.resolve_model(raw.track, cfg.model, cfg.method, cls.supports))
    method = cls(build_method_config(cls.Config, resolve_overrides(cfg.overrides, cls.Config, raw), cfg.method))
    built = build_seeded(method, cfg, raw.num_classes)
    choice = choose_precision(replace(cfg, model=built.weights_info["model"]), method, built)
    cfg = replace(cfg, dataset=raw.name, model=built.weights_info["model"], precision=choice.precision)
    facts = {"data": raw.fingerprint(), "weights": built.weights_info["weights_source"],
             "weights_sha256": built.weights_info["weights_sha256"]}
    ident = identity(cfg, method.cfg, facts)
    return Prepared(cfg, method, built, ident, config_hash(ident), choice.reason)


def choose_precision(cfg: RunConfig, method: Method, built: Built) -> numerics.PrecisionChoice:
    """``--precision`` resolved for this run: ``auto`` times the run's own training step (this model, method and
    batch) in fp32 and bf16 on this device, once per machine (``numerics.cached_timing``); under torchrun rank 0
    times it and every process takes its choice."""
    dist = distributed.session()
    device = dist.place(resolve_device(cfg.device))
    if cfg.precision != "auto":
        return numerics.resolve_precision(cfg.precision, device)
    batch = max(1, method.cfg.batch_size // dist.world)  # what one process steps on
    example = map_tensors(example_batch(built.model), lambda t: t.expand(batch, *t.shape[1:]).contiguous())

    def measure() -> tuple[float, float, str]:
        key = (f"{numerics.machine_key(device)}|{cfg.model}|{method.name}|{tensor_shapes(example)}|"
               f"{cfg.frozen_backbone_mode}|trainable {sum(p.numel() for p in built.model.parameters() if p.requires_grad)}")
        folder = offline.cache_dir()
        step = training_step(built.model, method.cfg, example, device, cfg.frozen_backbone_mode)
        return numerics.cached_timing(folder and folder / "precision.json", key,
                                      lambda: numerics.time_precisions(step, device))

    choice = numerics.resolve_precision("auto", device, measure) if dist.is_main else None
    return dist.agree(choice)


def example_batch(model: torch.nn.Module) -> Any:
    """A batch of one random input in the model's format: a VL model's own ``example_inputs``, else an image
    of its input size."""
    if hasattr(model, "example_inputs"):
        return model.example_inputs()
    return torch.randn(1, *input_size(model), generator=torch.Generator().manual_seed(0))


def _row(p: Prepared, raw: RawData, splits, device: torch.device, data_cfg: dict) -> RunResult:
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
        data_fingerprint=json.dumps(p.identity["data"]), preprocessing=splits.preprocessing,
        num_classes=raw.num_classes, n_train=len(splits.train), n_val=len(splits.val) if splits.val else 0,
        n_test=len(splits.test) if splits.test is not None else 0, selection=cfg.selection, tune=cfg.tune,
        method_config=json.dumps(to_dict(method.cfg)), **provenance(device), **machine_load(),
    )
    # what ran: the preprocessing's own description (data.Preprocess / the VL batches) and the values it was given;
    # not the backbone's default data config (timm's crop and interpolation are never applied: squash, bilinear)
    ran = {k: data_cfg[k] for k in ("input_size", "mean", "std", "tokenizer") if k in data_cfg}
    res.extra = {"identity": p.identity, "data_config": {"preprocessing": splits.preprocessing, **ran}}
    return res


def _example_key(data_cfg: dict, splits) -> tuple[int, ...]:
    """What the plain backbone's GMACs are counted on: the input size, or (VL) the text length of the example
    the loop counted the run's model on (``VLTorchSplit.text_len``)."""
    text_len = getattr(splits.train, "text_len", None)
    return (text_len,) if text_len is not None else tuple(data_cfg["input_size"])


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
    res.gmacs_backbone = backbone_gmacs(p.cfg.model, res.num_classes, _example_key(data_cfg, splits), p.cfg.img_size,
                                        p.cfg.modality)
    res.gmacs_vision = encoder_gmacs(p.built.model, data_cfg)
    res.method_stats = json.dumps(outcome.method_stats, default=float)


def run_one(cfg: RunConfig, raw: RawData, *, reporter: Reporter | None = None,
            prepared: Prepared | None = None) -> RunResult:
    """Train and evaluate one (method, dataset, model, seed); failures become a row with a status."""
    t0 = time.perf_counter()
    p = prepared or prepare_run(cfg, raw)
    dist = distributed.session()  # torchrun: DDP over its processes; alone: the identity
    device = dist.place(resolve_device(p.cfg.device))
    data_cfg = data_config(p.built.model)
    splits = prepare(raw, data_cfg, trainval=p.cfg.trainval, selection=p.cfg.selection)
    res = _row(p, raw, splits, device, data_cfg)
    res.processes = dist.world
    seed_everything(p.cfg.seed)  # once per run, right before training
    set_deterministic(p.cfg.deterministic)
    rt = Runtime(device, p.cfg.precision == "bf16", p.cfg.frozen_backbone_mode, p.cfg.num_workers, p.cfg.seed,
                 dist, p.cfg.compile)
    try:
        # lazily decoded train / val: decoded once (memory or a memory-mapped file), not once per epoch; an
        # image that cannot be decoded fails the run here (a stored 'failed' row), as it did in epoch 1
        splits = datacache.cache_splits(splits, p.identity["data"], offline.cache_dir(), p.cfg.num_workers)
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


@functools.lru_cache(maxsize=16)
def backbone_gmacs(model_name: str | None, num_classes: int, size: tuple[int, ...],
                   img_size: int | None = None, modality: str = "both") -> float:
    """GMACs of the plain backbone, counted once per (model, classes, input size) and cached; ``size`` of a
    model with its own ``example_inputs`` (VL) is ``(text_len,)``."""
    base, _ = create_backbone(model_name, num_classes, pretrained=False, modality=modality,
                              **({"img_size": img_size} if img_size else {}))
    return measure.gmacs(base, base.example_inputs(*size) if hasattr(base, "example_inputs") else size)


def encoder_gmacs(model: torch.nn.Module, data_cfg: dict) -> float:
    """GMACs of a frozen input encoder reported apart from the model's (a VL model's visual encoder, included
    in its ``gmacs``); NaN for a model without one."""
    vision = getattr(model, "vision", None)
    if vision is None or "input_size" not in data_cfg:
        return math.nan
    return measure.gmacs(vision, tuple(data_cfg["input_size"]))


def inspect(method_name: str, model_name: str | None, num_classes: int = 1000, img_size: int | None = None,
            overrides: dict[str, Any] | None = None, text_len: int = 16) -> dict[str, Any]:
    """Build (random init, no data), apply, count params, finalize, count GMACs (a VL model: on ``text_len``
    text tokens + its visual tokens, the frozen visual encoder also apart)."""
    method = make_method(method_name, overrides)
    model_name = tracks.resolve_model(tracks.model_track(model_name), model_name, method_name, type(method).supports)
    cfg = RunConfig(method=method_name, model=model_name, img_size=img_size, pretrained=False)
    built = build_seeded(method, cfg, num_classes)
    counts = measure.param_counts(built.model, built.backbone_total)
    vl_model = hasattr(built.model, "example_inputs")
    size = (text_len,) if vl_model else input_size(built.model)
    model = method.finalize(built.model)
    example = model.example_inputs(text_len) if vl_model else size
    g, g_base = measure.gmacs(model, example), backbone_gmacs(model_name, num_classes, size, img_size)
    info = {
        "method": method_name, "model": model_name, "num_classes": num_classes,
        "input_size": list(data_config(model).get("input_size", ())), **counts,
        "gmacs": g, "gmacs_backbone": g_base, "gmacs_extra": g - g_base,
        "gmacs_ratio": g / g_base if g_base else float("nan"),
        "method_config": {k: v for k, v in vars(method.cfg).items()},
    }
    if vl_model:  # the language model's share against the plain VL model's (all visual tokens), same text length
        vision = encoder_gmacs(model, data_config(model))
        info.update(text_len=text_len, gmacs_vision=vision, gmacs_text=g - vision, gmacs_text_backbone=g_base - vision,
                    **method.stats(model))
    return info


def describe_recipe(mcfg: MethodConfig, raw: RawData, trainval: bool) -> str:
    """The resolved recipe and the number of optimizer steps, said before training starts."""
    n = raw.size("train") + (raw.size("val") if trainval and "val" in raw.splits else 0)
    steps = -(-n // mcfg.batch_size) * mcfg.epochs
    return (f"recipe: {mcfg.optimizer} lr {mcfg.lr:g} wd {mcfg.weight_decay:g}, {mcfg.epochs} epochs "
            f"({mcfg.warmup_epochs} warm-up) of batch {mcfg.batch_size} on {n} images = {steps} steps"
            + "".join(f", {k} {v}" for k, v in off_neutral(mcfg, getattr(raw, "task", CLASSIFICATION)).items()))


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
    from petlbench.results import Store
    from petlbench.sources import load_data

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
        prepared = prepare_run(cfg, raw)
        tag = f"[{i}/{len(jobs)}] {cfg.method} on {raw.name} seed {cfg.seed}"
        if dist.agree(prepared.config_hash in done and not force):  # rank 0 read the store
            say(f"{tag}: skipped, already in {store.csv} (config {prepared.config_hash}; --force to rerun)")
            continue
        say(f"{tag} ...")
        say(f"  {describe_recipe(prepared.method.cfg, raw, cfg.trainval)}")
        res = run_one(cfg, raw, reporter=reporter, prepared=prepared)
        if dist.is_main and not store.append(res, replace=force):
            say(f"  another process stored this configuration meanwhile (run {res.extra['duplicate_of']}); "
                f"this run is kept as history in {store.root / 'runs'}, not as a second row")
        done.add(res.config_hash)
        results.append(res)
        say(f"  {res.summary()}" if res.status == "ok" else f"  [red]{res.summary()}[/]")
    return results


def execute_tune(plan, out: str, force: bool, reporter: Reporter, say: Callable[[str], None]) -> list[RunResult]:
    """The tuned protocol (``petlbench.tune``): the grid's selection runs, the choice on val, then one final
    train+val run per seed, all through ``execute`` (stored, resumable)."""
    from petlbench.tune import choose, tune_record

    select = plan.selection_jobs()
    execute(select, out, force, reporter, say)
    scores = stored_val_scores(select, out)
    best, choice = choose(plan.grid, scores)
    record = tune_record(plan.grid, scores, best, plan.seeds[0])
    say(f"tune: val top-1 per grid point {[round(s, 2) for s in scores]} -> chose {choice}")
    finals = [replace(j, tune=json.dumps(record, sort_keys=True)) for j in plan.final_jobs(choice, record)]
    return execute(finals, out, force, reporter, say)


def stored_val_scores(jobs: list[RunConfig], out: str) -> list[float]:
    """The stored val top-1 of each (selection) job, NaN where it is not stored yet."""
    from petlbench.results import Store, read_rows
    from petlbench.sources import load_data

    store = Store(out)
    rows = {r["config_hash"]: r for r in read_rows(store.csv) if r.get("status") == "ok"} if store.csv.exists() else {}
    scores = []
    for job in jobs:
        row = rows.get(prepare_run(job, load_data(job.dataset, limit=job.limit)).config_hash)
        scores.append(float(row["top1_val_pct"]) if row and row.get("top1_val_pct") else math.nan)
    return scores
