"""One registry pattern for every extension point: transforms, backends, scorers, presets, charts.

A :class:`Registry` maps lower_snake_case names to objects of one kind. It refuses a
malformed or taken name and an object of the wrong kind, answers an unknown name with
close matches, and loads, on first lookup, the built-in modules it is told about and the
modules named by an entry-point group, so other packages extend robustify by installing
themselves. A plugin that fails to import is logged and skipped; it never breaks the
built-ins.

>>> colours = Registry("colour", entry_point_group=None)
>>> @colours.register("sky_blue")
... class SkyBlue:
...     pass
>>> colours.get("sky_blue") is SkyBlue
True
>>> colours.get("sky_bleu")
Traceback (most recent call last):
...
perturbations.errors.UnknownNameError: unknown colour 'sky_bleu'; did you mean 'sky_blue'?
"""

from __future__ import annotations

import difflib
import importlib
import logging
import re
from importlib import metadata
from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar

from .errors import ConfigError, UnknownNameError

__all__ = ["Registry", "NAME_PATTERN"]

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
"""What a registered name looks like: lower_snake_case."""

T = TypeVar("T")


class Registry(Generic[T]):
    """Named objects of one kind, with built-ins and entry-point plugins loaded lazily.

    Args:
        kind: What is registered, for messages (``backend``, ``scorer`` ...).
        entry_point_group: Entry-point group whose modules are imported on first lookup
            (``robustify.backends``); ``None`` for no plugins.
        builtins: Modules imported on first lookup; their import runs ``register``.
        check: Called with each registered object; raises ``TypeError`` for the wrong kind.
        hint: Appended to the unknown-name error (where to list the names).
        sort: List names sorted (default) or in registration order (built-ins first, in
            the order their module registers them).
    """

    def __init__(self, kind: str, *, entry_point_group: str | None,
                 builtins: Iterable[str] = (), check: Callable[[Any], None] | None = None,
                 hint: str = "", sort: bool = True) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._builtins = tuple(builtins)
        self._check = check
        self._hint = hint
        self._sort = sort
        self._items: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering its target under ``name``.

        Raises:
            ConfigError: the name is malformed or already taken by another object.
            TypeError: the object is not of this registry's kind.
        """
        if not NAME_PATTERN.match(name):
            raise ConfigError(f"{self.kind} name {name!r} must be lower_snake_case")

        def decorate(obj: T) -> T:
            if self._check is not None:
                self._check(obj)
            existing = self._items.get(name)
            if existing is not None and existing is not obj:
                raise ConfigError(f"{self.kind} {name!r} is already registered by "
                                  f"{_where(existing)}")
            self._items[name] = obj
            return obj

        return decorate

    def load(self) -> None:
        """Import the built-in modules and the entry-point plugins (once)."""
        if self._loaded:
            return
        for module in self._builtins:
            importlib.import_module(module)
        if self.entry_point_group:
            for ep in metadata.entry_points(group=self.entry_point_group):
                try:
                    ep.load()
                except Exception as exc:  # a broken plugin must not break the built-ins
                    log.warning("skipping %s plugin %s (%s): %s", self.kind, ep.name,
                                ep.value, exc)
        # set last: a failed built-in import is retried (and reported) on the next lookup
        self._loaded = True

    def get(self, name: str) -> T:
        """The object registered as ``name``.

        Raises:
            UnknownNameError: with close matches.
        """
        self.load()
        try:
            return self._items[name]
        except KeyError:
            pass
        close = difflib.get_close_matches(name, self._items, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownNameError(f"unknown {self.kind} {name!r}{hint}{self._hint}")

    def names(self) -> list[str]:
        """Every registered name (sorted, or in registration order)."""
        self.load()
        return sorted(self._items) if self._sort else list(self._items)

    def items(self) -> list[tuple[str, T]]:
        """``(name, object)`` pairs, in :meth:`names` order (as ``dict.items()``)."""
        return [(name, self._items[name]) for name in self.names()]

    def values(self) -> list[T]:
        """The registered objects, in :meth:`names` order."""
        return [self._items[name] for name in self.names()]

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._items

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())


def _where(obj: Any) -> str:
    module = getattr(obj, "__module__", "?")
    return f"{module}.{getattr(obj, '__qualname__', repr(obj))}"
