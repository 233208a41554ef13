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
import json
import logging
import math
import time
from array import array
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from perturbations.errors import ConfigError, RobustifyError
from perturbations.records import Item, Variant
from robustify.models.base import Backend, FatalModelError, one_line, run_sync
from robustify.records import RESULT_COLUMNS, Completion, Score
from robustify.runner.cache import KeyMaker, ResponseCache, canonical_json
from robustify.runner.progress import CallProgress, progress_mode

__all__ = ["arun_queries", "run_queries", "estimate_calls", "MAX_CALLS_ERROR", "BackendStats"]

logger = logging.getLogger(__name__)

MAX_CALLS_ERROR = "max_calls reached"
"""Error recorded on rows left unasked because of ``max_calls``."""

BuildMessages = Callable[[Item], list[dict[str, str]]]
ScoreFn = Callable[[Item, "str | None"], Score]

_NAN = float("nan")
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
    unstored: int = 0
    """Answers the response cache could not store (a re-run asks them again)."""
    fatal: str | None = None
    """The fatal error that stopped this backend, if any."""


@dataclass
class _Plan:
    """One backend's side of the run: its cache keys and its bill."""

    backend: Backend
    keys: list[bytes] = field(default_factory=list)
    """Raw cache key of each prompt group (``.hex()`` is the cache key)."""
    stats: BackendStats = field(default_factory=BackendStats)


class _Groups:
    """Rows grouped by prompt, for all backends at once.

    Two rows share a prompt for one backend exactly when they share it for every
    backend (the key hashes the backend identity with the same messages), so one
    grouping serves all. Groups are numbered in order of first appearance; the rows of
    a group form a linked list through typed arrays (``first``, ``last``, ``next``),
    which costs 8 bytes per row and 16 per group instead of a list and an int object
    for each.
    """

    def __init__(self) -> None:
        self.number: dict[bytes, int] = {}
        """Raw key (of the first backend) -> group number."""
        self.first = array("q")
        self.last = array("q")
        self.next = array("q")
        """Per row: the next row of its group, or -1."""
        self.chars: array[int] | None = None
        """Prompt characters per group (only kept for :func:`estimate_calls`)."""

    def __len__(self) -> int:
        return len(self.first)

    def new(self, row: int) -> int:
        """Open a group whose first row (the asker) is ``row``; return its number."""
        self.first.append(row)
        self.last.append(row)
        return len(self.first) - 1

    def join(self, group: int, row: int) -> None:
        """Add ``row`` (the newest row) to ``group``."""
        self.next[self.last[group]] = row
        self.last[group] = row

    def release(self) -> None:
        """Forget the grouping (once every call is done)."""
        self.number = {}
        self.first = array("q")
        self.last = array("q")
        self.next = array("q")
        self.chars = None

    def rows(self, group: int) -> list[int]:
        """Rows of ``group`` in order, the asker first."""
        out = []
        row = self.first[group]
        nxt = self.next
        while row >= 0:
            out.append(row)
            row = nxt[row]
        return out


def _arrow_strings() -> Any:
    """pyarrow when pandas keeps ``str`` columns in Arrow (pandas 3 + pyarrow), else None.

    Only then can the runner pack string columns into Arrow while it runs and hand them
    to the frame as they are; elsewhere it keeps Python lists and lets pandas infer, so
    the frame's dtypes never depend on this optimisation.
    """
    try:
        import pyarrow
    except ImportError:
        return None
    dtype = pd.Series(["x"]).dtype
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
        return pyarrow
    return None


_STRING_COLUMNS = ("item_id", "variant_id", "spec", "transform", "severity_label",
                   "label_policy", "task", "input", "target")
_SEAL_ROWS = 16384
"""Rows per packed chunk of the string columns."""


class _Rows:
    """The variant side of every row, stored column by column.

    One Python object per row would cost about 2 KB (a 25-key dict, its floats, the
    Variant and its Item, all held until the end); at a million rows that is gigabytes.
    Here numbers go to typed arrays, and every :data:`_SEAL_ROWS` rows the string
    columns are packed into Arrow arrays, which become the frame's columns without a
    copy (the per-row Python strings are freed as the run goes, instead of piling up
    and then being converted all at once at the end).

    The item a row is scored against is kept until every backend has scored the row.
    A variant whose item equals its clean original except for ``input`` keeps only a
    pointer to the original (its text is in the ``input`` column) and gets its item
    rebuilt on demand: most variants are exactly that.
    """

    def __init__(self) -> None:
        self._pa = _arrow_strings()
        self._open: dict[str, list[Any]] = {name: [] for name in _STRING_COLUMNS}
        self._sealed: dict[str, list[Any]] = {name: [] for name in _STRING_COLUMNS}
        self._loose: set[str] = set()  # columns with a non-string value: kept as Python lists
        self._sealed_rows = 0
        self._count = 0
        self.severity = array("d")
        self.replicate = array("q")
        self.changed = bytearray()
        self.edit_rate = array("d")
        self.metadata: list[Any] = []
        self.meta_keys: dict[str, None] = {}
        self.source: list[Item | None] = []
        self.own_input = bytearray()
        # Equal short strings (spec, transform, ...) from different variants are often
        # distinct objects; keeping one copy of each makes the open lists cheaper.
        self._shared: dict[Any, Any] = {}
        self._meta_seen: set[int] = set()

    def __len__(self) -> int:
        return self._count

    def add(self, variant: Variant, source: Item, own_input: bool) -> None:
        """Append one row; ``source`` is the item to score against (see class doc)."""
        item = variant.item
        shared = self._shared.setdefault
        columns = self._open
        columns["item_id"].append(item.id)
        columns["variant_id"].append(variant.variant_id)
        columns["spec"].append(shared(variant.spec, variant.spec))
        columns["transform"].append(shared(variant.transform, variant.transform))
        columns["severity_label"].append(variant.severity_label)
        columns["label_policy"].append(shared(variant.label_policy, variant.label_policy))
        columns["task"].append(shared(item.task, item.task))
        columns["input"].append(item.input)
        columns["target"].append(item.target)
        self.severity.append(variant.severity)
        self.replicate.append(variant.replicate)
        self.changed.append(1 if variant.changed else 0)
        self.edit_rate.append(variant.edit_rate)
        metadata = item.metadata
        self.metadata.append(metadata)
        if metadata and id(metadata) not in self._meta_seen:
            # Variants share their item's metadata mapping: look at each mapping once.
            self._meta_seen.add(id(metadata))
            for key in metadata:
                self.meta_keys.setdefault(key, None)
        self.source.append(source)
        self.own_input.append(1 if own_input else 0)
        self._count += 1
        if self._pa is not None and self._count - self._sealed_rows >= _SEAL_ROWS:
            self._seal()

    def _seal(self) -> None:
        """Pack the open rows of each string column into one Arrow array."""
        if self._count == self._sealed_rows:
            return
        pa = self._pa
        for name, values in self._open.items():
            if name in self._loose:
                continue
            try:
                packed = pa.array(values, type=pa.large_string())
            except (pa.ArrowTypeError, pa.ArrowInvalid):
                # Not all strings (a hand-made Variant): keep this column in Python.
                self._loose.add(name)
                self._open[name] = self._unpacked(name) + values
                continue
            self._sealed[name].append(packed)
            self._open[name] = []
        self._sealed_rows = self._count

    def _unpacked(self, name: str) -> list[Any]:
        chunks, self._sealed[name] = self._sealed[name], []
        return [value for chunk in chunks for value in chunk.to_pylist()]

    def get(self, name: str, index: int) -> Any:
        """One value of a string column."""
        if name in self._loose or index >= self._sealed_rows:
            offset = 0 if name in self._loose else self._sealed_rows
            return self._open[name][index - offset]
        chunk, position = divmod(index, _SEAL_ROWS)
        return self._sealed[name][chunk][position].as_py()

    def item(self, index: int) -> Item:
        """The item of row ``index`` (rebuilt from its clean original when only the text differs)."""
        source = self.source[index]
        if source is None:  # pragma: no cover - released rows are never asked again
            raise RuntimeError(f"row {index} was already scored")
        if self.own_input[index]:
            return dataclasses.replace(source, input=self.get("input", index))
        return source

    def base_row(self, index: int, label: str) -> dict[str, Any]:
        """The variant-side fields of one row as a plain dict (for ``on_result``)."""
        get = self.get
        return {
            "model": label,
            "item_id": get("item_id", index),
            "variant_id": get("variant_id", index),
            "spec": get("spec", index),
            "transform": get("transform", index),
            "severity": self.severity[index],
            "severity_label": get("severity_label", index),
            "replicate": self.replicate[index],
            "changed": bool(self.changed[index]),
            "edit_rate": self.edit_rate[index],
            "label_policy": get("label_policy", index),
            "task": get("task", index),
            "input": get("input", index),
            "target": get("target", index),
        }

    def column(self, name: str) -> Any:
        """One variant-side column, ready for :class:`pandas.DataFrame` (made on demand)."""
        n = self._count
        if name in self._open:
            if self._pa is None or name in self._loose:
                return self._open[name]
            self._seal()
            chunks = self._sealed[name]
            if not n or all(chunk.null_count == len(chunk) for chunk in chunks):
                # All missing (e.g. severity_label of clean rows): pandas makes that an
                # object column of None, so hand it the same thing.
                return [None] * n
            packed = self._pa.chunked_array(chunks, type=self._pa.large_string())
            return pd.array(packed, dtype="str")
        if name in ("severity", "edit_rate"):
            return np.frombuffer(getattr(self, name), dtype=np.float64) if n else []
        if name == "replicate":
            return np.frombuffer(self.replicate, dtype=np.int64) if n else []
        if name == "changed":
            return np.frombuffer(bytes(self.changed), dtype=np.bool_)
        key = name.removeprefix("meta.")
        return [m.get(key, _NAN) if m else _NAN for m in self.metadata]

    def drop_sources(self) -> None:
        """Forget the items kept for scoring (once every row is scored)."""
        self.source = []
        self.own_input = bytearray()

    def constant(self, text: str) -> Any:
        """A string column holding ``text`` on every row (the model label).

        Built straight from its buffers when Arrow is used: a generic conversion of a
        million-element list goes through growing builders and costs twice the memory.
        """
        n = self._count
        if self._pa is None:
            return [text] * n
        data = text.encode("utf-8")
        offsets = np.arange(0, (n + 1) * len(data), len(data), dtype=np.int64)[:n + 1]
        packed = self._pa.LargeStringArray.from_buffers(
            n, self._pa.py_buffer(offsets), self._pa.py_buffer(data * n))
        return pd.array(self._pa.chunked_array([packed]), dtype="str")

    def release(self, name: str) -> None:
        """Forget a column once the frame has it (only with a single backend)."""
        if name in self._open:
            self._open[name] = []
            self._sealed[name] = []


class _Results:
    """The answer side of one backend's rows, column by column (filled as answers arrive)."""

    def __init__(self, n: int) -> None:
        self.response: list[str | None] = [None] * n
        self.parsed: list[Any] = [None] * n
        self.score = array("d", [_NAN]) * n
        self.unparseable = bytearray(n)
        self.detail: list[str | None] = [None] * n
        self.error: list[str | None] = [None] * n
        self.latency = array("d", [0.0]) * n
        self.cached = bytearray(n)
        # Token counts, -1 for unknown: 8 bytes a row instead of a list slot and an int.
        self.tokens_in = array("q", [-1]) * n
        self.tokens_out = array("q", [-1]) * n

    def row(self, index: int) -> dict[str, Any]:
        tokens_in, tokens_out = self.tokens_in[index], self.tokens_out[index]
        return {
            "response": self.response[index],
            "parsed": self.parsed[index],
            "score": self.score[index],
            "unparseable": bool(self.unparseable[index]),
            "score_detail": self.detail[index],
            "error": self.error[index],
            "latency": self.latency[index],
            "cached": bool(self.cached[index]),
            "tokens_in": None if tokens_in < 0 else tokens_in,
            "tokens_out": None if tokens_out < 0 else tokens_out,
        }

    def columns(self) -> dict[str, Any]:
        n = len(self.response)

        def tokens(values: array[int]) -> Any:
            data = np.frombuffer(values, dtype=np.int64) if n else np.zeros(0, np.int64)
            return pd.arrays.IntegerArray(data.copy(), data < 0)

        return {
            "response": self.response,
            "parsed": self.parsed,
            "score": np.frombuffer(self.score, dtype=np.float64) if n else [],
            "unparseable": np.frombuffer(bytes(self.unparseable), dtype=np.bool_),
            "score_detail": self.detail,
            "error": self.error,
            "latency": np.frombuffer(self.latency, dtype=np.float64) if n else [],
            "cached": np.frombuffer(bytes(self.cached), dtype=np.bool_),
            "tokens_in": tokens(self.tokens_in),
            "tokens_out": tokens(self.tokens_out),
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
          count_chars: bool = False) -> tuple[list[_Plan], _Groups, int, int]:
    """Read the variants once and group the rows by prompt.

    Args:
        rows: Where to store the rows (``None``: only count, as :func:`estimate_calls` does).
        count_chars: Keep the prompt length of every group (for the token estimate).

    Returns:
        The plans, the groups, the number of rows, and the number of variants reusing
        their clean original's answer.
    """
    makers = [KeyMaker(b.identity()).digest for b in backends]
    first_maker, other_makers = makers[0], makers[1:]
    plans = [_Plan(b) for b in backends]
    first_keys = plans[0].keys
    other_keys = [plan.keys for plan in plans[1:]]
    groups = _Groups()
    numbers = groups.number
    nxt = groups.next
    chars = groups.chars = array("q") if count_chars else None
    # item id -> (clean item, its group): the first clean row of each item.
    cleans: dict[str, tuple[Item, int]] = {}
    reused = 0
    index = -1
    for index, variant in enumerate(variants):
        nxt.append(-1)
        item = variant.item
        is_clean = variant.is_clean
        clean = None if is_clean else cleans.get(item.id)
        if clean is not None and not variant.changed and (item is clean[0] or item == clean[0]):
            reused += 1
            groups.join(clean[1], index)
            if rows is not None:
                rows.add(variant, clean[0], False)
            continue
        messages = build_messages(item)
        messages_json = canonical_json(messages)
        key = first_maker(messages_json)
        group = numbers.get(key)
        if group is None:
            group = numbers[key] = groups.new(index)
            first_keys.append(key)
            for maker, keys in zip(other_makers, other_keys):
                keys.append(maker(messages_json))
            if chars is not None:
                chars.append(sum(len(str(m.get("content", ""))) for m in messages))
        else:
            groups.join(group, index)
        if is_clean and item.id not in cleans:
            cleans[item.id] = (item, group)
        if rows is not None:
            if clean is not None and _differs_only_in_input(item, clean[0]):
                rows.add(variant, clean[0], True)
            else:
                rows.add(variant, item, False)
    count = index + 1
    for plan in plans:
        plan.stats.rows = count
        plan.stats.unique_prompts = len(groups)
    return plans, groups, count, reused


class _Run:
    """State of one :func:`arun_queries` call."""

    def __init__(self, rows: _Rows, plans: list[_Plan], groups: _Groups, *, score: ScoreFn,
                 build_messages: BuildMessages, cache: ResponseCache | None,
                 max_calls: int | None, on_result: Callable[[dict[str, Any]], None] | None,
                 progress: CallProgress) -> None:
        self.rows = rows
        self.plans = plans
        self.groups = groups
        self.score = score
        self.build_messages = build_messages
        self.cache = cache
        self.budget = max_calls
        self.on_result = on_result
        self.progress = progress
        self.results = [_Results(len(rows)) for _ in plans]
        # Backends still to score each row; its item is dropped when this reaches 0.
        self.unscored = array("B" if len(plans) < 256 else "L", [len(plans)]) * len(rows)
        self.fatal: dict[int, FatalModelError] = {}
        self.over_budget = 0
        self.warned_score = False
        self.parsed_values: dict[str, str] = {}

    # ----------------------------------------------------------------- rows
    def _score(self, item: Item, text: str) -> tuple[float, Any, bool, str | None, str | None]:
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

    def finish(self, b: int, group: int, *, completion: Completion | None,
               error: str | None, latency: float, cached: bool) -> int:
        """Fill and emit the rows of one prompt group (the first row is the asker).

        Returns:
            The number of rows filled.
        """
        indices = self.groups.rows(group)
        plan = self.plans[b]
        res = self.results[b]
        rows = self.rows
        unscored = self.unscored
        ok = completion is not None and error is None
        # Rows reusing a clean answer share the clean row's item object: score it once.
        scored: dict[int, tuple[float, Any, bool, str | None, str | None]] = {}
        for position, index in enumerate(indices):
            if ok:
                assert completion is not None
                text = completion.text
                res.response[index] = text
                if completion.tokens_in is not None:
                    res.tokens_in[index] = int(completion.tokens_in)
                if completion.tokens_out is not None:
                    res.tokens_out[index] = int(completion.tokens_out)
                res.cached[index] = cached or position > 0
                res.latency[index] = latency if (position == 0 and not cached) else 0.0
                source = rows.source[index]
                if rows.own_input[index] or source is None:
                    outcome = self._score(rows.item(index), text)
                else:
                    outcome = scored.get(id(source))
                    if outcome is None:
                        outcome = scored[id(source)] = self._score(source, text)
                value, parsed, unparseable, row_error, detail = outcome
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
    async def run_backend(self, b: int, queue: _Queue) -> None:
        plan = self.plans[b]
        backend = plan.backend
        workers = min(int(backend.max_concurrency), len(queue))
        if workers:
            await _gather_or_cancel([self._worker(b, queue) for _ in range(workers)])
        fatal = self.fatal.get(b)
        if fatal is not None and len(queue):
            message = one_line(fatal)
            plan.stats.skipped += len(queue)
            self.progress.skipped(len(queue))
            while (group := queue.pop()) is not None:
                self.finish(b, group, completion=None, error=message, latency=0.0,
                            cached=False)

    async def _worker(self, b: int, queue: _Queue) -> None:
        plan = self.plans[b]
        backend = plan.backend
        keys = plan.keys
        first = self.groups.first
        rows = self.rows
        cache = self.cache
        while b not in self.fatal:
            group = queue.pop()
            if group is None:
                break
            if self.budget is not None:
                if self.budget <= 0:
                    self._over_budget(b, group)
                    continue
                self.budget -= 1
            messages = self.build_messages(rows.item(first[group]))
            plan.stats.calls += 1
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
            latency = time.perf_counter() - started
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
            self.progress.call_done(error=False)
            self.finish(b, group, completion=completion, error=None, latency=latency,
                        cached=False)

    def _over_budget(self, b: int, group: int) -> None:
        plan = self.plans[b]
        self.over_budget += 1
        plan.stats.skipped += 1
        self.finish(b, group, completion=None, error=MAX_CALLS_ERROR, latency=0.0,
                    cached=False)


class _Queue:
    """The prompt groups one backend still has to ask, in plan order.

    A cursor over the group numbers that skips those the cache answered: no deque of
    a million keys. The workers of a backend share it (one event loop, no locks).
    """

    def __init__(self, answered: bytearray, misses: int) -> None:
        self._answered = answered
        self._cursor = 0
        self._left = misses

    def __len__(self) -> int:
        return self._left

    def pop(self) -> int | None:
        """The next group to ask, or ``None`` when none is left."""
        answered = self._answered
        size = len(answered)
        cursor = self._cursor
        while cursor < size:
            group = cursor
            cursor += 1
            if not answered[group]:
                self._cursor = cursor
                self._left -= 1
                return group
        self._cursor = cursor
        return None


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

    Columns are made one at a time (string columns packed during the run are taken
    as they are), and with one backend each source column is released once converted,
    so building the frame needs little more memory than the frame itself.
    """
    n = len(rows)
    if not n:
        return _empty_frame()
    meta = [f"meta.{key}" for key in rows.meta_keys]
    order = list(RESULT_COLUMNS) + meta
    last = len(plans) - 1
    frames = []
    for b, (plan, res) in enumerate(zip(plans, results)):
        source = {"model": rows.constant(plan.backend.label), **res.columns()}
        converted: dict[str, Any] = {}
        for column in order:
            values = source.pop(column) if column in source else rows.column(column)
            # A one-column DataFrame applies the same type inference as a whole-frame
            # build (str, float64 with NaN for missing meta values, object ...).
            converted[column] = pd.DataFrame({column: values}, copy=False)[column]
            del values
            if b == last:
                rows.release(column)
        results[b] = None  # type: ignore[call-overload]  # its lists were converted
        frames.append(pd.DataFrame(converted, copy=False))
        del converted
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


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
    plans, groups, count, reused = _plan(variants, backends, build_messages, rows)

    queues: list[_Queue] = []
    planned = 0
    hit_rows = 0
    run = _Run(rows, plans, groups, score=score, build_messages=build_messages, cache=cache,
               max_calls=max_calls, on_result=on_result,
               progress=CallProgress(0, enabled=False))
    try:
        # Cache lookups happen before any call, in bulk; hits are emitted right away.
        # Chunks bound the memory of a re-run where nearly everything is a hit.
        for b, plan in enumerate(plans):
            answered = bytearray(len(groups))
            for start in range(0, len(groups), _LOOKUP_CHUNK):
                chunk = [key.hex() for key in plan.keys[start:start + _LOOKUP_CHUNK]]
                hits = cache.get_many(chunk) if cache is not None else {}
                if not hits:
                    continue
                plan.stats.cache_hits += len(hits)
                for group, key in enumerate(chunk, start):
                    completion = hits.get(key)
                    if completion is not None:
                        answered[group] = 1
                        hit_rows += run.finish(b, group, completion=completion, error=None,
                                               latency=0.0, cached=True)
            misses = len(groups) - plan.stats.cache_hits
            planned += misses
            queues.append(_Queue(answered, misses))
        total = planned if max_calls is None else min(planned, max_calls)
        run.progress = CallProgress(total, enabled=progress_mode(progress))
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
    # The grouping (a key and a few slots per prompt) has done its job: free it before
    # the frame is built, so the frame's memory can reuse it.
    del queues
    groups.release()
    rows.drop_sources()
    for plan in plans:
        plan.keys = []
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
    _check_backends(backends)
    plans, groups, count, _ = _plan(variants, backends, build_messages, count_chars=True)
    chars = groups.chars
    assert chars is not None
    per_model: dict[str, dict[str, Any]] = {}
    for plan in plans:
        hits = 0
        calls = 0
        tokens_in = 0
        for start in range(0, len(groups), _LOOKUP_CHUNK):
            chunk = [key.hex() for key in plan.keys[start:start + _LOOKUP_CHUNK]]
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
