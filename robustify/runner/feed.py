"""Feeding the workers while the variants are still being drawn.

The runner does not read every variant before its first call: a
:class:`Feeder` plans the stream on the event loop in slices of about
:data:`PLAN_SLICE` seconds, looks the new prompt groups up in the response cache,
answers the hits at once and puts the misses on each backend's :class:`GroupQueue`.
Between slices the loop serves the calls already out, so drawing and guarding the
variants overlaps the calls instead of coming before them (3,000 typo variants: about
1.7 s that a job used to spend before its first call).

A row can join a group after that group was answered (an unchanged variant reusing
its clean answer, a duplicate prompt): the feeder hands it to the run's ``late``, which
fills it from the answer already there.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Iterable, Protocol, Sequence

from perturbations.records import Variant

from robustify.models.answer_cap import answer_limit, cap_answer
from robustify.records import Completion
from robustify.runner.cache import ResponseCache
from robustify.runner.plan import LOOKUP_CHUNK, Planner

__all__ = ["Feeder", "GroupQueue", "PLAN_SLICE"]

PLAN_SLICE = 0.005
"""Seconds of planning between two turns of the event loop while every worker has work."""
HUNGRY_SLICE = 0.02
"""Seconds of planning per turn while workers wait for prompts (the calls out wait a
little longer to be read; idle workers would waste their whole slot)."""


class GroupQueue:
    """The prompt groups one backend still has to ask, in plan order.

    A cursor over the group numbers the feeder has released, skipping those already
    answered (cache hits): no deque of a million keys. The workers of a backend share
    it (one event loop, no locks).
    """

    def __init__(self, finished: bytearray) -> None:
        self._finished = finished
        self._cursor = 0
        self._limit = 0
        self._left = 0

    def __len__(self) -> int:
        return self._left

    def release(self, limit: int, misses: int) -> None:
        """Make groups up to ``limit`` (``misses`` of them unanswered) available."""
        self._limit = limit
        self._left += misses

    def pop(self) -> int | None:
        """The next group to ask, or ``None`` when none is available now."""
        finished = self._finished
        cursor = self._cursor
        limit = self._limit
        while cursor < limit:
            group = cursor
            cursor += 1
            if not finished[group]:
                self._cursor = cursor
                self._left -= 1
                return group
        self._cursor = cursor
        return None


class FeedTarget(Protocol):
    """What the feeder needs of a run (``robustify.runner.execute``)."""

    finished: list[bytearray]

    def grow(self, rows: int) -> None: ...

    def finish(self, b: int, group: int, *, completion: Completion | None,
               error: str | None, latency: float, cached: bool) -> int: ...

    def late(self, b: int, group: int, row: int) -> int: ...


class Feeder:
    """Plan the variants slice by slice and feed every backend's queue.

    Args:
        planner: The run's planner (it stores the rows).
        run: The run the rows belong to.
        cache: The response cache, or ``None``.
        on_hits: Called with the number of rows each slice's cache hits answered.
    """

    def __init__(self, planner: Planner, run: FeedTarget, cache: ResponseCache | None,
                 on_hits: Any) -> None:
        self.planner = planner
        self.run = run
        self.cache = cache
        self.on_hits = on_hits
        self.queues = [GroupQueue(finished) for finished in run.finished]
        self.caps = [answer_limit(plan.backend) for plan in planner.plans]
        self.done = False
        """True once the last variant is planned."""
        self.misses = 0
        """Groups put on the queues (calls to make, before ``max_calls``)."""
        self._waiting: list[list[asyncio.Future[None]]] = [[] for _ in self.queues]

    async def wait(self, b: int) -> None:
        """Return once new prompts were released for backend ``b`` (at once when
        planning is over)."""
        if self.done:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[b].append(waiter)
        try:
            await waiter
        finally:
            if not waiter.done():  # cancelled: no longer a taker
                waiter.cancel()

    def _wake(self, b: int, count: int) -> None:
        """Wake up to ``count`` of backend ``b``'s waiting workers: one per new prompt,
        not the whole herd on every slice."""
        waiting = self._waiting[b]
        while waiting and count > 0:
            waiter = waiting.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                count -= 1

    def _hungry(self) -> bool:
        """Some worker waits for a prompt (woken ones leave the lists)."""
        return any(self._waiting)

    async def feed(self, variants: Iterable[Variant]) -> None:
        """Plan all of ``variants``, yielding to the loop between slices."""
        stream = iter(variants)
        planner = self.planner
        try:
            while True:
                rows_before = planner.count
                groups_before = len(planner.groups)
                joined: list[tuple[int, int]] = []
                try:
                    exhausted = planner.extend(
                        stream, deadline=time.perf_counter() + (
                            HUNGRY_SLICE if self._hungry() else PLAN_SLICE),
                        max_new=LOOKUP_CHUNK, joined=joined)
                except BaseException:
                    # the rows planned before the failure may have joined a call still
                    # out: give them their slots, so that call can still be filled
                    self._grow(rows_before, groups_before)
                    raise
                released = self._release(rows_before, groups_before, joined)
                if exhausted:
                    break
                for b, count in enumerate(released):
                    self._wake(b, count)
                await asyncio.sleep(0)
        finally:
            self.done = True
            for b, waiting in enumerate(self._waiting):
                self._wake(b, len(waiting))

    def _grow(self, rows_before: int, groups_before: int) -> None:
        """Make room in the run for the rows and groups planned since."""
        self.run.grow(self.planner.count - rows_before)
        for finished in self.run.finished:
            finished.extend(bytes(len(self.planner.groups) - groups_before))

    def _release(self, rows_before: int, groups_before: int,
                 joined: Sequence[tuple[int, int]]) -> list[int]:
        """Answer the slice's cache hits and late rows, queue its misses; the number of
        prompts queued per backend."""
        planner, run = self.planner, self.run
        self._grow(rows_before, groups_before)
        new_groups = len(planner.groups) - groups_before
        hit_rows = 0
        released = []
        for b, plan in enumerate(planner.plans):
            hits: dict[str, Completion] = {}
            keys: list[str] = []
            if new_groups and self.cache is not None:
                keys = [key.hex() for key in plan.keys[groups_before:]]
                hits = self.cache.get_many(keys)
            plan.stats.cache_hits += len(hits)
            for group, key in enumerate(keys, groups_before):
                completion = hits.get(key)
                if completion is not None:
                    # an answer cached before the cap existed is cut like a new one
                    hit_rows += run.finish(b, group, completion=cap_answer(completion,
                                                                           self.caps[b]),
                                           error=None, latency=0.0, cached=True)
            misses = new_groups - len(hits)
            self.misses += misses
            released.append(misses)
            self.queues[b].release(len(planner.groups), misses)
            for row, group in joined:
                if run.finished[b][group]:
                    hit_rows += run.late(b, group, row)
        if hit_rows:
            self.on_hits(hit_rows)
        return released

