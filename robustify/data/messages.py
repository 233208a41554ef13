"""Reading real user messages (no labels): one per line, or one column of a table.

Used by ``calibrate`` (fit noise to a user's own traffic) and ``--realism-ref`` (compare
a run's variants with real traffic). A plain-text file holds one message per line; a
CSV/TSV/JSONL/JSON/Parquet file holds them in one column, named with ``column`` (the
CLI's ``--map input=COLUMN``) or found among the usual names. Blank messages are skipped;
every other problem is a :class:`DataError` naming the file, the line and the column.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from perturbations.errors import ConfigError, DataError

from robustify.data.formats import FORMATS, detect_format
from robustify.data.readers import iter_lines, open_binary, read_table, value_kind

__all__ = ["read_messages", "MESSAGE_COLUMNS", "TEXT_SUFFIXES"]

MESSAGE_COLUMNS = ("input", "text", "message", "utterance", "query", "question", "content",
                   "body", "sentence", "prompt")
"""Columns tried, in order, when no column is named."""

TEXT_SUFFIXES = (".txt", ".text", ".log", "")
"""File suffixes read as one message per line."""


def _read_lines(path: Path, display: str) -> list[str]:
    # the table readers' line reading: bounded lines, a BOM dropped, UTF-8 checked per line
    with open_binary(path, display) as handle:
        return [text.rstrip("\r\n") for _, text in iter_lines(handle, display)
                if text.strip()]


def read_messages(source: str | os.PathLike[str], *, column: str | None = None,
                  format: str | None = None, limit: int | None = None) -> list[str]:
    """The messages of ``source``, in file order.

    Args:
        source: A text file (one message per line) or a table (CSV, TSV, JSONL, JSON,
            Parquet) with the messages in one column.
        column: The column holding the messages (default: the first of
            :data:`MESSAGE_COLUMNS` present).
        format: Force a reader: ``lines`` or a ``--format`` name (``csv``, ``jsonl`` ...).
        limit: Keep the first ``limit`` messages.

    Raises:
        DataError: unreadable file, missing column, a message that is not text, no message.
        ConfigError: a bad ``limit`` or ``format``.
    """
    path = Path(source)
    display = str(source)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be a positive integer, got {limit!r}")
    as_lines = format == "lines" or (format is None and path.suffix.lower() in TEXT_SUFFIXES)
    if as_lines:
        if column is not None:
            raise ConfigError(f"{display}: a text file has one message per line; "
                              f"--map input={column} applies to tables only")
        messages = _read_lines(path, display)
    else:
        name = format or (detect_format(path) if path.exists() else "jsonl")
        if not path.exists():
            raise DataError("file not found", path=display)
        table = read_table(path, display, FORMATS.get(name))
        messages = _column(table.rows, table.columns, column, display)
    if not messages:
        raise DataError("no message found (every line or cell is blank)", path=display)
    return messages[:limit] if limit else messages


def _column(rows: list[tuple[int, dict[str, Any]]], columns: list[str], column: str | None,
            display: str) -> list[str]:
    chosen = column or next((c for c in MESSAGE_COLUMNS if c in columns), None)
    if chosen is None or chosen not in columns:
        shown = ", ".join(columns[:20]) or "none"
        wanted = f"column {column!r} not found" if column else "no message column found"
        raise DataError(f"{wanted} (columns: {shown}); name it with --map input=COLUMN",
                        path=display)
    out = []
    for line, row in rows:
        value = row.get(chosen)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if not isinstance(value, str):
            raise DataError(f"expected text, got {value_kind(value)}", path=display, line=line,
                            field=chosen)
        out.append(value)
    return out
