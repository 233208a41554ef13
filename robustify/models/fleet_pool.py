"""Endpoint health and scheduling for a fleet: several base URLs serving one model.

:class:`EndpointPool` hands each call to the healthy endpoint with the fewest requests
in flight, never more than :attr:`Endpoint.bound` on one endpoint, and keeps each
endpoint's health:

* **up**: takes calls.
* **drained**: takes no new call (its calls in flight finish). An endpoint is drained
  at once when a connection to it fails, after :data:`FAIL_THRESHOLD` failures in a row
  of another kind (5xx, timeouts, garbled bodies), or when it is markedly slower than
  the others: its mean latency (an exponential average over recent answers, judged
  from its :data:`MIN_OWN_SAMPLES`-th answer) above ``slow_factor`` times the median of
  the other up endpoints' (each with :data:`MIN_SAMPLES` answers) and at least
  :data:`SLOW_FLOOR` seconds above it.
* **probing**: the drain's backoff has passed; the next call goes to it as a probe.
  An answer in time brings it back up (backoff reset); a failure or a slow answer drains
  it again with the backoff doubled (from :data:`PROBE_BASE` up to :data:`PROBE_MAX`).

A 429 (the endpoint is busy, not sick) does not count against it. When every endpoint is
drained, calls wait for the first probe time. The pool is plain bookkeeping on one
event loop (no locks); what an attempt is (an HTTP call) belongs to
:mod:`robustify.models.fleet`.
"""

from __future__ import annotations

import asyncio
import collections
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Endpoint", "EndpointPool", "UP", "DRAINED", "PROBING", "FAIL_THRESHOLD",
           "SLOW_FACTOR", "SLOW_FLOOR", "MIN_SAMPLES", "MIN_OWN_SAMPLES", "PROBE_BASE", "PROBE_MAX"]

UP, DRAINED, PROBING = "up", "drained", "probing"

FAIL_THRESHOLD = 2
"""Failures in a row (other than a refused or dropped connection) that drain an endpoint."""
SLOW_FACTOR = 4.0
"""An endpoint this many times slower than the median of the others is drained."""
SLOW_FLOOR = 0.2
"""...and only when it is also at least this many seconds slower (loopback jitter)."""
MIN_SAMPLES = 8
"""Answers the other endpoints need before their median is a yardstick."""
MIN_OWN_SAMPLES = 3
"""Answers an endpoint needs before its own latency is judged (a slow one has few)."""
PROBE_BASE = 1.0
"""Seconds a drained endpoint waits before its first probe."""
PROBE_MAX = 60.0
"""Longest wait between two probes (the backoff doubles up to this)."""
_ALPHA = 0.2
"""Weight of the newest answer in the latency average."""


@dataclass
class Endpoint:
    """One base URL of a fleet and what the pool knows about it."""

    index: int
    url: str
    bound: int
    """Most requests in flight on this endpoint."""
    state: str = UP
    outstanding: int = 0
    """Requests in flight now."""
    answered: int = 0
    """Calls this endpoint answered."""
    failures: int = 0
    """Attempts that failed here (each was retried elsewhere or by the retry policy)."""
    drains: int = 0
    """Times it was drained."""
    streak: int = 0
    """Failures in a row."""
    latency: float | None = None
    """Exponential average of answer latency (seconds)."""
    samples: int = 0
    backoff: float = PROBE_BASE
    retry_at: float = 0.0
    """``time.monotonic()`` after which a drained endpoint is probed."""
    last_reason: str = ""
    """Why it was last drained (one line, no secrets)."""
    latency_sum: float = field(default=0.0, repr=False)

    def facts(self) -> dict[str, Any]:
        """What the run manifest records for this endpoint."""
        mean = self.latency_sum / self.answered if self.answered else None
        return {"url": self.url, "calls": self.answered, "failures": self.failures,
                "drains": self.drains, "state": self.state,
                "mean_latency_s": round(mean, 4) if mean is not None else None,
                **({"last_drain": self.last_reason} if self.drains else {})}


class EndpointPool:
    """Which endpoint takes the next call; the health of each (see the module docstring).

    Args:
        urls: The base URLs, in the order given.
        bound: Most requests in flight per endpoint.
        slow_factor: Drain an endpoint this many times slower than the others' median.
        clock: ``time.monotonic`` (injectable for tests).
    """

    def __init__(self, urls: list[str], bound: int, *, slow_factor: float = SLOW_FACTOR,
                 probe_base: float = PROBE_BASE, probe_max: float = PROBE_MAX,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.endpoints = [Endpoint(i, url, bound, backoff=probe_base) for i, url in enumerate(urls)]
        self.slow_factor = float(slow_factor)
        self.probe_base = float(probe_base)
        self.probe_max = float(probe_max)
        self.clock = clock
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._turn = 0

    # ------------------------------------------------------------- scheduling
    def pick(self, avoid: frozenset[int] = frozenset()) -> Endpoint | None:
        """The endpoint for the next call now, or ``None`` when every slot is taken.

        A drained endpoint whose probe time has come is taken first (as a probe, one
        call at a time); then the up endpoint with the fewest calls in flight (ties go
        round the fleet). ``avoid`` (endpoints this call already failed on) is a
        preference: one of them is taken only when nothing else is free.
        """
        now = self.clock()
        endpoints = self.endpoints
        n = len(endpoints)
        start = self._turn
        self._turn = (start + 1) % n
        best: Endpoint | None = None
        fallback: Endpoint | None = None
        for step in range(n):
            ep = endpoints[(start + step) % n]
            if ep.state == DRAINED:
                if now >= ep.retry_at and ep.index not in avoid:
                    ep.state = PROBING
                    ep.outstanding += 1
                    return ep
                continue
            if ep.state != UP or ep.outstanding >= ep.bound:
                continue
            if ep.index in avoid:
                if fallback is None or ep.outstanding < fallback.outstanding:
                    fallback = ep
            elif best is None or ep.outstanding < best.outstanding:
                best = ep
        chosen = best or fallback
        if chosen is not None:
            chosen.outstanding += 1
        return chosen

    async def acquire(self, avoid: frozenset[int] = frozenset()) -> Endpoint | None:
        """Wait for an endpoint (see :meth:`pick`); the caller must :meth:`release` it.

        Returns ``None`` (at once) for a call that already failed somewhere (``avoid``
        not empty) when no other endpoint is up: its retry policy backs off instead.
        """
        while True:
            ep = self.pick(avoid)
            if ep is not None:
                return ep
            if avoid and not any(o.state == UP and o.index not in avoid
                                 for o in self.endpoints):
                return None
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            timeout = self._next_probe_in()
            try:
                if timeout is None:
                    await waiter
                else:
                    await asyncio.wait_for(asyncio.shield(waiter), timeout)
            except asyncio.TimeoutError:
                pass
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # pass the wake-up on: this task will not use it
                raise
            finally:
                if not waiter.done():
                    waiter.cancel()
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass

    def _next_probe_in(self) -> float | None:
        """Seconds until a drained endpoint may be probed, when none is up; else ``None``."""
        if any(ep.state == UP for ep in self.endpoints):
            return None
        due = [ep.retry_at for ep in self.endpoints if ep.state == DRAINED]
        if not due:
            return None  # probes in flight: their release wakes us
        return max(0.0, min(due) - self.clock()) + 0.001

    def _wake(self, count: int = 1) -> None:
        while self._waiters and count > 0:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                count -= 1

    # --------------------------------------------------------------- outcomes
    def release(self, ep: Endpoint, *, latency: float | None = None,
                failure: str | None = None, dead: bool = False, busy: bool = False) -> None:
        """Record how the call on ``ep`` ended and free its slot.

        Args:
            latency: Seconds of an answered call.
            failure: One line describing a failed attempt (``None``: answered).
            dead: The connection failed (refused, dropped): drain at once.
            busy: A 429: free the slot, count nothing against the endpoint.
        """
        ep.outstanding -= 1
        probing = ep.state == PROBING
        if busy:
            if probing:
                ep.state, ep.backoff = UP, self.probe_base
        elif failure is not None:
            ep.failures += 1
            ep.streak += 1
            if probing or dead or ep.streak >= FAIL_THRESHOLD:
                self.drain(ep, failure, again=probing)
        else:
            assert latency is not None
            ep.answered += 1
            ep.latency_sum += latency
            ep.streak = 0
            if probing:
                ep.latency, ep.samples = latency, MIN_OWN_SAMPLES  # judged on this answer
                slow = self._too_slow(ep, latency)
                if slow:
                    self.drain(ep, slow, again=True)
                else:
                    ep.state, ep.backoff, ep.samples = UP, self.probe_base, 1
            elif ep.state == UP:
                ep.latency = latency if ep.latency is None else (
                    _ALPHA * latency + (1 - _ALPHA) * ep.latency)
                ep.samples += 1
                slow = self._too_slow(ep, ep.latency)
                if slow:
                    self.drain(ep, slow)
        # an endpoint back up frees all its slots at once
        self._wake(ep.bound if probing and ep.state == UP else 1)

    def drain(self, ep: Endpoint, reason: str, *, again: bool = False) -> None:
        """Stop sending ``ep`` new calls until its probe time (backoff doubled ``again``)."""
        if ep.state == DRAINED:
            return
        ep.backoff = min(self.probe_max, ep.backoff * 2) if again else self.probe_base
        ep.state = DRAINED
        ep.drains += 1
        ep.streak = 0
        ep.last_reason = reason
        ep.retry_at = self.clock() + ep.backoff
        if not any(o.state == UP for o in self.endpoints):
            self._wake(len(self._waiters))  # they wait for a probe time now, not a slot

    def _too_slow(self, ep: Endpoint, latency: float) -> str | None:
        if ep.samples < MIN_OWN_SAMPLES:
            return None
        others = [o.latency for o in self.endpoints
                  if o is not ep and o.state == UP and o.latency is not None
                  and o.samples >= MIN_SAMPLES]
        if not others:
            return None  # never drain the last endpoint for being slow
        median = statistics.median(others)
        if latency > self.slow_factor * median and latency - median >= SLOW_FLOOR:
            return (f"slow: {latency:.2f}s per answer against {median:.2f}s on the other "
                    f"endpoints")
        return None

    # ------------------------------------------------------------------- facts
    def facts(self) -> list[dict[str, Any]]:
        """Per endpoint, in the order given: URL, calls answered, failures, drains, state."""
        return [ep.facts() for ep in self.endpoints]
