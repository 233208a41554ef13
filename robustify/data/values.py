"""Values a JSON reader accepts but the rest of a run cannot handle, refused at load time.

``json.loads`` takes ``NaN`` and ``Infinity``, lone surrogate escapes (``"\\ud800"``) and any
nesting depth; each would pass validation, spend every model call and then crash while
the results or the report are written. :func:`check_record` finds them first, without
recursion, and names the line and the field.
"""

from __future__ import annotations

import math
import re
from typing import Any

from perturbations.errors import DataError

__all__ = ["MAX_NESTING", "check_record", "parse_error", "needs_check", "deep_position"]

MAX_NESTING = 32
"""Deepest nesting of lists and objects accepted in one record."""

_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def needs_check(text: str) -> bool:
    """Cheap test on a record's source text: could it hold anything :func:`check_record`
    refuses? (Most lines hold no ``NaN``, no ``\\u`` escape and few brackets.)"""
    return ("NaN" in text or "Infinity" in text
            or ("\\u" in text and _SURROGATE_ESCAPE.search(text) is not None)
            or text.count("[") + text.count("{") > MAX_NESTING)


def check_record(record: Any, display: str, line: int | None) -> None:
    """Refuse non-finite numbers, lone surrogates and nesting deeper than :data:`MAX_NESTING`.

    Raises:
        DataError: naming the file, the line and the field (``metadata.score``).
    """
    stack: list[tuple[Any, int, str]] = [(record, 0, "")]
    while stack:
        value, depth, name = stack.pop()
        if isinstance(value, dict):
            if depth >= MAX_NESTING:
                raise _deep(display, line, name)
            stack.extend((v, depth + 1, f"{name}.{k}" if name else str(k))
                         for k, v in value.items())
            for key in value:
                if isinstance(key, str) and _SURROGATE.search(key):
                    raise _error(_surrogate_text(key), display, line, name or None)
        elif isinstance(value, list):
            if depth >= MAX_NESTING:
                raise _deep(display, line, name)
            stack.extend((v, depth + 1, f"{name}[{i}]") for i, v in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            raise _error(f"{value!r} is not a number robustify accepts (NaN and Infinity are "
                         f"not valid JSON); use null or a finite number", display, line, name)
        elif isinstance(value, str) and _SURROGATE.search(value):
            raise _error(_surrogate_text(value), display, line, name)


def _deep(display: str, line: int | None, name: str) -> DataError:
    top = re.split(r"[.\[]", name, maxsplit=1)[0] if name else None
    return _error(f"nested more than {MAX_NESTING} levels deep", display, line, top)


def _surrogate_text(value: str) -> str:
    found = _SURROGATE.search(value)
    code = ord(found.group()) if found else 0
    return (f"holds a lone surrogate escape \\u{code:04x}, which is not valid Unicode text; "
            f"fix the escape (a character outside the BMP needs a surrogate pair)")


def _error(message: str, display: str, line: int | None, field: str | None) -> DataError:
    return DataError(message, path=display, line=line, field=field or None)


def parse_error(display: str, line: int | None) -> DataError:
    """The one-line error for JSON the parser could not read for its depth."""
    return DataError(f"nested more than {MAX_NESTING} levels deep (too deep to read)",
                     path=display, line=line)


def deep_position(text: str, limit: int = MAX_NESTING) -> int | None:
    """Offset of the first bracket nested deeper than ``limit`` in JSON ``text`` (strings
    skipped), or ``None``. Only used to name the line of a document too deep to parse."""
    depth = 0
    in_string = escaped = False
    for pos, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return pos
        elif char in "]}":
            depth -= 1
    return None
