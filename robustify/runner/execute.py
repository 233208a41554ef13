"""Query every backend on every variant: concurrent, cached, deduplicated, resumable.

:func:`arun_queries` (and its sync twin :func:`run_queries`) turns variants x backends
into the results frame (one row per backend x variant, columns
:data:`~robustify.records.RESULT_COLUMNS` plus ``meta.<key>``). How it saves calls:

1. A variant with ``changed=False`` whose item equals its clean original (given
   earlier in the stream) reuses the clean answer (no prompt is even built for it).
2. Identical messages for the same backend are sent once; the other rows share the
   answer (``cached=True``).
3. The response cache answers everything asked before, by any earlier run
   (``cached=True``, latency 0).
4. ``max_calls`` caps the real calls of the whole run; rows beyond it get the error
   ``"max_calls reached"`` and a warning is logged.

Each backend gets ``backend.max_concurrency`` workers pulling prompts from its queue;
all backends run at once. A backend built without a fixed concurrency that asks for it
(``adaptive_concurrency``: OpenAI-compatible models) gets an adaptive level instead
(:mod:`robustify.runner.adaptive`): more calls in flight while throughput grows, fewer
on 429s and rising latency; ``run_stats[label]["concurrency"]`` says where it settled.
An answer is handed to the cache as soon as it arrives, so an interrupted run (Ctrl-C,
cancellation, even SIGKILL) loses at most the calls in flight, and a re-run asks only
what is still unanswered.

Planning and calling overlap: the variants are planned in slices of a few
milliseconds on the event loop (:mod:`robustify.runner.feed`), so the first calls go
out while later variants are still being drawn; a row that joins a prompt already
answered (a duplicate, an unchanged variant) takes that answer at once.

Memory: the variants are read once, as a stream (a generator is fine), and are not
kept. Rows are stored column by column (shared strings, typed arrays) and become the
frame at the end; an item is kept only until its rows are scored, and a variant that
differs from its clean original only in its text keeps just that text. A run of
millions of rows thus holds little more than its results frame (``docs/performance.md``).

Failures: an error on one prompt is recorded on its rows (one line, no secrets, score
NaN) and the run goes on. A :class:`~robustify.models.base.FatalModelError` (bad key,
unknown model) stops new calls to that backend at once; its unanswered rows carry that
error, the other backends finish, and then the error is raised with the complete frame
attached as ``error.results`` (also in ``frame.attrs["fatal"]``), so a CLI prints one
clear line while a notebook can still use the rows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from array import array
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence, Sized

from perturbations.errors import ConfigError, RobustifyError
from perturbations.records import Item, Variant
from robustify.models.answer_cap import answer_limit, cap_answer
from robustify.models.base import Backend, FatalModelError, one_line, run_sync
from robustify.models.retry import ATTEMPT_FAILED
from robustify.records import Completion, Score
from robustify.runner.adaptive import Limiter, limiter_for
from robustify.runner.cache import ResponseCache
from robustify.runner.progress import CallProgress, progress_mode
from robustify.runner.feed import Feeder
from robustify.runner.plan import (LOOKUP_CHUNK, BackendStats, Planner, check_backends,
                                   plan_rows)
from robustify.runner.store import Results, Rows, build_frame

if TYPE_CHECKING:  # pandas is imported when the frame is built, after the calls
    import pandas as pd

__all__ = ["arun_queries", "run_queries", "estimate_calls", "MAX_CALLS_ERROR", "BackendStats"]

logger = logging.getLogger(__name__)

MAX_CALLS_ERROR = "max_calls reached"
"""Error recorded on rows left unasked because of ``max_calls``."""

BuildMessages = Callable[[Item], list[dict[str, str]]]
ScoreFn = Callable[[Item, "str | None"], Score]

_NAN = float("nan")
SLOW_SCORE_SECONDS = 0.0005
"""Mean seconds per scored answer above which scoring moves off the event loop."""
_SCORE_SAMPLE = 64
"""Answers scored on the loop (and timed) before deciding where the rest are scored."""

Outcome = tuple[float, Any, bool, "str | None", "str | None"]


class _Run:
    """State of one :func:`arun_queries` call."""

    def __init__(self, planner: Planner, *, score: ScoreFn, build_messages: BuildMessages,
                 cache: ResponseCache | None, max_calls: int | None,
                 on_result: Callable[[dict[str, Any]], None] | None,
                 progress: CallProgress) -> None:
        assert planner.rows is not None
        self.rows: Rows = planner.rows
        self.plans = plans = planner.plans
        self.groups = planner.groups
        self.score = score
        self.build_messages = build_messages
        self.cache = cache
        self.budget = max_calls
        self.on_result = on_result
        self.progress = progress
        self.results = [Results(0) for _ in plans]
        # Backends still to score each row; its item is dropped when this reaches 0.
        self._all_backends = array("B" if len(plans) < 256 else "L", [len(plans)])
        self.unscored = array(self._all_backends.typecode)
        self.finished = [bytearray() for _ in plans]
        """Per backend and group: 1 once its rows are filled (answer, hit or error)."""
        self.fatal: dict[int, FatalModelError] = {}
        self.stopped: Exception | None = None
        """Planning failed: workers take no new prompt and the run raises this."""
        self.over_budget = 0
        self.warned_score = False
        self.parsed_values: dict[str, str] = {}
        # Scoring timed on the first answers; a slow scorer then runs in one worker
        # thread (never two scorer calls at once), so the loop keeps serving the calls.
        self.score_seconds = 0.0
        self.scored_answers = 0
        self.score_thread: Any = None
        # adaptive concurrency, per backend (None: a fixed number of workers)
        self.limiters: list[Limiter | None] = [limiter_for(p.backend) for p in plans]

    # ----------------------------------------------------------------- rows
    def _score(self, item: Item, text: str) -> Outcome:
        try:
            result = self.score(item, text)
        except Exception as exc:  # a scorer bug must not lose the answers
            if not self.warned_score:
                self.warned_score = True
                logger.exception("scoring failed on item %r", item.id)
            return (_NAN, None, False,
                    one_line(f"scoring failed: {type(exc).__name__}: {exc}"), None)
        parsed = result.parsed
        if type(parsed) is str and len(parsed) <= 32:
            # Short parsed answers repeat ("A", "yes", "42"): one copy each, not one per
            # row. Long ones are mostly unique, where a table would only add memory.
            parsed = self.parsed_values.setdefault(parsed, parsed)
        detail = None
        if result.detail:
            # kept as compact JSON (the scorer's own words on how it read the answer);
            # the few distinct details repeat, so one copy each
            detail = json.dumps(result.detail, sort_keys=True, ensure_ascii=False,
                                separators=(",", ":"), default=str)
            detail = self.parsed_values.setdefault(detail, detail)
        return float(result.value), parsed, bool(result.unparseable), None, detail

    def score_group(self, indices: Sequence[int], text: str) -> dict[int, Outcome]:
        """Score one answer for each row of a group (row index -> outcome).

        Pure with respect to the run's rows: safe in the scoring thread while the loop
        fills other groups. Rows reusing a clean answer share the clean row's item
        object, which is scored once.
        """
        rows = self.rows
        started = time.perf_counter()
        out: dict[int, Outcome] = {}
        shared: dict[int, Outcome] = {}
        for index in indices:
            source = rows.source[index]
            if rows.own_input[index] or source is None:
                out[index] = self._score(rows.item(index), text)
            else:
                outcome = shared.get(id(source))
                if outcome is None:
                    outcome = shared[id(source)] = self._score(source, text)
                out[index] = outcome
        self.score_seconds += time.perf_counter() - started
        self.scored_answers += 1
        return out

    def scores_off_loop(self) -> bool:
        """Whether answers are now scored in the scoring thread (the scorer is slow)."""
        if self.score_thread is None and self.scored_answers >= _SCORE_SAMPLE and (
                self.score_seconds / self.scored_answers > SLOW_SCORE_SECONDS):
            from concurrent.futures import ThreadPoolExecutor

            self.score_thread = ThreadPoolExecutor(1, thread_name_prefix="robustify-score")
            logger.info("scoring takes %.1f ms an answer: scoring off the event loop",
                        self.score_seconds / self.scored_answers * 1e3)
        return self.score_thread is not None

    def grow(self, rows: int) -> None:
        """Make room for ``rows`` newly planned rows."""
        for res in self.results:
            res.extend(rows)
        self.unscored.extend(self._all_backends * rows)

    def finish(self, b: int, group: int, *, completion: Completion | None,
               error: str | None, latency: float, cached: bool,
               outcomes: dict[int, Outcome] | None = None) -> int:
        """Fill and emit the rows of one prompt group (the first row is the asker).

        Args:
            outcomes: The group's scores from :meth:`score_group`, when they were
                computed off the loop; otherwise (and for rows that joined the group
                meanwhile) they are computed here.

        Returns:
            The number of rows filled.
        """
        self.finished[b][group] = 1
        return self._fill(b, self.groups.rows(group), completion=completion, error=error,
                          latency=latency, cached=cached, outcomes=outcomes)

    def late(self, b: int, group: int, row: int) -> int:
        """Fill ``row``, which joined ``group`` after its rows were filled, from the
        asker's row; 1 when that answer came from the cache, else 0."""
        asker = self.groups.first[group]
        res = self.results[b]
        text = res.response[asker]
        completion = None
        if text is not None:
            tokens_in, tokens_out = res.tokens_in[asker], res.tokens_out[asker]
            completion = Completion(
                text, tokens_in=None if tokens_in < 0 else tokens_in,
                tokens_out=None if tokens_out < 0 else tokens_out,
                capped=bool(res.answer_capped[asker]),
                finish_reason="length" if res.hit_token_limit[asker] else None)
        self._fill(b, [row], completion=completion, error=None if completion else
                   res.error[asker], latency=0.0, cached=True)
        return res.cached[asker]

    def _fill(self, b: int, indices: Sequence[int], *, completion: Completion | None,
              error: str | None, latency: float, cached: bool,
              outcomes: dict[int, Outcome] | None = None) -> int:
        plan = self.plans[b]
        res = self.results[b]
        rows = self.rows
        unscored = self.unscored
        ok = completion is not None and error is None
        if ok:
            assert completion is not None
            if outcomes is None:
                outcomes = self.score_group(indices, completion.text)
            elif len(outcomes) < len(indices):  # rows joined while it was scored
                outcomes.update(self.score_group(
                    [i for i in indices if i not in outcomes], completion.text))
        for position, index in enumerate(indices):
            if ok:
                assert completion is not None
                text = completion.text
                res.response[index] = text
                if completion.tokens_in is not None:
                    res.tokens_in[index] = int(completion.tokens_in)
                if completion.tokens_out is not None:
                    res.tokens_out[index] = int(completion.tokens_out)
                res.hit_token_limit[index] = completion.hit_token_limit
                res.cached[index] = cached or position > 0
                res.answer_capped[index] = completion.capped
                res.latency[index] = latency if (position == 0 and not cached) else 0.0
                assert outcomes is not None
                value, parsed, unparseable, row_error, detail = outcomes[index]
                res.score[index] = value
                res.parsed[index] = parsed
                res.unparseable[index] = unparseable
                res.detail[index] = detail
                if row_error is not None:
                    res.error[index] = row_error
                    plan.stats.errors += 1
            else:
                res.error[index] = error
                res.latency[index] = latency if position == 0 else 0.0
                plan.stats.errors += 1
            left = unscored[index] - 1
            unscored[index] = left
            if not left:
                rows.source[index] = None
            if self.on_result is not None:
                row = rows.base_row(index, plan.backend.label)
                row.update(res.row(index))
                for key, value in (rows.metadata[index] or {}).items():
                    row[f"meta.{key}"] = value
                self.on_result(row)
        return len(indices)

    # ---------------------------------------------------------------- calls
    async def run_backend(self, b: int, feeder: Feeder, most: int | None = None) -> None:
        plan = self.plans[b]
        backend = plan.backend
        limiter = self.limiters[b]
        queue = feeder.queues[b]
        workers = int(backend.max_concurrency) if limiter is None else limiter.ceiling
        if most is not None:
            workers = max(1, min(workers, most))
        await _gather_or_cancel([self._worker(b, feeder) for _ in range(workers)])
        fatal = self.fatal.get(b)
        while fatal is not None and not feeder.done:  # the rest of the plan gets the error
            await feeder.wait(b)
        if fatal is not None and len(queue):
            message = one_line(fatal)
            plan.stats.skipped += len(queue)
            self.progress.skipped(len(queue))
            while (group := queue.pop()) is not None:
                self.finish(b, group, completion=None, error=message, latency=0.0,
                            cached=False)

    async def _worker(self, b: int, feeder: Feeder) -> None:
        queue = feeder.queues[b]
        plan = self.plans[b]
        backend = plan.backend
        keys = plan.keys
        first = self.groups.first
        rows = self.rows
        cache = self.cache
        cap = answer_limit(backend)
        limiter = self.limiters[b]
        call = None
        while b not in self.fatal and self.stopped is None:
            if limiter is not None:
                await limiter.acquire()  # a slot, held until the call ends
                if b in self.fatal or self.stopped is not None:
                    limiter.release()
                    break
            group = queue.pop()
            if group is None and not feeder.done:  # the plan is still being drawn
                if limiter is not None:
                    limiter.release()
                await feeder.wait(b)
                continue
            if group is None or (self.budget is not None and self.budget <= 0):
                if limiter is not None:
                    limiter.release()
                if group is None:
                    break
                self._over_budget(b, group)
                continue
            if self.budget is not None:
                self.budget -= 1
            messages = self.build_messages(rows.item(first[group]))
            plan.stats.calls += 1
            if limiter is not None:
                call = limiter.begin()
                ATTEMPT_FAILED.set(call.attempt_failed)  # this worker task's own context
            started = time.perf_counter()
            try:
                completion = await backend.agenerate(messages)
            except FatalModelError as exc:
                self.fatal.setdefault(b, exc)
                self.progress.call_done(error=True)
                self.finish(b, group, completion=None, error=one_line(exc),
                            latency=time.perf_counter() - started, cached=False)
                return
            except Exception as exc:  # one failed prompt never stops the run
                self.progress.call_done(error=True)
                self.finish(b, group, completion=None, error=_describe(exc),
                            latency=time.perf_counter() - started, cached=False)
                continue
            finally:
                if call is not None:
                    limiter.end(call, time.perf_counter() - started)  # type: ignore[union-attr]
                    call = None
            latency = time.perf_counter() - started
            # cut an oversized answer before it is cached, scored or written anywhere
            completion = cap_answer(completion, cap)
            if cache is not None:
                # counted done only once it is in the file: a kill repeats only calls
                # still in flight, never an answer already reported
                try:
                    stored = await cache.aput(keys[group].hex(), completion)
                except Exception as exc:  # an unstorable answer still counts for this run
                    logger.warning("%s: answer not cached (%s); a re-run asks it again",
                                   backend.label, _describe(exc))
                    stored = False
                if not stored:
                    plan.stats.unstored += 1
            outcomes = None
            if self.scores_off_loop():
                outcomes = await asyncio.get_running_loop().run_in_executor(
                    self.score_thread, self.score_group, self.groups.rows(group),
                    completion.text)
            self.progress.call_done(error=False)
            self.finish(b, group, completion=completion, error=None, latency=latency,
                        cached=False, outcomes=outcomes)

    def _over_budget(self, b: int, group: int) -> None:
        plan = self.plans[b]
        self.over_budget += 1
        plan.stats.skipped += 1
        self.finish(b, group, completion=None, error=MAX_CALLS_ERROR, latency=0.0,
                    cached=False)


async def _gather_or_cancel(coros: list[Any]) -> None:
    """Await all; if one raises (e.g. an ``on_result`` callback), cancel the rest first.

    Plain ``asyncio.gather`` would leave the siblings running after the error, still
    calling models, when the caller's event loop outlives this run (Jupyter).
    """
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _describe(exc: BaseException) -> str:
    text = one_line(exc)
    if not text:
        return type(exc).__name__
    # Our own errors carry a readable message; foreign ones need their type for context.
    return text if isinstance(exc, RobustifyError) else one_line(f"{type(exc).__name__}: {text}")


async def arun_queries(variants: Iterable[Variant], backends: Sequence[Backend], *,
                       build_messages: BuildMessages, score: ScoreFn,
                       cache: ResponseCache | None, max_calls: int | None = None,
                       progress: bool | str = True,
                       on_result: Callable[[dict[str, Any]], None] | None = None
                       ) -> pd.DataFrame:
    """Ask every backend every variant and score the answers.

    Args:
        variants: The variants, clean originals included (``Variant.clean(item)``).
        backends: Model backends; labels must be unique.
        build_messages: Item -> chat messages (e.g. ``robustify.prompts.build_messages``).
            Called once per distinct prompt while planning and again just before its
            call, so prompts are not all held in memory.
        score: ``(item, answer_text) -> Score``; only called for answers (errors are
            recorded with score NaN).
        cache: Response cache, or ``None`` to always ask.
        max_calls: Cap on real calls in this run, all backends together.
        progress: ``True``: a bar on a terminal or in Jupyter, otherwise a plain line
            every 30 s once the run has lasted 10 s; ``False``: nothing; or a mode
            name (``"bar"``, ``"lines"``, ``"off"``).
        on_result: Called with each finished row dict as soon as it is known (a cache
            hit as soon as it is planned, a call when it completes), e.g. to append to a
            JSONL file.

    Returns:
        The results frame, rows ordered by backend (as given), then variant input order.
        ``frame.attrs["run_stats"]`` maps labels to :class:`BackendStats` dicts, each
        with a ``concurrency`` entry: ``{"mode": "fixed", "level": N}`` or the adaptive
        limiter's report (:meth:`robustify.runner.adaptive.Limiter.report`).

    Raises:
        ConfigError: No backends, duplicate labels, bad ``max_calls``.
        FatalModelError: A backend failed permanently; raised after the other backends
            finished, with ``.results`` holding the complete frame.
    """
    if max_calls is not None and (not isinstance(max_calls, int) or max_calls < 0):
        raise ConfigError(f"max_calls must be a non-negative integer, got {max_calls!r}")
    backends = list(backends)
    check_backends(backends)
    planner = Planner(backends, build_messages, Rows())
    plans, groups = planner.plans, planner.groups
    run = _Run(planner, score=score, build_messages=build_messages, cache=cache,
               max_calls=max_calls, on_result=on_result,
               progress=CallProgress(None, mode=progress_mode(progress)))
    feeder = Feeder(planner, run, cache, on_hits=run.progress.cache_hits)

    async def plan() -> None:
        # planned slice by slice while the first calls are out (robustify.runner.feed)
        try:
            await feeder.feed(variants)
        except Exception as exc:  # a transform or the variants file failed: no new
            run.stopped = exc     # call, but the calls out finish (paid answers cached)
            return
        planned = feeder.misses
        run.progress.set_total(planned if max_calls is None else min(planned, max_calls))
        logger.info("%d variants x %d models: %d prompts to send (%d reuse a clean answer, "
                    "%d rows answered by the cache)", planner.count, len(backends), planned,
                    planner.reused, run.progress.hits)

    try:
        # a list of variants bounds the prompts, so no more workers than that are needed
        most = len(variants) if isinstance(variants, Sized) else None
        await _gather_or_cancel([plan()] + [run.run_backend(b, feeder, most)
                                            for b in range(len(backends))])
        if run.stopped is not None:
            raise run.stopped
    finally:
        run.progress.close()
        if run.score_thread is not None:
            run.score_thread.shutdown(wait=True)
        if cache is not None:
            cache.flush()
        for backend in backends:
            aclose = getattr(backend, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception as exc:  # releasing connections must not mask results
                    logger.debug("closing %s failed: %s", backend.label, exc)

    if run.over_budget:
        logger.warning("max_calls=%d reached: %d prompts were not sent (their rows carry the "
                       "error %r; a re-run with a higher cap asks only those)", max_calls,
                       run.over_budget, MAX_CALLS_ERROR)
    # The grouping (a key and a few slots per prompt) has done its job: free it before
    # the frame is built, so the frame's memory can reuse it.
    feeder.queues.clear()
    run.finished.clear()
    groups.release()
    rows = run.rows
    rows.drop_sources()
    for plan in plans:
        plan.keys = []
    frame = build_frame(rows, plans, run.results)
    stats = {}
    for b, plan in enumerate(plans):
        fatal = run.fatal.get(b)
        plan.stats.fatal = one_line(fatal) if fatal is not None else None
        stats[plan.backend.label] = vars(plan.stats).copy()
        limiter = run.limiters[b]
        stats[plan.backend.label]["concurrency"] = (
            limiter.report() if limiter is not None else
            {"mode": "fixed", "level": int(plan.backend.max_concurrency)})
        logger.info("%s: %d rows, %d calls, %d cache hits, %d errors", plan.backend.label,
                    plan.stats.rows, plan.stats.calls, plan.stats.cache_hits, plan.stats.errors)
    frame.attrs["run_stats"] = stats
    if run.fatal:
        frame.attrs["fatal"] = {plans[b].backend.label: one_line(e) for b, e in run.fatal.items()}
        b = min(run.fatal)
        error = run.fatal[b]
        label = plans[b].backend.label
        message = one_line(error)
        if label not in message:
            message = f"{label}: {message}"
        raised = FatalModelError(message, backend=label, status=getattr(error, "status", None))
        raised.results = frame
        raise raised from None
    return frame


def run_queries(variants: Iterable[Variant], backends: Sequence[Backend], *,
                build_messages: BuildMessages, score: ScoreFn, cache: ResponseCache | None,
                max_calls: int | None = None, progress: bool | str = True,
                on_result: Callable[[dict[str, Any]], None] | None = None) -> pd.DataFrame:
    """Synchronous :func:`arun_queries`; inside a running loop (Jupyter) it uses a thread."""
    return run_sync(arun_queries(variants, backends, build_messages=build_messages,
                                 score=score, cache=cache, max_calls=max_calls,
                                 progress=progress, on_result=on_result))


def estimate_calls(variants: Iterable[Variant], backends: Sequence[Backend],
                   build_messages: BuildMessages, cache: ResponseCache | None = None
                   ) -> dict[str, Any]:
    """What a run would cost, without calling anything.

    Returns:
        ``rows`` (backends x variants), ``calls`` (distinct prompts not in the cache),
        ``cache_hits`` (distinct prompts already cached), ``duplicates`` (rows sharing a
        prompt or reusing a clean answer), ``approx_tokens_in`` (prompt characters / 4 over
        the calls), ``approx_tokens_out_max`` (calls x max_tokens) and ``per_model``
        with the same numbers per backend label.
    """
    backends = list(backends)
    check_backends(backends)
    plans, groups, count, _ = plan_rows(variants, backends, build_messages, count_chars=True)
    chars = groups.chars
    assert chars is not None
    per_model: dict[str, dict[str, Any]] = {}
    for plan in plans:
        hits = 0
        calls = 0
        tokens_in = 0
        for start in range(0, len(groups), LOOKUP_CHUNK):
            chunk = [key.hex() for key in plan.keys[start:start + LOOKUP_CHUNK]]
            found = cache.get_many(chunk) if cache is not None else {}
            hits += len(found)
            for group, key in enumerate(chunk, start):
                if key not in found:
                    calls += 1
                    tokens_in += math.ceil(chars[group] / 4)
        per_model[plan.backend.label] = {
            "rows": count,
            "unique_prompts": len(groups),
            "calls": calls,
            "cache_hits": hits,
            "duplicates": count - len(groups),
            "approx_tokens_in": tokens_in,
            "approx_tokens_out_max": calls * int(plan.backend.params.max_tokens),
        }
    totals = {name: sum(m[name] for m in per_model.values())
              for name in ("rows", "unique_prompts", "calls", "cache_hits", "duplicates",
                           "approx_tokens_in", "approx_tokens_out_max")}
    return {**totals, "per_model": per_model}
