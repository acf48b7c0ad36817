"""Method registry: built-in modules under ``petlbench.methods`` plus entry-point plug-ins.

Built-in methods are discovered by module name (``methods/<name>.py``) and imported lazily,
on first use. Third-party packages register ``name = "module:Class"`` in the
``petlbench.methods`` entry-point group.
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points

from petlbench.errors import UserError, did_you_mean
from petlbench.methods.base import Method

_REGISTRY: dict[str, type[Method]] = {}
_NOT_METHODS = {"base"}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: ``@register`` on a ``Method`` subclass with a unique ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} has no name")
    other = _REGISTRY.get(cls.name)
    if other is not None and other is not cls and other.__qualname__ != cls.__qualname__:
        raise ValueError(f"method name {cls.name!r} registered twice ({other.__qualname__}, {cls.__qualname__})")
    _REGISTRY[cls.name] = cls
    return cls


def _builtin_modules() -> list[str]:
    import petlbench.methods as pkg

    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_") and m.name not in _NOT_METHODS)


def _load_all() -> None:
    for mod in _builtin_modules():
        importlib.import_module(f"petlbench.methods.{mod}")
    for ep in entry_points(group="petlbench.methods"):
        if ep.name not in _REGISTRY:
            register(ep.load())


def available() -> dict[str, type[Method]]:
    """All registered methods, by name, sorted."""
    _load_all()
    return dict(sorted(_REGISTRY.items()))


def get(name: str) -> type[Method]:
    """The method class called ``name``; a ``UserError`` with a suggestion when unknown."""
    if name not in _REGISTRY:
        if name in _builtin_modules():
            importlib.import_module(f"petlbench.methods.{name}")
        if name not in _REGISTRY:
            _load_all()
    if name not in _REGISTRY:
        raise UserError(
            f"unknown method '{name}'{did_you_mean(name, _REGISTRY)}; run 'petlbench list methods' to see them"
        )
    return _REGISTRY[name]
