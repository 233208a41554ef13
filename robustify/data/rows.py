"""Rows -> items: the column mapping, its plan for one table, and each row's validation.

A mapping (``input=question,target=answer,meta.subject=topic``) names the source column
of each item field; unnamed fields fall back to the format's columns and then to
:data:`~robustify.data.formats.DEFAULT_COLUMNS`. Every row is checked (text, target,
options, task kind) and every problem is a :class:`DataError` naming the file, the line
and the field.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from perturbations.errors import ConfigError, DataError, UnknownNameError
from perturbations.records import TASK_KINDS, Item, choice_letter

from robustify.data.formats import DEFAULT_COLUMNS, FormatInfo, RowError
from robustify.data.readers import Table, value_kind

__all__ = ["parse_mapping", "check_mapping", "table_to_items", "task_value", "RowProblem",
           "ITEM_FIELDS"]

log = logging.getLogger(__name__)

ITEM_FIELDS = ("id", "input", "target", "context", "choices", "task")
"""Item fields a mapping may name; metadata keys are written ``meta.<key>``."""

ANSWER_FIELD = "answer"
"""Mapping key of production answers (``--map answer=COLUMN``, ``--task open`` only): kept
as ``metadata["production_answer"]`` and used as the clean answer instead of asking."""

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
    return check_mapping(result)


def check_mapping(mapping: Mapping[str, str]) -> dict[str, str]:
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
        elif key not in ITEM_FIELDS and key != ANSWER_FIELD:
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
    answer: str | None = None
    """Column of production answers (``open`` items only)."""


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


def _plan(table: Table, info: FormatInfo, mapping: dict[str, str],
          open_task: bool = False) -> _Plan:
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
    for key in ("input",) if open_task else ("input", "target"):  # open: target optional
        if key not in resolved:
            tried = (*info.columns.get(key, ()), *DEFAULT_COLUMNS[key])
            example = table.columns[0] if table.columns else "COLUMN"
            raise DataError(f"no {key} column (looked for {', '.join(dict.fromkeys(tried))}); "
                            f"columns are: {_columns_text(table.columns)}; map one, e.g. "
                            f"--map {key}={example}", field=key, **where)
    meta = {key[5:]: column for key, column in mapping.items() if key.startswith("meta.")}
    roots.add("metadata")  # canonical rows carry their metadata as one object
    return _Plan(
        id=resolved.get("id"), input=resolved["input"], target=resolved.get("target"),
        answer=resolved.get(ANSWER_FIELD),
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

class RowProblem(Exception):
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
    raise RowProblem(key, f"{key}{note} must be text, got {value_kind(value)}")


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
            raise RowProblem("target", f"target{note} is empty")
        return stripped
    raise RowProblem("target", f"target{note} must be text, a number or true/false, "
                                f"got {value_kind(value)}")


def _choices_value(value: Any, note: str) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    """Return (option texts, option labels or None) from any supported choices shape."""
    labels: list[str] | None = None
    if isinstance(value, str):
        text = value.strip()
        if not text.startswith("["):
            raise RowProblem("choices", f"choices{note} must be a list (or a JSON-encoded "
                                         f"list in a CSV cell), got text")
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise RowProblem("choices", f"choices{note} is not a valid JSON list "
                                         f"({getattr(exc, 'msg', exc)})") from None
    if isinstance(value, dict) and "text" in value:
        # Hugging Face ARC layout: {"text": [...], "label": [...]}
        texts, found = value["text"], value.get("label")
        if found is not None:
            if not isinstance(found, (list, tuple)) or len(found) != len(texts):
                raise RowProblem("choices", f"choices{note}: 'label' must list one label "
                                             f"per option")
            labels = [str(x).strip() for x in found]
        value = texts
    if not isinstance(value, (list, tuple)):
        raise RowProblem("choices", f"choices{note} must be a list, got {value_kind(value)}")
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
            raise RowProblem("choices", f"choices{note}: option {position} must be text, "
                                         f"got {value_kind(option)}")
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
            raise RowProblem("choices", f"choices: option column {column!r} is empty")
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
    raise RowProblem("target", f"target {str(target)!r}{note} is not among the choices "
                                f"(expected a letter A-{last}, a 0-based index or an "
                                f"option's text)")


def task_value(value: Any) -> str | None:
    if _is_blank(value):
        return None
    if not isinstance(value, str):
        raise RowProblem("task", f"task must be text, got {value_kind(value)}")
    name = value.strip().lower().replace("-", "_").replace(" ", "_")
    if not name:
        return None
    if name not in TASK_KINDS:
        close = difflib.get_close_matches(name, TASK_KINDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise RowProblem("task", f"unknown task kind {value!r}{hint} (expected one of "
                                  f"{', '.join(TASK_KINDS)})")
    return name


def _build_row(row: Mapping[str, Any], plan: _Plan, info: FormatInfo, table: Table,
               task_arg: str | None, file_meta: Mapping[str, Any]) -> dict[str, Any]:
    """Turn one source row into Item keyword arguments (``id`` may still be None)."""
    fields: dict[str, Any] = {}

    if plan.id is not None:
        value = _get(row, plan.id)
        note = plan.notes["id"]
        if value is _MISSING:
            raise RowProblem("id", f"this row has no {plan.id!r} column (other rows do)")
        if _is_blank(value) or (isinstance(value, str) and not value.strip()):
            raise RowProblem("id", f"id{note} is empty")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise RowProblem("id", f"id{note} must be text or a number, got {value_kind(value)}")
        fields["id"] = value.strip() if isinstance(value, str) else _number_text(value)
    else:
        fields["id"] = None

    value = _get(row, plan.input)
    note = plan.notes["input"]
    if value is _MISSING:
        raise RowProblem("input", f"this row has no {plan.input!r} column; its columns "
                                   f"are: {_columns_text(list(row))}")
    if _is_blank(value):
        raise RowProblem("input", f"the question{note} is empty")
    fields["input"] = _text_value(value, "input", note)
    if not fields["input"].strip():
        raise RowProblem("input", f"the question{note} is empty")

    value = _get(row, plan.target) if plan.target is not None else None
    target_note = plan.notes.get("target", "")
    if value is _MISSING and task_arg != "open":
        raise RowProblem("target", f"this row has no {plan.target!r} column; its columns "
                                    f"are: {_columns_text(list(row))}")
    if _is_blank(value) or (task_arg == "open" and isinstance(value, str) and not value.strip()):
        if task_arg != "open":
            raise RowProblem("target", f"target{target_note} is empty")
        value = ""  # an open item without a gold answer
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
            raise RowProblem("metadata", f"metadata must be an object, got "
                                          f"{value_kind(row['metadata'])}")
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
            raise RowProblem(exc.field, exc.message) from None

    task = task_arg
    if task is None and plan.task is not None:
        task = task_value(_get(row, plan.task))
    if task is None:
        task = info.task
    if plan.answer is not None:
        _production_answer(row, plan, task, metadata)
    target = "" if task == "open" and fields["target"] == "" else \
        _target_value(fields["target"], target_note)

    if options is not None and (task is None or task == "multiple_choice"):
        task = "multiple_choice"
    if task == "multiple_choice":
        if options is None:
            raise RowProblem("choices", "a multiple-choice item needs choices"
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
                raise RowProblem("target", f"target {text!r}{target_note} is not yes/no "
                                            f"(or true/false)")
            text = _YES_NO[text.lower()]
        elif task == "numeric":
            if not _NUMBER.fullmatch(text):
                raise RowProblem("target", f"target {text!r}{target_note} is not a number")
            text = text.replace(",", "")
        target = text

    fields["target"] = target
    fields["task"] = task
    fields["choices"] = options
    return fields


def _production_answer(row: Mapping[str, Any], plan: _Plan, task: str | None,
                       metadata: dict[str, Any]) -> None:
    """Keep the row's production answer (``--map answer=COLUMN``) in its metadata."""
    if task != "open":
        raise RowProblem(ANSWER_FIELD, "production answers (answer=COLUMN) need --task open")
    value = _get(row, plan.answer or "")
    if _is_blank(value) or (isinstance(value, str) and not value.strip()):
        return  # no production answer for this row: its clean item is asked
    note = plan.notes.get(ANSWER_FIELD, "")
    metadata["production_answer"] = _text_value(value, ANSWER_FIELD, note, allow_numbers=True)


def _rewrap(exc: DataError) -> str:
    message = str(exc)
    if exc.field is not None:
        prefix = f"field {exc.field!r}: "
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def table_to_items(table: Table, info: FormatInfo, mapping: dict[str, str],
              task_arg: str | None) -> list[Item]:
    if not table.rows:
        what = "has a header but no rows" if table.header_line else "has no items"
        raise DataError(f"the file {what}", path=table.display)
    plan = _plan(table, info, mapping, open_task=task_arg == "open")
    file_meta = info.file_metadata(Path(table.display)) if info.file_metadata else {}
    built: list[tuple[int, dict[str, Any]]] = []
    for line, row in table.rows:
        try:
            built.append((line, _build_row(row, plan, info, table, task_arg, file_meta)))
        except RowProblem as exc:
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


