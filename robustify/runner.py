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
import dataclasses
import logging
import math
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
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
_HEX = frozenset("0123456789abcdef")
_LOOKUP_CHUNK = 2000
"""Keys per bulk cache lookup."""


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
    """Rows of one backend grouped by prompt: key -> row indices (first is the asker)."""

    backend: Backend
    groups: dict[str, list[int]] = field(default_factory=dict)
    stats: BackendStats = field(default_factory=BackendStats)
    chars: dict[str, int] | None = None
    """Prompt characters per key (only kept for :func:`estimate_calls`)."""


class _Rows:
    """The variant side of every row, stored column by column.

    One Python object per row would cost about 2 KB (a 25-key dict, its floats, the
    Variant and its Item, all held until the end); at a million rows that is gigabytes.
    Here a row costs a few pointers to shared strings, typed-array slots, a packed
    variant id and its own input text, close to what the frame itself needs.

    The item a row is scored against is kept until every backend has scored the row.
    A variant whose item equals its clean original except for ``input`` keeps only a
    pointer to the original (its text is already in the ``input`` column) and gets its
    item rebuilt on demand: most variants are exactly that.
    """

    def __init__(self) -> None:
        self.item_id: list[str] = []
        self._vid = array("Q")
        self._vid_other: dict[int, str] = {}
        self.spec: list[str] = []
        self.transform: list[str] = []
        self.severity = array("d")
        self.severity_label: list[str | None] = []
        self.replicate = array("q")
        self.changed = bytearray()
        self.edit_rate = array("d")
        self.label_policy: list[str] = []
        self.task: list[str] = []
        self.input: list[str] = []
        self.target: list[str] = []
        self.metadata: list[Any] = []
        self.meta_keys: dict[str, None] = {}
        self.source: list[Item | None] = []
        self.own_input = bytearray()
        # Equal short strings (spec, transform, ...) from different variants are often
        # distinct objects; keeping one copy of each makes those columns pointer-sized.
        self._shared: dict[Any, Any] = {}
        self._meta_seen: set[int] = set()

    def __len__(self) -> int:
        return len(self.input)

    def _one(self, value: Any) -> Any:
        return self._shared.setdefault(value, value)

    def add(self, variant: Variant, source: Item, own_input: bool) -> None:
        """Append one row; ``source`` is the item to score against (see class doc)."""
        item = variant.item
        one = self._one
        self.item_id.append(item.id)
        vid = variant.variant_id
        # Variant ids are 16 hex digits: packed into 8 bytes instead of a 65-byte str.
        if len(vid) == 16 and _HEX.issuperset(vid):
            self._vid.append(int(vid, 16))
        else:
            self._vid_other[len(self._vid)] = vid
            self._vid.append(0)
        self.spec.append(one(variant.spec))
        self.transform.append(one(variant.transform))
        self.severity.append(variant.severity)
        self.severity_label.append(one(variant.severity_label))
        self.replicate.append(variant.replicate)
        self.changed.append(1 if variant.changed else 0)
        self.edit_rate.append(variant.edit_rate)
        self.label_policy.append(one(variant.label_policy))
        self.task.append(one(item.task))
        self.input.append(item.input)
        self.target.append(item.target)
        metadata = item.metadata
        self.metadata.append(metadata)
        if metadata and id(metadata) not in self._meta_seen:
            # Variants share their item's metadata mapping: look at each mapping once.
            self._meta_seen.add(id(metadata))
            for key in metadata:
                self.meta_keys.setdefault(key, None)
        self.source.append(source)
        self.own_input.append(1 if own_input else 0)

    def variant_id(self, index: int) -> str:
        other = self._vid_other.get(index) if self._vid_other else None
        return other if other is not None else f"{self._vid[index]:016x}"

    def item(self, index: int) -> Item:
        """The item of row ``index`` (rebuilt from its clean original when only the text differs)."""
        source = self.source[index]
        if source is None:  # pragma: no cover - released rows are never asked again
            raise RuntimeError(f"row {index} was already scored")
        if self.own_input[index]:
            return dataclasses.replace(source, input=self.input[index])
        return source

    def base_row(self, index: int, label: str) -> dict[str, Any]:
        """The variant-side fields of one row as a plain dict (for ``on_result``)."""
        return {
            "model": label,
            "item_id": self.item_id[index],
            "variant_id": self.variant_id(index),
            "spec": self.spec[index],
            "transform": self.transform[index],
            "severity": self.severity[index],
            "severity_label": self.severity_label[index],
            "replicate": self.replicate[index],
            "changed": bool(self.changed[index]),
            "edit_rate": self.edit_rate[index],
            "label_policy": self.label_policy[index],
            "task": self.task[index],
            "input": self.input[index],
            "target": self.target[index],
        }

    def columns(self) -> dict[str, Any]:
        """The variant-side columns, ready for :class:`pandas.DataFrame`."""
        n = len(self)
        variant_ids = [f"{v:016x}" for v in self._vid]
        for index, vid in self._vid_other.items():
            variant_ids[index] = vid
        data: dict[str, Any] = {
            "item_id": self.item_id,
            "variant_id": variant_ids,
            "spec": self.spec,
            "transform": self.transform,
            "severity": np.frombuffer(self.severity, dtype=np.float64) if n else [],
            "severity_label": self.severity_label,
            "replicate": np.frombuffer(self.replicate, dtype=np.int64) if n else [],
            "changed": np.frombuffer(bytes(self.changed), dtype=np.bool_),
            "edit_rate": np.frombuffer(self.edit_rate, dtype=np.float64) if n else [],
            "label_policy": self.label_policy,
            "task": self.task,
            "input": self.input,
            "target": self.target,
        }
        for key in self.meta_keys:
            data[f"meta.{key}"] = [m.get(key, _NAN) if m else _NAN for m in self.metadata]
        return data


class _Results:
    """The answer side of one backend's rows, column by column (filled as answers arrive)."""

    def __init__(self, n: int) -> None:
        self.response: list[str | None] = [None] * n
        self.parsed: list[Any] = [None] * n
        self.score = array("d", [_NAN]) * n
        self.unparseable = bytearray(n)
        self.error: list[str | None] = [None] * n
        self.latency = array("d", [0.0]) * n
        self.cached = bytearray(n)
        self.tokens_in: list[int | None] = [None] * n
        self.tokens_out: list[int | None] = [None] * n

    def row(self, index: int) -> dict[str, Any]:
        return {
            "response": self.response[index],
            "parsed": self.parsed[index],
            "score": self.score[index],
            "unparseable": bool(self.unparseable[index]),
            "error": self.error[index],
            "latency": self.latency[index],
            "cached": bool(self.cached[index]),
            "tokens_in": self.tokens_in[index],
            "tokens_out": self.tokens_out[index],
        }

    def columns(self) -> dict[str, Any]:
        n = len(self.response)
        return {
            "response": self.response,
            "parsed": self.parsed,
            "score": np.frombuffer(self.score, dtype=np.float64) if n else [],
            "unparseable": np.frombuffer(bytes(self.unparseable), dtype=np.bool_),
            "error": self.error,
            "latency": np.frombuffer(self.latency, dtype=np.float64) if n else [],
            "cached": np.frombuffer(bytes(self.cached), dtype=np.bool_),
            "tokens_in": pd.array(self.tokens_in, dtype="Int64"),
            "tokens_out": pd.array(self.tokens_out, dtype="Int64"),
        }


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


_ITEM_FIELDS = tuple(f.name for f in dataclasses.fields(Item) if f.name != "input")


def _differs_only_in_input(item: Item, clean: Item) -> bool:
    """True when ``item`` is ``clean`` with another ``input`` (so it can be rebuilt from it)."""
    if type(item) is not type(clean):
        return False
    for name in _ITEM_FIELDS:
        a, b = getattr(item, name), getattr(clean, name)
        if a is not b and a != b:
            return False
    return True


def _plan(variants: Iterable[Variant], backends: Sequence[Backend],
          build_messages: BuildMessages, rows: _Rows | None = None,
          count_chars: bool = False) -> tuple[list[_Plan], int, int]:
    """Read the variants once and group each backend's rows by prompt key.

    Args:
        rows: Where to store the rows (``None``: only count, as :func:`estimate_calls` does).
        count_chars: Keep the prompt length of every key (for the token estimate).

    Returns:
        The plans, the number of rows, and the number of variants reusing their clean
        original's answer.
    """
    makers = [KeyMaker(b.identity()) for b in backends]
    plans = [_Plan(b, chars={} if count_chars else None) for b in backends]
    # item id -> (clean item, its key per backend): the first clean row of each item.
    cleans: dict[str, tuple[Item, list[str]]] = {}
    reused = 0
    index = -1
    for index, variant in enumerate(variants):
        item = variant.item
        is_clean = variant.is_clean
        clean = None if is_clean else cleans.get(item.id)
        if clean is not None and not variant.changed and (item is clean[0] or item == clean[0]):
            reused += 1
            for plan, key in zip(plans, clean[1]):
                plan.groups[key].append(index)
            if rows is not None:
                rows.add(variant, clean[0], False)
            continue
        messages = build_messages(item)
        messages_json = canonical_json(messages)
        keys = []
        for maker, plan in zip(makers, plans):
            key = maker(messages_json)
            group = plan.groups.get(key)
            if group is None:
                plan.groups[key] = [index]
                if plan.chars is not None:
                    plan.chars[key] = sum(len(str(m.get("content", ""))) for m in messages)
            else:
                group.append(index)
            keys.append(key)
        if is_clean and item.id not in cleans:
            cleans[item.id] = (item, keys)
        if rows is not None:
            if clean is not None and _differs_only_in_input(item, clean[0]):
                rows.add(variant, clean[0], True)
            else:
                rows.add(variant, item, False)
    count = index + 1
    for plan in plans:
        plan.stats.rows = count
        plan.stats.unique_prompts = len(plan.groups)
    return plans, count, reused


class _Run:
    """State of one :func:`arun_queries` call."""

    def __init__(self, rows: _Rows, plans: list[_Plan], *, score: ScoreFn,
                 build_messages: BuildMessages, cache: ResponseCache | None,
                 max_calls: int | None, on_result: Callable[[dict[str, Any]], None] | None,
                 progress: CallProgress) -> None:
        self.rows = rows
        self.plans = plans
        self.score = score
        self.build_messages = build_messages
        self.cache = cache
        self.budget = max_calls
        self.on_result = on_result
        self.progress = progress
        self.results = [_Results(len(rows)) for _ in plans]
        # Backends still to score each row; its item is dropped when this reaches 0.
        self.unscored = bytearray([min(len(plans), 255)]) * len(rows)
        self.fatal: dict[int, FatalModelError] = {}
        self.over_budget = 0
        self.warned_score = False

    # ----------------------------------------------------------------- rows
    def _score(self, item: Item, text: str) -> tuple[float, Any, bool, str | None]:
        try:
            result = self.score(item, text)
        except Exception as exc:  # a scorer bug must not lose the answers
            if not self.warned_score:
                self.warned_score = True
                logger.exception("scoring failed on item %r", item.id)
            return _NAN, None, False, one_line(f"scoring failed: {type(exc).__name__}: {exc}")
        return float(result.value), result.parsed, bool(result.unparseable), None

    def finish(self, b: int, indices: list[int], *, completion: Completion | None,
               error: str | None, latency: float, cached: bool) -> None:
        """Fill and emit the rows of one prompt group (the first row is the asker)."""
        plan = self.plans[b]
        res = self.results[b]
        rows = self.rows
        unscored = self.unscored
        ok = completion is not None and error is None
        # Rows reusing a clean answer share the clean row's item object: score it once.
        scored: dict[int, tuple[float, Any, bool, str | None]] = {}
        for position, index in enumerate(indices):
            if ok:
                assert completion is not None
                text = completion.text
                res.response[index] = text
                res.tokens_in[index] = completion.tokens_in
                res.tokens_out[index] = completion.tokens_out
                res.cached[index] = cached or position > 0
                res.latency[index] = latency if (position == 0 and not cached) else 0.0
                source = rows.source[index]
                if rows.own_input[index] or source is None:
                    outcome = self._score(rows.item(index), text)
                else:
                    outcome = scored.get(id(source))
                    if outcome is None:
                        outcome = scored[id(source)] = self._score(source, text)
                value, parsed, unparseable, row_error = outcome
                res.score[index] = value
                res.parsed[index] = parsed
                res.unparseable[index] = unparseable
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
        rows = self.rows
        cache = self.cache
        while pending and b not in self.fatal:
            key = pending.popleft()
            indices = groups[key]
            if self.budget is not None:
                if self.budget <= 0:
                    self._over_budget(b, key)
                    continue
                self.budget -= 1
            messages = self.build_messages(rows.item(indices[0]))
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


def _empty_frame() -> pd.DataFrame:
    frame = pd.DataFrame(columns=list(RESULT_COLUMNS))
    for column in ("severity", "edit_rate", "score", "latency"):
        frame[column] = frame[column].astype(float)
    for column in ("changed", "unparseable", "cached"):
        frame[column] = frame[column].astype(bool)
    frame["replicate"] = frame["replicate"].astype(int)
    for column in ("tokens_in", "tokens_out"):
        frame[column] = frame[column].astype("Int64")
    return frame


def _frame(rows: _Rows, plans: list[_Plan], results: list[_Results]) -> pd.DataFrame:
    """Assemble the results frame: backends in order, rows in variant order.

    Columns are converted one at a time, and with one backend each source column is
    dropped as soon as it is converted, so building the frame briefly needs only about
    one extra column of memory rather than a second copy of the run.
    """
    n = len(rows)
    if not n:
        return _empty_frame()
    base = rows.columns()
    meta = [f"meta.{key}" for key in rows.meta_keys]
    order = list(RESULT_COLUMNS) + meta
    last = len(plans) - 1
    frames = []
    for b, (plan, res) in enumerate(zip(plans, results)):
        source = {"model": [plan.backend.label] * n, **res.columns()}
        converted: dict[str, Any] = {}
        for column in order:
            values = source.pop(column) if column in source else (
                base.pop(column) if b == last else base[column])
            # One-column DataFrame construction applies the same type inference as a
            # whole-frame build (str, float64 with NaN for missing meta, object ...).
            converted[column] = pd.DataFrame({column: values})[column]
            del values
        results[b] = None  # type: ignore[call-overload]  # its lists were converted
        frame = pd.DataFrame(converted, copy=False)
        del converted
        frames.append(frame)
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
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
    backends = list(backends)
    _check_backends(backends)
    rows = _Rows()
    plans, count, reused = _plan(variants, backends, build_messages, rows)

    queues: list[deque[str]] = []
    planned = 0
    hit_rows = 0
    run = _Run(rows, plans, score=score, build_messages=build_messages, cache=cache,
               max_calls=max_calls, on_result=on_result,
               progress=CallProgress(0, enabled=False))
    try:
        # Cache lookups happen before any call, in bulk; hits are emitted right away.
        # Chunks bound the memory of a re-run where nearly everything is a hit.
        for b, plan in enumerate(plans):
            misses: deque[str] = deque()
            keys = list(plan.groups)
            for start in range(0, len(keys), _LOOKUP_CHUNK):
                chunk = keys[start:start + _LOOKUP_CHUNK]
                hits = cache.get_many(chunk) if cache is not None else {}
                plan.stats.cache_hits += len(hits)
                for key in chunk:
                    completion = hits.get(key)
                    if completion is None:
                        misses.append(key)
                        continue
                    indices = plan.groups[key]
                    hit_rows += len(indices)
                    run.finish(b, indices, completion=completion, error=None, latency=0.0,
                               cached=True)
            del keys
            planned += len(misses)
            queues.append(misses)
        total = planned if max_calls is None else min(planned, max_calls)
        run.progress = CallProgress(total, enabled=progress_enabled(progress))
        run.progress.cache_hits(hit_rows)
        logger.info("%d variants x %d models: %d prompts to send (%d reuse a clean answer, "
                    "%d rows answered by the cache)", count, len(backends), planned,
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
    frame = _frame(rows, plans, run.results)
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
    backends = list(backends)
    _check_backends(backends)
    plans, count, _ = _plan(variants, backends, build_messages, count_chars=True)
    per_model: dict[str, dict[str, Any]] = {}
    for plan in plans:
        assert plan.chars is not None
        keys = list(plan.groups)
        hits = 0
        calls = 0
        tokens_in = 0
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[start:start + _LOOKUP_CHUNK]
            found = cache.get_many(chunk) if cache is not None else {}
            hits += len(found)
            for key in chunk:
                if key not in found:
                    calls += 1
                    tokens_in += math.ceil(plan.chars[key] / 4)
        per_model[plan.backend.label] = {
            "rows": count,
            "unique_prompts": len(plan.groups),
            "calls": calls,
            "cache_hits": hits,
            "duplicates": count - len(plan.groups),
            "approx_tokens_in": tokens_in,
            "approx_tokens_out_max": calls * int(plan.backend.params.max_tokens),
        }
    totals = {name: sum(m[name] for m in per_model.values())
              for name in ("rows", "unique_prompts", "calls", "cache_hits", "duplicates",
                           "approx_tokens_in", "approx_tokens_out_max")}
    return {**totals, "per_model": per_model}
