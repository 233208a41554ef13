"""The runner: results frame, dedupe, cache, resume, failures, fatal stops, local model."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from perturbations.errors import ConfigError
from perturbations.records import Item, Variant
from robustify.runner.cache import ResponseCache
from robustify.models import FatalModelError, RetryPolicy, parse_model_spec
from robustify.models.python_callable import PythonCallableBackend
from robustify.records import RESULT_COLUMNS, Completion, GenerationParams, Score
from robustify.runner.progress import CallProgress
from robustify.runner.execute import MAX_CALLS_ERROR, arun_queries, estimate_calls, run_queries
from tests.robustify.fake_openai_server import FakeOpenAIServer, Fault

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------- helpers
def build_messages(item: Item) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Answer with the answer only."},
            {"role": "user", "content": item.input}]


def score(item: Item, text: str | None) -> Score:
    if text is None:
        return Score(math.nan)
    answer = text.removeprefix("echo: ")
    return Score(float(answer == item.target), parsed=answer, unparseable=not answer)


def items(n: int, prefix: str = "q") -> list[Item]:
    return [Item(id=f"{prefix}{i}", input=f"question {prefix}{i}?", target=f"question {prefix}{i}?",
                 metadata={"subject": "maths" if i % 2 else "history", "level": i % 3})
            for i in range(n)]


def shouted(item: Item) -> Variant:
    """A changed variant: the question in capitals."""
    return Variant(item=dataclasses.replace(item, input=item.input.upper()), spec="caps@0.5",
                   transform="caps", severity=0.5, seed=0, replicate=0, changed=True,
                   edit_rate=0.5, label_policy="preserves", severity_label="medium")


def unchanged(item: Item) -> Variant:
    """A no-op variant (the transform found nothing to change)."""
    return Variant(item=item, spec="typos@0.2", transform="typos", severity=0.2, seed=0,
                   replicate=0, changed=False, edit_rate=0.0, label_policy="preserves",
                   severity_label="low")


def variant_set(n: int, prefix: str = "q") -> list[Variant]:
    out: list[Variant] = []
    for item in items(n, prefix):
        out += [Variant.clean(item), shouted(item), unchanged(item)]
    return out


def fast() -> RetryPolicy:
    return RetryPolicy(time_scale=0.001, rng=random.Random(0))


def openai_backend(server: FakeOpenAIServer, **kwargs: Any):
    kwargs.setdefault("retry", fast())
    return parse_model_spec(f"openai:fake-model@{server.base_url}", **kwargs)


def run(variants, backends, cache=None, **kwargs) -> pd.DataFrame:
    kwargs.setdefault("progress", False)
    kwargs.setdefault("score", score)
    return run_queries(variants, backends, build_messages=build_messages, cache=cache,
                       **kwargs)


@pytest.fixture
def cache(tmp_path: Path):
    with ResponseCache(tmp_path / "responses.sqlite") as c:
        yield c


# ------------------------------------------------------------------------ the frame
def test_results_frame_shape_order_and_values(fake_server: FakeOpenAIServer, cache) -> None:
    variants = variant_set(4)
    backend = openai_backend(fake_server)
    frame = run(variants, [backend], cache)

    assert list(frame.columns) == list(RESULT_COLUMNS) + ["meta.subject", "meta.level"]
    assert len(frame) == 12
    assert list(frame["variant_id"]) == [v.variant_id for v in variants]
    assert set(frame["model"]) == {backend.label}
    clean = frame.iloc[0]
    assert clean["spec"] == "clean" and clean["response"] == "echo: question q0?"
    assert clean["score"] == 1.0 and clean["parsed"] == "question q0?"
    assert not clean["cached"] and clean["latency"] > 0
    assert clean["tokens_in"] > 0 and clean["tokens_out"] > 0
    caps = frame.iloc[1]
    assert caps["input"] == "QUESTION Q0?" and caps["score"] == 0.0
    assert caps["severity"] == 0.5 and caps["severity_label"] == "medium"
    assert frame["meta.subject"].tolist()[:3] == ["history"] * 3
    assert frame["error"].isna().all()
    assert frame["score"].dtype == float and frame["cached"].dtype == bool
    stats = frame.attrs["run_stats"][backend.label]
    assert stats["calls"] == 8 and stats["unique_prompts"] == 8 and stats["errors"] == 0


def test_unchanged_variants_reuse_the_clean_answer(fake_server: FakeOpenAIServer) -> None:
    variants = variant_set(5)
    built: list[str] = []

    def counting(item: Item) -> list[dict[str, str]]:
        built.append(item.input)
        return build_messages(item)

    frame = run_queries(variants, [openai_backend(fake_server)], build_messages=counting,
                        score=score, cache=None, progress=False)
    assert fake_server.completion_count == 10  # clean + caps per item; no-ops not asked
    reused = frame[frame["spec"] == "typos@0.2"]
    clean = frame[frame["spec"] == "clean"]
    assert reused["response"].tolist() == clean["response"].tolist()
    assert reused["cached"].all() and (reused["latency"] == 0).all()
    assert reused["score"].tolist() == clean["score"].tolist()
    # Prompts are built while planning and again before each call, never for no-ops.
    assert built.count("question q0?") == 2


def test_identical_prompts_are_sent_once(fake_server: FakeOpenAIServer) -> None:
    twins = [Item(id=f"t{i}", input="the same question?", target="x") for i in range(6)]
    variants = [Variant.clean(item) for item in twins]
    frame = run(variants, [openai_backend(fake_server)])
    assert fake_server.completion_count == 1
    assert frame["cached"].tolist() == [False] + [True] * 5
    assert frame["response"].nunique() == 1
    assert frame.attrs["run_stats"][frame["model"][0]]["unique_prompts"] == 1


def test_cache_answers_a_second_run(fake_server: FakeOpenAIServer, cache) -> None:
    variants = variant_set(6)
    first = run(variants, [openai_backend(fake_server)], cache)
    assert fake_server.completion_count == 12
    second = run(variants, [openai_backend(fake_server)], cache)
    assert fake_server.completion_count == 12  # nothing asked again
    assert second["cached"].all() and (second["latency"] == 0).all()
    pd.testing.assert_series_equal(first["response"], second["response"])
    pd.testing.assert_series_equal(first["score"], second["score"])
    stats = second.attrs["run_stats"]
    assert list(stats.values())[0]["cache_hits"] == 12


def test_cache_is_keyed_by_generation_params(fake_server: FakeOpenAIServer, cache) -> None:
    variants = variant_set(2)
    run(variants, [openai_backend(fake_server)], cache)
    run(variants, [openai_backend(fake_server, params=GenerationParams(temperature=0.5))], cache)
    assert fake_server.completion_count == 8


def test_on_result_streams_every_row(fake_server: FakeOpenAIServer, cache) -> None:
    variants = variant_set(3)
    run(variants[:3], [openai_backend(fake_server)], cache)  # warm one item
    streamed: list[dict] = []
    frame = run(variants, [openai_backend(fake_server)], cache, on_result=streamed.append)
    assert len(streamed) == len(frame) == 9
    assert sorted(r["variant_id"] for r in streamed) == sorted(frame["variant_id"])
    # Cache hits are streamed before any call finishes.
    assert [r["cached"] for r in streamed[:3]] == [True, True, True]
    json.dumps(streamed, default=str)  # rows are plain data


# ------------------------------------------------------------------------- failures
def test_one_failing_item_does_not_stop_the_run(fake_server: FakeOpenAIServer, cache) -> None:
    fake_server.add_rule(Fault.http(400, "prompt rejected by policy"), when="QUESTION Q1?")
    fake_server.add_rule(Fault.server_error(503), when="question q2?")
    variants = variant_set(4)
    frame = run(variants, [openai_backend(fake_server)], cache)
    bad = frame[frame["error"].notna()]
    assert sorted(bad["input"]) == ["QUESTION Q1?", "question q2?", "question q2?"]
    assert (bad["error"].str.contains("HTTP 400: prompt rejected by policy")
            | bad["error"].str.contains("gave up after 5 attempts: HTTP 503")).all()
    assert bad["score"].isna().all() and bad["response"].isna().all()
    assert frame[frame["error"].isna()]["score"].notna().all()
    assert not any("\n" in e for e in bad["error"])
    # Errors are not cached: a second run asks exactly the failed prompts again.
    before = fake_server.completion_count
    fake_server.clear_faults()
    again = run(variants, [openai_backend(fake_server)], cache)
    assert fake_server.completion_count - before == 2
    assert again["error"].isna().all()


def test_scorer_exceptions_are_recorded(fake_server: FakeOpenAIServer) -> None:
    def fussy(item: Item, text: str | None) -> Score:
        if item.id == "q1":
            raise ValueError("cannot parse")
        return score(item, text)

    frame = run_queries([Variant.clean(i) for i in items(3)], [openai_backend(fake_server)],
                        build_messages=build_messages, score=fussy, cache=None, progress=False)
    assert frame["error"].tolist()[1] == "scoring failed: ValueError: cannot parse"
    assert frame["response"].tolist()[1] == "echo: question q1?"  # the answer is kept
    assert frame["score"].notna().tolist() == [True, False, True]


def test_a_slow_scorer_runs_off_the_event_loop_with_the_same_results() -> None:
    """After the timed sample, a scorer slower than SLOW_SCORE_SECONDS moves to one
    worker thread; the loop's thread never scores again, and the rows are unchanged."""
    import threading

    from robustify.runner import execute

    def model(messages):
        return "echo: " + messages[-1]["content"]

    threads: list[str] = []

    def slow(item: Item, text: str | None) -> Score:
        threads.append(threading.current_thread().name)
        time.sleep(2 * execute.SLOW_SCORE_SECONDS)
        return score(item, text)

    variants = variant_set(60)  # 180 rows, 120 prompts: more than the timed sample
    slow_frame = run(variants, [PythonCallableBackend(model, label="m", concurrency=8)],
                     score=slow)
    fast_frame = run(variants, [PythonCallableBackend(model, label="m", concurrency=8)])
    sample = execute._SCORE_SAMPLE
    loop_thread = threads[0]
    assert all(name == loop_thread for name in threads[:sample])
    assert all(name.startswith("robustify-score") for name in threads[sample:])
    assert len(threads) > sample
    columns = ["variant_id", "response", "score", "parsed", "unparseable", "error", "cached"]
    pd.testing.assert_frame_equal(slow_frame[columns], fast_frame[columns])


def test_a_fast_scorer_stays_on_the_event_loop() -> None:
    import threading

    seen: set[str] = set()

    def model(messages):
        return "echo: " + messages[-1]["content"]

    def quick(item: Item, text: str | None) -> Score:
        seen.add(threading.current_thread().name)
        return score(item, text)

    run(variant_set(40), [PythonCallableBackend(model, label="m")], score=quick)
    assert len(seen) == 1 and not any(name.startswith("robustify-score") for name in seen)


def test_fatal_error_stops_one_backend_and_the_others_finish(fake_server_factory) -> None:
    bad_server = fake_server_factory(require_key="sk-the-real-key-123456", latency=0.02)
    good_server = fake_server_factory(latency=0.01)
    bad = openai_backend(bad_server, concurrency=4)
    good = openai_backend(good_server, concurrency=4)
    variants = [Variant.clean(i) for i in items(40)]
    streamed: list[dict] = []
    with pytest.raises(FatalModelError) as info:
        run(variants, [bad, good], on_result=streamed.append)
    error = info.value
    assert str(error).startswith(bad.label)
    assert "HTTP 401" in str(error) and "\n" not in str(error)
    assert error.backend == bad.label
    assert bad_server.completion_count <= 4  # what was in flight, no more
    frame = error.results
    assert len(frame) == 80 and len(streamed) == 80
    bad_rows = frame[frame["model"] == bad.label]
    assert bad_rows["error"].str.contains("HTTP 401").all()
    good_rows = frame[frame["model"] == good.label]
    assert good_rows["error"].isna().all() and good_server.completion_count == 40
    assert frame.attrs["fatal"] == {bad.label: bad_rows["error"].iloc[-1]}


def test_python_callables_in_the_runner() -> None:
    def sync_model(messages):
        return "echo: " + messages[-1]["content"]

    async def async_model(prompt: str) -> str:
        await asyncio.sleep(0.001)
        return "echo: " + prompt.split("\n\n")[-1]

    def completion_model(messages):
        return Completion(text="echo: " + messages[-1]["content"], tokens_in=5, tokens_out=2)

    backends = [PythonCallableBackend(sync_model, label="sync"),
                PythonCallableBackend(async_model, label="async"),
                PythonCallableBackend(completion_model, label="completion")]
    frame = run([Variant.clean(i) for i in items(5)], backends)
    assert frame["model"].tolist() == ["sync"] * 5 + ["async"] * 5 + ["completion"] * 5
    assert (frame["score"] == 1.0).all()
    assert frame[frame["model"] == "completion"]["tokens_in"].tolist() == [5] * 5
    assert frame[frame["model"] == "sync"]["tokens_in"].isna().all()


# ------------------------------------------------------------------- limits and speed
def test_max_calls_caps_real_calls(fake_server: FakeOpenAIServer, cache,
                                   caplog: pytest.LogCaptureFixture) -> None:
    variants = [Variant.clean(i) for i in items(10)]
    with caplog.at_level(logging.WARNING):
        frame = run(variants, [openai_backend(fake_server, concurrency=3)], cache, max_calls=4)
    assert fake_server.completion_count == 4
    assert (frame["error"] == MAX_CALLS_ERROR).sum() == 6
    assert frame["response"].notna().sum() == 4
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # one warning, not one per row
    assert warnings[0].startswith("max_calls=4 reached: 6 prompts were not sent")


def test_concurrency_is_bounded_per_backend(fake_server_factory) -> None:
    server = fake_server_factory(latency=0.05)
    run([Variant.clean(i) for i in items(30)], [openai_backend(server, concurrency=5)])
    assert server.max_in_flight == 5


def test_backends_run_at_the_same_time(fake_server_factory) -> None:
    servers = [fake_server_factory(latency=0.5) for _ in range(3)]
    backends = [openai_backend(s, concurrency=5) for s in servers]
    started = time.monotonic()
    run([Variant.clean(i) for i in items(5)], backends)
    elapsed = time.monotonic() - started
    assert all(s.completion_count == 5 for s in servers)
    assert elapsed < 1.25  # about one latency round, not three (1.5 s)


def test_run_queries_inside_a_running_loop(fake_server: FakeOpenAIServer) -> None:
    async def notebook_cell() -> pd.DataFrame:
        return run([Variant.clean(i) for i in items(3)], [openai_backend(fake_server)])

    frame = asyncio.run(notebook_cell())
    assert len(frame) == 3 and frame["error"].isna().all()


def test_bad_arguments(fake_server: FakeOpenAIServer) -> None:
    backend = openai_backend(fake_server)
    with pytest.raises(ConfigError, match="given twice"):
        run([], [backend, openai_backend(fake_server)])
    with pytest.raises(ConfigError, match="no model backends"):
        run([], [])
    with pytest.raises(ConfigError, match="max_calls"):
        run([], [backend], max_calls=-1)
    assert fake_server.completion_count == 0


def test_empty_run(fake_server: FakeOpenAIServer) -> None:
    frame = run([], [openai_backend(fake_server)])
    assert len(frame) == 0 and list(frame.columns) == list(RESULT_COLUMNS)


def test_progress_bar_shows_calls_hits_and_errors() -> None:
    import io

    stream = io.StringIO()
    bar = CallProgress(4, mode="bar", file=stream, min_interval=0.0)
    bar.cache_hits(7)
    bar.call_done(error=False)
    bar.call_done(error=True)
    bar.close()
    text = stream.getvalue()
    assert "2/4" in text and "hits=7 errors=1" in text


def test_a_short_run_prints_nothing_when_not_a_terminal(fake_server: FakeOpenAIServer,
                                                        capsys: pytest.CaptureFixture) -> None:
    run([Variant.clean(i) for i in items(3)], [openai_backend(fake_server)], progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_progress_lines_in_a_log_after_ten_seconds_then_every_thirty() -> None:
    import io

    from robustify.runner.progress import progress_mode

    assert progress_mode(True, io.StringIO()) == "lines"  # not a terminal
    assert progress_mode(False) == "off" and progress_mode("bar") == "bar"
    now = [100.0]
    stream = io.StringIO()
    lines = CallProgress(200, mode="lines", file=stream, clock=lambda: now[0])
    lines.cache_hits(40)
    for step in range(200):
        now[0] += 0.5  # one answer every half second: 100 s in all
        lines.call_done(error=step % 50 == 0)
    lines.close()
    out = stream.getvalue().splitlines()
    # at 10 s (call 20), 40 s, 70 s, then the final line at 100 s
    assert out == [
        "calls: 20/200 (10%), cache hits 40, errors 1, 10 s elapsed, about 1 min 30 s left",
        "calls: 80/200 (40%), cache hits 40, errors 2, 40 s elapsed, about 1 min 00 s left",
        "calls: 140/200 (70%), cache hits 40, errors 3, 1 min 10 s elapsed, about 30 s left",
        "calls: 200/200 (100%), cache hits 40, errors 4, 1 min 40 s elapsed",
    ], out
    quiet = io.StringIO()
    short = CallProgress(5, mode="lines", file=quiet, clock=lambda: now[0])
    for _ in range(5):
        now[0] += 1.0
        short.call_done(error=False)
    short.close()
    assert quiet.getvalue() == ""  # 5 s: no line at all


def test_progress_before_the_plan_is_complete_has_no_total_yet() -> None:
    """Calls start while planning goes on: lines say so, and the total arrives later."""
    import io

    now = [0.0]
    stream = io.StringIO()
    lines = CallProgress(None, mode="lines", file=stream, clock=lambda: now[0],
                         line_interval=10.0, quiet_start=10.0)
    for _ in range(30):
        now[0] += 0.5
        lines.call_done(error=False)
    lines.set_total(60)
    for _ in range(30):
        now[0] += 0.5
        lines.call_done(error=False)
    lines.close()
    assert stream.getvalue().splitlines() == [
        "calls: 20 (still planning), cache hits 0, errors 0, 10 s elapsed",
        "calls: 40/60 (67%), cache hits 0, errors 0, 20 s elapsed, about 10 s left",
        "calls: 60/60 (100%), cache hits 0, errors 0, 30 s elapsed",
    ]
    bar_out = io.StringIO()
    bar = CallProgress(None, mode="bar", file=bar_out, min_interval=0.0)
    bar.call_done(error=False)
    bar.set_total(3)
    bar.call_done(error=False)
    bar.close()
    assert "2/3" in bar_out.getvalue()


# ------------------------------------------------------------- planning while calling
def _recording_model(log: list[str], fail: str | None = None):
    def model(messages: list[dict[str, Any]]) -> str:
        text = messages[-1]["content"]
        log.append(text)
        if text == fail:
            raise ValueError("this prompt always fails")
        return f"echo: {text}"
    return model


def test_calls_start_while_the_variants_are_still_drawn() -> None:
    """The runner plans in slices: the first call goes out long before the last draw."""
    drawn = []
    at_first_call: list[int] = []

    def slow_stream():
        for item in items(150):
            time.sleep(0.002)  # a transform's work: 0.3 s for the whole stream
            drawn.append(item.id)
            yield Variant.clean(item)

    def model(messages: list[dict[str, Any]]) -> str:
        if not at_first_call:
            at_first_call.append(len(drawn))
        return f"echo: {messages[-1]['content']}"

    frame = run(slow_stream(), [PythonCallableBackend(model, label="m", concurrency=4)])
    assert len(frame) == 150 and frame["error"].isna().all()
    assert list(frame["item_id"]) == [f"q{i}" for i in range(150)]
    assert at_first_call[0] < 30, at_first_call  # a few slices in, not after all 150


def test_rows_joining_an_answered_group_share_its_answer(cache, monkeypatch) -> None:
    """A duplicate prompt or an unchanged variant planned after its group was answered
    (or failed, or came from the cache) gets the same answer without a call."""
    import robustify.runner.execute as execute

    base = items(6)
    late: list[int] = []
    real_late = execute._Run.late

    def spy(self, b, group, row):
        late.append(row)
        return real_late(self, b, group, row)

    monkeypatch.setattr(execute._Run, "late", spy)

    def stream(ready):
        yield from (Variant.clean(item) for item in base)
        # fillers (new prompts, 1 ms each: several planning slices) until ``ready()``;
        # the loop answers the clean prompts between the slices
        for n in range(3000):
            if n >= 10 and ready():
                break
            time.sleep(0.001)
            yield shouted(Item(id=f"f{n}", input=f"filler {n}", target="x"))
        else:
            raise AssertionError("the clean prompts were never answered while planning")
        yield from (unchanged(item) for item in base)  # each reuses its clean answer
        yield Variant(item=dataclasses.replace(base[0], id="dup"), spec="dup@0.1",
                      transform="dup", severity=0.1, seed=0, replicate=0, changed=True,
                      edit_rate=0.0, label_policy="preserves", severity_label="low")

    def check(frame: pd.DataFrame) -> None:
        by_id = frame.set_index("variant_id")
        for item in base:
            clean = by_id.loc[Variant.clean(item).variant_id]
            reuse = by_id.loc[unchanged(item).variant_id]
            for column in ("response", "score", "parsed", "error"):
                assert clean[column] == reuse[column] or (
                    pd.isna(clean[column]) and pd.isna(reuse[column])), (item.id, column)
            # (an error row is never marked cached, as for every row of a failed group)
            assert bool(reuse["cached"]) == (item.id != "q3") and reuse["latency"] == 0.0
        assert "this prompt always fails" in by_id.loc[unchanged(base[3]).variant_id]["error"]
        dup = frame[frame["item_id"] == "dup"].iloc[0]
        assert dup["response"] == "echo: question q0?" and bool(dup["cached"])
        assert dup["score"] == 1.0 and dup["latency"] == 0.0

    asked: list[str] = []
    first = run(stream(lambda: sum(t.startswith("question q") for t in asked) >= 6),
                [PythonCallableBackend(_recording_model(asked, fail="question q3?"),
                                       label="m", concurrency=2)], cache)
    check(first)
    # most of the six unchanged variants and the duplicate join after their answer came
    # (a call still in flight takes its late rows along: the other path)
    first_late = len(late)
    assert first_late >= 4, late
    assert sorted(asked) == sorted(set(asked))  # every distinct prompt asked once
    stats = first.attrs["run_stats"]["m"]
    assert stats["calls"] == len(asked) == stats["unique_prompts"]
    assert stats["errors"] == 2  # q3's clean row and its unchanged variant

    # a re-run: all cache hits but q3 (errors are not cached); late rows follow them
    again: list[str] = []
    rerun = run(stream(lambda: True),
                [PythonCallableBackend(_recording_model(again, fail="question q3?"),
                                       label="m", concurrency=2)], cache)
    check(rerun)
    assert len(late) - first_late >= 6  # cache hits are answered as soon as planned
    assert again == ["question q3?"]
    assert int(rerun["cached"].sum()) == len(rerun) - 2  # q3's two rows
    fillers = int(rerun["item_id"].str.startswith("f").sum())
    assert rerun.attrs["run_stats"]["m"]["cache_hits"] == 5 + fillers


def test_a_failure_while_planning_lets_the_calls_out_finish_into_the_cache(cache) -> None:
    """A transform that blows up mid-stream stops new calls, but the calls already out
    are paid for: they finish, are cached, and only then does the error surface."""
    asked: list[str] = []
    delay = [0.2]

    def model(messages: list[dict[str, Any]]) -> str:  # one identity: one cache key space
        asked.append(messages[-1]["content"])
        time.sleep(delay[0])
        return f"echo: {messages[-1]['content']}"

    def stream():
        for n, item in enumerate(items(40)):
            if n == 30:
                # a duplicate of a prompt still out, planned in the failing slice: the
                # call it joined must still be filled when it comes back
                yield dataclasses.replace(Variant.clean(items(1)[0]), spec="dup@0.1")
                raise RuntimeError("transform blew up")
            time.sleep(0.003)
            yield Variant.clean(item)

    with pytest.raises(RuntimeError, match="transform blew up"):
        run(stream(), [PythonCallableBackend(model, label="m", concurrency=4)], cache)
    started = set(asked)
    assert 0 < len(started) < 30  # calls were out when planning failed; no new ones
    asked.clear()
    delay[0] = 0.0
    frame = run([Variant.clean(item) for item in items(30)],
                [PythonCallableBackend(model, label="m", concurrency=4)], cache)
    assert not set(asked) & started  # every call that started was answered and kept
    assert len(asked) == 30 - len(started)
    assert int(frame["cached"].sum()) == len(started)


# ---------------------------------------------------------------------- estimates
def test_estimate_calls_before_and_after_a_run(fake_server: FakeOpenAIServer, cache) -> None:
    variants = variant_set(4)
    backend = openai_backend(fake_server)
    estimate = estimate_calls(variants, [backend], build_messages, cache)
    assert estimate["rows"] == 12 and estimate["calls"] == 8
    assert estimate["cache_hits"] == 0 and estimate["duplicates"] == 4
    chars = sum(len(m["content"]) for v in variants if v.spec != "typos@0.2"
                for m in build_messages(v.item))
    assert abs(estimate["approx_tokens_in"] - chars / 4) <= 8
    assert estimate["approx_tokens_out_max"] == 8 * 48
    assert estimate["per_model"][backend.label]["calls"] == 8
    assert fake_server.completion_count == 0
    run(variants[:6], [backend], cache)
    after = estimate_calls(variants, [backend], build_messages, cache)
    assert after["calls"] == 4 and after["cache_hits"] == 4


# ------------------------------------------------------------------- resume safety
def test_rerun_after_max_calls_sends_only_the_rest(fake_server: FakeOpenAIServer, cache) -> None:
    variants = [Variant.clean(i) for i in items(20)]
    run(variants, [openai_backend(fake_server, concurrency=4)], cache, max_calls=7)
    first = set(fake_server.prompts)
    assert len(first) == 7
    fake_server.reset()
    frame = run(variants, [openai_backend(fake_server, concurrency=4)], cache)
    second = fake_server.prompts
    assert len(second) == 13 and not first & set(second)
    assert frame["error"].isna().all() and frame["cached"].sum() == 7


def test_cancelled_run_resumes_without_repeating_answered_prompts(
        fake_server_factory, tmp_path: Path) -> None:
    server = fake_server_factory(latency=0.02)
    variants = [Variant.clean(i) for i in items(60)]
    answered: list[str] = []

    async def interrupted() -> None:
        cache = ResponseCache(tmp_path / "c.sqlite")
        task: asyncio.Task | None = None

        def on_result(row: dict) -> None:
            answered.append(row["input"])
            if len(answered) == 15 and task is not None:
                task.cancel()  # like Ctrl-C in the middle of the run

        task = asyncio.ensure_future(arun_queries(
            variants, [openai_backend(server, concurrency=4)], build_messages=build_messages,
            score=score, cache=cache, progress=False, on_result=on_result))
        with pytest.raises(asyncio.CancelledError):
            await task
        cache.close()

    asyncio.run(interrupted())
    assert 15 <= len(answered) < 60
    first_run = server.completion_count
    server.reset()
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        stored = len(cache)
        frame = run(variants, [openai_backend(server, concurrency=4)], cache)
    resent = set(server.prompts)
    assert not resent & set(answered)  # nothing answered before is asked again
    # every reported answer was in the file; an answer still being stored at the
    # cancel is kept too (it was committed, just not reported), never asked again
    assert len(answered) <= stored <= len(answered) + 4
    assert len(resent) == 60 - stored
    assert first_run + server.completion_count <= 60 + 4  # at most the in-flight calls twice
    assert frame["error"].isna().all()


KILLED_RUN = textwrap.dedent("""
    import sys
    from perturbations.records import Item, Variant
    from robustify.runner.cache import ResponseCache
    from robustify.models import parse_model_spec
    from robustify.records import Score
    from robustify.runner.execute import run_queries
    base_url, cache_path, log_path = sys.argv[1:4]
    variants = [Variant.clean(Item(id=f"k{i}", input=f"kill question {i}?", target="x"))
                for i in range(80)]
    log = open(log_path, "a", buffering=1)
    run_queries(variants, [parse_model_spec(f"openai:m@{base_url}", concurrency=4)],
                build_messages=lambda item: [{"role": "user", "content": item.input}],
                score=lambda item, text: Score(0.0), cache=ResponseCache(cache_path),
                progress=False, on_result=lambda row: log.write(row["input"] + "\\n"))
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkilled_run_resumes_without_repeating_answered_prompts(
        fake_server_factory, tmp_path: Path) -> None:
    server = fake_server_factory(latency=0.05)
    script, log = tmp_path / "job.py", tmp_path / "answered.log"
    script.write_text(KILLED_RUN)
    log.write_text("")
    proc = subprocess.Popen([sys.executable, str(script), server.base_url,
                             str(tmp_path / "c.sqlite"), str(log)],
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 60
    while len(log.read_text().splitlines()) < 30 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    answered = log.read_text().splitlines()
    assert 30 <= len(answered) < 80
    server.reset()
    variants = [Variant.clean(Item(id=f"k{i}", input=f"kill question {i}?", target="x"))
                for i in range(80)]
    backend = parse_model_spec(f"openai:m@{server.base_url}", concurrency=4)
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        frame = run_queries(variants, [backend],
                            build_messages=lambda item: [{"role": "user", "content": item.input}],
                            score=lambda item, text: Score(0.0), cache=cache, progress=False)
    repeated = set(server.prompts) & set(answered)
    # Only answers still waiting for their (20 ms) batch commit can be lost to SIGKILL.
    assert len(repeated) <= 4
    assert len(server.prompts) <= 80 - len(answered) + len(repeated)
    assert frame["error"].isna().all() and frame["response"].notna().all()
    assert frame["cached"].sum() == 80 - len(server.prompts)


# ---------------------------------------------------------------------------- secrets
def test_the_key_never_reaches_cache_results_or_logs(
        fake_server_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-live-ZZUNIQUE-9c1e7a33f0b2"
    monkeypatch.setenv("ROBUSTIFY_TEST_KEY", secret)
    server = fake_server_factory(require_key=secret)
    backend = openai_backend(server, api_key_env="ROBUSTIFY_TEST_KEY")
    streamed: list[dict] = []
    with caplog.at_level(logging.DEBUG), ResponseCache(tmp_path / "c.sqlite") as cache:
        frame = run(variant_set(5), [backend], cache, on_result=streamed.append)
        assert len(cache) == 10
    assert frame["error"].isna().all()
    assert server.requests[0].headers["authorization"] == f"Bearer {secret}"  # it was used
    blobs = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert secret.encode() not in blobs and b"ZZUNIQUE" not in blobs
    assert secret not in frame.to_csv() and secret not in json.dumps(streamed, default=str)
    assert secret not in json.dumps(frame.attrs, default=str)
    assert secret not in caplog.text


# ---------------------------------------------------------------------- local model
@pytest.mark.slow
def test_local_smollm2_end_to_end(local_model_path: Path, tmp_path: Path) -> None:
    questions = [Item(id="paris", input="What is the capital of France? Answer with one word.",
                      target="Paris"),
                 Item(id="legs", input="How many legs does a spider have?", target="8")]
    variants = [Variant.clean(q) for q in questions] + [shouted(questions[0])]

    short = GenerationParams(max_tokens=16)

    def contains(item: Item, text: str | None) -> Score:
        return Score(float(item.target.lower() in (text or "").lower()), parsed=text)

    def ask(cache: ResponseCache) -> pd.DataFrame:
        # One thread: on a shared CI box, llama.cpp threads waiting for a busy core
        # can make a 1 s test take minutes.
        backend = parse_model_spec("local:smollm2", params=short, n_threads=1)
        return run_queries(variants, [backend],
                           build_messages=lambda item: [{"role": "user", "content": item.input}],
                           score=contains, cache=cache, progress=False)

    with ResponseCache(tmp_path / "c.sqlite") as cache:
        first = ask(cache)
        second = ask(cache)
    assert first["error"].isna().all(), first["error"].tolist()
    assert not first["cached"].any() and second["cached"].all()
    assert first["response"].tolist() == second["response"].tolist()
    assert first.loc[0, "score"] == 1.0  # "... Paris." at temperature 0
    assert (first["tokens_out"] > 0).all()
    # Deterministic at temperature 0: asking again without the cache gives the same text.
    third = ask(None)  # type: ignore[arg-type]
    assert third["response"].tolist() == first["response"].tolist()


def test_a_failing_on_result_callback_stops_every_call(fake_server_factory) -> None:
    server = fake_server_factory(latency=0.05)

    def broken(row: dict) -> None:
        raise OSError("disk full")

    async def notebook() -> int:
        with pytest.raises(OSError, match="disk full"):
            await arun_queries([Variant.clean(i) for i in items(40)],
                               [openai_backend(server, concurrency=4)],
                               build_messages=build_messages, score=score, cache=None,
                               progress=False, on_result=broken)
        count = server.completion_count
        await asyncio.sleep(0.3)  # the loop lives on, like a notebook kernel
        return server.completion_count - count

    assert asyncio.run(notebook()) == 0
    assert server.completion_count <= 4


class _FlakyCache(ResponseCache):
    """A cache that cannot store some answers: every third is refused, every fifth raises."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.attempts = 0

    async def aput(self, key: str, completion) -> bool:
        self.attempts += 1
        if self.attempts % 5 == 0:
            raise OSError("disk full")
        if self.attempts % 3 == 0:
            return False
        return await super().aput(key, completion)


def test_answers_the_cache_cannot_store_still_count_and_are_asked_again(
        fake_server: FakeOpenAIServer, tmp_path: Path, caplog) -> None:
    variants = [Variant.clean(i) for i in items(15)]
    flaky = _FlakyCache(tmp_path / "c.sqlite")
    with caplog.at_level("WARNING", logger="robustify.runner.execute"):
        frame = run(variants, [openai_backend(fake_server, concurrency=3)], flaky)
    flaky.close()
    stats = frame.attrs["run_stats"][frame["model"][0]]
    # attempts 3, 5, 6, 9, 10, 12, 15 were not stored (5, 10, 15 raised)
    assert frame["error"].isna().all() and stats["calls"] == 15
    assert stats["unstored"] == 7
    assert sum("answer not cached (OSError: disk full)" in r.message for r in caplog.records) == 3
    fake_server.reset()
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        again = run(variants, [openai_backend(fake_server, concurrency=3)], cache)
    assert fake_server.completion_count == 7  # only the unstored ones are asked again
    assert again["cached"].sum() == 8
