"""Read benchmark files into validated :class:`~perturbations.records.Item` lists.

:func:`load_items` is the one entry point: it reads JSONL, JSON, CSV, TSV, Parquet or a
Hugging Face dataset folder (or a benchmark preset such as ``mmlu``), maps source
columns onto item fields, infers and normalises task kinds and targets, and validates
every row before returning anything. Each problem is a :class:`DataError` (or
:class:`ConfigError` for bad arguments) naming the file, the line and the field.

Line numbers are 1-based physical lines; for CSV/TSV the header is line 1. Parquet and
Hugging Face rows have no lines, so their "line" is the 1-based row number.
"""

from __future__ import annotations

import bisect
import csv
import difflib
import gc
import hashlib
import json
import logging
import math
import os
import re
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import IO, Any, Iterator, Mapping

from perturbations.errors import (
    ConfigError, DataError, MissingDependencyError, UnknownNameError,
)
from perturbations.records import TASK_KINDS, Item, choice_letter

from robustify.data.formats import DEFAULT_COLUMNS, FORMATS, FormatInfo, RowError, canonical_format, detect_format

__all__ = ["load_items", "parse_mapping", "FORMATS", "FormatInfo", "detect_format",
           "MAX_LINE_BYTES", "ITEM_FIELDS", "SAMPLE"]

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 1 << 20
"""Longest accepted line of a JSONL/CSV/TSV file (1 MiB), without its line break."""

ITEM_FIELDS = ("id", "input", "target", "context", "choices", "task")
"""Item fields a mapping may name; metadata keys are written ``meta.<key>``."""

SAMPLE = "sample"
"""The source name of the built-in benchmark (``robustify/data/sample.jsonl``)."""

_YES_NO = {"yes": "yes", "no": "no", "true": "yes", "false": "no"}
_NUMBER = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[+-]?\.\d+")
_LETTER = re.compile(r"\(?\[?([A-Za-z])[\)\]\.:]?")
_SPACE = re.compile(r"\s+")
_MAX_COLUMNS_SHOWN = 20


# --------------------------------------------------------------------------- mapping

def parse_mapping(text: str) -> dict[str, str]:
    """Parse a field mapping such as ``"input=question,target=answer,meta.subject=topic"``.

    Keys are item fields (``id``, ``input``, ``target``, ``context``, ``choices``,
    ``task``) or ``meta.<key>`` for a metadata entry; values are source column names.
    ``choices`` may list several columns joined by ``|`` (``choices=A|B|C|D``). JSON
    columns may be nested paths (``input=question.stem``).

    Args:
        text: Comma-separated ``FIELD=COLUMN`` pairs; an empty string means no mapping.

    Returns:
        ``{field: column}`` in the order given.

    Raises:
        ConfigError: a pair is malformed, a field is repeated or unknown (with close
            matches).
    """
    if not isinstance(text, str):
        raise ConfigError(f"a mapping must be a string like 'input=question', got "
                          f"{type(text).__name__}")
    result: dict[str, str] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue  # tolerate "a=b," and doubled commas
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ConfigError(f"mapping entry {part!r} should look like FIELD=COLUMN "
                              f"(e.g. input=question)")
        if key in result:
            raise ConfigError(f"mapping names field {key!r} twice")
        result[key] = value
    return _check_mapping(result)


def _check_mapping(mapping: Mapping[str, str]) -> dict[str, str]:
    checked: dict[str, str] = {}
    for key, value in mapping.items():
        if not isinstance(key, str) or not isinstance(value, str) or not value.strip():
            raise ConfigError(f"mapping entry {key!r}: {value!r} must map a field name to "
                              f"a column name")
        key, value = key.strip(), value.strip()
        if key.startswith("meta."):
            if not key[5:].strip():
                raise ConfigError(f"mapping field {key!r} needs a metadata key "
                                  f"(meta.subject=topic)")
        elif key not in ITEM_FIELDS:
            close = difflib.get_close_matches(key, [*ITEM_FIELDS, "meta.KEY"], n=2)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise UnknownNameError(f"unknown mapping field {key!r}{hint} (fields: "
                                   f"{', '.join(ITEM_FIELDS)}, meta.<key>)")
        if key == "choices" and "|" in value:
            if any(not part.strip() for part in value.split("|")):
                raise ConfigError(f"mapping choices={value!r} has an empty column name")
            value = "|".join(part.strip() for part in value.split("|"))
        checked[key] = value
    return checked


# --------------------------------------------------------------------------- reading

@dataclass
class _Table:
    """Rows read from one source, before any mapping."""

    display: str
    """Path shown in messages."""
    stem: str
    """Base for generated ids."""
    rows: list[tuple[int, dict[str, Any]]]
    """(line or row number, row) in file order."""
    columns: list[str]
    """Known top-level columns, in first-seen order."""
    header_line: int | None = None
    """Line of the CSV/TSV header; where file-level column problems are reported."""
    foreign: bool = False
    """Values may be non-JSON types (Parquet, Arrow): metadata is made JSON-safe."""


def _open_binary(path: Path, display: str) -> IO[bytes]:
    try:
        return open(path, "rb")
    except PermissionError:
        raise DataError("cannot read the file: permission denied", path=display) from None
    except IsADirectoryError:
        raise DataError("is a directory, expected a file", path=display) from None
    except FileNotFoundError:
        raise DataError("file not found", path=display) from None
    except OSError as exc:
        raise DataError(f"cannot read the file: {exc.strerror or exc}", path=display) from None


def _iter_lines(handle: IO[bytes], display: str) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, decoded line with its line break).

    Lines are bounded before decoding so a file without line breaks cannot exhaust
    memory, and each decode error is reported with its own line.
    """
    lineno = 0
    while True:
        raw = handle.readline(MAX_LINE_BYTES + 3)  # room for "\r\n" plus one byte over
        if not raw:
            return
        lineno += 1
        if lineno == 1:
            if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
                raise DataError("the file is UTF-16 encoded; save it as UTF-8",
                                path=display, line=1)
            if raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # Excel and Notepad write a BOM; it is not data
        size = len(raw) - (2 if raw.endswith(b"\r\n") else 1 if raw.endswith(b"\n") else 0)
        if size > MAX_LINE_BYTES:
            if not raw.endswith(b"\n"):
                size += _rest_of_line(handle)
            raise DataError(f"line {lineno} is {size:,} bytes; the limit is 1 MiB "
                            f"({MAX_LINE_BYTES:,} bytes) per line", path=display, line=lineno)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"line {lineno} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} "
                            f"at byte {exc.start + 1} of the line); save the file as UTF-8",
                            path=display, line=lineno) from None
        yield lineno, text


def _rest_of_line(handle: IO[bytes]) -> int:
    size = 0
    while True:
        chunk = handle.readline(MAX_LINE_BYTES)
        if not chunk:
            return size
        if chunk.endswith(b"\n"):
            return size + len(chunk) - (2 if chunk.endswith(b"\r\n") else 1)
        size += len(chunk)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _read_jsonl(path: Path, display: str) -> _Table:
    rows: list[tuple[int, dict[str, Any]]] = []
    columns: dict[str, None] = {}
    loads = json.loads
    with _open_binary(path, display) as handle:
        for lineno, text in _iter_lines(handle, display):
            if not text.strip():
                continue
            try:
                record = loads(text)
            except ValueError as exc:
                msg = getattr(exc, "msg", str(exc))
                col = getattr(exc, "colno", None)
                where = f" at column {col}" if col else ""
                raise DataError(f"malformed JSON: {msg}{where}", path=display,
                                line=lineno) from None
            if not isinstance(record, dict):
                hint = " (a JSON list file needs format 'json')" if isinstance(record, list) \
                    else ""
                raise DataError(f"expected a JSON object, got {_kind(record)}{hint}",
                                path=display, line=lineno)
            if not columns.keys() >= record.keys():
                columns.update(dict.fromkeys(record))
            rows.append((lineno, record))
    return _Table(display, path.stem, rows, list(columns))


def _read_json(path: Path, display: str) -> _Table:
    with _open_binary(path, display) as handle:
        data = handle.read()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"line {line} is not valid UTF-8 (byte 0x{data[exc.start]:02x}); "
                        f"save the file as UTF-8", path=display, line=line) from None
    if not text.strip():
        raise DataError("the file is empty", path=display)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"malformed JSON: {exc.msg} at column {exc.colno}", path=display,
                        line=exc.lineno) from None
    if isinstance(document, dict) and isinstance(document.get("items"), list):
        records = document["items"]
    elif isinstance(document, list):
        records = document
    else:
        keys = ", ".join(list(document)[:10]) if isinstance(document, dict) else ""
        got = f"an object with keys: {keys}" if keys else _kind(document)
        raise DataError(f'a JSON file must hold a list of objects or {{"items": [...]}}; '
                        f"got {got}", path=display, line=1)
    starts = _json_element_lines(text, document is records)
    rows: list[tuple[int, dict[str, Any]]] = []
    columns: dict[str, None] = {}
    for index, record in enumerate(records):
        line = starts[index] if index < len(starts) else 1
        if not isinstance(record, dict):
            raise DataError(f"item {index + 1} is {_kind(record)}, expected an object",
                            path=display, line=line)
        columns.update(dict.fromkeys(record))
        rows.append((line, record))
    return _Table(display, path.stem, rows, list(columns))


def _json_element_lines(text: str, top_level: bool) -> list[int]:
    """Return the start line of every element of the item array in valid JSON ``text``.

    The document already parsed, so this scanner only walks structure; it lets errors
    in a JSON file name a line like they do for JSONL.
    """
    decoder = json.JSONDecoder()
    newlines = [m.start() for m in re.finditer("\n", text)]
    ws = re.compile(r"[ \t\n\r]*")

    def skip(pos: int) -> int:
        return ws.match(text, pos).end()  # type: ignore[union-attr]

    def array_starts(pos: int) -> list[int]:
        starts: list[int] = []
        pos = skip(pos + 1)  # past "["
        while text[pos] != "]":
            starts.append(bisect.bisect_right(newlines, pos - 1) + 1)
            _, pos = decoder.raw_decode(text, pos)
            pos = skip(pos)
            if text[pos] == ",":
                pos = skip(pos + 1)
        return starts

    try:
        pos = skip(0)
        if top_level:
            return array_starts(pos)
        found: list[int] = []
        pos = skip(pos + 1)  # past "{"
        while text[pos] != "}":
            key, pos = decoder.raw_decode(text, pos)
            pos = skip(skip(pos) + 1)  # past ":"
            if key == "items" and text[pos] == "[":
                found = array_starts(pos)  # the last "items" wins, as in json.loads
            _, pos = decoder.raw_decode(text, pos)
            pos = skip(pos)
            if text[pos] == ",":
                pos = skip(pos + 1)
        return found
    except (ValueError, IndexError):  # pragma: no cover - text already parsed
        return []


def _read_delimited(path: Path, display: str, delimiter: str, info: FormatInfo) -> _Table:
    rows: list[tuple[int, dict[str, Any]]] = []
    header: list[str] | None = None
    header_line: int | None = None
    width = 0
    with _open_binary(path, display) as handle:
        lines = _iter_lines(handle, display)
        reader = csv.reader((text for _, text in lines), delimiter=delimiter)
        while True:
            start = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                kind = "TSV" if delimiter == "\t" else "CSV"
                problem = f"malformed {kind}: {exc}"
                if "field larger than field limit" in str(exc):
                    problem = (f"a cell is longer than {csv.field_size_limit():,} characters, "
                               f"the {kind} reader's limit; use JSONL for very long passages")
                raise DataError(problem, path=display, line=reader.line_num or start) from None
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            if header is None:
                width = len(cells)
                if info.headerless and not _looks_like_header(cells):
                    header = _positional_columns(width)  # this row is data
                else:
                    header_line = start
                    header = _positional_columns(width) if info.headerless \
                        else _header_names(cells, display, start)
                    continue
            if len(cells) != width:
                what = "the header has" if header_line else "the first row has"
                raise DataError(f"line {start} has {len(cells)} cells but {what} {width}",
                                path=display, line=start)
            rows.append((start, {name: (cell if cell.strip() else None)
                                 for name, cell in zip(header, cells)}))
    if header is None:
        raise DataError("the file is empty", path=display)
    return _Table(display, path.stem, rows, list(header), header_line=header_line)


def _looks_like_header(cells: list[str]) -> bool:
    first, last = cells[0].strip().lower(), cells[-1].strip().lower()
    return last in ("answer", "target", "label") or first in ("question", "input", "prompt")


def _positional_columns(width: int) -> list[str]:
    # Headerless multiple-choice rows: question, one column per option, answer.
    return ["question", *(choice_letter(i) for i in range(max(width - 2, 0))), "answer"][:width]


def _header_names(cells: list[str], display: str, line: int) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    for position, cell in enumerate(cells, 1):
        # pandas writes its unnamed index as an empty header cell
        name = cell.strip() or f"column_{position}"
        if name in seen:
            raise DataError(f"the header names column {name!r} twice", path=display,
                            line=line, field=name)
        seen.add(name)
        names.append(name)
    return names


def _read_parquet(path: Path, display: str) -> _Table:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError("reading Parquet needs pyarrow: "
                                     "pip install 'robustify[parquet]'") from None
    try:
        table = pq.read_table(path)
    except PermissionError:
        raise DataError("cannot read the file: permission denied", path=display) from None
    except Exception as exc:  # pyarrow raises several unrelated types for bad files
        raise DataError(f"not a readable Parquet file ({_one_line(exc)})",
                        path=display) from None
    rows = [(index, row) for index, row in enumerate(table.to_pylist(), 1)]
    return _Table(display, path.stem, rows, list(table.column_names), foreign=True)


def _read_hf(path: Path, display: str) -> _Table:
    try:
        import datasets
    except ImportError:
        raise MissingDependencyError("reading a Hugging Face dataset folder needs the "
                                     "datasets package: pip install 'robustify[hf]'") from None
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises FileNotFoundError, ValueError, ...
        raise DataError(f"not a dataset folder written by save_to_disk "
                        f"({_one_line(exc)})", path=display) from None
    name = path.name
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded)
        if len(splits) != 1:
            raise DataError(f"the folder holds splits {', '.join(splits)}; pass one of "
                            f"them, e.g. {os.path.join(display, splits[0])}", path=display)
        loaded = loaded[splits[0]]
    names = list(loaded.column_names)
    # ClassLabel columns store ints; their names are what a model answers and a user reads.
    label_names = {col: feat for col, feat in loaded.features.items()
                   if isinstance(feat, datasets.ClassLabel)}
    rows = []
    for index, row in enumerate(loaded, 1):
        for col, feat in label_names.items():
            value = row.get(col)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                row[col] = feat.int2str(value)
        rows.append((index, row))
    return _Table(display, name, rows, names, foreign=True)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:200] + "...") if len(text) > 200 else (text or type(exc).__name__)


# --------------------------------------------------------------------------- mapping plan

@dataclass
class _Plan:
    """Which source column feeds which item field, resolved once per file."""

    id: str | None
    input: str
    target: str
    context: str | None
    choices: str | tuple[str, ...] | None
    task: str | None
    meta: dict[str, str]
    extras: list[str]
    notes: dict[str, str] = field(default_factory=dict)
    """Per field, " (column 'x')" when the column is not named like the field."""


def _root(column: str, columns: set[str]) -> str:
    if column in columns or "." not in column:
        return column
    return column.split(".", 1)[0]


def _has_column(column: str, columns: set[str]) -> bool:
    return column in columns or ("." in column and column.split(".", 1)[0] in columns)


def _columns_text(columns: list[str]) -> str:
    shown = ", ".join(columns[:_MAX_COLUMNS_SHOWN])
    more = len(columns) - _MAX_COLUMNS_SHOWN
    return shown + (f" (+{more} more)" if more > 0 else "") if columns else "(none)"


def _plan(table: _Table, info: FormatInfo, mapping: dict[str, str]) -> _Plan:
    columns = set(table.columns)
    where = {"path": table.display,
             "line": table.header_line or (table.rows[0][0] if table.rows else None)}
    taken: set[str] = set()  # exact columns or paths feeding a field
    roots: set[str] = set()  # top-level columns consumed (kept out of metadata)

    def take(column: str) -> None:
        taken.add(column)
        roots.add(_root(column, columns))

    def free(column: str) -> bool:
        # "question.stem" and "question.choices" may share a root; "question" as a
        # whole and one of its sub-paths may not.
        return column not in taken and column not in roots \
            and _root(column, columns) not in taken

    resolved: dict[str, Any] = {}
    for key, column in mapping.items():
        parts = column.split("|") if key == "choices" and "|" in column else [column]
        for part in parts:
            if not _has_column(part, columns):
                close = difflib.get_close_matches(part, table.columns, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise DataError(f"no column {part!r}{hint}; columns are: "
                                f"{_columns_text(table.columns)}", field=key, **where)
            take(part)
        resolved[key] = tuple(parts) if len(parts) > 1 else column
    for key in ITEM_FIELDS:
        if key in resolved:
            continue
        for candidate in (*info.columns.get(key, ()), *DEFAULT_COLUMNS.get(key, ())):
            if _has_column(candidate, columns) and free(candidate):
                resolved[key] = candidate
                take(candidate)
                break
    if "choices" not in resolved:
        letters = []
        for index in range(26):  # headerless MMLU and "question,A,B,C,D,answer" CSVs
            letter = choice_letter(index)
            if letter not in columns or not free(letter):
                break
            letters.append(letter)
        if len(letters) >= 2:
            resolved["choices"] = tuple(letters)
            for letter in letters:
                take(letter)
    for key in ("input", "target"):
        if key not in resolved:
            tried = (*info.columns.get(key, ()), *DEFAULT_COLUMNS[key])
            example = table.columns[0] if table.columns else "COLUMN"
            raise DataError(f"no {key} column (looked for {', '.join(dict.fromkeys(tried))}); "
                            f"columns are: {_columns_text(table.columns)}; map one, e.g. "
                            f"--map {key}={example}", field=key, **where)
    meta = {key[5:]: column for key, column in mapping.items() if key.startswith("meta.")}
    roots.add("metadata")  # canonical rows carry their metadata as one object
    return _Plan(
        id=resolved.get("id"), input=resolved["input"], target=resolved["target"],
        context=resolved.get("context"), choices=resolved.get("choices"),
        task=resolved.get("task"), meta=meta,
        extras=[c for c in table.columns if c not in roots],
        notes={key: _column_note(key, column) for key, column in resolved.items()},
    )


_MISSING = object()


def _get(row: Mapping[str, Any], column: str) -> Any:
    if column in row:
        return row[column]
    if "." in column:
        value: Any = row
        for part in column.split("."):
            if not isinstance(value, dict) or part not in value:
                return _MISSING
            value = value[part]
        return value
    return _MISSING


def _is_blank(value: Any) -> bool:
    return value is None or value is _MISSING or (isinstance(value, float) and math.isnan(value))


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    return str(value)


# --------------------------------------------------------------------------- rows -> items

class _RowProblem(Exception):
    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _column_note(key: str, column: Any) -> str:
    if isinstance(column, tuple):
        return f" (columns {'|'.join(column)})"
    return f" (column {column!r})" if column != key else ""


def _text_value(value: Any, key: str, note: str, *, allow_numbers: bool = False) -> str:
    if isinstance(value, str):
        return value
    if allow_numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
        return _number_text(value)
    raise _RowProblem(key, f"{key}{note} must be text, got {_kind(value)}")


def _number_text(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _target_value(value: Any, note: str) -> Any:
    """Return the target as text, or as an int (kept raw for multiple-choice indexes)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else str(value)
    if isinstance(value, str):
        stripped = value.strip()
        if not stripped:
            raise _RowProblem("target", f"target{note} is empty")
        return stripped
    raise _RowProblem("target", f"target{note} must be text, a number or true/false, "
                                f"got {_kind(value)}")


def _choices_value(value: Any, note: str) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    """Return (option texts, option labels or None) from any supported choices shape."""
    labels: list[str] | None = None
    if isinstance(value, str):
        text = value.strip()
        if not text.startswith("["):
            raise _RowProblem("choices", f"choices{note} must be a list (or a JSON-encoded "
                                         f"list in a CSV cell), got text")
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise _RowProblem("choices", f"choices{note} is not a valid JSON list "
                                         f"({getattr(exc, 'msg', exc)})") from None
    if isinstance(value, dict) and "text" in value:
        # Hugging Face ARC layout: {"text": [...], "label": [...]}
        texts, found = value["text"], value.get("label")
        if found is not None:
            if not isinstance(found, (list, tuple)) or len(found) != len(texts):
                raise _RowProblem("choices", f"choices{note}: 'label' must list one label "
                                             f"per option")
            labels = [str(x).strip() for x in found]
        value = texts
    if not isinstance(value, (list, tuple)):
        raise _RowProblem("choices", f"choices{note} must be a list, got {_kind(value)}")
    options: list[str] = []
    item_labels: list[str] = []
    for position, option in enumerate(value, 1):
        if isinstance(option, dict) and "text" in option:
            # ARC JSONL layout: [{"label": "A", "text": "..."}]
            if "label" in option:
                item_labels.append(str(option["label"]).strip())
            option = option["text"]
        if isinstance(option, str):
            options.append(option)
        elif isinstance(option, (int, float)) and not isinstance(option, bool):
            options.append(_number_text(option))
        else:
            raise _RowProblem("choices", f"choices{note}: option {position} must be text, "
                                         f"got {_kind(option)}")
    if labels is None and item_labels:
        # labels only count when every option has one; otherwise positions decide
        labels = item_labels if len(item_labels) == len(options) else None
    return tuple(options), tuple(labels) if labels is not None else None


def _choices_from_columns(row: Mapping[str, Any], columns: tuple[str, ...]) -> tuple[str, ...]:
    values = [row.get(column) for column in columns]
    if all(isinstance(value, str) for value in values):
        return tuple(values)  # the usual case: every option cell filled with text
    values = [_get(row, column) for column in columns]
    while values and _is_blank(values[-1]):
        values.pop()  # fewer options than columns: trailing cells are empty
    options: list[str] = []
    for column, value in zip(columns, values):
        if _is_blank(value):
            raise _RowProblem("choices", f"choices: option column {column!r} is empty")
        options.append(_text_value(value, "choices", f" (column {column!r})",
                                   allow_numbers=True))
    return tuple(options)


def _mc_target(target: Any, options: tuple[str, ...], labels: tuple[str, ...] | None,
               note: str) -> str:
    count = len(options)
    if isinstance(target, int):
        if 0 <= target < count:
            return choice_letter(target)
    else:
        text = str(target).strip()
        if labels:
            if text in labels:
                return choice_letter(labels.index(text))
            folded = [label.casefold() for label in labels]
            if text.casefold() in folded:
                return choice_letter(folded.index(text.casefold()))
        match = _LETTER.fullmatch(text)
        if match:
            index = ord(match.group(1).upper()) - ord("A")
            if index < count:
                return choice_letter(index)
        if text in options:
            return choice_letter(options.index(text))
        norm = _SPACE.sub(" ", text).casefold()
        hits = [i for i, option in enumerate(options)
                if _SPACE.sub(" ", option.strip()).casefold() == norm]
        if len(hits) == 1:
            return choice_letter(hits[0])
        if text.isdigit() and int(text) < count:
            return choice_letter(int(text))
    last = choice_letter(count - 1)
    raise _RowProblem("target", f"target {str(target)!r}{note} is not among the choices "
                                f"(expected a letter A-{last}, a 0-based index or an "
                                f"option's text)")


def _task_value(value: Any) -> str | None:
    if _is_blank(value):
        return None
    if not isinstance(value, str):
        raise _RowProblem("task", f"task must be text, got {_kind(value)}")
    name = value.strip().lower().replace("-", "_").replace(" ", "_")
    if not name:
        return None
    if name not in TASK_KINDS:
        close = difflib.get_close_matches(name, TASK_KINDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise _RowProblem("task", f"unknown task kind {value!r}{hint} (expected one of "
                                  f"{', '.join(TASK_KINDS)})")
    return name


def _build_row(row: Mapping[str, Any], plan: _Plan, info: FormatInfo, table: _Table,
               task_arg: str | None, file_meta: Mapping[str, Any]) -> dict[str, Any]:
    """Turn one source row into Item keyword arguments (``id`` may still be None)."""
    fields: dict[str, Any] = {}

    if plan.id is not None:
        value = _get(row, plan.id)
        note = plan.notes["id"]
        if value is _MISSING:
            raise _RowProblem("id", f"this row has no {plan.id!r} column (other rows do)")
        if _is_blank(value) or (isinstance(value, str) and not value.strip()):
            raise _RowProblem("id", f"id{note} is empty")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise _RowProblem("id", f"id{note} must be text or a number, got {_kind(value)}")
        fields["id"] = value.strip() if isinstance(value, str) else _number_text(value)
    else:
        fields["id"] = None

    value = _get(row, plan.input)
    note = plan.notes["input"]
    if value is _MISSING:
        raise _RowProblem("input", f"this row has no {plan.input!r} column; its columns "
                                   f"are: {_columns_text(list(row))}")
    if _is_blank(value):
        raise _RowProblem("input", f"the question{note} is empty")
    fields["input"] = _text_value(value, "input", note)
    if not fields["input"].strip():
        raise _RowProblem("input", f"the question{note} is empty")

    value = _get(row, plan.target)
    target_note = plan.notes["target"]
    if value is _MISSING:
        raise _RowProblem("target", f"this row has no {plan.target!r} column; its columns "
                                    f"are: {_columns_text(list(row))}")
    if _is_blank(value):
        raise _RowProblem("target", f"target{target_note} is empty")
    fields["target"] = value  # normalised below, after preset hooks saw the raw value

    context = None
    if plan.context is not None:
        value = _get(row, plan.context)
        if not _is_blank(value):
            context = _text_value(value, "context", plan.notes["context"])
    fields["context"] = context

    options: tuple[str, ...] | None = None
    labels: tuple[str, ...] | None = None
    if isinstance(plan.choices, tuple):
        options = _choices_from_columns(row, plan.choices) or None
    elif plan.choices is not None:
        value = _get(row, plan.choices)
        if not _is_blank(value):
            options, labels = _choices_value(value, plan.notes["choices"])

    metadata: dict[str, Any] = dict(file_meta)
    if "metadata" in row and not _is_blank(row["metadata"]):
        if not isinstance(row["metadata"], dict):
            raise _RowProblem("metadata", f"metadata must be an object, got "
                                          f"{_kind(row['metadata'])}")
        metadata.update(row["metadata"])
    for column in plan.extras:
        if column in row:
            metadata[column] = row[column]
    for key, column in plan.meta.items():
        value = _get(row, column)
        if value is not _MISSING:
            metadata[key] = value
    if table.foreign:
        metadata = {k: _jsonable(v) for k, v in metadata.items()}
    fields["metadata"] = metadata

    if info.row_hook is not None:
        try:
            info.row_hook(fields)
        except RowError as exc:
            raise _RowProblem(exc.field, exc.message) from None

    task = task_arg
    if task is None and plan.task is not None:
        task = _task_value(_get(row, plan.task))
    if task is None:
        task = info.task
    target = _target_value(fields["target"], target_note)

    if options is not None and (task is None or task == "multiple_choice"):
        task = "multiple_choice"
    if task == "multiple_choice":
        if options is None:
            raise _RowProblem("choices", "a multiple-choice item needs choices"
                              + ("" if plan.choices else "; map them, e.g. --map choices=options "
                                 "or choices=A|B|C|D"))
        target = _mc_target(target, options, labels, target_note)
    else:
        text = target if isinstance(target, str) else str(target)
        if task is None:
            if text.lower() in _YES_NO:
                task = "yes_no"
            elif _NUMBER.fullmatch(text):
                task = "numeric"
            else:
                task = "short_answer"
        if task == "yes_no":
            if text.lower() not in _YES_NO:
                raise _RowProblem("target", f"target {text!r}{target_note} is not yes/no "
                                            f"(or true/false)")
            text = _YES_NO[text.lower()]
        elif task == "numeric":
            if not _NUMBER.fullmatch(text):
                raise _RowProblem("target", f"target {text!r}{target_note} is not a number")
            text = text.replace(",", "")
        target = text

    fields["target"] = target
    fields["task"] = task
    fields["choices"] = options
    return fields


def _rewrap(exc: DataError) -> str:
    message = str(exc)
    if exc.field is not None:
        prefix = f"field {exc.field!r}: "
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def _to_items(table: _Table, info: FormatInfo, mapping: dict[str, str],
              task_arg: str | None) -> list[Item]:
    if not table.rows:
        what = "has a header but no rows" if table.header_line else "has no items"
        raise DataError(f"the file {what}", path=table.display)
    plan = _plan(table, info, mapping)
    file_meta = info.file_metadata(Path(table.display)) if info.file_metadata else {}
    built: list[tuple[int, dict[str, Any]]] = []
    for line, row in table.rows:
        try:
            built.append((line, _build_row(row, plan, info, table, task_arg, file_meta)))
        except _RowProblem as exc:
            raise DataError(exc.message, path=table.display, line=line,
                            field=exc.field) from None

    if plan.id is None:
        width = max(6, len(str(len(built))))
        stem = _SPACE.sub("_", table.stem.strip()) or "item"
        for number, (_, fields) in enumerate(built, 1):
            fields["id"] = f"{stem}-{number:0{width}d}"
        log.info("%s has no id column; generated ids %s..%s from the file name and "
                 "record number (map one with --map id=COLUMN to keep your own)",
                 table.display, built[0][1]["id"], built[-1][1]["id"])

    seen: dict[str, int] = {}
    for line, fields in built:
        first = seen.setdefault(fields["id"], line)
        if first != line:
            raise DataError(f"duplicate id {fields['id']!r} (first on line {first})",
                            path=table.display, line=line, field="id")

    label_set = sorted({f["target"] for _, f in built if f["task"] == "classification"})
    items: list[Item] = []
    for line, fields in built:
        if fields["task"] == "classification" and not isinstance(
                fields["metadata"].get("labels"), list):
            fields["metadata"]["labels"] = list(label_set)
        try:
            items.append(Item(**fields))
        except DataError as exc:
            raise DataError(_rewrap(exc), path=table.display, line=line,
                            field=exc.field) from None
    return items


# --------------------------------------------------------------------------- entry point

def _sample_key(seed: int, item_id: str) -> bytes:
    # A per-item hash (not random.sample) so the choice is independent of PYTHONHASHSEED
    # and of file order, and a larger limit keeps every item a smaller one chose.
    return hashlib.sha256(f"{seed}\x1f{item_id}".encode("utf-8")).digest()


def _choose(items: list[Item], limit: int, seed: int) -> list[Item]:
    if limit >= len(items):
        return items
    ranked = sorted(range(len(items)), key=lambda i: _sample_key(seed, items[i].id))
    chosen = sorted(ranked[:limit])
    return [items[i] for i in chosen]


def _resolve_format(name: str) -> FormatInfo:
    key = name.strip().lower()
    if key in FORMATS:
        return FORMATS[key]
    close = difflib.get_close_matches(key, FORMATS, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownNameError(f"unknown format {name!r}{hint} (known: {', '.join(FORMATS)})")


def _reader_for(path: Path, info: FormatInfo) -> str:
    if info.reader is not None:
        return info.reader
    return canonical_format(path)


def _read(path: Path, display: str, reader: str, info: FormatInfo) -> _Table:
    if reader == "hf":
        if not path.exists():
            raise DataError("folder not found", path=display)
        if not path.is_dir():
            raise DataError("the hf format reads a folder written by save_to_disk; this is "
                            "a file", path=display)
        return _read_hf(path, display)
    if not path.exists():
        raise DataError("file not found", path=display)
    if path.is_dir():
        raise DataError("is a directory, expected a file", path=display)
    if not path.is_file():
        raise DataError("not a regular file (a FIFO, socket or device); robustify reads data "
                        "only from regular files", path=display)
    if reader == "parquet":
        return _read_parquet(path, display)
    if path.stat().st_size == 0:
        raise DataError("the file is empty", path=display)
    if reader == "jsonl":
        return _read_jsonl(path, display)
    if reader == "json":
        return _read_json(path, display)
    if reader in ("csv", "tsv"):
        return _read_delimited(path, display, "," if reader == "csv" else "\t", info)
    raise ConfigError(f"format {info.name!r} has no reader {reader!r}")  # pragma: no cover


def load_items(source: str | os.PathLike[str], *, format: str | None = None,
               mapping: Mapping[str, str] | str | None = None, limit: int | None = None,
               seed: int = 0, task: str | None = None) -> list[Item]:
    """Load and validate a benchmark as a list of items.

    Every row is validated before anything is returned: the first problem raises with
    the file, line and field named.

    Args:
        source: A file path, a folder written by ``Dataset.save_to_disk``, or
            ``"sample"`` for the built-in benchmark (use ``./sample`` for a local file
            of that name).
        format: A key of :data:`FORMATS` (``jsonl``, ``csv``, ``mmlu`` ...); detected
            from the extension and content when ``None`` or ``"auto"``.
        mapping: Item field -> source column, as a dict or ``"input=q,target=a"``
            (see :func:`parse_mapping`); unmapped extra columns go into metadata.
        limit: Keep a seeded sample of this many items, in file order.
        seed: Seed of that sample; the same seed always picks the same items.
        task: Task kind for every item (one of ``TASK_KINDS``); overrides the file's
            ``task`` column and the inference.

    Returns:
        The items in file order.

    Raises:
        DataError: the file is missing, unreadable or malformed, or a row is invalid.
        ConfigError: ``format``, ``mapping``, ``limit`` or ``task`` is invalid
            (:class:`UnknownNameError` for unknown names, with suggestions).
        MissingDependencyError: Parquet without pyarrow, ``hf`` without datasets.
    """
    if mapping is None:
        user_mapping: dict[str, str] = {}
    elif isinstance(mapping, str):
        user_mapping = parse_mapping(mapping)
    elif isinstance(mapping, Mapping):
        user_mapping = _check_mapping(mapping)
    else:
        raise ConfigError(f"mapping must be a dict or a string like 'input=question', got "
                          f"{type(mapping).__name__}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit <= 0):
        raise ConfigError(f"limit must be a positive integer, got {limit!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    if task is not None:
        try:
            task = _task_value(task)
        except _RowProblem as exc:
            raise UnknownNameError(exc.message) from None

    with ExitStack() as stack:
        if isinstance(source, str) and source == SAMPLE:
            resource = resources.files(__package__).joinpath("sample.jsonl")
            if not resource.is_file():
                raise DataError("the built-in sample benchmark is missing from this "
                                "installation (robustify/data/sample.jsonl)", path=SAMPLE)
            path = stack.enter_context(resources.as_file(resource))
            display = str(path)
        else:
            if not isinstance(source, (str, os.PathLike)):
                raise ConfigError(f"source must be a path or 'sample', got "
                                  f"{type(source).__name__}")
            display = os.fspath(source)
            path = Path(display).expanduser()
            if not path.exists():
                hint = " (did you mean 'sample', the built-in benchmark?)" \
                    if difflib.get_close_matches(display, [SAMPLE], n=1, cutoff=0.7) else ""
                raise DataError(f"file not found{hint}", path=display)

        if format is not None and format.strip().lower() != "auto":
            info = _resolve_format(format)
        else:
            info = FORMATS[detect_format(path)]
            log.debug("%s: detected format %r", display, info.name)
        # Loading allocates one dict per row and keeps them all: the cyclic GC would
        # rescan that growing heap over and over (half the load time at 100k rows),
        # and nothing built here forms reference cycles.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            table = _read(path, display, _reader_for(path, info), info)
            items = _to_items(table, info, user_mapping, task)
        finally:
            if gc_was_enabled:
                gc.enable()

    total = len(items)
    if limit is not None:
        items = _choose(items, limit, seed)
    tasks = Counter(item.task for item in items)
    log.info("loaded %d of %d items from %s (format %s; %s)", len(items), total, display,
             info.name, ", ".join(f"{k} {v}" for k, v in sorted(tasks.items())))
    return items
