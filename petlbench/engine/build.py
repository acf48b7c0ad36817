"""Validate and build a run: the method config (one validation path, a task's budget applied), the model
built from the seed by its backbone family with the method applied, the device, the precision, and the run's
identity and config hash (``prepare_run``); also ``inspect`` (build and count, no data) and the plain backbone's
GMACs."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from petlbench import tracks
from petlbench.config.method_config import build_method_config
from petlbench.config.options import RunConfig, config_hash, identity
from petlbench.data import diskcache
from petlbench.data.batching import map_tensors, tensor_shapes
from petlbench.data.protocols import DEFAULT_PROTOCOL
from petlbench.data.types import Data
from petlbench.engine import distributed, numerics
from petlbench.engine.loop import training_step
from petlbench.errors import UserError
from petlbench.methods.base import Method, MethodConfig
from petlbench.models import measure
from petlbench.models.family import Built
from petlbench.registry import METHODS


def build(method: Method, model_name: str | None, num_classes: int, *, weights: str | None = None,
          pretrained: bool = True, modality: str = "both", **kwargs: Any) -> Built:
    """Backbone (built by its family) + ``method.apply``; refuses a backbone kind the method does not support."""
    model, info, fam = tracks.create_backbone(model_name, num_classes, weights=weights, pretrained=pretrained,
                                              modality=modality, **kwargs)
    backbone_total = sum(p.numel() for p in model.parameters())
    return Built(tracks.apply_method(method, model, fam), info, backbone_total, fam)


def resolve_device(name: str) -> torch.device:
    """``--device`` -> a torch device (``auto``: CUDA when available), resolved once per run by ``prepare_run``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda requested but no CUDA device is available; use --device cpu or auto")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise UserError(f"unknown device '{name}'; use auto, cpu or cuda")
    return torch.device(name)


def make_method(name: str, overrides: dict[str, Any] | None = None, kind: str | None = None) -> Method:
    """Method ``name`` with ``overrides`` over, when ``kind`` is given, its recipe's defaults on that backbone kind
    (``MethodConfig.for_task`` without a task: its published task's)."""
    cls = METHODS.get(name)
    defaults = cls.Config.for_task(None, False, kind) if kind else {}
    return cls(build_method_config(cls.Config, {**defaults, **(overrides or {})}, name))


def resolve_overrides(overrides: dict[str, Any], cfg_cls: type[MethodConfig], raw: Data,
                      kind: str | None = None) -> dict[str, Any]:
    """The method config's keys for a run on ``raw``: the user's, over the method's published recipe for the task
    on a backbone of ``kind`` (``MethodConfig.for_task``), with a built-in task's compact budget unless the user set
    epochs/batch size.

    The recipe's warm-up keeps its share of the schedule (e.g. 10 of 100 epochs -> 10%).
    """
    builtin = bool(raw.epochs or raw.batch_size)
    published = cfg_cls.for_task(raw.task, builtin, kind)
    task_keys = {k: v for k, v in published.items() if k not in overrides}
    recipe = {**asdict(cfg_cls()), **published}  # the warm-up share is the published recipe's, epochs overridden or not
    out = dict(overrides)
    if "epochs" not in out and raw.epochs:
        out["epochs"] = raw.epochs
    if "warmup_epochs" not in out and out.get("epochs", recipe["epochs"]) != recipe["epochs"]:
        share = recipe["warmup_epochs"] / max(1, recipe["epochs"])
        out["warmup_epochs"] = int(round(share * out["epochs"]))
    if "batch_size" not in out and raw.batch_size:
        out["batch_size"] = raw.batch_size
    return {**task_keys, **out}


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
    device: torch.device  # this process's device (under torchrun: its local GPU)
    precision_reason: str = ""


def prepare_run(cfg: RunConfig, raw: Data, say: Callable[[str], None] | None = None) -> Prepared:
    """Validate and build everything for ``cfg`` (raises UserError before any work is stored); ``say`` is told of
    long preparations (``--precision auto``'s timing)."""
    cls = METHODS.get(cfg.method)
    cfg = replace(cfg, model=tracks.resolve_model(raw.track, cfg.model, cfg.method, cls.supports))
    kind = tracks.family(cfg.model).kind_of_name(cfg.model)  # known from the name: the backbone's own recipe
    method = cls(build_method_config(cls.Config, resolve_overrides(cfg.overrides, cls.Config, raw, kind), cfg.method))
    if method.cfg.randaugment and raw.track != "vl":
        raise UserError("randaugment is the official ViLT / METER recipes' augmentation of VL data; vision runs train "
                        "without augmentation (the VTAB-1k protocol): drop --set randaugment=true")
    if cfg.protocol != DEFAULT_PROTOCOL and raw.track != "vision":
        raise UserError(f"--protocol {cfg.protocol} is an image-classification loader's preprocessing; VL models take "
                        "their own (ViLT's, METER's, CLIP's): drop --protocol")
    built = build_seeded(method, cfg, raw.num_classes)
    cfg = replace(cfg, frozen_backbone_mode=frozen_mode(cfg.frozen_backbone_mode, built))
    device = distributed.session().place(resolve_device(cfg.device))
    choice = choose_precision(replace(cfg, model=built.weights_info["model"]), method, built, device, raw, say)
    cfg = replace(cfg, dataset=raw.name, model=built.weights_info["model"], precision=choice.precision)
    facts = {"data": raw.fingerprint(), "weights": built.weights_info["weights_source"],
             "weights_sha256": built.weights_info["weights_sha256"]}
    ident = identity(cfg, method.cfg, facts)
    return Prepared(cfg, method, built, ident, config_hash(ident), device, choice.reason)


def frozen_mode(asked: str, built: Built) -> str:
    """``--frozen-backbone-mode`` resolved for this model: ``auto`` = its backbone family's policy
    (``BackboneFamily.frozen_mode``: eval on vision backbones, train on VL backbones)."""
    return built.family.frozen_mode if asked == "auto" else asked


def choose_precision(cfg: RunConfig, method: Method, built: Built, device: torch.device, raw: Data | None = None,
                     say: Callable[[str], None] | None = None) -> numerics.PrecisionChoice:
    """``--precision`` resolved for this run: ``auto`` times what the run will do in fp32 and in bf16 on this device
    (``probe_timing``), once per machine (``numerics.cached_timing``); under torchrun rank 0 times it and every
    process takes its choice. ``say`` is told when the timing will take long."""
    dist = distributed.session()
    if cfg.precision != "auto":
        return numerics.resolve_precision(cfg.precision, device)
    batch = max(1, method.cfg.batch_size // dist.world)  # what one process steps on

    def measure() -> tuple[float, float, str]:
        example = probe_inputs(raw, built, batch, cfg.protocol)
        share = eval_share(raw, method.cfg, cfg.trainval)
        key = (f"{numerics.machine_key(device)}|{cfg.model}|{method.name}|{tensor_shapes(example)}|"
               f"{cfg.frozen_backbone_mode}|trainable {sum(p.numel() for p in built.model.parameters() if p.requires_grad)}"
               + (f"|eval share {share:.2f}" if share else ""))
        folder = diskcache.cache_dir()
        return numerics.cached_timing(folder and folder / "precision.json", key,
                                      lambda: probe_timing(built, method, example, device, cfg.frozen_backbone_mode,
                                                           share, say))

    choice = numerics.resolve_precision("auto", device, measure) if dist.is_main else None
    return dist.agree(choice)


EVAL_SHARE_MIN = 0.05  # evaluation costing less than this share of training is not timed (our choice)


def probe_timing(built: Built, method: Method, example: Any, device: torch.device, frozen_mode: str, share: float,
                 say: Callable[[str], None] | None = None) -> tuple[float, float]:
    """Seconds per training sample-batch of the run in fp32 and bf16: a training step, each precision on its own copy
    of the model (it trains on as a run in that precision would), plus ``share`` evaluation forwards (what the run
    evaluates per sample it trains on: val each epoch, test once), timed by ``numerics.time_precisions``."""
    steps = {p: training_step(built.model, method.cfg, example, device, frozen_mode) for p in ("fp32", "bf16")}
    tell = (lambda s: say(f"  --precision auto: timing the training step in fp32 and bf16 (about {s:.0f} s, once per "
                          "machine; --precision fp32 or bf16 skips it)")) if say else None
    train = numerics.time_precisions(lambda p: steps[p](p), device, announce=tell)
    if share < EVAL_SHARE_MIN:
        return train
    evaluate = eval_step(built.model, example, device)
    ev = numerics.time_precisions(evaluate, device, announce=tell)
    return train[0] + share * ev[0], train[1] + share * ev[1]


def eval_step(model: torch.nn.Module, example: Any, device: torch.device) -> Callable[[str], None]:
    """``step(precision)``: one inference forward of a copy of ``model`` on ``example`` (what evaluation does)."""
    import copy

    from petlbench.engine.loop import to_device

    net, x = copy.deepcopy(model).to(device).eval(), to_device(example, device)

    def step(precision: str) -> None:
        with torch.no_grad(), numerics.autocast(device, precision):
            net(x)

    return step


def probe_inputs(raw: Data | None, built: Built, batch: int, protocol: str = DEFAULT_PROTOCOL) -> Any:
    """A batch of ``batch`` of the run's training inputs (``Data.limited``'s seeded draw), prepared as the run prepares
    them (real images and texts: a method's work can depend on them, e.g. an equilibrium solver's iterations), rows
    repeated when the split is smaller; the model's example input without data or when a sample cannot be read."""
    from petlbench.data.batching import batches
    from petlbench.data.protocols import with_protocol

    if raw is not None:
        data_cfg = with_protocol(built.family.data_config(built.model), protocol)
        try:  # selection=True: the probe never prepares the test split
            x, _ = next(iter(batches(raw.limited(batch).prepare(data_cfg, selection=True).train, batch)))
            return map_tensors(x, lambda t: t.repeat(-(-batch // t.shape[0]), *[1] * (t.ndim - 1))[:batch].contiguous())
        except (OSError, ValueError):  # an unreadable sample: the run itself fails on it and names it in its row
            pass
    return map_tensors(built.family.example(built.model), lambda t: t.expand(batch, *t.shape[1:]).contiguous())


def eval_share(raw: Data | None, mcfg: MethodConfig, trainval: bool) -> float:
    """Evaluated samples per trained sample in a run on ``raw``: val each epoch (unless it trains on it) and test
    once, over the samples trained on in all epochs."""
    if raw is None:
        return 0.0
    sizes = {s: raw.size(s) for s in raw.splits}
    trained = (sizes.get("train", 0) + (sizes.get("val", 0) if trainval else 0)) * mcfg.epochs
    evaluated = (0 if trainval else sizes.get("val", 0) * mcfg.epochs) + sizes.get("test", 0)
    return evaluated / trained if trained else 0.0


@functools.lru_cache(maxsize=16)
def backbone_gmacs(model_name: str | None, num_classes: int, size: tuple[int, ...],
                   img_size: int | None = None, modality: str = "both") -> float:
    """GMACs of the plain backbone at ``size`` (its family's ``count_size``), counted once per (model, classes,
    size) and cached."""
    base, _, fam = tracks.create_backbone(model_name, num_classes, pretrained=False, modality=modality,
                                          **({"img_size": img_size} if img_size else {}))
    return measure.gmacs(base, fam.example(base, size))


def inspect(method_name: str, model_name: str | None, num_classes: int = 1000, img_size: int | None = None,
            overrides: dict[str, Any] | None = None, text_len: int = 16) -> dict[str, Any]:
    """Build (random init, no data), apply, count params, finalize, count GMACs (a model with a frozen input
    encoder, e.g. a VL pair: on ``text_len`` text tokens, the encoder's share also apart)."""
    supports = METHODS.get(method_name).supports  # no model named: the vision default, or the VL default for a VL-only
    track = tracks.model_track(model_name) if model_name else min(tracks.method_tracks(supports), key="vision".__ne__)
    model_name = tracks.resolve_model(track, model_name, method_name, supports)
    method = make_method(method_name, overrides, tracks.family(model_name).kind_of_name(model_name))
    cfg = RunConfig(method=method_name, model=model_name, img_size=img_size, pretrained=False)
    built = build_seeded(method, cfg, num_classes)
    fam, counts = built.family, measure.param_counts(built.model, built.backbone_total)
    groups = measure.trainable_groups(built.model)
    data_cfg = fam.data_config(built.model)
    size = fam.count_size(built.model, data_cfg, text_len=text_len)
    model = method.finalize(built.model)
    g, g_base = measure.gmacs(model, fam.example(model, size)), backbone_gmacs(model_name, num_classes, size, img_size)
    info = {
        "method": method_name, "model": model_name, "num_classes": num_classes,
        "input_size": list(data_cfg.get("input_size", ())), **counts,
        "gmacs": g, "gmacs_backbone": g_base, "gmacs_extra": g - g_base,
        "gmacs_ratio": g / g_base if g_base else float("nan"),
        "method_config": {k: v for k, v in vars(method.cfg).items()}, "trainable_groups": groups,
    }
    info["gmacs_change_pct"] = 100 * (g / g_base - 1) if g_base else float("nan")
    encoder = fam.encoder_gmacs(model, data_cfg)
    if not math.isnan(encoder):  # the share past the frozen encoder, against the plain model's, same text length
        info.update(text_len=text_len, gmacs_vision=encoder, gmacs_text=g - encoder,
                    gmacs_text_backbone=g_base - encoder, **method.stats(model))
        info["gmacs_text_change_pct"] = 100 * (info["gmacs_text"] / info["gmacs_text_backbone"] - 1)
    official = fam.layout(model).official_input
    if official is not None and (size := official(model)) is not None:  # the kind's official sequence (claims)
        info.update(official_input=list(size), gmacs_extra_official=measure.gmacs(model, fam.example(model, size))
                    - backbone_gmacs(model_name, num_classes, size, img_size))
    twin = method.counterpart(model)
    if twin is not None:  # the conventional method this one makes cheaper: its additional GMACs against ours
        _versus(info, inspect(method_name, model_name, num_classes, img_size, {**(overrides or {}), **twin}, text_len))
        info["counterpart"] = twin
    from petlbench.results.published import relative_claims

    claims = relative_claims(method_name, info["method_config"], fam.kind(built.model))
    measured = lambda metric: info.get(f"{metric}_official", info.get(metric, float("nan")))  # noqa: E731
    info["published_claims"] = [{**c, "measured": measured(c["metric"])} for c in claims]
    return info


def _versus(info: dict[str, Any], other: dict[str, Any]) -> None:
    """The counterpart's additional GMACs beside ours, and ours against them (at the kind's official input too)."""
    for suffix in ("", "_official") if "official_input" in info else ("",):
        info[f"gmacs_extra_counterpart{suffix}"] = other[f"gmacs_extra{suffix}"]
        info[f"gmacs_extra_vs_counterpart_pct{suffix}"] = 100 * (info[f"gmacs_extra{suffix}"]
                                                                 / other[f"gmacs_extra{suffix}"] - 1)
