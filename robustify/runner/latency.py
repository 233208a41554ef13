"""Measured latency for ``--estimate``: a few real calls, timed, kept in the cache.

:func:`measure_latency` asks each backend a few of the run's own clean prompts that the
cache does not hold yet, one at a time, and returns the seconds each took; answers are
stored in the cache, so the run reuses them and no paid work is lost. :func:`time_estimate`
turns the planned calls (cache hits excluded) into wall time: calls x latency /
concurrency.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any, Callable, Sequence

from perturbations import Item

from robustify.runner.cache import ResponseCache, cache_key

__all__ = ["measure_latency", "time_estimate", "SAMPLE_CALLS"]

SAMPLE_CALLS = 3
"""Calls timed per model by ``--estimate``."""


def measure_latency(backend: Any, items: Sequence[Item],
                    build_messages: Callable[[Item], list[dict[str, str]]],
                    cache: ResponseCache | None = None, *, calls: int = SAMPLE_CALLS
                    ) -> list[float]:
    """Seconds per call of up to ``calls`` uncached clean prompts, asked one at a time.

    A prompt the cache already answers is skipped (it costs nothing and says nothing about
    latency); a failed call raises (its retries included).
    """
    identity = backend.identity()
    chosen = []
    for item in items:
        messages = build_messages(item)
        key = cache_key(identity, messages)
        if cache is not None and cache.get(key) is not None:
            continue
        chosen.append((key, messages))
        if len(chosen) >= calls:
            break

    async def ask() -> list[float]:
        seconds = []
        for key, messages in chosen:
            start = time.perf_counter()
            completion = await backend.agenerate(messages)
            seconds.append(time.perf_counter() - start)
            if cache is not None:
                cache.put(key, completion)
        return seconds

    try:
        return asyncio.run(ask()) if chosen else []
    finally:
        if cache is not None:
            cache.flush()


def time_estimate(calls: int, seconds: Sequence[float], concurrency: int) -> float | None:
    """Wall seconds for ``calls`` calls at the median measured latency, ``concurrency`` at
    a time; ``None`` without a measurement."""
    if not seconds:
        return None
    return calls * statistics.median(seconds) / max(1, concurrency)
