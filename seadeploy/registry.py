"""One small registry class for models, attention blocks, backends and profilers (after fvcore)."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from seadeploy.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; duplicates raise, unknown names raise with the valid choices.

    Example:
        >>> ATTN = Registry("attention")
        >>> @ATTN.register("se")
        ... class SqueezeExcite: ...
        >>> ATTN.get("se").__name__
        'SqueezeExcite'
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` (default: ``obj.__name__``)."""

        def deco(obj: T) -> T:
            key = name or obj.__name__
            if key in self._items:
                raise ValueError(f"{self.kind} '{key}' is already registered")
            self._items[key] = obj
            return obj

        return deco

    def unregister(self, name: str) -> T:
        """Remove and return ``name`` (for plug-ins and tests that register temporarily)."""
        if name not in self._items:
            raise KeyError(f"{self.kind} '{name}' is not registered")
        return self._items.pop(name)

    def get(self, name: str) -> T:
        """Return the object registered as ``name`` or raise ``ConfigError`` naming the valid ones."""
        if name in self._items:
            return self._items[name]
        close = difflib.get_close_matches(str(name), list(self._items), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown {self.kind} '{name}'.{hint} Valid choices: {', '.join(self.names())}")

    def names(self, pattern: str | None = None) -> list[str]:
        """Sorted registered names, optionally filtered by a shell-style ``pattern``."""
        names = sorted(self._items)
        return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        rows = "\n".join(f"  {n}: {getattr(o, '__qualname__', repr(o))}" for n, o in sorted(self._items.items()))
        return f"Registry({self.kind!r}, {len(self)} items)\n{rows}"
