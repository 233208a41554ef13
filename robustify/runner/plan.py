"""Planning a run: which rows share a prompt, which reuse their clean answer, what each backend costs.

Identical messages for one backend form one prompt group (sent once); a variant whose
item equals its clean original reuses the clean answer without a prompt.
"""

from __future__ import annotations

import dataclasses
import time
from array import array
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence


from perturbations.errors import ConfigError
from perturbations.records import Item, Variant

from robustify.models.base import Backend
from robustify.runner.cache import KeyMaker, canonical_json
from robustify.runner.prompt_keys import KeyArray, KeyIndex
from robustify.runner.store import Rows

__all__ = ["BackendStats", "Plan", "Groups", "Planner", "check_backends",
           "differs_only_in_input", "plan_rows"]

BuildMessages = Callable[[Item], list[dict[str, str]]]

LOOKUP_CHUNK = 2000
"""Keys per bulk cache lookup (the runner, the feeder, estimates and the Batch API)."""


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
class Plan:
    """One backend's side of the run: its cache keys and its bill."""

    backend: Backend
    keys: KeyArray = field(default_factory=KeyArray)
    """Raw cache key of each prompt group (``.hex()`` is the cache key), 32 bytes each."""
    stats: BackendStats = field(default_factory=BackendStats)


class Groups:
    """Rows grouped by prompt, for all backends at once.

    Two rows share a prompt for one backend exactly when they share it for every
    backend (the key hashes the backend identity with the same messages), so one
    grouping serves all. Groups are numbered in order of first appearance; the rows of
    a group form a linked list through typed arrays (``first`` per group, ``next`` per
    row), 4 bytes a row and 4 a group. A joining row goes right after the asker, so no
    tail is kept; :meth:`rows` puts the others back in order.
    """

    def __init__(self) -> None:
        self.first = array("i")
        """Per group: its first row (the asker)."""
        self.next = array("i")
        """Per row: the next row of its group (the asker, then the newest first), or -1."""
        self.chars: array[int] | None = None
        """Prompt characters per group (only kept for :func:`estimate_calls`)."""

    def __len__(self) -> int:
        return len(self.first)

    def new(self, row: int) -> int:
        """Open a group whose first row (the asker) is ``row``; return its number."""
        self.first.append(row)
        return len(self.first) - 1

    def join(self, group: int, row: int) -> None:
        """Add ``row`` (the newest row) to ``group``, right after its asker."""
        asker = self.first[group]
        nxt = self.next
        nxt[row] = nxt[asker]
        nxt[asker] = row

    def release(self) -> None:
        """Forget the grouping (once every call is done)."""
        self.first = array("i")
        self.next = array("i")
        self.chars = None

    def rows(self, group: int) -> list[int]:
        """Rows of ``group`` in order, the asker first."""
        asker = self.first[group]
        nxt = self.next
        row = nxt[asker]
        if row < 0:
            return [asker]
        later = []
        while row >= 0:
            later.append(row)
            row = nxt[row]
        later.append(asker)
        later.reverse()
        return later


def check_backends(backends: Sequence[Backend]) -> None:
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


def differs_only_in_input(item: Item, clean: Item) -> bool:
    """True when ``item`` is ``clean`` with another ``input`` (so it can be rebuilt from it)."""
    if type(item) is not type(clean):
        return False
    for name in _ITEM_FIELDS:
        a, b = getattr(item, name), getattr(clean, name)
        if a is not b and a != b:
            return False
    return True


class Planner:
    """Groups rows by prompt as the variants come, for all backends at once.

    :func:`plan_rows` feeds it a whole stream; the runner feeds it a slice at a time
    while the first calls are already out (:meth:`extend` with a deadline).
    """

    def __init__(self, backends: Sequence[Backend], build_messages: BuildMessages,
                 rows: Rows | None = None, count_chars: bool = False) -> None:
        makers = [KeyMaker(b.identity()).digest for b in backends]
        self._first_maker, self._other_makers = makers[0], makers[1:]
        self.plans = [Plan(b) for b in backends]
        self._index_of = KeyIndex(self.plans[0].keys).find_or_add
        self._other_keys = [plan.keys for plan in self.plans[1:]]
        self.groups = Groups()
        if count_chars:
            self.groups.chars = array("I")
        self.build_messages = build_messages
        self.rows = rows
        # The first clean row of each item: id -> position in clean_items / clean_groups
        # (an int and a dict entry per item, no tuple).
        self._clean_at: dict[str, int] = {}
        self._clean_items: list[Item] = []
        self._clean_groups = array("i")
        self.count = 0
        """Rows planned so far."""
        self.reused = 0
        """Rows reusing their clean original's answer."""

    def extend(self, variants: Iterator[Variant], *, deadline: float | None = None,
               max_new: int | None = None, joined: list[tuple[int, int]] | None = None
               ) -> bool:
        """Plan rows from ``variants`` until it ends, ``deadline`` (``time.perf_counter``)
        passes or ``max_new`` groups were opened.

        Args:
            joined: Receives ``(row, group)`` for each row that joined a group opened
                before this call (the runner answers it at once if that group is done).

        Returns:
            True when ``variants`` is exhausted.
        """
        groups = self.groups
        nxt = groups.next
        chars = groups.chars
        rows = self.rows
        build_messages = self.build_messages
        first_maker = self._first_maker
        index_of = self._index_of
        other = list(zip(self._other_makers, self._other_keys))
        clean_at, clean_items, clean_groups = (self._clean_at, self._clean_items,
                                               self._clean_groups)
        old_groups = len(groups)
        new_limit = None if max_new is None else old_groups + max_new
        clock = time.perf_counter
        index = self.count - 1
        exhausted = True
        try:
            for variant in variants:
                index += 1
                nxt.append(-1)
                item = variant.item
                is_clean = variant.is_clean
                at = None if is_clean else clean_at.get(item.id)
                clean = None if at is None else clean_items[at]
                if clean is not None and not variant.changed and (
                        item is clean or item == clean):
                    self.reused += 1
                    group = clean_groups[at]
                    groups.join(group, index)
                    if joined is not None and group < old_groups:
                        joined.append((index, group))
                    if rows is not None:
                        rows.add(variant, clean, False)
                else:
                    messages = build_messages(item)
                    messages_json = canonical_json(messages)
                    group, is_new = index_of(first_maker(messages_json))
                    if is_new:
                        groups.new(index)
                        for maker, keys in other:
                            keys.append(maker(messages_json))
                        if chars is not None:
                            chars.append(sum(len(str(m.get("content", ""))) for m in messages))
                    else:
                        groups.join(group, index)
                        if joined is not None and group < old_groups:
                            joined.append((index, group))
                    if is_clean and item.id not in clean_at:
                        clean_at[item.id] = len(clean_items)
                        clean_items.append(item)
                        clean_groups.append(group)
                    if rows is not None:
                        if clean is not None and differs_only_in_input(item, clean):
                            rows.add(variant, clean, True)
                        else:
                            rows.add(variant, item, False)
                if (deadline is not None and clock() >= deadline) or (
                        new_limit is not None and len(groups) >= new_limit):
                    exhausted = False
                    break
        finally:
            self.count = index + 1
            for plan in self.plans:
                plan.stats.rows = self.count
                plan.stats.unique_prompts = len(groups)
        return exhausted


def plan_rows(variants: Iterable[Variant], backends: Sequence[Backend],
              build_messages: BuildMessages, rows: Rows | None = None,
              count_chars: bool = False) -> tuple[list[Plan], Groups, int, int]:
    """Read the variants once and group the rows by prompt.

    Args:
        rows: Where to store the rows (``None``: only count, as :func:`estimate_calls` does).
        count_chars: Keep the prompt length of every group (for the token estimate).

    Returns:
        The plans, the groups, the number of rows, and the number of variants reusing
        their clean original's answer.
    """
    planner = Planner(backends, build_messages, rows, count_chars)
    planner.extend(iter(variants))
    return planner.plans, planner.groups, planner.count, planner.reused
