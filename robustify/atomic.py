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
           "slug", "quiet_broken_pipe", "TEMP_PREFIX", "check_out_folder", "is_run_folder",
           "staging_folder", "publish_folder", "remove_tree", "RUN_LOCK", "MANIFEST"]

T = TypeVar("T")

TEMP_PREFIX = ".robustify-tmp."
"""Every temporary file the tool writes starts with this; the sweep removes only these."""


def _read_umask() -> int:
    # os.umask can only be read by setting it; do it once, at import, before any threads.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_read_umask()


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Write ``path`` through a binary file object; it appears only if the block succeeds.

    The bytes go to ``.robustify-tmp.NAME.XXXXXXXX.tmp`` in the same folder, which is flushed to disk
    and renamed over ``path`` when the block ends normally; on an exception (or a
    generator closed early) the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", suffix=".tmp", dir=path.parent)
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
    ``name`` limits the sweep to one destination (``variants.jsonl``). Only names this
    module makes (:data:`TEMP_PREFIX`) are touched: a user's own ``.notes.x.tmp`` stays.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for tmp in folder.glob(f"{TEMP_PREFIX}{name}.*.tmp"):
        if tmp.is_dir() and not tmp.is_symlink() and tmp.name.startswith(
                f"{TEMP_PREFIX}staging."):
            remove_tree(tmp)  # a staging folder a killed run left
            removed += 1
            continue
        if not tmp.is_file() or tmp.is_symlink():
            continue
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


RUN_LOCK = ".robustify.lock"
"""The lock file of a run folder (held while a run or ``report`` writes it)."""
MANIFEST = "manifest.json"
"""Written last: a run folder without it is incomplete."""

_SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32",
                 "/proc", "/run", "/sbin", "/sys", "/usr")
"""Never written to, nor anything below them."""
_SYSTEM_FOLDERS = ("/", "/home", "/media", "/mnt", "/opt", "/root", "/srv", "/tmp", "/var",
                   "/var/tmp", "/Users", "/System", "/Library", "/Applications")
"""Never used as a run folder themselves (a folder below them is fine)."""


def is_run_folder(folder: str | os.PathLike[str]) -> bool:
    """True when ``folder`` holds a robustify run (its manifest, or the lock a run left)."""
    folder = Path(folder)
    if (folder / RUN_LOCK).is_file():
        return True
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return False
    try:
        with manifest.open("rb") as fh:
            head = fh.read(1 << 20)
        data = json.loads(head.decode("utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "robustify_version" in data


def check_out_folder(out_dir: str | os.PathLike[str], *, force: bool = False,
                     flag: str = "--out") -> None:
    """Refuse a run folder that would overwrite what is not ours; create nothing.

    Refused: ``/``, the home folder, system paths (``/usr``, ``/etc``, ...), and an existing,
    non-empty folder that is not a robustify run (no run manifest) unless ``force``.

    Raises:
        ConfigError: one line naming the folder and what to do instead.
    """
    from perturbations.errors import ConfigError

    shown = os.fspath(out_dir)
    path = Path(os.path.abspath(os.path.expanduser(shown)))
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        resolved = path
    home = Path.home().resolve() if Path.home().is_dir() else Path.home()
    for candidate in {path, resolved}:
        text = str(candidate)
        if candidate == home or text in _SYSTEM_FOLDERS:
            raise ConfigError(f"{flag} {shown}: refusing to write a run into {text} (the "
                              f"home folder, / or a system folder); name a new folder below it")
        for tree in _SYSTEM_TREES:
            if text == tree or text.startswith(tree + "/"):
                raise ConfigError(f"{flag} {shown}: refusing to write into the system folder "
                                  f"{tree}; choose a folder of your own")
    if path.is_dir() and not force:
        try:
            empty = next(path.iterdir(), None) is None
        except OSError:
            empty = True  # unreadable: check_writable reports it
        if not empty and not is_run_folder(path):
            raise ConfigError(f"{flag} {shown}: the folder exists and is not a robustify run "
                              f"(no run manifest.json); its files could be overwritten: choose "
                              f"a new folder, or pass --force to write into it anyway")


def staging_folder(out_dir: str | os.PathLike[str]) -> Path:
    """A new, empty staging folder inside ``out_dir`` (swept like a temp file if left)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}staging.", suffix=".tmp", dir=out_dir))


_PUBLISH_LAST = ("report.md", "report.html", MANIFEST)


def publish_folder(staging: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> None:
    """Move every file of ``staging`` into ``out_dir`` (renames only), then remove it.

    The old manifest goes first and the new one comes last, so a folder killed half way
    has no manifest (``report`` refuses it, a rerun finishes it); the data files move
    before the report, so a report never appears without its results. If a rename fails,
    the files already moved are removed again and the error is raised.
    """
    staging, out_dir = Path(staging), Path(out_dir)
    files = sorted((p for p in staging.rglob("*") if p.is_file()),
                   key=lambda p: (p.name in _PUBLISH_LAST and _PUBLISH_LAST.index(p.name) + 1,
                                  str(p.relative_to(staging))))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(out_dir / MANIFEST)
    moved: list[Path] = []
    try:
        for src in files:
            dst = out_dir / src.relative_to(staging)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            moved.append(dst)
    except OSError:
        for dst in moved:  # a rename failed half way: take back what was published
            with contextlib.suppress(OSError):
                os.unlink(dst)
        for folder in sorted({d.parent for d in moved} - {out_dir}, reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty (a charts folder made just now)
        raise
    finally:
        remove_tree(staging)


def remove_tree(folder: str | os.PathLike[str]) -> None:
    """Remove a staging folder and what is left in it (missing is fine)."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


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
