"""File formats and benchmark presets understood by :func:`robustify.data.load_items`.

A *format* says how to read rows from a file (``jsonl``, ``json``, ``csv``, ``tsv``,
``parquet``, ``hf``). A *preset* (``mmlu``, ``gsm8k``, ``boolq``, ``arc``, ``intent``)
adds what a well-known benchmark layout needs on top: which columns hold which item
field, the task kind, and small fix-ups such as splitting GSM8K's ``#### 42`` answer.
Both live in the registry :data:`FORMATS`, keyed by the name given to ``--format``; the
built-in ones are registered in :mod:`robustify.data.presets`, and other packages add
presets with :func:`register_format` (entry-point group ``robustify.data_formats``).

:func:`detect_format` picks a name from the file extension and a peek at the content,
so most files load without ``--format``.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from perturbations.errors import DataError
from perturbations.plugins import Registry

__all__ = [
    "FormatInfo", "FORMATS", "DEFAULT_COLUMNS", "RowError", "register_format", "format_names",
    "detect_format", "canonical_format", "HF_MARKERS",
]

HF_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
"""Files that ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` write into a folder."""

_JSONL_EXT = {".jsonl", ".ndjson", ".jsonlines"}
_CSV_EXT = {".csv"}
_TSV_EXT = {".tsv", ".tab"}
_PARQUET_EXT = {".parquet", ".pq"}
_HEAD_BYTES = 64 * 1024

DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("id", "idx", "qid", "uid", "question_id", "example_id"),
    "input": ("input", "question", "prompt", "query", "text", "utterance", "sentence"),
    "target": ("target", "answer", "answerKey", "answer_key", "label", "gold", "output"),
    "context": ("context", "passage", "paragraph"),
    "choices": ("choices", "options"),
    "task": ("task",),
}
"""Columns tried, in order, for each item field that the mapping does not name."""

_TEXT_COLUMNS = {"text", "utterance", "sentence"}
_LABEL_COLUMNS = {"label", "intent", "category"}
_QA_COLUMNS = {"input", "question", "prompt", "target", "answer", "choices", "options",
               "context", "passage"}


class RowError(Exception):
    """Raised by a preset's row hook; the loader adds the file and line."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


RowHook = Callable[[dict[str, Any]], None]
"""Mutates one row's extracted fields (keys ``target``, ``metadata`` ...) in place."""


@dataclass(frozen=True)
class FormatInfo:
    """A name accepted by ``--format``: a file format or a benchmark preset."""

    name: str
    """The name given to ``--format`` / ``format=``."""
    description: str
    """One line for ``--help`` and the docs."""
    reader: str | None
    """File format used to read rows; ``None`` means "from the file extension"."""
    preset: bool = False
    """True for benchmark presets, False for the plain file formats."""
    columns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Candidate source columns per item field, tried before :data:`DEFAULT_COLUMNS`."""
    task: str | None = None
    """Task kind every item gets (unless ``task=`` overrides it)."""
    headerless: bool = False
    """Delimited files without a header row (MMLU's CSVs)."""
    row_hook: RowHook | None = field(default=None, repr=False, compare=False)
    """Per-row fix-up run after the columns are read."""
    file_metadata: Callable[[Path], dict[str, Any]] | None = field(
        default=None, repr=False, compare=False)
    """Metadata shared by every item of a file (MMLU's subject from the file name)."""


FORMATS: Registry[FormatInfo] = Registry(
    "format", entry_point_group="robustify.data_formats", builtins=("robustify.data.presets",),
    check=lambda obj: _check_format(obj), sort=False,
    hint=" (run 'python -m robustify run --help' to list the formats)")
"""Every name accepted by ``--format``: the file formats, then the benchmark presets, then
plugins (entry-point group ``robustify.data_formats``)."""


def _check_format(obj: Any) -> None:
    if not isinstance(obj, FormatInfo):
        raise TypeError(f"a data format must be a FormatInfo, got {obj!r}")


def register_format(info: FormatInfo) -> FormatInfo:
    """Register a file format or a benchmark preset under ``info.name``.

    >>> register_format(FormatInfo("my_qa", "Our QA export.", "jsonl", preset=True,
    ...                            columns={"input": ("q",), "target": ("a",)}))  # doctest: +SKIP
    """
    return FORMATS.register(info.name)(info)


def format_names() -> list[str]:
    """Every ``--format`` name: plain file formats first, then presets."""
    names = FORMATS.names()
    return [n for n in names if not FORMATS[n].preset] + [n for n in names if FORMATS[n].preset]


def _read_head(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(_HEAD_BYTES)
    except PermissionError:
        raise DataError("cannot read the file: permission denied", path=str(path)) from None
    except OSError as exc:
        raise DataError(f"cannot read the file: {exc.strerror or exc}", path=str(path)) from None


def _head_text(head: bytes) -> str:
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    return head.decode("utf-8", errors="replace")


def _complete_lines(text: str, truncated: bool) -> list[str]:
    lines = text.splitlines()
    if truncated and lines and not text.endswith(("\n", "\r")):
        lines.pop()  # the last line was cut by the peek
    return lines


def _first_json_record(head: bytes) -> dict[str, Any] | None:
    for line in _complete_lines(_head_text(head), len(head) >= _HEAD_BYTES):
        if line.strip():
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):  # too deep: the reader names the line
                return None
            return record if isinstance(record, dict) else None
    return None


def _first_json_array_element(head: bytes) -> dict[str, Any] | None:
    text = _head_text(head).lstrip()
    if not text.startswith("["):
        return None
    decoder = json.JSONDecoder()
    pos = 1
    while pos < len(text) and text[pos].isspace():
        pos += 1
    try:
        record, _ = decoder.raw_decode(text, pos)
    except (ValueError, RecursionError):  # too deep: the reader names the line
        return None
    return record if isinstance(record, dict) else None


def _looks_like_intent(columns: list[str]) -> bool:
    names = {c.strip().lower() for c in columns}
    return bool(names & _TEXT_COLUMNS) and bool(names & _LABEL_COLUMNS) \
        and not names & _QA_COLUMNS


def _preset_for_record(record: Mapping[str, Any]) -> str | None:
    question = record.get("question")
    if isinstance(question, dict) and "stem" in question and "choices" in question:
        return "arc"
    answer = record.get("answer")
    if isinstance(question, str) and isinstance(answer, str) and "####" in answer:
        return "gsm8k"
    if isinstance(question, str) and isinstance(record.get("passage"), str) \
            and isinstance(answer, bool):
        return "boolq"
    if _looks_like_intent(list(record)):
        return "intent"
    return None


def _delimited_rows(head: bytes, delimiter: str, limit: int = 6) -> list[list[str]]:
    lines = _complete_lines(_head_text(head), len(head) >= _HEAD_BYTES)
    try:
        rows = [row for row in csv.reader(io.StringIO("\n".join(lines[: limit * 4])),
                                          delimiter=delimiter) if row]
    except csv.Error:
        return []
    return rows[:limit]


def _looks_like_mmlu(rows: list[list[str]]) -> bool:
    # Headerless, six cells, answer letter last: a header row would end in "answer".
    return bool(rows) and all(len(r) == 6 and r[-1].strip() in ("A", "B", "C", "D")
                              for r in rows)


def canonical_format(path: str | os.PathLike[str]) -> str:
    """Return the plain file format of ``path`` (never a preset name).

    Args:
        path: A file, or a folder written by ``save_to_disk``.

    Returns:
        One of ``jsonl``, ``json``, ``csv``, ``tsv``, ``parquet``, ``hf``.

    Raises:
        DataError: the path is missing, unreadable or a folder that is not a dataset.
    """
    return _detect(Path(path).expanduser(), presets=False)


def detect_format(path: str | os.PathLike[str]) -> str:
    """Guess the ``--format`` name for ``path`` from its extension and content.

    Presets are recognised by shape: an ARC-, GSM8K-, BoolQ- or text+label-shaped first
    record in JSON(L), a headerless six-column CSV whose last cell is A-D (MMLU), or a
    text+label header in CSV/TSV (intent). Otherwise the plain format is returned.

    Args:
        path: A file, or a folder written by ``save_to_disk``.

    Returns:
        A key of :data:`FORMATS`.

    Raises:
        DataError: the path is missing, unreadable or a folder that is not a dataset.
    """
    return _detect(Path(path).expanduser(), presets=True)


def _detect(path: Path, *, presets: bool) -> str:
    if path.is_dir():
        if any((path / marker).is_file() for marker in HF_MARKERS):
            return "hf"
        raise DataError("is a directory, not a data file (a Hugging Face dataset folder "
                        "holds dataset_info.json or dataset_dict.json)", path=str(path))
    if not path.exists():
        raise DataError("file not found", path=str(path))
    if not path.is_file():
        raise DataError("not a regular file (a FIFO, socket or device); robustify reads data "
                        "only from regular files", path=str(path))
    suffix = path.suffix.lower()
    head = _read_head(path)
    if suffix in _PARQUET_EXT or head.startswith(b"PAR1"):
        return "parquet"
    if suffix in _JSONL_EXT:
        fmt = "jsonl"
    elif suffix == ".json":
        fmt = "json"
    elif suffix in _CSV_EXT:
        fmt = "csv"
    elif suffix in _TSV_EXT:
        fmt = "tsv"
    else:
        fmt = _sniff_unknown(head)
    if not presets:
        return fmt
    if fmt == "jsonl":
        record = _first_json_record(head)
        return (_preset_for_record(record) if record else None) or fmt
    if fmt == "json":
        record = _first_json_array_element(head)
        return (_preset_for_record(record) if record else None) or fmt
    rows = _delimited_rows(head, "," if fmt == "csv" else "\t")
    if fmt == "csv" and _looks_like_mmlu(rows):
        return "mmlu"
    if rows and _looks_like_intent(rows[0]):
        return "intent"
    return fmt


def _sniff_unknown(head: bytes) -> str:
    text = _head_text(head).lstrip()
    if text.startswith("["):
        return "json"
    if text.startswith("{"):
        # One object per line is JSONL; an object spread over lines is a JSON document.
        first = text.splitlines()[0] if text else ""
        try:
            json.loads(first)
        except (ValueError, RecursionError):  # too deep: the reader names the line
            return "json"
        return "jsonl"
    first_line = text.splitlines()[0] if text else ""
    return "tsv" if "\t" in first_line and "," not in first_line else "csv"
