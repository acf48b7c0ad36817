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
    weights: str | None = None  # local safetensors / state-dict file
    pretrained: bool = True  # False = random init (no hub, no file)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = False  # bf16 autocast
    limit: int | None = None  # cap images per split (quick runs / CI)
    frozen_backbone_mode: str = "eval"  # eval | train: dropout/drop-path of frozen backbone modules
    num_workers: int = 0
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


def build_method_config(cfg_cls: type, overrides: dict[str, Any]) -> Any:
    """Instantiate a method config; ``__post_init__`` validation errors become UserErrors."""
    try:
        return cfg_cls(**overrides)
    except (ValueError, TypeError) as e:
        raise UserError(f"invalid method config: {e}") from None


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
