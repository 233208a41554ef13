"""Picking rows out of files the plain readers do not take as they are.

* **A list under a key** of a JSON document (``--map items=val`` or ``items=data.val``):
  ``{"train": [...], "val": [...]}``. Each element is an object, or a list.
* **List rows** (``[text, label]``) in JSON or JSONL: columns are the positions
  ``0``, ``1``, ... (``--map input=0,target=1``); two-element rows map to input and
  target without a mapping.
* **Hub names** (``hf:org/name:config:split``): loaded through ``datasets`` when it is
  installed and the Hub answers; otherwise one line saying how to download and convert.

Every problem is a :class:`DataError` naming the file, the line and the field.
"""

from __future__ import annotations

import bisect
import json
import re
from pathlib import Path
from typing import Any

from perturbations.errors import DataError, MissingDependencyError

from robustify.data.readers import (MAX_LINE_BYTES, Table, hf_rows, open_binary,
                                    read_json_document, value_kind)
from robustify.data.values import check_record, needs_check

__all__ = ["split_selection", "read_selected", "needs_selection", "hub_table",
           "looks_like_hub_name", "hub_hint", "HUB_PREFIX"]

HUB_PREFIX = "hf:"
"""``--data hf:org/name[:config[:split]]`` names a data set on the Hugging Face Hub."""

_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(?:/[\w.-]+)?")
_POSITION = re.compile(r"\d+")


def split_selection(mapping: dict[str, str]) -> tuple[dict[str, str], str | None]:
    """Take ``items`` (the key path of the row list) out of a parsed mapping."""
    rest = dict(mapping)
    key = rest.pop("items", None)
    return rest, (key.strip() if key is not None else None)


def needs_selection(mapping: dict[str, str], items_key: str | None) -> bool:
    """True when a JSON/JSONL file must go through :func:`read_selected`."""
    return items_key is not None or any(_POSITION.fullmatch(v) for v in mapping.values())


def _line_of(text: str, newlines: list[int], pos: int) -> int:
    return bisect.bisect_right(newlines, pos - 1) + 1


def _element_lines(text: str, path: list[str]) -> list[int]:
    """Start line of every element of the list at key ``path`` (text already parsed)."""
    decoder = json.JSONDecoder()
    newlines = [m.start() for m in re.finditer("\n", text)]
    ws = re.compile(r"[ \t\n\r]*")

    def skip(pos: int) -> int:
        return ws.match(text, pos).end()  # type: ignore[union-attr]

    try:
        pos = skip(0)
        for key in path:
            if text[pos] != "{":
                return []
            pos = skip(pos + 1)
            found = None
            while text[pos] != "}":
                name, pos = decoder.raw_decode(text, pos)
                pos = skip(skip(pos) + 1)
                if name == key:
                    found = pos  # the last one wins, as in json.loads
                _, pos = decoder.raw_decode(text, pos)
                pos = skip(pos)
                if text[pos] == ",":
                    pos = skip(pos + 1)
            if found is None:
                return []
            pos = found
        if text[pos] != "[":
            return []
        starts = []
        pos = skip(pos + 1)
        while text[pos] != "]":
            starts.append(_line_of(text, newlines, pos))
            _, pos = decoder.raw_decode(text, pos)
            pos = skip(pos)
            if text[pos] == ",":
                pos = skip(pos + 1)
        return starts
    except (ValueError, IndexError):  # pragma: no cover - text already parsed
        return []


def _as_row(record: Any, display: str, line: int) -> dict[str, Any]:
    if isinstance(record, dict):
        return record
    if isinstance(record, list):
        if any(isinstance(value, (dict, list)) for value in record):
            raise DataError("expected a row (an object, or a list of values such as [text, "
                            "label]), got a list of objects or lists (a JSON list file needs "
                            "format 'json')", path=display, line=line)
        return {str(i): value for i, value in enumerate(record)}
    raise DataError(f"expected an object or a list (a row), got {value_kind(record)}",
                    path=display, line=line)


def _table(display: str, stem: str, rows: list[tuple[int, dict[str, Any]]]) -> Table:
    columns: dict[str, None] = {}
    for _, row in rows:
        columns.update(dict.fromkeys(row))
    return Table(display, stem, rows, list(columns))


def read_selected(path: Path, display: str, reader: str, items_key: str | None) -> Table:
    """Rows of a JSON document's list at ``items_key`` (dotted), or of list-shaped rows.

    Args:
        path: The file.
        display: The path shown in messages.
        reader: ``json`` or ``jsonl``.
        items_key: Key path of the list (``val``, ``data.val``); ``None`` for the top level.
    """
    if reader == "jsonl":
        if items_key is not None:
            raise DataError("items=KEY selects a list inside one JSON document; this file "
                            "is JSONL (one row per line): drop items= from --map",
                            path=display, field="items")
        from robustify.data.readers import iter_json_lines

        rows = []
        with open_binary(path, display) as handle:
            for lineno, record in iter_json_lines(handle, display):
                rows.append((lineno, _as_row(record, display, lineno)))
        return _table(display, path.stem, rows)
    text, document = read_json_document(path, display)
    keys = items_key.split(".") if items_key else []
    value: Any = document
    for depth, key in enumerate(keys):
        if not isinstance(value, dict) or key not in value:
            where = ".".join(keys[:depth]) or "the top level"
            have = ", ".join(list(value)[:12]) if isinstance(value, dict) else value_kind(value)
            raise DataError(f"no key {key!r} at {where} (keys: {have})", path=display,
                            line=1, field="items")
        value = value[key]
    if not isinstance(value, list):
        raise DataError(f"items={items_key or ''} is {value_kind(value)}, expected a list of "
                        f"rows", path=display, line=1, field="items")
    starts = _element_lines(text, keys)
    rows = []
    check = needs_check(text)
    for index, record in enumerate(value):
        line = starts[index] if index < len(starts) else 1
        if check:  # the same refusals as every reader: NaN, lone surrogates, deep nesting
            check_record(record, display, line)
        if len(json.dumps(record, ensure_ascii=False).encode("utf-8", "surrogatepass")) > MAX_LINE_BYTES:
            raise DataError(f"the item is over the 1 MiB limit per item ({MAX_LINE_BYTES:,} "
                            f"bytes)", path=display, line=line)
        rows.append((line, _as_row(record, display, line)))
    return _table(display, path.stem, rows)


def positional_defaults(table: Table, mapping: dict[str, str]) -> dict[str, str]:
    """``[text, label]`` rows: input is position 0 and target position 1 unless mapped."""
    if not table.columns or not all(_POSITION.fullmatch(c) for c in table.columns):
        return mapping
    used = set(mapping.values())
    out = dict(mapping)
    for key, column in (("input", "0"), ("target", "1")):
        if key not in out and column in table.columns and column not in used:
            out[key] = column
    return out


# --------------------------------------------------------------------------- the Hub

_FILE_SUFFIXES = {".json", ".jsonl", ".ndjson", ".csv", ".tsv", ".tab", ".parquet", ".pq",
                  ".txt", ".yaml", ".yml", ".gz", ".zip", ".arrow"}


def looks_like_hub_name(text: str) -> bool:
    """``org/name`` that is not a path here: probably a Hugging Face Hub data set.

    A name ending in a data file's extension (``data/test.csv``) or under a folder that
    exists here is a local path that is missing, not a Hub name.
    """
    if not _HUB_NAME.fullmatch(text) or Path(text).exists():
        return False
    org, _, name = text.partition("/")
    return Path(name).suffix.lower() not in _FILE_SUFFIXES and not Path(org).is_dir()


def download_command(name: str, config: str | None = None, split: str | None = None) -> str:
    """A one-line shell command that saves a Hub split as JSONL where one is online."""
    conf = f", {config!r}" if config else ""
    return (f"python -c \"import datasets; datasets.load_dataset('{name}'{conf}, "
            f"split='{split or 'test'}').to_json('{name.split('/')[-1]}.jsonl')\"")


def hub_hint(name: str) -> str:
    """How to get a Hub data set onto disk (one line)."""
    return (f"to read it from the Hub use --data hf:{name}[:CONFIG[:SPLIT]] (needs 'pip "
            f"install robustify[hf]' and network); or, where you are online, run "
            f"{download_command(name)} and pass that file")


def _parse_hub(source: str) -> tuple[str, str | None, str | None]:
    parts = source[len(HUB_PREFIX):].split(":")
    if len(parts) > 3 or not _HUB_ID.fullmatch(parts[0]):
        raise DataError("expected hf:NAME[:CONFIG[:SPLIT]], e.g. hf:google/boolq::validation",
                        path=source)
    name = parts[0]
    config = (parts[1] or None) if len(parts) > 1 else None
    split = (parts[2] or None) if len(parts) > 2 else None
    return name, config, split


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One TCP connection to the Hub (``HF_ENDPOINT``), so offline fails in seconds, not
    after ``datasets``' retries."""
    import os
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((url.hostname or "huggingface.co",
                                  url.port or (80 if url.scheme == "http" else 443)),
                                 timeout=timeout).close()
    except OSError:
        return False
    return True


def hub_table(source: str) -> Table:
    """Rows of ``hf:org/name[:config[:split]]`` loaded through ``datasets``.

    Raises:
        MissingDependencyError: ``datasets`` is not installed (with how to convert instead).
        DataError: offline, unknown data set, or several splits and none chosen.
    """
    name, config, split = _parse_hub(source)
    try:
        import datasets
    except ImportError:
        raise MissingDependencyError(
            f"{source}: loading from the Hub needs the datasets package (pip install "
            f"'robustify[hf]') and network; or, where both are available, run "
            f"{download_command(name, config, split)} and pass that file") from None
    import os

    if os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1":
        raise DataError(f"offline (HF_DATASETS_OFFLINE/HF_HUB_OFFLINE is set) and {name} is "
                        f"read from the Hub; download it where you are online and pass the "
                        f"saved file or save_to_disk folder", path=source)
    if not Path(name).is_dir() and not _hub_reachable():  # a local folder needs no network
        raise DataError(f"offline: the Hub does not answer, and {name} is read from it; "
                        f"where you are online, run {download_command(name, config, split)} "
                        f"and pass that file", path=source)
    try:
        loaded = datasets.load_dataset(name, config, split=split)
    except Exception as exc:  # connection errors, unknown names, missing configs
        text = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise DataError(f"could not load {name} through datasets ({text}); where you are "
                        f"online, run {download_command(name, config, split)} and pass that "
                        f"file", path=source) from None
    if isinstance(loaded, datasets.DatasetDict):
        raise DataError(f"the data set has splits {', '.join(loaded)}; name one: "
                        f"hf:{name}:{config or ''}:{next(iter(loaded))}", path=source)
    return Table(source, name.split("/")[-1], hf_rows(loaded, datasets),
                 list(loaded.column_names), foreign=True)
