"""Lazy public names for a package (PEP 562): import a submodule only when a name is used.

Keeps ``import robustify`` and ``import perturbations.realism`` light: pandas, the fitter
or the engine load on first use of a name that needs them, never at import.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Mapping, Sequence

__all__ = ["lazy_exports"]


def lazy_exports(package: str, homes: Mapping[str, str], public: Sequence[str]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: each name of ``homes`` is loaded from its
    submodule (relative to the package) on first use and then kept in the package.

    >>> getattr_, dir_ = lazy_exports("perturbations", {"perturb": "engine"}, ["perturb"])
    >>> getattr_("perturb").__name__
    'perturb'
    """

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{home}", package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(public))

    return __getattr__, __dir__
