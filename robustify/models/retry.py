"""The retry policy for model calls (tenacity underneath).

What is retried, and how:

* HTTP 429 waits as long as the server's ``Retry-After`` (or ``retry-after-ms``) says,
  in seconds or as an HTTP date, capped at :attr:`RetryPolicy.retry_after_cap`, plus a
  little jitter so a crowd of clients does not return in lockstep. Without the header
  it backs off like a 5xx.
* 408/409/425, 5xx, timeouts, dropped connections and garbage answers (malformed
  JSON, empty ``choices``, a 200 whose body is an error object) back off exponentially
  with jitter: ``d = min(max_delay, base_delay * 2**(attempt-1))``, waiting a uniform
  draw in ``[d/2, d]``.
* Attempts are bounded (:attr:`RetryPolicy.max_attempts`, default 5) and so is the total
  time including the calls themselves (:attr:`RetryPolicy.max_elapsed`): a retry whose
  wait would cross the budget is not made.
* 401/403/404 raise :class:`~robustify.models.base.FatalModelError` (the runner stops
  calling that backend); other 4xx fail fast with the server's message
  (:class:`~robustify.models.base.ModelCallError`).

Jitter comes from the policy's own ``random.Random``, never the global RNG. Every wait
is multiplied by :attr:`RetryPolicy.time_scale` and goes through an injectable
``sleep``, so tests can run the real schedule fast or record it without sleeping.

The first attempt runs outside tenacity: a successful call costs one ``await`` and no
retry bookkeeping, which matters at thousands of calls per second.

Each failed attempt is also reported to :data:`ATTEMPT_FAILED`, a context variable the
caller's task may set (the runner's adaptive concurrency listens for 429s there).
"""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import logging
import math
import random
import time
from dataclasses import dataclass, field
from datetime import timezone
from typing import Any, Awaitable, Callable, Mapping, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from robustify.models.base import FatalModelError, ModelCallError, TransientModelError

__all__ = [
    "RetryPolicy",
    "RetryExhaustedError",
    "parse_retry_after",
    "error_for_status",
    "TRANSIENT_STATUSES",
    "FATAL_STATUSES",
    "ATTEMPT_FAILED",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_STATUSES = frozenset({408, 409, 425, 429})
"""4xx statuses worth retrying (every 5xx is retried too)."""

FATAL_STATUSES = frozenset({401, 403, 404})

ATTEMPT_FAILED: contextvars.ContextVar[Callable[[BaseException], None] | None] = \
    contextvars.ContextVar("robustify_attempt_failed", default=None)
"""Called with the error of every failed attempt made in the current task, if set."""


def _report_failure(error: BaseException | None) -> None:
    listener = ATTEMPT_FAILED.get()
    if listener is not None and error is not None:
        listener(error)
"""Statuses that mean the backend is unusable (bad key, no access, unknown model/URL)."""


class RetryExhaustedError(ModelCallError):
    """Every allowed attempt failed with a retryable error; the message names the last one."""

    def __init__(self, message: str, *, attempts: int, last: BaseException | None,
                 status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.attempts = attempts
        """Attempts made (including the first call)."""
        self.last = last
        """The last retryable error."""


def parse_retry_after(headers: Mapping[str, str] | None, *, now: float | None = None
                      ) -> float | None:
    """Seconds to wait according to ``retry-after-ms`` / ``Retry-After``, or ``None``.

    Args:
        headers: Response headers (any case-insensitive or lower-case mapping).
        now: Current POSIX time for HTTP-date values (default ``time.time()``).

    Returns:
        A non-negative number of seconds, or ``None`` when absent or unparseable.
    """
    if not headers:
        return None

    def header(name: str) -> str | None:
        value = headers.get(name)
        if value is None:
            value = headers.get(name.title())
        return value

    ms = header("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000.0
            if math.isfinite(value):
                return max(0.0, value)
        except ValueError:
            pass
    raw = header("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        value = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        now_ts = time.time() if now is None else now
        return max(0.0, when.timestamp() - now_ts)
    if not math.isfinite(value):
        return None
    return max(0.0, value)


def error_for_status(status: int, message: str, *, retry_after: float | None = None,
                     backend: str | None = None) -> Exception:
    """Map an HTTP error status to the error class the retry policy understands.

    Args:
        status: HTTP status code.
        message: One-line server message (already scrubbed of secrets).
        retry_after: Parsed ``Retry-After`` seconds, if any.
        backend: Backend label for fatal errors.
    """
    text = f"HTTP {status}: {message}" if message else f"HTTP {status}"
    if status in FATAL_STATUSES:
        hint = {401: "check the API key variable", 403: "the key lacks access",
                404: "check the model name and base URL"}[status]
        return FatalModelError(f"{text} ({hint})", backend=backend, status=status)
    if status in TRANSIENT_STATUSES or status >= 500:
        return TransientModelError(text, retry_after=retry_after, status=status)
    return ModelCallError(text, status=status)


async def _default_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


@dataclass
class RetryPolicy:
    """Bounded retries with exponential backoff, jitter and ``Retry-After`` support.

    Attributes are plain data so a policy can be shared by many concurrent calls.
    """

    max_attempts: int = 5
    """Attempts per call, the first included (1 disables retrying)."""
    base_delay: float = 0.5
    """Backoff before the first retry (seconds, before jitter)."""
    max_delay: float = 30.0
    """Longest backoff between two attempts (seconds)."""
    max_elapsed: float = 300.0
    """Total budget for one call, attempts and waits included (real seconds)."""
    retry_after_cap: float = 60.0
    """Longest ``Retry-After`` honoured (seconds); longer requests wait this long."""
    retry_after_jitter: float = 0.1
    """Extra wait after a ``Retry-After``, up to this fraction of it (never less)."""
    time_scale: float = 1.0
    """Multiplies every wait: tests run the true schedule at e.g. 0.001."""
    rng: random.Random = field(default_factory=random.Random, repr=False)
    """Jitter source (its own instance: the global RNG is never used)."""
    sleep: Callable[[float], Awaitable[None]] = field(default=_default_sleep, repr=False)
    """Coroutine used to wait (receives scaled seconds); inject one to record waits."""
    retries: int = field(default=0, init=False)
    """Retries made so far through this policy (all calls)."""
    give_ups: int = field(default=0, init=False)
    """Calls that exhausted their attempts or budget."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.time_scale < 0 or self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays and time_scale must be non-negative")

    @classmethod
    def none(cls) -> "RetryPolicy":
        """A policy that never retries."""
        return cls(max_attempts=1)

    def compute_wait(self, attempt: int, error: BaseException | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based), unscaled."""
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            wait = min(float(retry_after), self.retry_after_cap)
            return wait + self.rng.uniform(0.0, self.retry_after_jitter * wait)
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return ceiling / 2 + self.rng.uniform(0.0, ceiling / 2)

    async def call(self, fn: Callable[[], Awaitable[T]], *, what: str = "call") -> T:
        """Await ``fn()``, retrying :class:`TransientModelError` under this policy.

        Args:
            fn: Zero-argument coroutine factory; called once per attempt.
            what: Short description for log lines (e.g. the backend label).

        Raises:
            RetryExhaustedError: Attempts or time budget used up.
            FatalModelError, ModelCallError: Not retried; raised as is.
        """
        started = time.monotonic()
        try:
            return await fn()
        except TransientModelError as exc:
            first: TransientModelError | None = exc
        if self.max_attempts == 1:
            _report_failure(first)
            self.give_ups += 1
            raise RetryExhaustedError(f"{first} (no retries allowed)", attempts=1, last=first,
                                      status=first.status) from first

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= self.max_attempts:
                return True
            upcoming = (state.upcoming_sleep or 0.0) * self.time_scale
            return time.monotonic() - started + upcoming > self.max_elapsed

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            return self.compute_wait(state.attempt_number, error)

        async def scaled_sleep(seconds: float) -> None:
            self.retries += 1
            await self.sleep(seconds * self.time_scale)

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            _report_failure(error)
            logger.debug("%s: attempt %d failed (%s); retrying in %.2fs", what,
                         state.attempt_number, error, state.upcoming_sleep or 0.0)

        def give_up(state: RetryCallState) -> Any:
            self.give_ups += 1
            error = state.outcome.exception() if state.outcome else None
            _report_failure(error)
            elapsed = time.monotonic() - started
            reason = (f"after {state.attempt_number} attempts"
                      if state.attempt_number >= self.max_attempts
                      else f"after {state.attempt_number} attempts and {elapsed:.1f}s "
                           f"(retry budget {self.max_elapsed:g}s)")
            raise RetryExhaustedError(f"gave up {reason}: {error}", attempts=state.attempt_number,
                                      last=error, status=getattr(error, "status", None)) from error

        retrying = AsyncRetrying(
            sleep=scaled_sleep, stop=stop, wait=wait,
            retry=retry_if_exception_type(TransientModelError),
            before_sleep=before_sleep, retry_error_callback=give_up, reraise=False)
        async for attempt in retrying:
            with attempt:
                if first is not None:
                    # Replay the failure already observed as tenacity's attempt 1, so it
                    # computes the first wait without a second call.
                    pending, first = first, None
                    raise pending
                return await fn()
        raise AssertionError("unreachable: tenacity returned without an outcome")
