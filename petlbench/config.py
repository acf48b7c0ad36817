"""Run configuration, typed ``--set key=value`` overrides and config hashing."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from petlbench.errors import UserError, did_you_mean


@dataclass
class RunConfig:
    """Everything that identifies one run (together with the method config)."""

    method: str
    dataset: str | None = None  # None = the embedded offline default task
    model: str | None = None  # None = the bundled pretrained backbone
    img_size: int | None = None  # input resolution for ViTs (None = the model's own)
    weights: str | None = None  # local safetensors / state-dict file
    pretrained: bool = True  # False = random init (no hub, no file)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = False  # bf16 autocast
    deterministic: bool = False  # torch.use_deterministic_algorithms + cuBLAS workspace (GPU reproducibility)
    limit: int | None = None  # cap images per split (quick runs / CI)
    frozen_backbone_mode: str = "eval"  # eval | train: dropout/drop-path of frozen backbone modules
    num_workers: int = 0
    trainval: bool = False  # train on train+val (final VTAB-1k protocol run), then test once
    label: str = ""  # free-form tag (suite group), part of the identity
    suite: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)  # method-config keys set by the user


# ---------------------------------------------------------------- typed overrides


def _coerce(raw: str, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if raw.lower() in ("none", "null") and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(raw, arg, key)
            except UserError as e:
                errors.append(str(e))
        raise UserError(errors[0] if errors else f"bad value for '{key}'")
    if origin is typing.Literal:
        for a in args:
            if str(a) == raw:
                return a
        raise UserError(f"bad value '{raw}' for '{key}': choose one of {', '.join(map(str, args))}")
    if origin in (tuple, list):
        inner = args[0] if args else str
        items = [s.strip() for s in raw.split(",") if s.strip()]
        vals = [_coerce(s, inner, key) for s in items]
        return tuple(vals) if origin is tuple else vals
    if tp is bool:
        low = raw.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise UserError(f"bad value '{raw}' for '{key}': expected true or false")
    if tp is int:
        try:
            return int(raw)
        except ValueError:
            raise UserError(f"bad value '{raw}' for '{key}': expected an integer") from None
    if tp is float:
        try:
            return float(raw)
        except ValueError:
            raise UserError(f"bad value '{raw}' for '{key}': expected a number") from None
    if tp is str:
        return raw
    raise UserError(f"key '{key}' of type {tp} cannot be set from the command line")


def field_types(cfg_cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cfg_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cfg_cls)}


def parse_sets(pairs: list[str], cfg_cls: type, method: str) -> dict[str, Any]:
    """``["rank=8", "deep=true"]`` -> typed dict for ``cfg_cls``; UserError on unknown keys/bad values."""
    types_ = field_types(cfg_cls)
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"--set expects key=value, got '{pair}' (e.g. --set lr=0.01)")
        key, raw = (s.strip() for s in pair.split("=", 1))
        if key not in types_:
            raise UserError(
                f"method '{method}' has no config key '{key}'{did_you_mean(key, types_)}; "
                f"its keys: {', '.join(types_)}"
            )
        out[key] = _coerce(raw, types_[key], key)
    return out


RECIPE_MINIMUMS = {"lr": 0, "weight_decay": 0, "epochs": 1, "warmup_epochs": 0, "batch_size": 1, "grad_clip": 0}


def build_method_config(cfg_cls: type, overrides: dict[str, Any]) -> Any:
    """Instantiate a method config; ``__post_init__`` validation errors become UserErrors."""
    try:
        cfg = cfg_cls(**overrides)
    except (ValueError, TypeError) as e:
        raise UserError(f"invalid method config: {e}") from None
    for key, least in RECIPE_MINIMUMS.items():  # the shared recipe, however it was given (flag, --set, suite)
        val = getattr(cfg, key)
        if val < least or (key == "lr" and val == 0):
            raise UserError(f"invalid method config: {key} must be {'> 0' if key == 'lr' else f'>= {least}'}, "
                            f"got {val}; the method's default is --set {key}={getattr(cfg_cls(), key)}")
    return cfg


def identity_config(cfg: Any) -> dict[str, Any]:
    """The method config as hashed into a run's identity: neutral-valued late additions left out."""
    return {k: v for k, v in to_dict(cfg).items() if not (k in cfg.NEUTRAL and v == cfg.NEUTRAL[k])}


def to_dict(cfg: Any) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def from_dict(cfg_cls: type, data: dict[str, Any]) -> Any:
    types_ = field_types(cfg_cls)
    kwargs = {}
    for k, v in data.items():
        origin = typing.get_origin(types_[k])
        if origin is tuple or (origin in (typing.Union, types.UnionType) and isinstance(v, list)):
            v = tuple(v)
        kwargs[k] = v
    return cfg_cls(**kwargs)


def stable_hash(obj: Any, n: int = 16) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:n]


# ---------------------------------------------------------------- suites (benchmarks/*.toml)

# keys a suite (top level or a [[group]]) may set, besides methods/datasets/seeds/set/label
RUN_KEYS = {"model", "img_size", "weights", "pretrained", "device", "amp", "deterministic", "limit", "trainval",
            "frozen_backbone_mode"}
RECIPE_KEYS = {"epochs", "lr", "batch_size", "weight_decay", "optimizer", "warmup_epochs"}
SUITE_KEYS = RUN_KEYS | RECIPE_KEYS | {"methods", "datasets", "seeds", "set", "label", "name", "description", "group"}


@dataclass
class SuiteRun:
    """One (method, dataset, seeds) entry of a suite, with its run options and method overrides."""

    method: str
    dataset: str | None
    seeds: list[int]
    run: dict[str, Any]
    overrides: dict[str, Any]
    label: str = ""


def find_suite(name_or_path: str):
    """A suite TOML: a path, or a name shipped in petlbench.benchmarks (``mini-vtab``, ``smoke``)."""
    from importlib import resources
    from pathlib import Path

    p = Path(name_or_path)
    if p.is_file():
        return p
    shipped = resources.files("petlbench.benchmarks")
    names = sorted(f.name[:-5] for f in shipped.iterdir() if f.name.endswith(".toml"))
    if name_or_path in names:
        return Path(str(shipped.joinpath(f"{name_or_path}.toml")))
    raise UserError(f"unknown suite '{name_or_path}'{did_you_mean(name_or_path, names)}; shipped suites: "
                    f"{', '.join(names)} (or pass a .toml path)")


def load_suite(name_or_path: str) -> tuple[str, str, list[SuiteRun]]:
    """Parse a suite TOML into (name, description, runs). Unknown keys are errors."""
    import tomllib

    path = find_suite(name_or_path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"suite '{path}' is not valid TOML ({e}); fix the file") from None
    groups = [{}] + list(data.get("group", []))
    runs: list[SuiteRun] = []
    for g in groups:
        merged = {k: v for k, v in data.items() if k != "group"}
        for k, v in g.items():
            if k == "set":
                merged["set"] = {**merged.get("set", {}), **v}
            else:
                merged[k] = v
        unknown = set(merged) - SUITE_KEYS
        if unknown:
            k = sorted(unknown)[0]
            raise UserError(f"suite '{path.name}' has unknown key '{k}'{did_you_mean(k, SUITE_KEYS)}")
        if not merged.get("methods"):
            raise UserError(f"suite '{path.name}' lists no methods; add methods = [\"linear\", ...]")
        for method in merged["methods"]:
            for dataset in merged.get("datasets") or [None]:
                overrides = {k: merged[k] for k in RECIPE_KEYS if k in merged}
                overrides.update(merged.get("set", {}).get(method, {}))
                runs.append(SuiteRun(
                    method=method, dataset=dataset, seeds=[int(s) for s in merged.get("seeds", [0])],
                    run={k: merged[k] for k in RUN_KEYS if k in merged}, overrides=overrides,
                    label=merged.get("label", ""),
                ))
    return data.get("name", path.stem), data.get("description", ""), runs


def validate_overrides(cfg_cls: type, overrides: dict[str, Any], method: str) -> None:
    """Check suite-provided overrides (already typed by TOML) name real config keys."""
    types_ = field_types(cfg_cls)
    for key in overrides:
        if key not in types_:
            raise UserError(f"method '{method}' has no config key '{key}'{did_you_mean(key, types_)}; "
                            f"its keys: {', '.join(types_)}")
