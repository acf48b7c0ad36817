"""Method configs: declared constraints, one validation path, typed ``--set key=value`` parsing, hashing.

A method config is a dataclass whose fields carry their type and constraints in ``Annotated`` metadata::

    rank: Annotated[int, Range(ge=1)] = 8          # r; source of the default
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.0
    targets: Literal["qkv", "q,v"] = "qkv"

``build_method_config`` is the one path every value takes — ``--set`` strings (parsed by type first),
flags (``--lr``), suite TOML values and the Python API — so all are checked the same way, strictly
(``rank = 4.0`` is not an integer, a bool is not a number, a float must be finite) and with the same
one-line error. A subclass that re-declares a field (e.g. ``lr: float = 0.05``) keeps the constraints
declared on its base. Cross-field rules stay in the config's ``__post_init__`` (raising ``ValueError``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any

from petlbench.errors import UserError, did_you_mean


@dataclass(frozen=True)
class Range:
    """Numeric bounds of a field (any subset of ge / gt / le / lt)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def problem(self, v: float) -> str | None:
        """What is wrong with ``v`` ('must be >= 1'), or None. Written so that NaN fails every bound."""
        checks = {"ge": lambda b: v >= b, "gt": lambda b: v > b, "le": lambda b: v <= b, "lt": lambda b: v < b}
        for bound, ok in checks.items():
            b = getattr(self, bound)
            if b is not None and not ok(b):
                return f"must be {self.describe()}"
        return None

    def describe(self) -> str:
        parts = [f"{op} {getattr(self, k):g}" for k, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
                 if getattr(self, k) is not None]
        return " and ".join(parts)


@dataclass(frozen=True)
class Flag:
    """A recipe key that also has its own ``petlbench run`` flag (``--lr``), with this help text."""

    help: str


def field_types(cfg_cls: type) -> dict[str, Any]:
    """Field name -> type (``Annotated`` stripped)."""
    hints = typing.get_type_hints(cfg_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cfg_cls)}


def field_meta(cfg_cls: type, name: str) -> list[Any]:
    """The ``Annotated`` metadata of field ``name`` over the class hierarchy (most derived first), so a
    subclass that re-declares a field with a new default keeps the base's constraints."""
    out: list[Any] = []
    for klass in cfg_cls.__mro__:
        if name in getattr(klass, "__annotations__", {}):
            hint = typing.get_type_hints(klass, include_extras=True).get(name)
            if typing.get_origin(hint) is Annotated:
                out += list(hint.__metadata__)
    return out


def ranges(cfg_cls: type, name: str) -> list[Range]:
    return [m for m in field_meta(cfg_cls, name) if isinstance(m, Range)]


# ---------------------------------------------------------------- strict typing of values


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    if origin in (tuple, list):
        return "a list of " + _type_name((typing.get_args(tp) or (str,))[0]).removeprefix("a ").removeprefix("an ")
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def check_type(value: Any, tp: Any) -> tuple[bool, Any]:
    """(ok, value converted) for a value that already has a Python type (TOML, flags, the API)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return True, None
        for arg in args:
            if arg is not type(None):
                ok, v = check_type(value, arg)
                if ok:
                    return True, v
        return False, value
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args), value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False, value
        inner = args[0] if args and args[0] is not Ellipsis else str
        items = [check_type(v, inner) for v in value]
        if not all(ok for ok, _ in items):
            return False, value
        conv = [v for _, v in items]
        return True, tuple(conv) if origin is tuple else conv
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return ok, float(value) if ok else value
    if tp is str:
        return isinstance(value, str), value
    return True, value


def _coerce(raw: str, tp: Any, key: str) -> Any:
    """A ``--set`` string -> a value of type ``tp`` (range checks come later, in ``build_method_config``)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if raw.lower() in ("none", "null") and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is not type(None):
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
        vals = [_coerce(s.strip(), inner, key) for s in raw.split(",") if s.strip()]
        return tuple(vals) if origin is tuple else vals
    if tp is bool:
        low = raw.lower()
        if low in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return low in ("1", "true", "yes", "on")
        raise UserError(f"bad value '{raw}' for '{key}': expected true or false")
    for kind, word in ((int, "an integer"), (float, "a number")):
        if tp is kind:
            try:
                return kind(raw)
            except ValueError:
                raise UserError(f"bad value '{raw}' for '{key}': expected {word}") from None
    if tp is str:
        return raw
    raise UserError(f"key '{key}' of type {tp} cannot be set from the command line")


def parse_sets(pairs: list[str], cfg_cls: type, method: str, kind: str = "method") -> dict[str, Any]:
    """``["rank=8", "deep=true"]`` -> typed dict for ``cfg_cls`` (the config of ``kind`` ``method``); UserError on
    unknown keys/bad values."""
    types_ = field_types(cfg_cls)
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"--set expects key=value, got '{pair}' (e.g. --set lr=0.01)")
        key, raw = (s.strip() for s in pair.split("=", 1))
        _check_key(key, types_, method, kind)
        out[key] = _coerce(raw, types_[key], key)
    return out


def _check_key(key: str, types_: dict[str, Any], method: str, kind: str = "method") -> None:
    if key not in types_:
        raise UserError(f"{kind} '{method}' has no config key '{key}'{did_you_mean(key, types_)}; "
                        f"its keys: {', '.join(types_)}")


def build_method_config(cfg_cls: type, overrides: dict[str, Any], method: str = "", kind: str = "method") -> Any:
    """The one validation path: known keys, strict types, declared ranges, then cross-field rules (``kind``: what
    the config configures, for the messages: a method, a pretraining recipe)."""
    method = method or cfg_cls.__name__
    types_, defaults = field_types(cfg_cls), cfg_cls.__dataclass_fields__
    values = {}
    for key, value in overrides.items():
        _check_key(key, types_, method, kind)
        default = defaults[key].default
        hint = f"; the {kind}'s default is --set {key}={_show(default)}"
        ok, value = check_type(value, types_[key])
        if not ok:
            raise UserError(f"invalid value for '{key}' of {kind} '{method}': expected {_type_name(types_[key])}, "
                            f"got {value!r}{hint}")
        for r in ranges(cfg_cls, key) if isinstance(value, (int, float)) and not isinstance(value, bool) else []:
            if r.problem(value):
                raise UserError(f"invalid {kind} config: {key} {r.problem(value)}, got {value}{hint}")
        values[key] = value
    try:
        return cfg_cls(**values)
    except (ValueError, TypeError) as e:
        raise UserError(f"invalid {kind} config: {e}") from None


def _show(v: Any) -> str:
    return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v).lower() if isinstance(v, bool) else str(v)


def identity_config(cfg: Any) -> dict[str, Any]:
    """The method config as hashed into a run's identity: neutral-valued late additions left out."""
    return {k: v for k, v in to_dict(cfg).items() if not (k in cfg.NEUTRAL and v == cfg.NEUTRAL[k])}


def to_dict(cfg: Any) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def stable_hash(obj: Any, n: int = 16) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:n]
