"""Files and folders: atomic writes, stale temp files, writable output folders, safe names.

A reader (or a crash) never sees half a file.

Every output the tool writes goes through here: the bytes go to a temporary file in
the destination folder, are flushed to disk, and the temporary file is renamed over the
destination (``os.replace`` is atomic on POSIX and Windows).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import re
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, TypeVar

__all__ = ["atomic_file", "write_bytes_atomic", "write_text_atomic", "write_json_atomic",
           "write_jsonl_atomic", "tee_jsonl_atomic", "sweep_temp_files", "check_writable",
           "slug", "quiet_broken_pipe"]

T = TypeVar("T")


def _read_umask() -> int:
    # os.umask can only be read by setting it; do it once, at import, before any threads.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_read_umask()


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Write ``path`` through a binary file object; it appears only if the block succeeds.

    The bytes go to ``.NAME.XXXXXXXX.tmp`` in the same folder, which is flushed to disk
    and renamed over ``path`` when the block ends normally; on an exception (or a
    generator closed early) the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
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


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_file(path) as fh:
        fh.write(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 text atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write pretty, key-sorted JSON atomically (stable bytes for the same object)."""
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True,
                                              ensure_ascii=False, default=str) + "\n")


def _json_line(row: Any) -> str:
    return row if isinstance(row, str) else json.dumps(row, ensure_ascii=False, default=str)


def tee_jsonl_atomic(path: str | os.PathLike[str], rows: Iterable[T],
                     line: Callable[[T], str] = _json_line) -> Iterator[T]:
    """Yield ``rows`` unchanged while writing ``line(row)`` for each to ``path``.

    The file appears, complete, when the rows are exhausted; a generator closed early
    (its consumer failed) leaves no file. Lines are written in chunks of a thousand, so
    memory does not grow with the file.
    """
    with atomic_file(path) as fh:
        chunk: list[str] = []
        for row in rows:
            chunk.append(line(row))
            if len(chunk) >= 1000:
                fh.write(("\n".join(chunk) + "\n").encode("utf-8"))
                chunk.clear()
            yield row
        if chunk:
            fh.write(("\n".join(chunk) + "\n").encode("utf-8"))


def write_jsonl_atomic(path: str | os.PathLike[str], rows: Iterable[Any]) -> Path:
    """Write one JSON document per line atomically; rows may be dicts or JSON strings.

    Streams: ``rows`` may be a generator of any length.
    """
    for _ in tee_jsonl_atomic(path, rows):
        pass
    return Path(path)


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


def check_writable(out_dir: str | os.PathLike[str]) -> None:
    """Fail now, before any model call, if ``out_dir`` cannot be created and written.

    Raises:
        ConfigError: a parent is a file, or the nearest existing parent is not writable.
    """
    from perturbations.errors import ConfigError

    out_dir = Path(out_dir)
    probe = out_dir
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{out_dir}: cannot create the output folder ({probe} is a file)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{out_dir}: output folder is not writable ({probe}: permission denied)")


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def slug(text: str, *, limit: int | None = 60, empty: str = "run") -> str:
    """A file-safe name: runs of other characters become ``-`` (``local:smollm2`` -> ``local-smollm2``).

    >>> slug("openai:gpt-4o@http://127.0.0.1:8080/v1")
    'openai-gpt-4o-http-127.0.0.1-8080-v1'
    """
    out = _UNSAFE.sub("-", text).strip("-")
    return (out[:limit] if limit else out) or empty


def quiet_broken_pipe() -> int:
    """After ``| head`` closed stdout: point it at /dev/null so the final flush is silent,
    and return exit code 0 (no traceback)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 0
