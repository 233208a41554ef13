"""Choose llama.cpp's thread count by measuring, once per model file and process.

More threads are not always faster: on a machine busy with other work, llama.cpp's
threads wait for each other at every layer. :func:`calibrate` times the two kinds of
work a batched run does, a 64-token prompt and one decode step of 16 sequences, at each
candidate thread count and keeps the fastest. Candidates within :data:`CLOSE` of the
fastest are timed a second time (best of two); one clearly fastest count is not. For
SmolLM2 on an idle 2-core machine that is 0.85 s (2.1 s when every count was timed
twice and the cache's cells zeroed between tries). Answers do not depend on the
choice: llama.cpp's portable CPU kernels give each output row to one thread, so the
arithmetic is the same for any count (tests/robustify/test_local_batch.py checks it).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

__all__ = ["calibrate", "candidates", "fastest", "CLOSE"]

logger = logging.getLogger(__name__)

CLOSE = 1.25
"""Candidates timed within this factor of the fastest are timed once more."""

_CHOSEN: dict[str, int] = {}
_LOCK = threading.Lock()

_TEXT = (b"The quick brown fox jumps over the lazy dog while the committee reviews "
         b"the quarterly budget, and a robot counts seventeen apples in the basket.")


def candidates(cores: int) -> list[int]:
    """Thread counts worth trying: 1, 2, 4, ... up to the physical cores, and the cores."""
    found, n = [], 1
    while n < cores:
        found.append(n)
        n *= 2
    found.append(max(1, cores))
    return found


def _time_once(engine: Any, tokens: list[int], seqs: int) -> float:
    """Seconds for a prompt of ``tokens`` in sequence 0 plus one step of ``seqs`` sequences."""
    low, ctx, batch = engine._low, engine.ctx, engine._batch
    mem = low.llama_get_memory(ctx)
    # data=False: the cells are not zeroed (0.05 s for 24 sequences' buffers); a cell
    # outside a sequence is masked, as after every llama_memory_seq_rm of the engine
    low.llama_memory_clear(mem, False)

    def decode(entries: list[tuple[int, int, int]]) -> float:
        for i, (token, pos, seq) in enumerate(entries):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = True if seq else i == len(entries) - 1
        batch.n_tokens = len(entries)
        start = time.perf_counter()
        if low.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed during thread calibration")
        return time.perf_counter() - start

    spent = decode([(t, i, 0) for i, t in enumerate(tokens)])
    for seq in range(1, seqs):
        low.llama_memory_seq_cp(mem, 0, seq, -1, -1)  # whole buffers: nothing else works
    # A decode step weighs twice a 64-token prompt: roughly their shares of a batched run.
    spent += 2 * decode([(tokens[seq % len(tokens)], len(tokens), seq)
                         for seq in range(1, seqs)])
    low.llama_memory_clear(mem, False)
    return spent


def fastest(counts: list[int], time_at: Callable[[int], float]) -> dict[int, float]:
    """Seconds per thread count: each count timed once, and the counts within
    :data:`CLOSE` of the fastest once more (their best time kept), when more than one is."""
    timings = {n: time_at(n) for n in counts}
    best = min(timings.values())
    close = [n for n in counts if timings[n] <= best * CLOSE]
    if len(close) > 1:
        for n in close:
            timings[n] = min(timings[n], time_at(n))
    return timings


def calibrate(engine: Any, key: str, cores: int) -> int:
    """Fastest thread count for ``engine`` (cached under ``key``); sets it on the engine."""
    with _LOCK:
        chosen = _CHOSEN.get(key)
        if chosen is None:
            tokens = (engine.llm.tokenize(_TEXT, add_bos=False) * 4)[:64]
            seqs = min(engine.n_seq, 17)

            def time_at(n: int) -> float:
                engine._low.llama_set_n_threads(engine.ctx, n, n)
                return _time_once(engine, tokens, seqs)
            timings = fastest(candidates(cores), time_at)
            chosen = min(timings, key=lambda n: (timings[n], n))
            logger.info("llama.cpp threads: %s -> %d", {n: round(t, 4) for n, t in
                                                        timings.items()}, chosen)
            _CHOSEN[key] = chosen
    engine._low.llama_set_n_threads(engine.ctx, chosen, chosen)
    engine.n_threads = chosen
    return chosen

