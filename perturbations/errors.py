"""The error hierarchy shared by both packages.

Every error the toolkit raises on purpose derives from :class:`RobustifyError`, so
callers (and the CLI, which turns them into one line and exit code 2) can catch them
all at once. The lower package owns the hierarchy because it must not import the
upper one; ``robustify`` re-exports these names.
"""

from __future__ import annotations

__all__ = [
    "RobustifyError",
    "ConfigError",
    "DataError",
    "UnknownNameError",
    "MissingDependencyError",
]


class RobustifyError(Exception):
    """Base class of every deliberate robustify error."""


class ConfigError(RobustifyError, ValueError):
    """A spec, flag, option or job-file key is invalid."""


class DataError(RobustifyError, ValueError):
    """A benchmark file or record is malformed; the message names file, line and field."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field {field!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.path = path
        self.line = line
        self.field = field


class UnknownNameError(ConfigError, KeyError):
    """A registry lookup failed; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(RobustifyError, ImportError):
    """An optional package or data file is missing; the message says how to get it."""
