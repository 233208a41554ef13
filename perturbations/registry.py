"""The transform registry: ``@register``, lookup with suggestions, listing, plugins.

Built-in transforms live one family per module under :mod:`perturbations.transforms`
and are found by walking that package on first lookup. Other packages add transforms
through the entry-point group ``robustify.transforms``: each entry point names a module
(or a class) whose import runs ``@register``. A plugin that fails to import is logged
and skipped; it never breaks the built-in transforms.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import pkgutil
import re
from importlib import metadata
from typing import Callable, TypeVar

from .base import Transform
from .errors import ConfigError, UnknownNameError
from .records import LABEL_POLICIES

__all__ = ["register", "get_transform", "transform_names", "all_transforms",
           "ENTRY_POINT_GROUP"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "robustify.transforms"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_REGISTRY: dict[str, type[Transform]] = {}
_loaded = False

T = TypeVar("T", bound=type[Transform])


def register(name: str, *, family: str, label_policy: str = "preserves") -> Callable[[T], T]:
    """Class decorator that registers a transform under ``name``.

    Args:
        name: Lower-case identifier used in spec strings (``typos``).
        family: Group shown in the catalogue (``typos``, ``slang``, ``profile`` ...).
        label_policy: ``preserves``, ``remaps`` or ``may_break``.

    Raises:
        ConfigError: the name is malformed or taken, or the policy is unknown.
        TypeError: the class does not derive from :class:`Transform`.
    """
    if not _NAME.match(name):
        raise ConfigError(f"transform name {name!r} must be lower_snake_case")
    if label_policy not in LABEL_POLICIES:
        raise ConfigError(f"transform {name!r}: unknown label policy {label_policy!r} "
                          f"(expected one of {', '.join(LABEL_POLICIES)})")

    def decorate(cls: T) -> T:
        if not (isinstance(cls, type) and issubclass(cls, Transform)):
            raise TypeError(f"@register({name!r}) needs a Transform subclass, got {cls!r}")
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not cls:
            raise ConfigError(f"transform {name!r} is already registered by "
                              f"{existing.__module__}.{existing.__qualname__}")
        cls.name = name
        cls.family = family
        cls.label_policy = label_policy
        _REGISTRY[name] = cls
        return cls

    return decorate


def _load_builtins_and_plugins() -> None:
    global _loaded
    if _loaded:
        return
    from . import transforms

    for info in pkgutil.iter_modules(transforms.__path__, transforms.__name__ + "."):
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            raise ImportError(f"built-in transform module {info.name} failed to import: "
                              f"{exc}") from exc
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:  # a broken plugin must not break the built-ins
            log.warning("skipping transform plugin %s (%s): %s", ep.name, ep.value, exc)
    # set last: a failed import above must be retried (and reported) on the next lookup
    _loaded = True


def get_transform(name: str) -> type[Transform]:
    """Return the transform class registered as ``name``.

    Raises:
        UnknownNameError: with close matches and the full list of names.
    """
    _load_builtins_and_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        pass
    close = difflib.get_close_matches(name, _REGISTRY, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownNameError(f"unknown transform {name!r}{hint} "
                           f"(run 'python -m robustify transforms' to list all)")


def transform_names() -> list[str]:
    """All registered names, sorted by family then name."""
    _load_builtins_and_plugins()
    return sorted(_REGISTRY, key=lambda n: (_REGISTRY[n].family == "profile",
                                            _REGISTRY[n].family, n))


def all_transforms() -> dict[str, type[Transform]]:
    """Name -> class for every registered transform, in :func:`transform_names` order."""
    return {n: _REGISTRY[n] for n in transform_names()}
