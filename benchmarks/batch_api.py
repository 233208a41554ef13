"""The Batch API pass at size: planning, splitting at the API's limits, reading back.

``N`` distinct prompts for one ``openai:`` model go through
:func:`robustify.runner.batch.run_batches` against the loopback Files/Batches server
(``tests/robustify/fake_batch_server.py``, in its own process: its CPU and memory are
not ours). Two
timed phases, the same way a stopped run resumes:

1. **plan + submit**: key every prompt, look the keys up in a fresh cache, write the
   input files (cut at 50,000 requests), upload them and create the batches; the pass is
   stopped at its first wait, with every batch pending;
2. **resume + read back**: a second call finds the pending batches in the state file,
   polls them, reads the output files and stores every answer in the cache.

Marks: the files are cut exactly at the request limit (``ceil(N / 50,000)`` files, none
over), nothing is submitted twice on resume, and every answer is in the cache.

Run: ``python -m benchmarks.batch_api [--quick]`` (``--quick``: 12,000 prompts cut at 5,000).
"""

from __future__ import annotations

import math
import resource
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.common import FakeServerProcess, Figure, check, machine, section_main

__all__ = ["measure"]


class _Stop(Exception):
    pass


def _post(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=10).close()


def measure(quick: bool = False) -> tuple[dict[str, Any], list[Figure]]:
    """Run both phases; return the raw numbers and the figures."""
    from perturbations.records import Item, Variant
    from robustify.models import parse_model_spec
    from robustify.prompts import build_messages
    from robustify.runner.batch import run_batches
    from robustify.runner.batch_jsonl import MAX_REQUESTS, BatchOptions
    from robustify.runner.cache import ResponseCache

    n, limit = (12_000, 5_000) if quick else (120_000, MAX_REQUESTS)
    variants = [Variant.clean(Item(id=f"q{i}", input=f"What is the name of test city {i}?",
                                   target=f"city {i}")) for i in range(n)]
    options = BatchOptions(max_requests=limit, poll_first=0.01, poll_max=0.05)

    def stop(_: float) -> None:
        raise _Stop

    with tempfile.TemporaryDirectory() as tmp, \
            FakeServerProcess(0.0, module="tests.robustify.fake_batch_server") as server:
        control = server.base_url.removesuffix("/v1") + "/_fake/"
        _post(control + "hold")
        backend = parse_model_spec(f"openai:fake@{server.base_url}")
        cache = ResponseCache(Path(tmp) / "cache.sqlite")
        started = time.perf_counter()
        try:
            run_batches(variants, [backend], build_messages=build_messages, cache=cache,
                        folder=Path(tmp) / "batches", options=options, sleep=stop)
        except _Stop:
            pass
        submit_s = time.perf_counter() - started
        stats = server.stats()
        files, created = stats["file_lines"], stats["creates"]
        _post(control + "release")
        started = time.perf_counter()
        outcome = run_batches(variants, [backend], build_messages=build_messages, cache=cache,
                              folder=Path(tmp) / "batches", options=options)
        read_s = time.perf_counter() - started
        stored = len(cache)
        cache.close()
        twice = server.stats()["creates"] - created
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    expected = math.ceil(n / limit)
    raw = {"prompts": n, "max_requests": limit, "files": len(files), "lines": files,
           "plan_submit_s": submit_s, "resume_read_s": read_s, "answers": outcome.answers,
           "stored": stored, "submitted_twice": twice, "peak_rss_mib": peak,
           "machine": machine()}
    note = f"{n:,} prompts, files of <= {limit:,}; machine shared ({machine()})"
    figures = [
        Figure("batch", "input files beyond ceil(N / max_requests)",
               float(len(files) - expected), "", "== 0",
               check(float(len(files) - expected), "== 0"), note, raw),
        Figure("batch", "largest input file (requests) over the limit",
               float(max(files) - limit), "", "<= 0", check(float(max(files) - limit), "<= 0"),
               note),
        Figure("batch", "batches created again on resume", float(twice), "", "== 0",
               check(float(twice), "== 0"), note),
        Figure("batch", "prompts missing from the cache after read-back", float(n - stored),
               "", "== 0", check(float(n - stored), "== 0"), note),
        Figure("batch", "plan + write + submit rate", n / submit_s, "/s", note=note),
        Figure("batch", "poll + read back + store rate", n / read_s, "/s", note=note),
        Figure("batch", "peak memory", peak, "MiB", note=note),
    ]
    return raw, figures


if __name__ == "__main__":
    section_main(__doc__, measure)
