"""The SQLite response cache: keys, persistence, threads, processes, SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from perturbations.errors import ConfigError
from robustify.runner.cache import KeyMaker, ResponseCache, cache_key, canonical_json
from robustify.records import Completion

ROOT = Path(__file__).resolve().parents[2]
IDENTITY = {"kind": "openai", "model": "m", "base_url": "http://127.0.0.1:1/v1",
            "params": {"temperature": 0.0, "seed": 0, "max_tokens": 48, "stop": [],
                       "top_p": None}}
MESSAGES = [{"role": "user", "content": "Wie viele Beine hat eine Spinne? \u00fc"}]


def rows(path: Path) -> dict[str, tuple]:
    with sqlite3.connect(path) as conn:
        return {k: (t, a, b) for k, t, a, b in
                conn.execute("SELECT key, text, tokens_in, tokens_out FROM responses")}


# ------------------------------------------------------------------------------- keys
def test_key_is_sha256_of_canonical_json() -> None:
    key = cache_key(IDENTITY, MESSAGES)
    assert len(key) == 64 and int(key, 16) >= 0
    reordered = dict(reversed(list(IDENTITY.items())))
    assert cache_key(reordered, MESSAGES) == key
    assert cache_key(IDENTITY, [dict(reversed(list(MESSAGES[0].items())))]) == key
    assert ResponseCache.key(IDENTITY, MESSAGES) == key


def test_key_changes_with_every_part() -> None:
    key = cache_key(IDENTITY, MESSAGES)
    hotter = {**IDENTITY, "params": {**IDENTITY["params"], "temperature": 0.7}}
    other_url = {**IDENTITY, "base_url": "http://127.0.0.1:2/v1"}
    assert cache_key(hotter, MESSAGES) != key
    assert cache_key(other_url, MESSAGES) != key
    assert cache_key(IDENTITY, [{"role": "user", "content": "other"}]) != key
    assert cache_key(IDENTITY, [{"role": "system", "content": MESSAGES[0]["content"]}]) != key


def test_key_maker_matches_cache_key() -> None:
    maker = KeyMaker(IDENTITY)
    for messages in (MESSAGES, [], [{"role": "user", "content": 'quote " and \\ and \n'}]):
        assert maker(canonical_json(messages)) == cache_key(IDENTITY, messages)


# ------------------------------------------------------------------------ basic use
def test_put_get_roundtrip_and_persistence(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "responses.sqlite"
    completion = Completion(text="Acht \u00fc", tokens_in=12, tokens_out=3)
    with ResponseCache(path) as cache:
        key = cache.key(IDENTITY, MESSAGES)
        assert cache.get(key) is None
        cache.put(key, completion)
        assert cache.get(key) == completion  # visible at once, even before the commit
        assert key in cache
        cache.put("other", Completion(text=""))
        assert len(cache) == 2
        assert cache.stats()["entries"] == 2
    with ResponseCache(path) as again:
        assert again.get(key) == completion
        assert again.get("other") == Completion(text="")
        assert again.get_many([key, "missing", "other", key]) == {
            key: completion, "other": Completion(text="")}


def test_puts_are_committed_without_flush(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite", batch_interval=0.01)
    cache.put("k", Completion(text="v"))
    deadline = time.monotonic() + 5
    while "k" not in rows(tmp_path / "c.sqlite") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rows(tmp_path / "c.sqlite")["k"] == ("v", None, None)
    cache.close()


def test_aput_returns_only_once_the_row_is_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"

    async def store() -> list[tuple[bool, dict[str, tuple]]]:
        cache = ResponseCache(path)
        seen = []
        for i in range(30):
            ok = await cache.aput(f"k{i}", Completion(text=f"v{i}", tokens_out=i))
            # another connection sees it the moment aput returns: nothing waits in a queue
            seen.append((ok, rows(path)))
        # many at once all come back True
        results = await asyncio.gather(*(cache.aput(f"g{i}", Completion(text="x"))
                                         for i in range(200)))
        assert results == [True] * 200
        assert len(rows(path)) == 230
        cache.close()
        return seen

    seen = asyncio.run(store())
    for i, (ok, stored) in enumerate(seen):
        assert ok and stored[f"k{i}"] == (f"v{i}", None, i) and len(stored) == i + 1


def test_aput_reports_a_commit_it_gave_up(tmp_path: Path) -> None:
    """A locked database: the commit is retried, then given up; aput says so, no hang."""
    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path, busy_timeout=0.05, write_retries=2)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        ok = asyncio.run(asyncio.wait_for(cache.aput("k", Completion(text="v")), 30))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert ok is False and cache.dropped == 1
    assert cache.get("k") == Completion(text="v")  # this process still has the answer
    cache.close()
    assert "k" not in rows(path)


def test_aput_waits_for_a_busy_file_through_the_writer(tmp_path: Path) -> None:
    """Another connection holds the write lock: aput hands over and returns once stored."""
    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path)
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    released = threading.Timer(0.3, blocker.execute, args=("COMMIT",))

    async def store() -> tuple[bool, float]:
        released.start()
        started = time.monotonic()
        ok = await asyncio.wait_for(cache.aput("k", Completion(text="v", tokens_in=3)), 30)
        return ok, time.monotonic() - started

    ok, waited = asyncio.run(store())
    released.join()
    blocker.close()
    assert ok is True and waited >= 0.25  # it really waited for the lock, not the inline path
    assert rows(path)["k"] == ("v", 3, None)
    cache.close()


def test_an_answer_that_is_not_text_is_refused_and_leaves_no_lock(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path)
    with pytest.raises(TypeError, match="must be text"):
        asyncio.run(cache.aput("k", Completion(text=None)))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be text"):
        cache.put("k", Completion(text=None))  # type: ignore[arg-type]
    assert asyncio.run(cache.aput("k2", Completion(text="fine"))) is True
    other = sqlite3.connect(path, timeout=0.1, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # would raise "database is locked" if one were held
    other.execute("ROLLBACK")
    other.close()
    cache.close()


def test_get_many_chunks_large_requests(tmp_path: Path) -> None:
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        for i in range(1200):
            cache.put(f"k{i}", Completion(text=str(i)))
        cache.flush()
        found = cache.get_many(f"k{i}" for i in range(0, 2400, 2))
    assert len(found) == 600 and found["k1198"].text == "1198"


def test_closed_cache_refuses_writes(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    cache.close()
    cache.close()  # idempotent
    with pytest.raises(ConfigError, match="closed"):
        cache.put("k", Completion(text="v"))


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "c.sqlite"
    bogus.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(ConfigError, match="not a usable response cache"):
        ResponseCache(bogus)


def test_put_requires_a_completion(tmp_path: Path) -> None:
    with ResponseCache(tmp_path / "c.sqlite") as cache, pytest.raises(TypeError):
        cache.put("k", "text")  # type: ignore[arg-type]


def test_wal_mode(tmp_path: Path) -> None:
    with ResponseCache(tmp_path / "c.sqlite"):
        pass
    with sqlite3.connect(tmp_path / "c.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# ----------------------------------------------------------------------- concurrency
def test_many_threads_writing_and_reading(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(300):
                cache.put(f"t{t}-{i}", Completion(text=f"{t}:{i}", tokens_out=i))
                if i % 7 == 0:
                    assert cache.get(f"t{t}-{i}") is not None
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cache.close()
    assert not errors
    stored = rows(tmp_path / "c.sqlite")
    assert len(stored) == 8 * 300
    assert stored["t5-299"] == ("5:299", None, 299)


WRITER = textwrap.dedent("""
    import sys
    from robustify.runner.cache import ResponseCache
    from robustify.records import Completion
    path, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cache = ResponseCache(path, batch_interval=0.0)
    for i in range(count):
        cache.put(f"{tag}-{i}", Completion(text=f"{tag} answer {i}", tokens_in=i))
        if i % 50 == 0:
            cache.flush()  # many small transactions: maximum lock contention
            assert cache.get(f"{tag}-{i}") is not None
    cache.close()
    print("ok")
""")


def test_two_processes_writing_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, str(script), str(path), tag, "1500"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for tag in ("a", "b")]
    # ... while this process writes and reads the same file too.
    with ResponseCache(path, batch_interval=0.0) as mine:
        for i in range(500):
            mine.put(f"c-{i}", Completion(text=str(i)))
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
        assert out.strip() == "ok"
    stored = rows(path)
    assert len(stored) == 1500 + 1500 + 500
    assert stored["a-1499"] == ("a answer 1499", 1499, None)
    assert stored["b-0"] == ("b answer 0", 0, None)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


KILLED = textwrap.dedent("""
    import sys, time
    from robustify.runner.cache import ResponseCache
    from robustify.records import Completion
    cache = ResponseCache(sys.argv[1])
    for i in range(200):
        cache.put(f"k{i}", Completion(text=f"v{i}"))
    time.sleep(0.5)                      # longer than the batch interval, no flush()
    print("written", flush=True)
    time.sleep(60)
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_answers_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    proc = subprocess.Popen([sys.executable, str(script), str(path)],
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "written"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    with ResponseCache(path) as cache:
        assert len(cache) == 200
        assert cache.get("k199") == Completion(text="v199")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# ---------------------------------------------------------------------- finish reason
def test_finish_reason_is_stored_with_the_answer(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with ResponseCache(path) as cache:
        cache.put("cut", Completion(text="6 x 3 =", tokens_out=48, finish_reason="length"))
        asyncio.run(cache.aput("done", Completion(text="18", finish_reason="stop")))
    with ResponseCache(path) as cache:
        assert cache.get("cut") == Completion(text="6 x 3 =", tokens_out=48,
                                              finish_reason="length")
        assert cache.get("cut").hit_token_limit
        found = cache.get_many(["cut", "done"])
        assert found["done"].finish_reason == "stop" and not found["done"].hit_token_limit


def test_a_schema_1_cache_is_upgraded_and_keeps_its_answers(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:   # the layout robustify wrote before finish_reason
        conn.executescript("""
            CREATE TABLE responses (key TEXT PRIMARY KEY, text TEXT NOT NULL,
                tokens_in INTEGER, tokens_out INTEGER, created REAL NOT NULL) WITHOUT ROWID;
            CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO meta VALUES ('schema', '1');
            INSERT INTO responses VALUES ('k', 'Paris', 10, 1, 0.0);""")
    with ResponseCache(path) as cache:
        assert cache.get("k") == Completion(text="Paris", tokens_in=10, tokens_out=1)
        assert cache.get("k").finish_reason is None
        cache.put("new", Completion(text="Rome", finish_reason="length"))
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone() == ("2",)
        assert conn.execute("SELECT finish_reason FROM responses WHERE key = 'new'"
                            ).fetchone() == ("length",)
