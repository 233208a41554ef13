"""The response cache at scale: size on disk, lookup time and write rate at N rows.

A cache file is filled to N answers (keys are real-looking sha256 hex digests in random
order, answers a short sentence with token counts, as a run stores them), then measured
through :class:`robustify.runner.cache.ResponseCache` itself:

* size on disk (bytes per row, after a WAL checkpoint);
* ``get`` of one key (hit and miss), microseconds each, and ``get_many`` in the runner's
  chunks of 2,000 keys (the bulk lookup a run makes before its first call), keys/s;
* ``aput`` (the runner's path: one committed transaction per answer) and ``put`` +
  ``flush`` (group commit) of new answers into the N-row file, rows/s.

The fill itself goes straight through SQLite in 100,000-row transactions (its rate is
printed too). The file is read from the OS page cache (the machine has the memory for
it): a file larger than free RAM reads from disk and its lookups are slower.

Run: ``python -m benchmarks.cache_scale [--rows N]`` (default 1,000,000; the suite's
default run uses 200,000, ``--quick`` 50,000; ``--rows 10000000`` is the figure quoted
in ``docs/scale.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import sqlite3
import tempfile
import time
from typing import Any, Sequence

from benchmarks.common import Figure, load_average

__all__ = ["measure", "main", "fill"]

_SAMPLE = 20_000
"""Keys looked up / answers written per measurement."""
_WORDS = ("the", "answer", "is", "B", "because", "water", "boils", "at", "100", "degrees",
          "Paris", "no", "yes", "C", "it", "depends", "on", "pressure")


def _key(i: int) -> str:
    return hashlib.sha256(b"robustify-cache-scale:%d" % i).hexdigest()


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 14))) + "."


def fill(path: str, rows: int, start: int = 0, batch: int = 100_000) -> float:
    """Add answers ``start`` .. ``start + rows - 1`` straight through SQLite; return seconds."""
    from robustify.runner.cache import _INSERT

    rng = random.Random(start)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA cache_size = -262144")  # 256 MiB page cache for the fill only
    began = time.perf_counter()
    now = time.time()
    for lo in range(start, start + rows, batch):
        hi = min(lo + batch, start + rows)
        conn.execute("BEGIN")
        conn.executemany(_INSERT, ((_key(i), _text(rng), rng.randint(20, 400),
                                    rng.randint(1, 60), now, 0, "stop")
                                   for i in range(lo, hi)))
        conn.execute("COMMIT")
    seconds = time.perf_counter() - began
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return seconds


def _disk_bytes(path: str) -> int:
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


def _timed_gets(cache: Any, keys: Sequence[str]) -> float:
    began = time.perf_counter()
    for key in keys:
        cache.get(key)
    return (time.perf_counter() - began) / len(keys)


async def _aputs(cache: Any, keys: Sequence[str], completion: Any) -> float:
    began = time.perf_counter()
    for key in keys:
        await cache.aput(key, completion)
    return time.perf_counter() - began


def measure_rows(rows: int, folder: str) -> dict[str, Any]:
    """Fill a cache to ``rows`` answers in ``folder`` and measure it."""
    from robustify.records import Completion
    from robustify.runner.cache import ResponseCache

    path = os.path.join(folder, "cache.sqlite")
    ResponseCache(path).close()  # the cache's own schema and WAL mode
    fill_seconds = fill(path, rows)
    disk = _disk_bytes(path)
    rng = random.Random(1)
    hits = [_key(i) for i in rng.sample(range(rows), min(_SAMPLE, rows))]
    misses = [_key(rows + 10 * _SAMPLE + i) for i in range(_SAMPLE)]
    out: dict[str, Any] = {"rows": rows, "fill_seconds": fill_seconds,
                           "fill_rows_per_s": rows / fill_seconds, "disk_bytes": disk,
                           "bytes_per_row": disk / rows}
    with ResponseCache(path) as cache:
        out["get_hit_us"] = _timed_gets(cache, hits[:5000]) * 1e6
        out["get_miss_us"] = _timed_gets(cache, misses[:5000]) * 1e6
        began = time.perf_counter()
        found = 0
        for lo in range(0, len(hits), 2000):
            found += len(cache.get_many(hits[lo:lo + 2000] + misses[lo:lo + 2000]))
        seconds = time.perf_counter() - began
        assert found == len(hits), (found, len(hits))
        out["get_many_keys_per_s"] = 2 * len(hits) / seconds
        completion = Completion(text="The answer is B.", tokens_in=120, tokens_out=5,
                                finish_reason="stop")
        new = [_key(rows + i) for i in range(_SAMPLE)]
        out["aput_rows_per_s"] = len(new) / asyncio.run(_aputs(cache, new[:_SAMPLE // 2],
                                                               completion)) / 2
        began = time.perf_counter()
        for key in new[_SAMPLE // 2:]:
            cache.put(key, completion)
        cache.flush()
        out["put_rows_per_s"] = (_SAMPLE - _SAMPLE // 2) / (time.perf_counter() - began)
        out["rows_after"] = len(cache)
    assert out["rows_after"] == rows + _SAMPLE
    out["load"] = load_average()[0]
    return out


def measure(rows: int = 200_000) -> tuple[dict[str, Any], list[Figure]]:
    """Measure one size in a temporary folder; return the raw numbers and the figures."""
    with tempfile.TemporaryDirectory(prefix="robustify-cache-scale-") as folder:
        r = measure_rows(rows, folder)
    n = f"{rows:,} rows"
    figures = [
        Figure("cache", f"size on disk, {n}", r["disk_bytes"] / 2 ** 20, "MiB",
               note=f"{r['bytes_per_row']:.0f} B/row (key 64 hex + a short answer)", extra=r),
        Figure("cache", f"get, one hit, {n}", r["get_hit_us"], "us",
               note=f"miss {r['get_miss_us']:.0f} us; file in the OS page cache"),
        Figure("cache", f"get_many in chunks of 2,000, {n}", r["get_many_keys_per_s"],
               "keys/s", note="half hits, half misses (a run's lookups before its calls)"),
        Figure("cache", f"aput into the file, {n}", r["aput_rows_per_s"], "rows/s",
               note=f"one commit per answer (the runner's path); put+flush group commit "
                    f"{r['put_rows_per_s']:,.0f} rows/s; fill {r['fill_rows_per_s']:,.0f} "
                    f"rows/s; load {r['load']:.1f}"),
    ]
    return r, figures


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``--rows N`` (``--quick``: 50,000)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    _, figures = measure(50_000 if args.quick else args.rows)
    for fig in figures:
        print(f"{fig.name:44s} {fig.value:14,.1f} {fig.unit:7s} {fig.note}")


if __name__ == "__main__":
    main()
