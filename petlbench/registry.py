"""One generic registry (methods, datasets, models): registration, lazy discovery, entry points, listing
and "did you mean" errors.

- ``METHODS``: built-in modules under ``petlbench.methods`` (discovered by module name, imported on first
  use) plus third-party classes registered as ``name = "module:Class"`` in the ``petlbench.methods``
  entry-point group. A method registers itself with ``@register``.
- ``DATASETS`` (``petlbench.sources``) and ``MODELS`` (``petlbench.backbones``) are instances of the same
  class, filled by their modules.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from petlbench.errors import UserError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind. ``discover`` fills the registry lazily (all of it); ``load_one(name)``
    may load a single entry cheaply before falling back to full discovery."""

    def __init__(self, kind: str, hint: str, discover: Callable[[], None] | None = None,
                 load_one: Callable[[str], None] | None = None, entry_point_group: str | None = None) -> None:
        self.kind, self.hint = kind, hint
        self._entries: dict[str, T] = {}
        self._discover, self._load_one, self._group = discover, load_one, entry_point_group
        self._discovered = False

    def add(self, name: str, entry: T) -> T:
        other = self._entries.get(name)
        same = other is entry or getattr(other, "__qualname__", None) == getattr(entry, "__qualname__", 0)
        if other is not None and not same:
            raise ValueError(f"{self.kind} name {name!r} registered twice")
        self._entries[name] = entry
        return entry

    def _discover_all(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        if self._discover:
            self._discover()
        for ep in entry_points(group=self._group) if self._group else []:
            if ep.name not in self._entries:
                self.add(ep.name, ep.load())

    def all(self) -> dict[str, T]:
        """Every entry, by name, sorted."""
        self._discover_all()
        return dict(sorted(self._entries.items()))

    def registered(self) -> dict[str, T]:
        """Every entry, by name, in the order of registration (``all`` sorts by name)."""
        self._discover_all()
        return dict(self._entries)

    def names(self) -> list[str]:
        return list(self.all())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.find(name) is not None

    def find(self, name: str) -> T | None:
        """The entry called ``name``, or None."""
        if name not in self._entries and self._load_one:
            self._load_one(name)
        if name not in self._entries:
            self._discover_all()
        return self._entries.get(name)

    def get(self, name: str, also: Iterable[str] = ()) -> T:
        """The entry called ``name``; a one-line UserError with a suggestion (among the entries and
        ``also``) when unknown."""
        entry = self.find(name)
        if entry is None:
            raise UserError(f"unknown {self.kind} '{name}'{did_you_mean(name, [*self.names(), *also])}; {self.hint}")
        return entry


# ----------------------------------------------------------------------------- methods

def plugin_modules(pkg: Any, skip: Iterable[str] = ()) -> list[str]:
    """The modules of package ``pkg`` that may register entries: all but private (``_x``) and ``skip`` ones."""
    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_") and m.name not in skip)


def discover_modules(pkg: Any, skip: Iterable[str] = ()) -> None:
    """Import every ``plugin_modules`` module of ``pkg`` (each registers itself on import)."""
    for mod in plugin_modules(pkg, skip):
        importlib.import_module(f"{pkg.__name__}.{mod}")


def _methods_package() -> Any:
    import petlbench.methods as pkg

    return pkg


def _import_method(name: str) -> None:
    if name in plugin_modules(_methods_package(), {"base"}):
        importlib.import_module(f"petlbench.methods.{name}")


def _import_all_methods() -> None:
    discover_modules(_methods_package(), {"base"})


METHODS: Registry = Registry("method", "run 'petlbench list methods' to see them", discover=_import_all_methods,
                             load_one=_import_method, entry_point_group="petlbench.methods")


def register(cls: type) -> type:
    """Class decorator: ``@register`` on a ``Method`` subclass with a unique ``name``."""
    if not getattr(cls, "name", ""):
        raise ValueError(f"{cls.__qualname__} has no name")
    return METHODS.add(cls.name, cls)
