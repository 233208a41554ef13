"""Checks a job passes before its first model call: the prompt templates and the cache file.

Whatever could fail after the model calls is tried here first, on every item, so a bad
template costs no call: it is refused with one line naming the template file, the item,
and the item's file and line.
"""

from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Any, Mapping, Sequence

from perturbations import Item
from perturbations.errors import ConfigError, RobustifyError

from robustify.pipeline.jobfile import JobConfig

__all__ = ["check_templates", "check_cache_path", "check_template_file", "item_line"]

_TEXT_FIELDS = ("system", "user")
"""Template fields formatted with the (perturbed) item's text."""


def check_templates(job: JobConfig, items: Sequence[Item],
                    templates: Mapping[str, Any] | None) -> None:
    """Render every item's prompt once, then refuse fields that index or look up values.

    A field such as ``{input[40]}`` may work on every clean item and fail on a shorter
    variant half way through the run, so only plain names (``{input}``) are accepted.

    Raises:
        ConfigError: ``TEMPLATES: item 'ID' (FILE line N): ...`` for the first item whose
            prompt cannot be built, or the template field that is not a plain name.
    """
    from robustify.prompts import build_messages

    where = f"{job.templates}: " if job.templates else ""
    for item in items:
        try:
            build_messages(item, templates)
        except RobustifyError as exc:
            raise ConfigError(f"{where}item {item.id!r}{_line_note(job, item)}: {exc}") \
                from None
        except (KeyError, IndexError, AttributeError, ValueError, TypeError) as exc:
            raise ConfigError(f"{where}item {item.id!r}{_line_note(job, item)}: the prompt "
                              f"template cannot be filled in ({type(exc).__name__}: {exc})") \
                from None
    for kind, template in (templates or {}).items():
        for name in _TEXT_FIELDS:
            text = getattr(template, name, None)
            if not isinstance(text, str):
                continue
            for _, field, _, _ in string.Formatter().parse(text):
                if field and any(c in field for c in "[."):
                    raise ConfigError(f"{where}{kind}.{name}: field {{{field}}} indexes or "
                                      f"looks up a value; a perturbed item may not have it: "
                                      f"use plain names such as {{input}}")


def check_template_file(path: str) -> None:
    """Refuse a templates file with YAML anchors/aliases or nesting too deep to parse,
    before the prompt module reads it (the same rules as a job file).

    Raises:
        ConfigError: ``FILE: line N: ...``.
    """
    from robustify.data.values import deep_position
    from robustify.pipeline.jobfile import MAX_YAML_DEPTH, safe_yaml_load

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return  # the prompt module reports unreadable files with its own line
    if Path(path).suffix.lower() == ".json":
        pos = deep_position(text, MAX_YAML_DEPTH)
        if pos is not None:
            raise ConfigError(f"{path}: line {text.count(chr(10), 0, pos) + 1}: nested more "
                              f"than {MAX_YAML_DEPTH} levels deep")
        return
    safe_yaml_load(text, path)


def _line_note(job: JobConfig, item: Item) -> str:
    found = item_line(job, item)
    return f" ({found[0]} line {found[1]})" if found else ""


def item_line(job: JobConfig, item: Item) -> tuple[str, int] | None:
    """The data file and line an item was read from (looked up again; ``None`` if unknown).

    Only used on an error path: the file is read a second time.
    """
    from robustify.data.formats import FORMATS, detect_format
    from robustify.data.readers import read_table
    from robustify.data.rows import parse_mapping, table_to_items

    for source in job.data:
        if source.path == "sample":
            continue
        prefix = f"{source.name or Path(source.path).stem}/" if len(job.data) > 1 else ""
        if prefix and not item.id.startswith(prefix):
            continue
        try:
            path = Path(source.path)
            info = FORMATS[source.format] if source.format else FORMATS[detect_format(path)]
            table = read_table(path, source.path, info)
            built = table_to_items(table, info, parse_mapping(source.map) if source.map else {}, source.task)
        except (RobustifyError, KeyError, OSError):
            continue
        wanted = item.id[len(prefix):]
        for (line, _), loaded in zip(table.rows, built):
            if loaded.id == wanted:
                return source.path, line
    return None


def check_cache_path(path: Path) -> None:
    """The response cache must be a regular file (or not exist yet) in a writable folder.

    Raises:
        ConfigError: the path is a folder or a special file, or its folder cannot be made.
    """
    if path.is_dir():
        raise ConfigError(f"--cache {path}: is a folder; name a file such as "
                          f"{path / 'responses.sqlite'}")
    if path.exists() and not path.is_file():
        raise ConfigError(f"--cache {path}: not a regular file")
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise ConfigError(f"--cache {path}: not writable (permission denied)")
    if path.is_file() and path.stat().st_size:
        with path.open("rb") as fh:
            head = fh.read(16)
        if head != b"SQLite format 3\x00":
            raise ConfigError(f"--cache {path}: not a usable response cache (not an SQLite "
                              f"file); name a new file or delete this one")
    probe = path.parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"--cache {path}: cannot create the cache's folder ({probe} is a file)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"--cache {path}: the cache's folder is not writable ({probe}: "
                          f"permission denied)")
