"""Adaptive concurrency: find how many calls a provider takes in flight (AIMD).

When the user fixes no concurrency for an OpenAI-compatible model, the runner does not
guess: a :class:`Limiter` decides how many calls may be in flight and moves that level
while the run goes, one *window* at a time. A window is the calls started at the current
level; it closes when as many of them have finished as the level allows in flight
(at least :data:`MIN_WINDOW`), roughly one round trip.

* A call started at the current level is refused as overloaded (HTTP 429, 503 or 529 on
  any attempt): the level is cut by :data:`CUT_ON_REFUSAL` at once (multiplicative
  decrease) and a new window opens. Refusals of calls started before that cut cut
  nothing more.

At each window's close:

* the window's median latency rose above :data:`LATENCY_TOLERANCE`
  times the baseline (the lowest of the last :data:`BASELINE_WINDOWS` windows) in
  two windows running, or above :data:`LATENCY_ALARM` times it in one: the server is
  queueing, so the level is cut in proportion, ``level x baseline / median`` (what
  Little's law says the server serves without a queue); after one slow window the
  level holds;
* else, in the first phase the level doubles (slow start) for as long as throughput grows
  with it; after the first cut it grows by one call per window (additive increase).

The latency of calls that needed a retry (backoff included) is left out. The level stays
between 1 and the backend's ceiling. A fixed ``--concurrency`` (or ``concurrency:`` in a
job file, or the API's ``concurrency=``) turns all of this off: that many calls in
flight, as before.

:meth:`Limiter.report` gives the level it settled at (the median level of the windows
after the first cut in which the limiter was full), recorded in ``run_stats``, the
manifest, the terminal summary and the report's run facts.
"""

from __future__ import annotations

import asyncio
import collections
import statistics
import time
from typing import Any

__all__ = ["Limiter", "limiter_for", "describe_level", "CONGESTION_STATUSES", "MIN_WINDOW", "CUT_ON_REFUSAL",
           "LATENCY_TOLERANCE", "BASELINE_WINDOWS"]

CONGESTION_STATUSES = frozenset({429, 503, 529})
"""HTTP statuses read as "too many calls in flight"."""
MIN_WINDOW = 8
"""Fewest finished calls per window."""
CUT_ON_REFUSAL = 0.8
"""Factor applied to the level when a call of the window was refused."""
LATENCY_TOLERANCE = 1.2
"""Median latency above this many times the baseline counts as queueing."""
LATENCY_ALARM = 1.5
"""Median latency above this many times the baseline cuts at once (else two windows)."""
BASELINE_WINDOWS = 30
"""Windows over which the lowest median latency is the baseline."""
SLOW_START_GAIN = 1.2
"""In slow start, doubling the level must raise throughput by this factor to go on."""


class _Call:
    """One call's view of the limiter: its window and whether it was refused."""

    __slots__ = ("limiter", "epoch", "refused", "retried")

    def __init__(self, limiter: "Limiter", epoch: int) -> None:
        self.limiter = limiter
        self.epoch = epoch
        self.refused = False
        self.retried = False

    def attempt_failed(self, error: BaseException) -> None:
        """Listener for :data:`robustify.models.retry.ATTEMPT_FAILED` (before the backoff)."""
        self.retried = True
        if getattr(error, "status", None) in CONGESTION_STATUSES and not self.refused:
            self.refused = True
            self.limiter.refused(self)


class Limiter:
    """How many calls one backend may have in flight, moved by what the calls show.

    Args:
        start: The first level (the backend's ``max_concurrency``).
        ceiling: The highest level (the backend's connection pool).
        clock: Seconds, monotonic (injectable for tests).
    """

    def __init__(self, start: int, ceiling: int, *, clock: Any = time.perf_counter) -> None:
        self.ceiling = max(1, int(ceiling))
        self.level = float(min(max(1, int(start)), self.ceiling))
        self.start_level = int(self.level)
        self.in_flight = 0
        self.slow_start = True
        self.epoch = 0
        self.cuts = {"refused": 0, "latency": 0}
        self.peak = int(self.level)
        self.windows: list[tuple[int, bool]] = []
        """(level, full) of every closed window, in order."""
        self._clock = clock
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._latencies: list[float] = []
        self._done = 0
        self._full = False
        self._opened = clock()
        self._medians: collections.deque[float] = collections.deque(maxlen=BASELINE_WINDOWS)
        self._last_rate: float | None = None
        self._first_cut: int | None = None
        self._cut_epoch = 0
        self._slow_windows = 0

    # ------------------------------------------------------------- slots
    async def acquire(self) -> None:
        """Wait for a free slot and take it."""
        if self.in_flight < int(self.level) and not self._waiters:
            self._take()
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # the slot is taken for us by _wake
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # woken and cancelled at once: give the slot back
            else:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass
            raise

    def _take(self) -> None:
        self.in_flight += 1
        if self.in_flight >= int(self.level):
            self._full = True

    def release(self) -> None:
        """Give a slot back without a measurement (no call was made with it)."""
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < int(self.level):
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._take()
                waiter.set_result(None)

    # ------------------------------------------------------------- calls
    def begin(self) -> _Call:
        """A call starts (its slot is held): what it will report on."""
        return _Call(self, self.epoch)

    def refused(self, call: _Call) -> None:
        """A call was refused as overloaded: cut now, once per level that overloads.

        Calls started before the last cut were sent at the old level: their refusals
        are old news and cut nothing.
        """
        if call.epoch >= self._cut_epoch:
            self._close_window(refused=True)

    def end(self, call: _Call, latency: float) -> None:
        """A call ended (answered or failed): free its slot and learn from it."""
        self.in_flight -= 1
        if call.epoch == self.epoch:
            self._done += 1
            if not call.retried:
                self._latencies.append(latency)
            if self._done >= max(MIN_WINDOW, int(self.level)):
                self._close_window()
        self._wake()

    def _close_window(self, refused: bool = False) -> None:
        now = self._clock()
        level = self.level
        self.windows.append((int(level), self._full))
        rate = self._done / max(now - self._opened, 1e-9)
        median = statistics.median(self._latencies) if self._latencies else None
        baseline = min(self._medians) if self._medians else median
        slow = median is not None and bool(baseline) and median > LATENCY_TOLERANCE * baseline
        self._slow_windows = self._slow_windows + 1 if slow else 0
        if refused:
            self._cut(level * CUT_ON_REFUSAL, "refused")
        elif slow and (self._slow_windows >= 2 or median > LATENCY_ALARM * baseline):
            self._cut(level * max(0.5, baseline / median), "latency")
            self._slow_windows = 0
        elif slow:
            pass  # one slow window may be noise: hold the level and look again
        elif self.slow_start:
            grew = self._last_rate is None or rate >= SLOW_START_GAIN * self._last_rate
            if grew or not self._full:
                self.level = min(float(self.ceiling), level * 2)
            else:  # twice the calls in flight, no more answers a second: stop doubling
                self.slow_start = False
        else:
            self.level = min(float(self.ceiling), level + 1)
        if median is not None and not refused:
            self._medians.append(median)
        self._last_rate = rate if (self._full and not refused) else None
        self.peak = max(self.peak, int(self.level))
        self.epoch += 1
        if refused:
            self._cut_epoch = self.epoch
        self._done = 0
        self._latencies = []
        self._full = self.in_flight >= int(self.level)
        self._opened = now

    def _cut(self, level: float, why: str) -> None:
        self.level = max(1.0, level)
        self.slow_start = False
        self.cuts[why] += 1
        if self._first_cut is None:
            self._first_cut = len(self.windows)

    # ------------------------------------------------------------ report
    def settled(self) -> int:
        """The level the run settled at.

        The median level of the full windows after the first cut; before any cut (the
        provider never pushed back) the current level.
        """
        if self._first_cut is not None:
            full = [level for level, was_full in self.windows[self._first_cut:] if was_full]
            if full:
                return round(statistics.median(full))
        return int(self.level)

    def report(self) -> dict[str, Any]:
        """What the limiter did, for ``run_stats`` and the manifest."""
        return {"mode": "adaptive", "start": self.start_level, "ceiling": self.ceiling,
                "settled": self.settled(), "peak": self.peak, "final": int(self.level),
                "limit_found": self._first_cut is not None, "windows": len(self.windows),
                "cuts_refused": self.cuts["refused"], "cuts_latency": self.cuts["latency"]}


def limiter_for(backend: Any) -> Limiter | None:
    """A :class:`Limiter` when ``backend`` asks for adaptive concurrency, else ``None``.

    A backend asks for it with ``adaptive_concurrency = True`` (an OpenAI-compatible
    model built without a fixed concurrency); it starts at ``max_concurrency`` and goes
    up to ``concurrency_ceiling``.
    """
    if getattr(backend, "adaptive_concurrency", False) is not True:
        return None
    start = int(backend.max_concurrency)
    ceiling = int(getattr(backend, "concurrency_ceiling", start) or start)
    return Limiter(start, max(start, ceiling))


def describe_level(level: Any) -> str | None:
    """One line on where adaptive concurrency settled (``None`` for a fixed level).

    Args:
        level: A ``run_stats[label]["concurrency"]`` dict (also in the manifest).
    """
    if not isinstance(level, dict) or level.get("mode") != "adaptive":
        return None
    cuts = []
    if level.get("cuts_refused"):
        cuts.append(f"{level['cuts_refused']} cut(s) on 429/503")
    if level.get("cuts_latency"):
        cuts.append(f"{level['cuts_latency']} on rising latency")
    if level.get("limit_found"):
        how = f"settled at {level['settled']} calls in flight"
    else:
        how = f"rose to {level['settled']} calls in flight without meeting a limit"
    return (f"adaptive concurrency {how} (started at {level.get('start')}, peak "
            f"{level.get('peak')}" + (f"; {', '.join(cuts)}" if cuts else "") + ")")
