"""A small generic name -> object registry with did-you-mean errors and entry-point plugins."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Generic, TypeVar

from mribench.errors import MribenchError

T = TypeVar("T")


def suggest(name: str, choices: list[str]) -> str:
    """Return a ' (did you mean ...?)' hint for ``name`` among ``choices``, or ''."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry(Generic[T]):
    """Named objects of one kind, optionally extended by an entry-point group.

    Args:
        kind: human name of what is registered ("task", "model", "metric"), used in errors.
        error: the error class raised for unknown names.
        entry_point_group: importlib entry-point group scanned lazily for plugins.
    """

    def __init__(
        self, kind: str, error: type[MribenchError] = MribenchError, entry_point_group: str | None = None
    ) -> None:
        self.kind = kind
        self.error = error
        self.entry_point_group = entry_point_group
        self._items: dict[str, T] = {}
        self._plugins_loaded = entry_point_group is None

    def register(self, name: str, obj: T, *, overwrite: bool = False) -> T:
        """Register ``obj`` under ``name`` and return it."""
        if name in self._items and not overwrite:
            raise self.error(f"expected a new {self.kind} name, got {name!r} which is already registered")
        self._items[name] = obj
        return obj

    def decorator(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`register`."""

        def wrap(obj: T) -> T:
            return self.register(name, obj)

        return wrap

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        assert self.entry_point_group is not None
        for ep in metadata.entry_points(group=self.entry_point_group):
            if ep.name not in self._items:
                self._items[ep.name] = ep  # type: ignore[assignment]  # resolved lazily in get()

    def get(self, name: str) -> T:
        """Return the object registered as ``name``; unknown names raise with a suggestion."""
        self._load_plugins()
        if name not in self._items:
            known = ", ".join(sorted(self._items)) or "none"
            raise self.error(
                f"expected a known {self.kind} name, got {name!r}{suggest(name, list(self._items))} (known: {known})"
            )
        obj = self._items[name]
        if isinstance(obj, metadata.EntryPoint):
            obj = obj.load()
            self._items[name] = obj
        return obj

    def names(self) -> list[str]:
        """Sorted registered names (plugins included)."""
        self._load_plugins()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
