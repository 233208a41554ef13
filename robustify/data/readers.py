"""Reading rows from files: JSONL, JSON, CSV/TSV, Parquet and Hugging Face dataset folders.

Each reader returns a :class:`Table` of ``(line, row)`` pairs in file order, before any
column mapping; every problem is a :class:`DataError` naming the file and the line.
Line numbers are 1-based physical lines; for CSV/TSV the header is line 1. Parquet and
Hugging Face rows have no lines, so their "line" is the 1-based row number.
"""

from __future__ import annotations

import bisect
import csv
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator

from perturbations.errors import ConfigError, DataError, MissingDependencyError
from perturbations.records import choice_letter

from robustify.data.formats import FormatInfo, canonical_format
from robustify.data.values import check_record, deep_position, needs_check, parse_error

__all__ = ["Table", "read_table", "value_kind", "open_binary", "iter_lines", "iter_json_lines",
           "read_json_document", "hf_rows", "MAX_LINE_BYTES"]

MAX_LINE_BYTES = 1 << 20
"""Longest accepted line of a JSONL/CSV/TSV file (1 MiB), without its line break."""

_MAX_COLUMNS_SHOWN = 20


@dataclass
class Table:
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


def open_binary(path: Path, display: str) -> IO[bytes]:
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


def iter_lines(handle: IO[bytes], display: str) -> Iterator[tuple[int, str]]:
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


def value_kind(value: Any) -> str:
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


def iter_json_lines(handle: IO[bytes], display: str) -> Iterator[tuple[int, Any]]:
    """``(line, value)`` of every non-blank line of a JSONL file, checked as it is parsed.

    Every JSONL reader goes through here, so each refuses the same things with the file
    and line: malformed JSON, nesting deeper than :data:`robustify.data.values.MAX_NESTING`,
    NaN/Infinity and lone surrogates (:func:`robustify.data.values.check_record`).
    """
    loads = json.loads
    for lineno, text in iter_lines(handle, display):
        if not text.strip():
            continue
        try:
            record = loads(text)
        except RecursionError:
            raise parse_error(display, lineno) from None
        except ValueError as exc:
            msg = getattr(exc, "msg", str(exc))
            col = getattr(exc, "colno", None)
            where = f" at column {col}" if col else ""
            raise DataError(f"malformed JSON: {msg}{where}", path=display,
                            line=lineno) from None
        if needs_check(text):
            check_record(record, display, lineno)
        yield lineno, record


def _read_jsonl(path: Path, display: str) -> Table:
    rows: list[tuple[int, dict[str, Any]]] = []
    columns: dict[str, None] = {}
    with open_binary(path, display) as handle:
        for lineno, record in iter_json_lines(handle, display):
            if not isinstance(record, dict):
                hint = " (a JSON list file needs format 'json')" if isinstance(record, list) \
                    else ""
                raise DataError(f"expected a JSON object, got {value_kind(record)}{hint}",
                                path=display, line=lineno)
            if not columns.keys() >= record.keys():
                columns.update(dict.fromkeys(record))
            rows.append((lineno, record))
    return Table(display, path.stem, rows, list(columns))


def read_json_document(path: Path, display: str) -> tuple[str, Any]:
    """``(text, parsed document)`` of a whole JSON file, refusing with file and line: bytes
    that are not UTF-8 (a BOM is dropped), an empty file, malformed JSON, nesting too deep
    for the parser."""
    with open_binary(path, display) as handle:
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
    except RecursionError:
        pos = deep_position(text)
        raise parse_error(display, text.count("\n", 0, pos) + 1 if pos is not None
                          else None) from None
    return text, document


def _read_json(path: Path, display: str) -> Table:
    text, document = read_json_document(path, display)
    if isinstance(document, dict) and isinstance(document.get("items"), list):
        records = document["items"]
    elif isinstance(document, list):
        records = document
    else:
        keys = ", ".join(list(document)[:10]) if isinstance(document, dict) else ""
        got = f"an object with keys: {keys}" if keys else value_kind(document)
        raise DataError(f'a JSON file must hold a list of objects or {{"items": [...]}}; '
                        f"got {got}", path=display, line=1)
    spans = _json_element_spans(text, document is records)
    starts = [line for line, _, _ in spans]
    check = needs_check(text)
    rows: list[tuple[int, dict[str, Any]]] = []
    columns: dict[str, None] = {}
    for index, record in enumerate(records):
        line = starts[index] if index < len(starts) else 1
        if not isinstance(record, dict):
            raise DataError(f"item {index + 1} is {value_kind(record)}, expected an object",
                            path=display, line=line)
        if index < len(spans):
            _check_item_size(text, spans[index], record, display)
        if check:
            check_record(record, display, line)
        columns.update(dict.fromkeys(record))
        rows.append((line, record))
    return Table(display, path.stem, rows, list(columns))


def _check_item_size(text: str, span: tuple[int, int, int], record: dict[str, Any],
                     display: str) -> None:
    """The 1 MiB line limit of JSONL, applied to each item of a JSON list."""
    line, start, end = span
    if end - start <= MAX_LINE_BYTES // 4 or len(text[start:end].encode("utf-8")) \
            <= MAX_LINE_BYTES:
        return
    size = len(text[start:end].encode("utf-8"))
    biggest = max(record, key=lambda k: len(json.dumps(record[k], ensure_ascii=False)),
                  default=None) if isinstance(record, dict) else None
    raise DataError(f"the item is {size:,} bytes; the limit is 1 MiB ({MAX_LINE_BYTES:,} "
                    f"bytes) per item", path=display, line=line, field=biggest)


def _json_element_spans(text: str, top_level: bool) -> list[tuple[int, int, int]]:
    """Return ``(start line, start offset, end offset)`` of every item in valid JSON ``text``.

    The document already parsed, so this scanner only walks structure; it lets errors
    in a JSON file name a line like they do for JSONL.
    """
    decoder = json.JSONDecoder()
    newlines = [m.start() for m in re.finditer("\n", text)]
    ws = re.compile(r"[ \t\n\r]*")

    def skip(pos: int) -> int:
        return ws.match(text, pos).end()  # type: ignore[union-attr]

    def array_starts(pos: int) -> list[tuple[int, int, int]]:
        starts: list[tuple[int, int, int]] = []
        pos = skip(pos + 1)  # past "["
        while text[pos] != "]":
            begin = pos
            _, pos = decoder.raw_decode(text, pos)
            starts.append((bisect.bisect_right(newlines, begin - 1) + 1, begin, pos))
            pos = skip(pos)
            if text[pos] == ",":
                pos = skip(pos + 1)
        return starts

    try:
        pos = skip(0)
        if top_level:
            return array_starts(pos)
        found: list[tuple[int, int, int]] = []
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
    except (ValueError, IndexError, RecursionError):  # pragma: no cover - already parsed
        return []


def _read_delimited(path: Path, display: str, delimiter: str, info: FormatInfo) -> Table:
    rows: list[tuple[int, dict[str, Any]]] = []
    header: list[str] | None = None
    header_line: int | None = None
    width = 0
    with open_binary(path, display) as handle:
        lines = iter_lines(handle, display)
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
    return Table(display, path.stem, rows, list(header), header_line=header_line)


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


def _read_parquet(path: Path, display: str) -> Table:
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
    return Table(display, path.stem, rows, list(table.column_names), foreign=True)


def _read_hf(path: Path, display: str) -> Table:
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
    return Table(display, name, hf_rows(loaded, datasets), list(loaded.column_names),
                 foreign=True)


def hf_rows(loaded: Any, datasets: Any) -> list[tuple[int, dict[str, Any]]]:
    """``(row number, row)`` of a ``datasets.Dataset``, ClassLabel ints given as their names
    (the names are what a model answers and a user reads)."""
    label_names = {col: feat for col, feat in loaded.features.items()
                   if isinstance(feat, datasets.ClassLabel)}
    rows = []
    for index, row in enumerate(loaded, 1):
        for col, feat in label_names.items():
            value = row.get(col)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                row[col] = feat.int2str(value)
        rows.append((index, row))
    return rows


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:200] + "...") if len(text) > 200 else (text or type(exc).__name__)


def _reader_for(path: Path, info: FormatInfo) -> str:
    if info.reader is not None:
        return info.reader
    return canonical_format(path)


def read_table(path: Path, display: str, info: FormatInfo) -> Table:
    """Read every row of ``path`` with the reader ``info`` names (or the extension picks)."""
    reader = _reader_for(path, info)
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


