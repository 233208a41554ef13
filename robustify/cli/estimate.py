"""What ``run --estimate`` prints and the warning before a large run without ``--limit``.

The estimate counts the calls (distinct prompts the cache does not hold), times a few
real calls per model (:func:`robustify.runner.latency.measure_latency`; their answers go
to the cache) and prints calls x latency / concurrency. A run planned above
:data:`LARGE_RUN_CALLS` calls without ``--limit`` is warned about before it starts.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

__all__ = ["print_estimate", "warn_large_run", "LARGE_RUN_CALLS", "large_run_calls"]

LARGE_RUN_CALLS = 5000
"""Rows (model x variant, clean included, before the cache) above which a run without
``--limit`` is warned about; the variable ``ROBUSTIFY_LARGE_RUN`` sets another number."""


def large_run_calls() -> int:
    """:data:`LARGE_RUN_CALLS`, or ``ROBUSTIFY_LARGE_RUN`` when it holds a whole number."""
    raw = os.environ.get("ROBUSTIFY_LARGE_RUN", "").strip()
    return int(raw) if raw.isdigit() else LARGE_RUN_CALLS


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, sec = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {sec:02d} s" if minutes else f"{sec} s"


def print_estimate(prepared: Any, *, measure: bool = True, out: TextIO | None = None) -> dict:
    """Print calls, tokens and (with ``measure``) a time estimate per model; return them."""
    from robustify.runner.cache import ResponseCache
    from robustify.runner.execute import estimate_calls
    from robustify.runner.latency import measure_latency, time_estimate

    out = out if out is not None else sys.stdout
    messages = prepared.build_messages()  # the run's own prompts: same cache keys
    cache = None
    if prepared.cache_path is not None:
        prepared.cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache = ResponseCache(prepared.cache_path)
    try:
        est = estimate_calls(list(prepared.variants()), prepared.backends, messages, cache)
        for key, value in est.items():
            if key != "per_model":
                print(f"{key}: {value}", file=out)
        total = 0.0
        known = bool(prepared.backends) and measure
        for backend in prepared.backends:
            facts = est["per_model"][backend.label]
            line = f"{backend.label}: {facts['calls']} calls, {facts['cache_hits']} cache hits"
            if measure and facts["calls"]:
                seconds = measure_latency(backend, prepared.items, messages, cache)
                concurrency = int(getattr(backend, "max_concurrency", 1) or 1)
                wall = time_estimate(facts["calls"], seconds, concurrency)
                if wall is None:
                    known = False
                    line += "; latency not measured (every sampled prompt is cached)"
                else:
                    total += wall
                    median = sorted(seconds)[len(seconds) // 2]
                    line += (f"; {median:.2f} s per call over {len(seconds)} timed calls, "
                             f"{concurrency} at a time: about {_duration(wall)}")
                    facts.update(latency_s=round(median, 4), estimated_s=round(wall, 1))
            print(line, file=out)
        if known:
            kept = ("the timed answers are cached" if cache is not None
                    else "the timed answers are not kept: --cache off")
            print(f"estimated time: about {_duration(total)} (models one after another, the "
                  f"worst case; {kept})", file=out)
        return est
    finally:
        if cache is not None:
            cache.close()
        for backend in prepared.backends:
            backend.close()


def warn_large_run(prepared: Any, err: TextIO | None = None) -> bool:
    """Warn (stderr) before a run above :data:`LARGE_RUN_CALLS` rows without ``--limit``."""
    if prepared.job.limit is not None:
        return False
    rows = prepared.planned_calls  # the count --max-calls confirms, cache hits included
    if rows <= large_run_calls():
        return False
    print(f"warning: up to {rows:,} model calls ({len(prepared.items):,} items, no --limit; "
          f"cache hits and shared prompts are fewer); --estimate times a few calls and "
          f"prints how long the run takes, --limit N samples N items",
          file=err if err is not None else sys.stderr)
    return True
