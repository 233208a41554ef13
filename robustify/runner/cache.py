"""The response cache: one SQLite file of model answers keyed by prompt and model identity.

Re-running a finished or interrupted job asks no question twice. Design points:

* **Key**: sha256 of the canonical JSON of the backend identity (kind, model, base URL,
  generation parameters; never an API key) and the messages. Only the key, the answer
  text, token counts, the finish reason and whether the answer was cut to the answer-size
  cap are stored, so the file holds no prompt and no secret (backends replace a key their
  server echoes with ``[redacted key]`` before an answer reaches the cache). Older files
  gain the newer columns in place when opened; their answers read back with
  ``finish_reason=None`` and not capped.
* **Concurrency**: WAL mode (readers never block the writer), a busy timeout, and one
  writer thread per cache object. Several threads may call :meth:`ResponseCache.put`
  at once, and two processes may share the file: SQLite serialises their commits.
  The WAL switch at creation happens under a file lock, because two processes
  creating the file together could otherwise see ``database is locked``.
* **Durability**: ``put`` hands the row to the writer thread, which commits whatever
  has queued up in one transaction (group commit: answers that arrive while a commit
  runs share the next one). :meth:`ResponseCache.aput`, which the runner uses, returns
  only once its row is committed (inline when the file is free, through the writer
  thread when another connection holds the lock), so an answer counts as done only once
  it is in the file and a killed process (even SIGKILL) loses only calls still in
  flight, at most the concurrency of each model. :meth:`ResponseCache.flush` and
  :meth:`ResponseCache.close` (and interpreter exit) drain the queue.
  ``synchronous=NORMAL``: a commit survives a process kill; only a power cut can lose
  the last transactions.
* Errors are never cached: the runner only ``put`` s successful completions.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import json
import logging
import os
import queue
import sqlite3
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from filelock import FileLock

from perturbations.errors import ConfigError

from robustify.records import Completion

__all__ = ["default_cache_path", "open_cache", "ResponseCache", "cache_key", "canonical_json", "KeyMaker", "SCHEMA_VERSION"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
"""Version of the table layout, stored in the file (2 added ``capped`` and ``finish_reason``)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    tokens_in INTEGER,
    tokens_out INTEGER,
    created REAL NOT NULL,
    capped INTEGER NOT NULL DEFAULT 0,
    finish_reason TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_ADDED_COLUMNS = {"capped": "INTEGER NOT NULL DEFAULT 0", "finish_reason": "TEXT"}
"""Columns newer than schema 1, added in place to an older file when it is opened."""

_INSERT = ("INSERT OR REPLACE INTO responses (key, text, tokens_in, tokens_out, created, capped, "
           "finish_reason) VALUES (?, ?, ?, ?, ?, ?, ?)")

_STOP = object()


_OPEN_CACHES: "weakref.WeakSet[ResponseCache]" = weakref.WeakSet()


def _flush_open_caches() -> None:
    for cache in list(_OPEN_CACHES):
        try:
            cache.close()
        except Exception as exc:  # exit must go on
            logger.warning("flushing the response cache at exit failed: %s", exc)


atexit.register(_flush_open_caches)


def canonical_json(obj: Any) -> bytes:
    """Sorted-key, whitespace-free UTF-8 JSON: equal data gives equal bytes everywhere."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=str).encode("utf-8")


def cache_key(identity: Mapping[str, Any], messages: Sequence[Mapping[str, Any]]) -> str:
    """sha256 hex digest of the canonical JSON of ``{"identity": ..., "messages": ...}``.

    Equal inputs give equal keys in any process, on any machine.
    """
    return hashlib.sha256(canonical_json({"identity": identity, "messages": messages})).hexdigest()


class KeyMaker:
    """Computes :func:`cache_key` for one identity from pre-serialised messages.

    The runner serialises each prompt once and keys it for every backend: the canonical
    JSON of ``{"identity": I, "messages": M}`` is exactly ``{"identity":<I>,"messages":<M>}``
    (sorted keys), so the identity prefix is hashed once and copied per prompt.
    """

    __slots__ = ("_prefix",)

    def __init__(self, identity: Mapping[str, Any]) -> None:
        self._prefix = hashlib.sha256(b'{"identity":' + canonical_json(identity) + b',"messages":')

    def __call__(self, messages_json: bytes) -> str:
        """Key for messages already passed through :func:`canonical_json`."""
        digest = self._prefix.copy()
        digest.update(messages_json)
        digest.update(b"}")
        return digest.hexdigest()

    def digest(self, messages_json: bytes) -> bytes:
        """The same key as 32 raw bytes (``.hex()`` gives the key).

        The runner holds one key per distinct prompt for the whole run; a 65-byte
        ``bytes`` instead of a 113-byte ``str`` matters at millions of prompts.
        """
        digest = self._prefix.copy()
        digest.update(messages_json)
        digest.update(b"}")
        return digest.digest()


class _Flush:
    """Marker put on the write queue; set once everything queued before it is committed."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class _Waiter:
    """An :meth:`ResponseCache.aput` waiting for its commit: a future and its loop."""

    __slots__ = ("loop", "future")

    def __init__(self, loop: asyncio.AbstractEventLoop, future: "asyncio.Future[bool]") -> None:
        self.loop = loop
        self.future = future


def _resolve(futures: list["asyncio.Future[bool]"], ok: bool) -> None:
    for future in futures:
        if not future.done():  # cancelled meanwhile
            future.set_result(ok)


def _notify(callbacks: list[Any], ok: bool) -> None:
    """Tell the waiters of one commit: one wake-up per event loop, then plain callbacks."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[bool]]] = {}
    for callback in callbacks:
        if isinstance(callback, _Waiter):
            by_loop.setdefault(callback.loop, []).append(callback.future)
            continue
        try:
            callback(ok)
        except Exception as exc:  # a callback never stops the writer
            logger.debug("cache commit callback failed: %s", exc)
    for loop, futures in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, futures, ok)
        except RuntimeError:  # the loop closed meanwhile; nobody is waiting
            pass


class ResponseCache:
    """SQLite response cache, safe across threads and processes.

    Args:
        path: The SQLite file (created with its parent folders if missing).
        busy_timeout: Seconds a statement waits for another writer's lock.
        batch_interval: Seconds the writer waits after the first queued answer so that
            more answers share one commit (default 0: commit at once; answers that
            arrive during a commit still share the next one). A wait delays every
            :meth:`aput`, so it only pays off for bulk :meth:`put` from many threads.
        write_retries: Commit attempts for a batch before it is dropped with a warning
            (the answers are then simply asked again next run).

    Raises:
        ConfigError: The file exists but is not a robustify cache.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0,
                 batch_interval: float = 0.0, write_retries: int = 5) -> None:
        self.path = Path(path).expanduser()
        self.busy_timeout = float(busy_timeout)
        self.batch_interval = max(0.0, float(batch_interval))
        self.write_retries = max(1, int(write_retries))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._pending: dict[str, Completion] = {}
        self._pending_lock = threading.Lock()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        # Set by flush()/close() to cut the writer's batch wait short: a run's final
        # flush need not wait out the batch interval. put() never touches it.
        self._wake = threading.Event()
        self._closed = False
        self.hits = 0
        """Successful :meth:`get` lookups in this process."""
        self.misses = 0
        """Failed :meth:`get` lookups in this process."""
        self.writes = 0
        """Rows committed by this object."""
        self.dropped = 0
        """Rows given up after repeated commit failures."""
        self._init_file()
        _OPEN_CACHES.add(self)

    # ----------------------------------------------------------------- keys
    key = staticmethod(cache_key)

    # ----------------------------------------------------------- connections
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), timeout=self.busy_timeout,
                               isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        conn.execute("PRAGMA synchronous = NORMAL")
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise ConfigError(f"response cache {self.path} is closed")
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _init_file(self) -> None:
        lock = FileLock(str(self.path) + ".lock", timeout=self.busy_timeout)
        try:
            with lock:
                conn = self._connect()
                conn.execute("PRAGMA journal_mode = WAL")
                conn.executescript(_SCHEMA)
                row = conn.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
                if row is not None and int(row[0]) > SCHEMA_VERSION:
                    raise ConfigError(f"response cache {self.path} was written by a newer "
                                      f"robustify (schema {row[0]}); use another cache file")
                have = {r[1] for r in conn.execute("PRAGMA table_info(responses)")}
                for name, decl in _ADDED_COLUMNS.items():
                    if name not in have:
                        conn.execute(f"ALTER TABLE responses ADD COLUMN {name} {decl}")
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)",
                             (str(SCHEMA_VERSION),))
                self._local.conn = conn
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path} is not a usable response cache ({exc})") from None

    # --------------------------------------------------------------- reading
    def get(self, key: str) -> Completion | None:
        """The cached completion for ``key``, or ``None``."""
        with self._pending_lock:
            pending = self._pending.get(key)
        if pending is not None:
            self.hits += 1
            return pending
        row = self._reader().execute(
            "SELECT text, tokens_in, tokens_out, capped, finish_reason FROM responses "
            "WHERE key = ?",
            (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return Completion(text=row[0], tokens_in=row[1], tokens_out=row[2], capped=bool(row[3]),
                          finish_reason=row[4])

    def get_many(self, keys: Iterable[str], *, chunk: int = 500) -> dict[str, Completion]:
        """Look many keys up at once; returns only the hits. Faster than repeated :meth:`get`."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Completion] = {}
        with self._pending_lock:
            for k in wanted:
                if k in self._pending:
                    found[k] = self._pending[k]
        rest = [k for k in wanted if k not in found]
        conn = self._reader()
        for start in range(0, len(rest), chunk):
            part = rest[start:start + chunk]
            marks = ",".join("?" * len(part))
            for key, text, t_in, t_out, capped, finish in conn.execute(
                    f"SELECT key, text, tokens_in, tokens_out, capped, finish_reason "
                    f"FROM responses WHERE key IN ({marks})", part):
                found[key] = Completion(text=text, tokens_in=t_in, tokens_out=t_out,
                                        capped=bool(capped), finish_reason=finish)
        self.hits += len(found)
        self.misses += len(wanted) - len(found)
        return found

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        with self._pending_lock:
            if key in self._pending:
                return True
        return self._reader().execute(
            "SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        self.flush()
        return int(self._reader().execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    # --------------------------------------------------------------- writing
    def put(self, key: str, completion: Completion,
            on_commit: Callable[[bool], None] | None = None) -> None:
        """Store a successful completion; committed by the writer thread right away.

        Args:
            key: The cache key.
            completion: The answer.
            on_commit: Called from the writer thread once the row's transaction ends,
                with ``True`` if it was committed, ``False`` if it was given up.
        """
        self._check_writable(completion)
        with self._pending_lock:
            self._pending[key] = completion
        self._queue.put((key, completion, on_commit))
        self._start_writer()

    def _check_writable(self, completion: Completion) -> None:
        if self._closed:
            raise ConfigError(f"response cache {self.path} is closed")
        if not isinstance(completion, Completion):
            raise TypeError(f"expected a Completion, got {type(completion).__name__}")
        if not isinstance(completion.text, str):
            raise TypeError(f"a cached answer must be text, got {type(completion.text).__name__}")

    async def aput(self, key: str, completion: Completion) -> bool:
        """Store a completion and return once it is committed to the file.

        The row is committed right here, in the caller's thread, when the file is free
        (a one-row transaction takes some 20 microseconds; no hand-off to the writer
        thread, which on a busy event loop waits for the GIL). When another
        connection holds the write lock, the row goes to the writer thread instead and
        this coroutine waits for that commit without blocking the event loop.

        Returns ``True`` once committed, ``False`` if the commit was given up after
        ``write_retries`` attempts (the answer is then asked again next run).
        """
        self._check_writable(completion)
        if self._commit_now(key, completion):
            return True
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()
        self.put(key, completion, on_commit=_Waiter(loop, done))
        return await done

    def _commit_now(self, key: str, completion: Completion) -> bool:
        """Commit one row without waiting for any lock; ``False`` if the file is busy."""
        conn = getattr(self._local, "quick", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA busy_timeout = 0")
            self._local.quick = conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(_INSERT, (key, completion.text, completion.tokens_in,
                                   completion.tokens_out, time.time(), int(completion.capped),
                                   completion.finish_reason))
            conn.execute("COMMIT")
        except sqlite3.Error:
            # busy (another writer holds the lock) or anything else: never keep a
            # transaction open here; the writer thread retries and reports failure
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            return False
        self.writes += 1
        return True

    def _start_writer(self) -> None:
        writer = self._writer
        if writer is not None and writer.is_alive():
            return
        with self._writer_lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_loop, daemon=True,
                                                name=f"robustify-cache-writer:{self.path.name}")
                self._writer.start()

    def _write_loop(self) -> None:
        try:
            self._write_until_stopped()
        except BaseException as exc:  # pragma: no cover - e.g. no file descriptor left
            logger.warning("response cache %s: writer stopped (%s)", self.path, exc)
        finally:
            # Nothing may wait forever: what is still queued (put just before close(),
            # or a writer that died) is reported as not stored.
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _Flush):
                    item.done.set()
                elif item is not _STOP:
                    self.dropped += 1
                    _notify([item[2]] if item[2] is not None else [], False)

    def _write_until_stopped(self) -> None:
        conn = self._connect()
        stop = False
        while not stop:
            batch: list[tuple[str, Completion, Callable[[bool], None] | None]] = []
            markers: list[_Flush] = []
            item = self._queue.get()
            if self.batch_interval > 0 and not isinstance(item, _Flush) and item is not _STOP:
                # Let answers arriving together share one commit. While this thread
                # waits, put() is a plain queue append that wakes nobody, which keeps
                # the event loop thread fast at thousands of answers per second; only
                # flush() and close() end the wait early.
                self._wake.wait(self.batch_interval)
                self._wake.clear()
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, _Flush):
                    markers.append(item)
                else:
                    batch.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                try:
                    ok = self._commit(conn, batch)
                except Exception as exc:  # the writer must outlive any error: aput waits
                    self.dropped += len(batch)
                    logger.warning("response cache %s: could not store %d answers (%s); they "
                                   "will be asked again next run", self.path, len(batch), exc)
                    ok = False
                _notify([entry[2] for entry in batch if entry[2] is not None], ok)
            for marker in markers:
                marker.done.set()

    def _commit(self, conn: sqlite3.Connection,
                batch: list[tuple[str, Completion, Any]]) -> bool:
        """Commit one batch; ``False`` if it was given up after ``write_retries`` tries."""
        now = time.time()
        rows = [(k, c.text, c.tokens_in, c.tokens_out, now, int(c.capped), c.finish_reason)
                for k, c, _ in batch]
        for attempt in range(1, self.write_retries + 1):
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(_INSERT, rows)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                if attempt < self.write_retries:
                    time.sleep(min(1.0, 0.05 * 2 ** attempt))
                    continue
                # Kept in the pending map, so this process still sees them.
                self.dropped += len(rows)
                logger.warning("response cache %s: could not store %d answers (%s); they "
                               "will be asked again next run", self.path, len(rows), exc)
                return False
            break
        self.writes += len(rows)
        with self._pending_lock:
            for key, completion, _ in batch:
                if self._pending.get(key) is completion:
                    del self._pending[key]
        return True

    def flush(self, timeout: float | None = 60.0) -> None:
        """Block until every ``put`` so far is committed (or ``timeout`` seconds pass)."""
        if self._writer is None or not self._writer.is_alive():
            return
        marker = _Flush()
        self._queue.put(marker)
        self._wake.set()
        if not marker.done.wait(timeout):
            logger.warning("response cache %s: flush timed out after %ss", self.path, timeout)

    def close(self) -> None:
        """Flush pending writes, stop the writer thread and close the connections."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        writer = self._writer
        if writer is not None and writer.is_alive():
            self._queue.put(_STOP)
            self._wake.set()
            writer.join(10)
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:  # pragma: no cover - best effort
                pass
        _OPEN_CACHES.discard(self)

    def __enter__(self) -> "ResponseCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, Any]:
        """Process-local counters plus the number of stored answers."""
        return {"path": str(self.path), "entries": len(self), "hits": self.hits,
                "misses": self.misses, "writes": self.writes, "dropped": self.dropped}

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r})"


def default_cache_path() -> Path:
    """``$ROBUSTIFY_CACHE``, else ``$XDG_CACHE_HOME/robustify/responses.sqlite``."""
    env = os.environ.get("ROBUSTIFY_CACHE")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "robustify" / "responses.sqlite"


def open_cache(cache: "ResponseCache | str | os.PathLike[str] | None"
               ) -> "tuple[ResponseCache | None, bool]":
    """The one way to turn a cache argument into a cache: ``(cache, opened_here)``.

    ``None`` or ``"off"``: no cache. ``"default"``: :func:`default_cache_path`. A path: that
    file (its folder is created). A :class:`ResponseCache`: used as given (the caller keeps
    closing it). ``opened_here`` tells the caller whether it must close the cache.
    """
    if cache is None or cache == "off":
        return None, False
    if isinstance(cache, ResponseCache):
        return cache, False
    path = default_cache_path() if cache == "default" else Path(cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    return ResponseCache(path), True
