"""Atomic file writes: a reader (or a crash) never sees half a file.

Every output the tool writes goes through here: the bytes go to a temporary file in
the destination folder, are flushed to disk, and the temporary file is renamed over the
destination (``os.replace`` is atomic on POSIX and Windows).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

__all__ = ["write_bytes_atomic", "write_text_atomic", "write_json_atomic", "write_jsonl_atomic",
           "sweep_temp_files"]


def _read_umask() -> int:
    # os.umask can only be read by setting it; do it once, at import, before any threads.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_read_umask()


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates 0600 files; give the result the mode a plain open() would
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 text atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write pretty, key-sorted JSON atomically (stable bytes for the same object)."""
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True,
                                              ensure_ascii=False, default=str) + "\n")


def write_jsonl_atomic(path: str | os.PathLike[str], rows: Iterable[Any]) -> Path:
    """Write one JSON document per line atomically; rows may be dicts or JSON strings."""
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False, default=str)
             for r in rows]
    return write_text_atomic(path, "".join(line + "\n" for line in lines))


def sweep_temp_files(folder: str | os.PathLike[str], name: str = "*") -> int:
    """Delete temporary files a killed writer left in ``folder``; return how many.

    Only call this while holding the folder's lock: a live writer's temp file looks the same.
    ``name`` limits the sweep to one destination (``variants.jsonl``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for tmp in folder.glob(f".{name}.*.tmp"):
        try:
            tmp.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed
