"""The retry policy: what is retried, how long it waits, and when it gives up."""

from __future__ import annotations

import asyncio
import random
import time
from email.utils import format_datetime
from datetime import datetime, timezone

import pytest

from robustify.models.base import FatalModelError, ModelCallError, TransientModelError
from robustify.models.retry import (RetryExhaustedError, RetryPolicy, error_for_status,
                                    parse_retry_after)


class Recorder:
    """An injectable sleep that records requested waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def flaky(errors: list[BaseException], result: str = "ok"):
    """A coroutine factory raising ``errors`` in turn, then returning ``result``."""
    calls = {"n": 0}

    async def fn() -> str:
        calls["n"] += 1
        if errors:
            raise errors.pop(0)
        return result

    return fn, calls


# ------------------------------------------------------------------ Retry-After parsing
def test_retry_after_seconds_and_fractions() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": " 0.5 "}) == 0.5
    assert parse_retry_after({"Retry-After": "7"}) == 7.0


def test_retry_after_ms_takes_precedence() -> None:
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5


def test_retry_after_http_date_is_relative_to_now() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc).timestamp()
    header = format_datetime(datetime(2026, 1, 2, 3, 4, 35, tzinfo=timezone.utc), usegmt=True)
    assert parse_retry_after({"retry-after": header}, now=now) == pytest.approx(30.0)
    # A date in the past means "now", never a negative wait.
    assert parse_retry_after({"retry-after": header}, now=now + 100) == 0.0


@pytest.mark.parametrize("value", ["soon", "", "nan", "inf"])
def test_retry_after_garbage_is_ignored(value: str) -> None:
    assert parse_retry_after({"retry-after": value}) is None


def test_retry_after_absent_and_negative() -> None:
    assert parse_retry_after({}) is None
    assert parse_retry_after(None) is None
    assert parse_retry_after({"retry-after": "-3"}) == 0.0


# --------------------------------------------------------------------- status mapping
@pytest.mark.parametrize("status", [401, 403, 404])
def test_permanent_statuses_are_fatal(status: int) -> None:
    error = error_for_status(status, "nope", backend="openai:x")
    assert isinstance(error, FatalModelError)
    assert error.status == status and error.backend == "openai:x"
    assert f"HTTP {status}: nope" in str(error)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_transient_statuses(status: int) -> None:
    error = error_for_status(status, "busy", retry_after=3.0)
    assert isinstance(error, TransientModelError)
    assert error.retry_after == 3.0


@pytest.mark.parametrize("status", [400, 413, 422])
def test_other_4xx_fail_fast_with_the_server_message(status: int) -> None:
    error = error_for_status(status, "context length exceeded")
    assert type(error) is ModelCallError
    assert str(error) == f"HTTP {status}: context length exceeded"


# ------------------------------------------------------------------------ wait schedule
def test_exponential_backoff_with_jitter_stays_in_bounds() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0, rng=random.Random(1))
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (9, 8.0)]:
        waits = [policy.compute_wait(attempt, TransientModelError("x")) for _ in range(200)]
        assert min(waits) >= ceiling / 2
        assert max(waits) <= ceiling
        assert len(set(waits)) > 100  # jittered, not constant


def test_jitter_is_seeded_and_never_touches_the_global_rng() -> None:
    state = random.getstate()
    a = RetryPolicy(rng=random.Random(7))
    b = RetryPolicy(rng=random.Random(7))
    seq_a = [a.compute_wait(n, None) for n in range(1, 6)]
    seq_b = [b.compute_wait(n, None) for n in range(1, 6)]
    assert seq_a == seq_b
    assert random.getstate() == state


def test_retry_after_is_honoured_and_capped() -> None:
    policy = RetryPolicy(retry_after_cap=10.0, rng=random.Random(0))
    waits = [policy.compute_wait(1, TransientModelError("429", retry_after=2.0))
             for _ in range(100)]
    assert min(waits) >= 2.0
    assert max(waits) <= 2.0 * 1.1
    capped = policy.compute_wait(1, TransientModelError("429", retry_after=3600.0))
    assert 10.0 <= capped <= 11.0


# ------------------------------------------------------------------------- the loop
def test_success_needs_no_sleep() -> None:
    sleep = Recorder()
    fn, calls = flaky([])
    assert asyncio.run(RetryPolicy(sleep=sleep).call(fn)) == "ok"
    assert calls["n"] == 1 and sleep.waits == []


def test_transient_errors_are_retried_then_succeed() -> None:
    sleep = Recorder()
    policy = RetryPolicy(base_delay=1.0, sleep=sleep, rng=random.Random(0))
    fn, calls = flaky([TransientModelError("HTTP 500"), TransientModelError("HTTP 503")])
    assert asyncio.run(policy.call(fn)) == "ok"
    assert calls["n"] == 3
    assert len(sleep.waits) == 2
    assert 0.5 <= sleep.waits[0] <= 1.0 and 1.0 <= sleep.waits[1] <= 2.0
    assert policy.retries == 2


def test_retry_after_wait_is_what_the_server_asked() -> None:
    sleep = Recorder()
    policy = RetryPolicy(sleep=sleep, rng=random.Random(0))
    fn, calls = flaky([TransientModelError("HTTP 429", retry_after=2.0)])
    assert asyncio.run(policy.call(fn)) == "ok"
    assert calls["n"] == 2
    assert sleep.waits[0] >= 2.0


def test_attempts_are_bounded() -> None:
    sleep = Recorder()
    policy = RetryPolicy(max_attempts=4, sleep=sleep)
    fn, calls = flaky([TransientModelError("HTTP 503: down")] * 10)
    with pytest.raises(RetryExhaustedError) as info:
        asyncio.run(policy.call(fn))
    assert calls["n"] == 4
    assert len(sleep.waits) == 3
    assert info.value.attempts == 4
    assert "gave up after 4 attempts" in str(info.value)
    assert "HTTP 503: down" in str(info.value)
    assert policy.give_ups == 1


def test_total_time_is_bounded() -> None:
    # Retry-After of 50 s would cross a 20 s budget: give up without waiting for it.
    sleep = Recorder()
    policy = RetryPolicy(max_elapsed=20.0, sleep=sleep)
    fn, calls = flaky([TransientModelError("HTTP 429", retry_after=50.0)])
    with pytest.raises(RetryExhaustedError) as info:
        asyncio.run(policy.call(fn))
    assert calls["n"] == 1 and sleep.waits == []
    assert "retry budget 20s" in str(info.value)


@pytest.mark.parametrize("error", [FatalModelError("HTTP 401"), ModelCallError("HTTP 400"),
                                   ValueError("bug")])
def test_non_transient_errors_are_not_retried(error: Exception) -> None:
    sleep = Recorder()
    fn, calls = flaky([error])
    with pytest.raises(type(error)):
        asyncio.run(RetryPolicy(sleep=sleep).call(fn))
    assert calls["n"] == 1 and sleep.waits == []


def test_fatal_error_after_a_retry_is_raised_as_is() -> None:
    fn, calls = flaky([TransientModelError("HTTP 502"), FatalModelError("HTTP 401")])
    with pytest.raises(FatalModelError):
        asyncio.run(RetryPolicy(sleep=Recorder()).call(fn))
    assert calls["n"] == 2


def test_no_retry_policy() -> None:
    fn, calls = flaky([TransientModelError("HTTP 500")])
    with pytest.raises(RetryExhaustedError, match="no retries allowed"):
        asyncio.run(RetryPolicy.none().call(fn))
    assert calls["n"] == 1


def test_time_scale_runs_the_real_schedule_faster() -> None:
    # Retry-After: 2 s at scale 0.05 must really sleep >= 0.1 s (and not the full 2 s).
    policy = RetryPolicy(time_scale=0.05, rng=random.Random(0))
    fn, _ = flaky([TransientModelError("HTTP 429", retry_after=2.0)])
    started = time.monotonic()
    asyncio.run(policy.call(fn))
    elapsed = time.monotonic() - started
    assert 0.1 <= elapsed < 1.0


def test_invalid_policy() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
