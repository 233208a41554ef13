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
all backends run at once. An answer is handed to the cache as soon as it arrives, so
an interrupted run (Ctrl-C, cancellation, even SIGKILL) loses at most the calls in
flight, and a re-run asks only what is still unanswered.

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
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import pandas as pd

from perturbations.errors import ConfigError, RobustifyError
from perturbations.records import Item, Variant

from .cache import KeyMaker, ResponseCache, canonical_json
from .models.base import Backend, FatalModelError, one_line, run_sync
from .progress import CallProgress, progress_enabled
from .records import RESULT_COLUMNS, Completion, Score

__all__ = ["arun_queries", "run_queries", "estimate_calls", "MAX_CALLS_ERROR", "BackendStats"]

logger = logging.getLogger(__name__)

MAX_CALLS_ERROR = "max_calls reached"
"""Error recorded on rows left unasked because of ``max_calls``."""

BuildMessages = Callable[[Item], list[dict[str, str]]]
ScoreFn = Callable[[Item, "str | None"], Score]

_NAN = float("nan")


@dataclass
class BackendStats:
    """What one backend cost in a run (``frame.attrs["run_stats"][label]``)."""

    rows: int = 0
    """Rows of this backend (one per variant)."""
    unique_prompts: int = 0
    """Distinct prompts after dedupe and unchanged-variant reuse."""
    cache_hits: int = 0
    """Distinct prompts answered by the cache."""
    calls: int = 0
    """Prompts actually sent (each may have been retried inside the backend)."""
    errors: int = 0
    """Rows with an error (including ``max_calls`` and fatal stops)."""
    skipped: int = 0
    """Prompts not sent because of ``max_calls`` or a fatal error."""
    fatal: str | None = None
    """The fatal error that stopped this backend, if any."""


@dataclass
class _Plan:
    """Rows of one backend grouped by prompt: key -> variant indices (first is the asker)."""

    backend: Backend
    groups: dict[str, list[int]] = field(default_factory=dict)
    stats: BackendStats = field(default_factory=BackendStats)


def _base_row(variant: Variant, label: str) -> dict[str, Any]:
    item = variant.item
    row: dict[str, Any] = {
        "model": label,
        "item_id": item.id,
        "variant_id": variant.variant_id,
        "spec": variant.spec,
        "transform": variant.transform,
        "severity": float(variant.severity),
        "severity_label": variant.severity_label,
        "replicate": int(variant.replicate),
        "changed": bool(variant.changed),
        "edit_rate": float(variant.edit_rate),
        "label_policy": variant.label_policy,
        "task": item.task,
        "input": item.input,
        "target": item.target,
        "response": None,
        "parsed": None,
        "score": _NAN,
        "unparseable": False,
        "error": None,
        "latency": 0.0,
        "cached": False,
        "tokens_in": None,
        "tokens_out": None,
    }
    for key, value in item.metadata.items():
        row[f"meta.{key}"] = value
    return row


def _check_backends(backends: Sequence[Backend]) -> None:
    if not backends:
        raise ConfigError("no model backends given")
    seen: set[str] = set()
    for backend in backends:
        for attr in ("label", "max_concurrency", "identity", "agenerate"):
            if not hasattr(backend, attr):
                raise ConfigError(f"{backend!r} is not a model backend (missing {attr!r})")
        if backend.label in seen:
            raise ConfigError(f"model {backend.label!r} is given twice; labels must be unique")
        seen.add(backend.label)
        if int(backend.max_concurrency) < 1:
            raise ConfigError(f"model {backend.label!r}: max_concurrency must be >= 1")


def _plan(variants: Sequence[Variant], backends: Sequence[Backend],
          build_messages: BuildMessages) -> tuple[list[_Plan], int]:
    """Group each backend's rows by prompt key.

    Returns the plans and the number of variants reusing their clean original's answer.
    """
    clean_of: dict[str, int] = {}
    for index, variant in enumerate(variants):
        if variant.is_clean and variant.item.id not in clean_of:
            clean_of[variant.item.id] = index
    makers = [KeyMaker(b.identity()) for b in backends]
    plans = [_Plan(b) for b in backends]
    keys_of_clean: list[dict[int, str]] = [{} for _ in backends]
    reusers: list[tuple[int, int]] = []
    for index, variant in enumerate(variants):
        clean = clean_of.get(variant.item.id)
        if (not variant.changed and not variant.is_clean and clean is not None
                and variants[clean].item == variant.item):
            reusers.append((index, clean))
            continue
        messages_json = canonical_json(build_messages(variant.item))
        for b, (maker, plan) in enumerate(zip(makers, plans)):
            key = maker(messages_json)
            group = plan.groups.get(key)
            if group is None:
                plan.groups[key] = [index]
            else:
                group.append(index)
            if clean == index:
                keys_of_clean[b][index] = key
    for index, clean in reusers:
        for b, plan in enumerate(plans):
            plan.groups[keys_of_clean[b][clean]].append(index)
    for plan in plans:
        plan.stats.rows = len(variants)
        plan.stats.unique_prompts = len(plan.groups)
    return plans, len(reusers)


class _Run:
    """State of one :func:`arun_queries` call."""

    def __init__(self, variants: list[Variant], plans: list[_Plan], *, score: ScoreFn,
                 build_messages: BuildMessages, cache: ResponseCache | None,
                 max_calls: int | None, on_result: Callable[[dict[str, Any]], None] | None,
                 progress: CallProgress) -> None:
        self.variants = variants
        self.plans = plans
        self.score = score
        self.build_messages = build_messages
        self.cache = cache
        self.budget = max_calls
        self.on_result = on_result
        self.progress = progress
        self.rows: list[list[dict[str, Any] | None]] = [[None] * len(variants) for _ in plans]
        self.fatal: dict[int, FatalModelError] = {}
        self.over_budget = 0
        self.warned_score = False

    # ----------------------------------------------------------------- rows
    def finish(self, b: int, indices: list[int], *, completion: Completion | None,
               error: str | None, latency: float, cached: bool) -> None:
        """Fill and emit the rows of one prompt group (the first row is the asker)."""
        plan = self.plans[b]
        label = plan.backend.label
        rows = self.rows[b]
        for position, index in enumerate(indices):
            variant = self.variants[index]
            row = _base_row(variant, label)
            if completion is not None and error is None:
                row["response"] = completion.text
                row["tokens_in"] = completion.tokens_in
                row["tokens_out"] = completion.tokens_out
                row["cached"] = cached or position > 0
                row["latency"] = latency if (position == 0 and not cached) else 0.0
                try:
                    result = self.score(variant.item, completion.text)
                except Exception as exc:  # a scorer bug must not lose the answers
                    if not self.warned_score:
                        self.warned_score = True
                        logger.exception("scoring failed on item %r", variant.item.id)
                    row["error"] = one_line(f"scoring failed: {type(exc).__name__}: {exc}")
                else:
                    row["score"] = float(result.value)
                    row["parsed"] = result.parsed
                    row["unparseable"] = bool(result.unparseable)
            else:
                row["error"] = error
                row["latency"] = latency if position == 0 else 0.0
            if row["error"] is not None:
                plan.stats.errors += 1
            rows[index] = row
            if self.on_result is not None:
                self.on_result(row)

    # ---------------------------------------------------------------- calls
    async def run_backend(self, b: int, pending: deque[str]) -> None:
        plan = self.plans[b]
        backend = plan.backend
        workers = min(int(backend.max_concurrency), len(pending))
        if workers:
            await _gather_or_cancel([self._worker(b, pending) for _ in range(workers)])
        fatal = self.fatal.get(b)
        if fatal is not None and pending:
            message = one_line(fatal)
            plan.stats.skipped += len(pending)
            self.progress.skipped(len(pending))
            while pending:
                key = pending.popleft()
                self.finish(b, plan.groups[key], completion=None, error=message, latency=0.0,
                            cached=False)

    async def _worker(self, b: int, pending: deque[str]) -> None:
        plan = self.plans[b]
        backend = plan.backend
        groups = plan.groups
        variants = self.variants
        cache = self.cache
        while pending and b not in self.fatal:
            key = pending.popleft()
            indices = groups[key]
            if self.budget is not None:
                if self.budget <= 0:
                    self._over_budget(b, key)
                    continue
                self.budget -= 1
            messages = self.build_messages(variants[indices[0]].item)
            plan.stats.calls += 1
            started = time.perf_counter()
            try:
                completion = await backend.agenerate(messages)
            except FatalModelError as exc:
                self.fatal.setdefault(b, exc)
                self.progress.call_done(error=True)
                self.finish(b, indices, completion=None, error=one_line(exc),
                            latency=time.perf_counter() - started, cached=False)
                return
            except Exception as exc:  # one failed prompt never stops the run
                self.progress.call_done(error=True)
                self.finish(b, indices, completion=None, error=_describe(exc),
                            latency=time.perf_counter() - started, cached=False)
                continue
            latency = time.perf_counter() - started
            if cache is not None:
                cache.put(key, completion)
            self.progress.call_done(error=False)
            self.finish(b, indices, completion=completion, error=None, latency=latency,
                        cached=False)

    def _over_budget(self, b: int, key: str) -> None:
        plan = self.plans[b]
        self.over_budget += 1
        plan.stats.skipped += 1
        self.finish(b, plan.groups[key], completion=None, error=MAX_CALLS_ERROR, latency=0.0,
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


def _frame(variants: Sequence[Variant], rows: list[list[dict[str, Any] | None]]) -> pd.DataFrame:
    meta: dict[str, None] = {}
    for variant in variants:
        for key in variant.item.metadata:
            meta.setdefault(f"meta.{key}", None)
    columns = list(RESULT_COLUMNS) + list(meta)
    records = [row for backend_rows in rows for row in backend_rows if row is not None]
    frame = pd.DataFrame.from_records(records, columns=columns) if records else \
        pd.DataFrame(columns=columns)
    for column in ("severity", "edit_rate", "score", "latency"):
        frame[column] = frame[column].astype(float)
    for column in ("changed", "unparseable", "cached"):
        frame[column] = frame[column].astype(bool)
    frame["replicate"] = frame["replicate"].astype(int)
    for column in ("tokens_in", "tokens_out"):
        frame[column] = frame[column].astype("Int64")
    return frame


async def arun_queries(variants: Iterable[Variant], backends: Sequence[Backend], *,
                       build_messages: BuildMessages, score: ScoreFn,
                       cache: ResponseCache | None, max_calls: int | None = None,
                       progress: bool = True,
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
        progress: Show a progress bar (only drawn when stderr is a terminal).
        on_result: Called with each finished row dict as soon as it is known (cache hits
            first, then calls in completion order), e.g. to append to a JSONL file.

    Returns:
        The results frame, rows ordered by backend (as given), then variant input order.
        ``frame.attrs["run_stats"]`` maps labels to :class:`BackendStats` dicts.

    Raises:
        ConfigError: No backends, duplicate labels, bad ``max_calls``.
        FatalModelError: A backend failed permanently; raised after the other backends
            finished, with ``.results`` holding the complete frame.
    """
    if max_calls is not None and (not isinstance(max_calls, int) or max_calls < 0):
        raise ConfigError(f"max_calls must be a non-negative integer, got {max_calls!r}")
    variants = list(variants)
    backends = list(backends)
    _check_backends(backends)
    plans, reused = _plan(variants, backends, build_messages)

    # Cache lookups happen before any call, in bulk; hits are emitted right away.
    queues: list[deque[str]] = []
    planned = 0
    hit_rows = 0
    progress_bar = CallProgress(0, enabled=False)
    run = _Run(variants, plans, score=score, build_messages=build_messages, cache=cache,
               max_calls=max_calls, on_result=on_result, progress=progress_bar)
    hits_per_plan: list[dict[str, Completion]] = []
    for plan in plans:
        hits = cache.get_many(plan.groups) if cache is not None else {}
        hits_per_plan.append(hits)
        plan.stats.cache_hits = len(hits)
        misses = deque(key for key in plan.groups if key not in hits)
        planned += len(misses)
        queues.append(misses)
    total = planned if max_calls is None else min(planned, max_calls)
    run.progress = CallProgress(total, enabled=progress_enabled(progress))
    try:
        for b, hits in enumerate(hits_per_plan):
            for key, completion in hits.items():
                indices = plans[b].groups[key]
                hit_rows += len(indices)
                run.finish(b, indices, completion=completion, error=None, latency=0.0,
                           cached=True)
        hits_per_plan.clear()
        run.progress.cache_hits(hit_rows)
        logger.info("%d variants x %d models: %d prompts to send (%d reuse a clean answer, "
                    "%d rows answered by the cache)", len(variants), len(backends), planned,
                    reused, hit_rows)
        await _gather_or_cancel([run.run_backend(b, queue) for b, queue in enumerate(queues)])
    finally:
        run.progress.close()
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
    frame = _frame(variants, run.rows)
    stats = {}
    for b, plan in enumerate(plans):
        fatal = run.fatal.get(b)
        plan.stats.fatal = one_line(fatal) if fatal is not None else None
        stats[plan.backend.label] = vars(plan.stats).copy()
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
                max_calls: int | None = None, progress: bool = True,
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
    variants = list(variants)
    backends = list(backends)
    _check_backends(backends)
    plans, _ = _plan(variants, backends, build_messages)
    chars_of: dict[int, int] = {}

    def chars(index: int) -> int:
        if index not in chars_of:
            messages = build_messages(variants[index].item)
            chars_of[index] = sum(len(str(m.get("content", ""))) for m in messages)
        return chars_of[index]

    per_model: dict[str, dict[str, Any]] = {}
    for plan in plans:
        hits = cache.get_many(plan.groups) if cache is not None else {}
        misses = [key for key in plan.groups if key not in hits]
        tokens_in = sum(math.ceil(chars(plan.groups[key][0]) / 4) for key in misses)
        per_model[plan.backend.label] = {
            "rows": len(variants),
            "unique_prompts": len(plan.groups),
            "calls": len(misses),
            "cache_hits": len(hits),
            "duplicates": len(variants) - len(plan.groups),
            "approx_tokens_in": tokens_in,
            "approx_tokens_out_max": len(misses) * int(plan.backend.params.max_tokens),
        }
    totals = {name: sum(m[name] for m in per_model.values())
              for name in ("rows", "unique_prompts", "calls", "cache_hits", "duplicates",
                           "approx_tokens_in", "approx_tokens_out_max")}
    return {**totals, "per_model": per_model}
