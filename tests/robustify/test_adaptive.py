"""Adaptive concurrency: the AIMD limiter alone, and the runner against hidden limits.

The limiter tests drive :class:`robustify.runner.adaptive.Limiter` with a fake clock
and hand-made calls, so every step of the rule is asserted exactly. The end-to-end tests
run the real runner against ``tests/robustify/limited_server.py``, a loopback
OpenAI-compatible server that refuses (HTTP 429) or queues calls above a hidden limit.
"""

from __future__ import annotations

import asyncio
import math
import random

import pytest

from perturbations.records import Item, Variant
from robustify.models import RetryPolicy, parse_model_spec
from robustify.models.base import TransientModelError
from robustify.models.python_callable import PythonCallableBackend
from robustify.models.retry import ATTEMPT_FAILED
from robustify.records import Score
from robustify.runner.adaptive import (CUT_ON_REFUSAL, MIN_WINDOW, Limiter, describe_level,
                                       limiter_for)
from robustify.runner.execute import run_queries
from tests.robustify.limited_server import LimitedServer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def window(limiter: Limiter, clock: Clock, latency: float, *, seconds: float = 1.0) -> None:
    """Fill the limiter to its level and finish one window of calls at ``latency``."""
    level = int(limiter.level)
    calls = []
    for _ in range(max(MIN_WINDOW, level)):
        limiter.in_flight += 1  # as acquire() does when a slot is free
        calls.append(limiter.begin())
    limiter._full = True
    clock.now += seconds
    epoch = limiter.epoch
    for call in calls:
        limiter.end(call, latency)
    assert limiter.epoch == epoch + 1, "one window closed"


def make(start: int = 16, ceiling: int = 512) -> tuple[Limiter, Clock]:
    clock = Clock()
    return Limiter(start, ceiling, clock=clock), clock


# ------------------------------------------------------------------ the rule, exactly
def test_slow_start_doubles_while_throughput_grows_then_stops() -> None:
    limiter, clock = make(16, 512)
    window(limiter, clock, 0.25)  # 16 calls in 1 s
    assert limiter.level == 32 and limiter.slow_start
    window(limiter, clock, 0.25)  # 32 calls in 1 s: throughput doubled
    assert limiter.level == 64
    window(limiter, clock, 0.25, seconds=2.0)  # 64 calls in 2 s: no more answers a second
    assert limiter.level == 64 and not limiter.slow_start
    window(limiter, clock, 0.25, seconds=2.0)  # additive increase from here
    assert limiter.level == 65


def test_slow_start_stops_at_the_ceiling() -> None:
    limiter, clock = make(16, 40)
    for _ in range(3):
        window(limiter, clock, 0.25)
    assert limiter.level == 40


def test_a_refusal_cuts_at_once_and_only_once_per_level() -> None:
    limiter, clock = make(16, 512)
    window(limiter, clock, 0.25)
    assert limiter.level == 32
    calls = [limiter.begin() for _ in range(5)]
    limiter.in_flight += 5
    error = TransientModelError("HTTP 429: slow down", status=429)
    calls[0].attempt_failed(error)
    assert limiter.level == 32 * CUT_ON_REFUSAL and not limiter.slow_start
    assert limiter.cuts == {"refused": 1, "latency": 0}
    for call in calls[1:]:  # sent at the old level: old news
        call.attempt_failed(error)
    assert limiter.level == 32 * CUT_ON_REFUSAL and limiter.cuts["refused"] == 1
    calls[0].attempt_failed(error)  # a second retry of the same call counts once
    assert limiter.cuts["refused"] == 1
    fresh = limiter.begin()
    fresh.attempt_failed(error)  # refused at the new level: cut again
    assert limiter.level == pytest.approx(32 * CUT_ON_REFUSAL ** 2)
    # a 500 is a failure, not a refusal: it cuts nothing, and its latency is left out
    other = limiter.begin()
    other.attempt_failed(TransientModelError("HTTP 500", status=500))
    assert limiter.cuts["refused"] == 2 and other.retried and not other.refused


def test_rising_latency_holds_once_then_cuts_in_proportion() -> None:
    limiter, clock = make(16, 512)
    window(limiter, clock, 0.25)
    window(limiter, clock, 0.25)
    assert limiter.level == 64
    window(limiter, clock, 0.32)  # 1.28x the baseline: maybe noise, hold
    assert limiter.level == 64 and limiter.cuts["latency"] == 0
    window(limiter, clock, 0.32)  # twice running: queueing; cut to what is served
    assert limiter.level == pytest.approx(64 * 0.25 / 0.32)
    assert limiter.cuts["latency"] == 1 and not limiter.slow_start


def test_latency_far_above_the_baseline_cuts_at_once() -> None:
    limiter, clock = make(16, 512)
    window(limiter, clock, 0.25)
    window(limiter, clock, 0.50)  # 2x: no second look needed
    assert limiter.level == pytest.approx(32 * 0.5)
    assert limiter.cuts["latency"] == 1


def test_settled_level_is_the_median_of_full_windows_after_the_first_cut() -> None:
    limiter, clock = make(16, 512)
    assert limiter.settled() == 16  # no window yet: where it is
    window(limiter, clock, 0.25)
    window(limiter, clock, 0.25)
    window(limiter, clock, 0.50)  # cut 64 -> 32
    for _ in range(4):
        window(limiter, clock, 0.25)  # 32, 33, 34, 35 -> 36
    report = limiter.report()
    assert report["settled"] == 34  # median of 32, 33, 34, 35 is 33.5, rounded to even
    assert report["peak"] == 64 and report["final"] == 36 and report["limit_found"]
    assert report["cuts_latency"] == 1 and report["windows"] == 7


def test_acquire_waits_above_the_level_and_a_release_wakes_one() -> None:
    async def scenario() -> list[str]:
        limiter = Limiter(2, 8)
        order: list[str] = []

        async def worker(name: str) -> None:
            await limiter.acquire()
            order.append(name)

        await limiter.acquire()
        await limiter.acquire()
        waiting = [asyncio.ensure_future(worker(n)) for n in ("a", "b")]
        await asyncio.sleep(0)
        assert order == [] and limiter.in_flight == 2
        limiter.release()
        await asyncio.sleep(0)
        assert order == ["a"] and limiter.in_flight == 2
        waiting[1].cancel()  # a cancelled waiter gives nothing back twice
        await asyncio.gather(*waiting, return_exceptions=True)
        limiter.release()
        limiter.release()
        assert limiter.in_flight == 0
        return order

    assert asyncio.run(scenario()) == ["a"]


def test_attempt_failures_reach_the_listener_of_the_calling_task() -> None:
    seen: list[int | None] = []

    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise TransientModelError("HTTP 429", status=429 if len(attempts) == 1 else 503)
        return "ok"

    async def scenario() -> str:
        ATTEMPT_FAILED.set(lambda error: seen.append(getattr(error, "status", None)))
        policy = RetryPolicy(time_scale=0.0, rng=random.Random(0))
        return await policy.call(flaky)

    attempts: list[int] = []
    assert asyncio.run(scenario()) == "ok"
    assert seen == [429, 503]  # each failed attempt once, the success not at all
    assert ATTEMPT_FAILED.get() is None  # the task's setting stayed in the task


# -------------------------------------------------------------- which backends adapt
def test_only_openai_models_without_a_fixed_concurrency_adapt() -> None:
    adaptive = parse_model_spec("openai:m@http://127.0.0.1:9/v1")
    fixed = parse_model_spec("openai:m@http://127.0.0.1:9/v1", concurrency=16)
    python = PythonCallableBackend(lambda prompt: "x")
    limiter = limiter_for(adaptive)
    assert limiter is not None and (limiter.level, limiter.ceiling) == (16, 512)
    assert limiter_for(fixed) is None and limiter_for(python) is None
    assert fixed.concurrency_ceiling == 16  # its connection pool stays at the fixed level


# ------------------------------------------------------------ end to end, real server
def _variants(n: int) -> list[Variant]:
    return [Variant.clean(Item(id=f"q{i}", input=f"question {i}?", target="x"))
            for i in range(n)]


def _messages(item: Item) -> list[dict[str, str]]:
    return [{"role": "user", "content": item.input}]


def _score(item: Item, text: str | None) -> Score:
    return Score(math.nan if text is None else 1.0)


def _run(server: LimitedServer, n: int, **kwargs):
    backend = parse_model_spec(f"openai:fake@{server.base_url}",
                               retry=RetryPolicy(rng=random.Random(0)),
                               **kwargs)
    frame = run_queries(_variants(n), [backend], build_messages=_messages, score=_score,
                        cache=None, progress=False)
    return frame, frame.attrs["run_stats"][backend.label]


def test_refusals_above_a_hidden_limit_are_found_and_no_call_is_lost() -> None:
    hidden = 24
    with LimitedServer(limit=hidden, mode="refuse", latency=0.3, record=False) as server:
        frame, stats = _run(server, 600)
        served = server.stats()
    level = stats["concurrency"]
    assert frame["error"].isna().all(), frame["error"].dropna().head(3).tolist()
    assert stats["calls"] == 600
    assert served["completions"] == 600 and served["max_in_flight"] <= hidden
    assert served["refused"] >= 1 and level["cuts_refused"] >= 1
    assert level["mode"] == "adaptive" and level["start"] == 16 and level["peak"] >= 32
    assert level["limit_found"]
    # it settled near the hidden limit (the benchmark holds the 20% mark; a shared
    # test machine adds latency noise, so the test allows a wider band)
    assert 0.5 * hidden <= level["settled"] <= 1.25 * hidden, level


def test_a_queueing_server_is_found_by_its_latency() -> None:
    hidden = 20
    with LimitedServer(limit=hidden, mode="queue", latency=0.3, record=False) as server:
        frame, stats = _run(server, 600)
        served = server.stats()
    level = stats["concurrency"]
    assert frame["error"].isna().all() and served["refused"] == 0
    assert level["cuts_latency"] >= 1 and level["limit_found"]
    assert 0.5 * hidden <= level["settled"] <= 1.5 * hidden, level


def test_a_fixed_concurrency_still_wins() -> None:
    with LimitedServer(limit=100, mode="refuse", latency=0.05, record=False) as server:
        frame, stats = _run(server, 120, concurrency=6)
        served = server.stats()
    assert frame["error"].isna().all()
    assert stats["concurrency"] == {"mode": "fixed", "level": 6}
    assert served["max_in_flight"] == 6


def test_the_settled_level_reaches_the_manifest_summary_and_report(tmp_path) -> None:
    import io
    import json

    from robustify.cli.run import print_summary
    from robustify.pipeline.run import evaluate

    with LimitedServer(limit=50, mode="refuse", latency=0.01, record=False) as server:
        spec = f"openai:fake@{server.base_url}"
        result = evaluate("sample", models=spec, transforms="typos", limit=4,
                          out=tmp_path / "run", cache=tmp_path / "c.sqlite", progress=False)
    (label, level), = result.manifest["concurrency"].items()
    assert level["mode"] == "adaptive" and level["start"] == 16
    on_disk = json.loads((tmp_path / "run" / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk["concurrency"][label] == level
    line = describe_level(level)
    assert line is not None and line.startswith("adaptive concurrency ")
    report = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    facts = [row for row in report.splitlines() if row.startswith("| concurrency |")]
    assert len(facts) == 1 and facts[0].endswith(f": {line} |")  # the URL is escaped
    shown = io.StringIO()
    print_summary(result, out=shown)
    assert f"{label}: {line}" in shown.getvalue()
    assert describe_level({"mode": "fixed", "level": 8}) is None


def test_describe_level_says_whether_a_limit_was_met() -> None:
    found = {"mode": "adaptive", "start": 16, "settled": 30, "peak": 64,
             "limit_found": True, "cuts_refused": 3, "cuts_latency": 0}
    assert describe_level(found) == ("adaptive concurrency settled at 30 calls in flight "
                                     "(started at 16, peak 64; 3 cut(s) on 429/503)")
    free = {**found, "limit_found": False, "settled": 512, "peak": 512, "cuts_refused": 0}
    assert describe_level(free) == ("adaptive concurrency rose to 512 calls in flight "
                                    "without meeting a limit (started at 16, peak 512)")
