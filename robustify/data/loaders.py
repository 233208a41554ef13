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

import difflib
import gc
import hashlib
import logging
import os
from collections import Counter
from contextlib import ExitStack
from importlib import resources
from pathlib import Path
from typing import Mapping

from perturbations.errors import (
    ConfigError, DataError, UnknownNameError,
)
from perturbations.records import Item

from robustify.data.formats import (FORMATS, FormatInfo, canonical_format, detect_format,
                                   format_names)
from robustify.data.readers import MAX_LINE_BYTES, read_table
from robustify.data.selection import (HUB_PREFIX, hub_hint, hub_table, looks_like_hub_name,
                                      needs_selection, positional_defaults, read_selected,
                                      split_selection)

__all__ = ["load_items", "parse_mapping", "choose_items", "FORMATS", "FormatInfo",
           "detect_format", "MAX_LINE_BYTES", "ITEM_FIELDS", "SAMPLE"]

log = logging.getLogger(__name__)



SAMPLE = "sample"
"""The source name of the built-in benchmark (``robustify/data/sample.jsonl``)."""



from robustify.data.rows import (ITEM_FIELDS, RowProblem, check_mapping, parse_mapping,
                                 table_to_items, task_value)


# --------------------------------------------------------------------------- entry point

def _sample_key(seed: int, item_id: str) -> bytes:
    # A per-item hash (not random.sample) so the choice is independent of PYTHONHASHSEED
    # and of file order, and a larger limit keeps every item a smaller one chose.
    return hashlib.sha256(f"{seed}\x1f{item_id}".encode("utf-8")).digest()


def choose_items(items: list[Item], limit: int, seed: int) -> list[Item]:
    """The seeded sample ``--limit`` keeps: a per-item hash, in the items' order."""
    if limit >= len(items):
        return items
    ranked = sorted(range(len(items)), key=lambda i: _sample_key(seed, items[i].id))
    chosen = sorted(ranked[:limit])
    return [items[i] for i in chosen]


def _resolve_format(name: str) -> FormatInfo:
    key = name.strip().lower()
    if key in FORMATS:
        return FORMATS[key]
    close = difflib.get_close_matches(key, format_names(), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownNameError(f"unknown format {name!r}{hint} (known: {', '.join(format_names())})")


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
            ``task`` column and the inference. With ``"open"`` the target is optional,
            a plain-text file (``.txt``, ``.log``, format ``lines``) is read as one
            message per line (ids ``<file stem>-000001`` ...), and ``answer=COLUMN`` in
            the mapping names production answers (:func:`open_items`).

    Returns:
        The items in file order.

    Raises:
        DataError: the file is missing, unreadable or malformed, or a row is invalid.
        ConfigError: ``format``, ``mapping``, ``limit`` or ``task`` is invalid
            (:class:`UnknownNameError` for unknown names, with suggestions).
        MissingDependencyError: Parquet without pyarrow, ``hf`` without datasets.
    """
    user_mapping, items_key = _mapping_and_selection(mapping)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit <= 0):
        raise ConfigError(f"limit must be a positive integer, got {limit!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    if task is not None:
        try:
            task = task_value(task)
        except RowProblem as exc:
            raise UnknownNameError(exc.message) from None

    with ExitStack() as stack:
        if isinstance(source, str) and source.startswith(HUB_PREFIX):
            info = _resolve_format(format) if format and format.strip().lower() not in (
                "auto", "hf") else FORMATS["hf"]
            table = hub_table(source)
            items = table_to_items(table, info, positional_defaults(table, user_mapping),
                                   task)
            return _finish(items, limit, seed, source, info)
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
                if looks_like_hub_name(display):
                    hint = f"; {display} looks like a Hugging Face Hub name: {hub_hint(display)}"
                raise DataError(f"file not found{hint}", path=display)

        if task == "open" and _is_lines(path, format):
            return _open_lines(path, display, user_mapping, items_key, limit, seed)
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
            table = _read(path, display, info, user_mapping, items_key)
            items = table_to_items(table, info, positional_defaults(table, user_mapping), task)
        finally:
            if gc_was_enabled:
                gc.enable()
    return _finish(items, limit, seed, display, info)


def _is_lines(path: Path, format: str | None) -> bool:
    from robustify.data.messages import TEXT_SUFFIXES

    name = (format or "auto").strip().lower()
    return name == "lines" or (name == "auto" and path.is_file()
                               and path.suffix.lower() in TEXT_SUFFIXES)


def _open_lines(path: Path, display: str, mapping: dict[str, str], items_key: str | None,
                limit: int | None, seed: int) -> list[Item]:
    """Real traffic in a text file: one ``open`` item (no gold) per non-blank line."""
    from robustify.data.messages import read_messages

    if mapping or items_key:
        field = next(iter(mapping), "items")
        raise DataError("a text file has one message per line and no columns; --map "
                        "applies to CSV, JSONL and other tables", path=display, field=field)
    messages = read_messages(path, format="lines")
    width = max(6, len(str(len(messages))))
    stem = "_".join(path.stem.split()) or "message"
    items = [Item(id=f"{stem}-{n:0{width}d}", input=text, target="", task="open")
             for n, text in enumerate(messages, 1)]
    total = len(items)
    if limit is not None:
        items = choose_items(items, limit, seed)
    log.info("loaded %d of %d messages from %s (one per line; task open, no gold)",
             len(items), total, display)
    return items


def _mapping_and_selection(mapping: Mapping[str, str] | str | None
                           ) -> tuple[dict[str, str], str | None]:
    """The field mapping and ``items`` (the key path of a JSON document's row list)."""
    if mapping is None:
        return {}, None
    if isinstance(mapping, str):
        kept, items_key = [], None
        for part in mapping.split(","):
            key, sep, value = part.partition("=")
            if sep and key.strip() == "items":
                if items_key is not None:
                    raise ConfigError("mapping names field 'items' twice")
                if not value.strip():
                    raise ConfigError("mapping entry 'items=' needs a key, e.g. items=val")
                items_key = value.strip()
            else:
                kept.append(part)
        return parse_mapping(",".join(kept)), items_key
    if isinstance(mapping, Mapping):
        rest, items_key = split_selection(dict(mapping))
        return check_mapping(rest), items_key
    raise ConfigError(f"mapping must be a dict or a string like 'input=question', got "
                      f"{type(mapping).__name__}")


def _read(path: Path, display: str, info: FormatInfo, mapping: dict[str, str],
          items_key: str | None):
    """Rows of the file: the plain readers, or a key/list-row selection for JSON(L)."""
    reader = info.reader or canonical_format(path)
    if reader in ("json", "jsonl") and needs_selection(mapping, items_key):
        return read_selected(path, display, reader, items_key)
    if items_key is not None:
        raise DataError(f"items={items_key} selects a list inside a JSON document; this is "
                        f"a {reader} file", path=display, field="items")
    try:
        return read_table(path, display, info)
    except DataError as exc:
        text = str(exc)
        if reader in ("json", "jsonl") and ("is a list, expected an object" in text
                                            or "got a list (a JSON list" in text):
            return read_selected(path, display, reader, None)  # [text, label] rows
        if reader == "json" and "a JSON file must hold a list" in text:
            raise DataError(f"{text}; select the list with --map items=KEY") from None
        raise


def _finish(items: list[Item], limit: int | None, seed: int, display: str,
            info: FormatInfo) -> list[Item]:
    total = len(items)
    if limit is not None:
        items = choose_items(items, limit, seed)
    tasks = Counter(item.task for item in items)
    log.info("loaded %d of %d items from %s (format %s; %s)", len(items), total, display,
             info.name, ", ".join(f"{k} {v}" for k, v in sorted(tasks.items())))
    return items
