"""A classification task's label set, prepared once and shared by every answer.

Reading a label from an answer needs every label's spellings (the label and its
``metadata["aliases"][label]``, normalised) and a whole-word pattern for each. With 77
labels that is hundreds of normalisations and pattern look-ups, which used to be redone
for every answer (about 2 ms each). :func:`label_set` builds a :class:`LabelSet` once
per distinct label set (memoised on the labels, aliases and, where it matters, the
target) and the answer then costs dictionary look-ups and one substring test per
spelling. The readings are the same as building the names afresh for each answer
(``tests/robustify/test_scoring.py`` checks it on a many-label set).

>>> from perturbations import Item
>>> item = Item(id="c", input="Charged twice", target="billing", task="classification",
...             metadata={"labels": ["billing", "refund"], "aliases": {"refund": ["money back"]}})
>>> labels = label_set(item)
>>> labels.exact("money back"), labels.leading("billing please"), labels.mentioned("i want my money back")
('refund', ['billing'], ['refund'])
>>> label_set(item) is labels
True
"""

from __future__ import annotations

import re
import threading
from typing import Any, Hashable, Mapping

from perturbations.records import Item

from robustify.scoring.text import normalize_text, phrase_pattern

__all__ = ["LabelSet", "label_set", "label_names"]


def label_names(item: Item) -> dict[str, list[str]]:
    """Each label with its spellings: the label itself plus ``metadata["aliases"][label]``.

    Labels come from ``metadata["labels"]``, then the target, then the alias keys;
    spellings are normalised (articles kept), de-duplicated and never empty.
    """
    aliases = item.metadata.get("aliases") or {}
    if not isinstance(aliases, Mapping):
        aliases = {item.target: list(aliases) if not isinstance(aliases, str) else [aliases]}
    labels = list(item.metadata.get("labels") or [])
    for label in [item.target, *aliases]:
        if label not in labels:
            labels.append(label)
    names: dict[str, list[str]] = {}
    for label in labels:
        extra = aliases.get(label, ())
        if isinstance(extra, str):
            extra = (extra,)
        spellings = [normalize_text(str(label), drop_articles=False)]
        spellings += [normalize_text(str(a), drop_articles=False) for a in extra]
        names[str(label)] = [s for s in dict.fromkeys(spellings) if s]
    return names


class LabelSet:
    """The spellings of a label set and the look-ups that read an answer against them.

    Args:
        names: Label -> its normalised spellings, in label order (:func:`label_names`).
    """

    __slots__ = ("names", "_exact", "_prefix", "_longest", "_patterns", "_pairs")

    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names
        self._exact: dict[str, str] = {}
        self._prefix: dict[str, list[str]] = {}
        self._patterns: dict[str, re.Pattern[str]] = {}
        for label, spellings in names.items():
            for spelling in spellings:
                self._exact.setdefault(spelling, label)
                owners = self._prefix.setdefault(spelling, [])
                if label not in owners:
                    owners.append(label)
                if spelling not in self._patterns:
                    self._patterns[spelling] = phrase_pattern(spelling)
        self._longest = max(map(len, self._patterns), default=0)
        # (spelling, its pattern, label) in label order, then spelling order
        self._pairs = tuple((spelling, self._patterns[spelling], label)
                            for label, spellings in names.items() for spelling in spellings)

    def exact(self, answer: str) -> str | None:
        """The first label one of whose spellings *is* the normalised answer."""
        return self._exact.get(answer)

    def leading(self, answer: str) -> list[str]:
        """Labels with a spelling the normalised answer starts with (then a space), in
        label order."""
        found: set[str] = set()
        prefix = self._prefix
        end = answer.find(" ")
        while 0 < end <= self._longest:
            owners = prefix.get(answer[:end])
            if owners:
                found.update(owners)
            end = answer.find(" ", end + 1)
        if len(found) < 2:
            return list(found)
        return [label for label in self.names if label in found]

    def mentioned(self, answer: str) -> list[str]:
        """Labels mentioned as whole words, keeping the longest reading.

        "billing" inside "billing issue" is not a second label: a label counts only if
        one of its spellings found in the answer is not part of another label's.
        """
        patterns = self._patterns
        hits: dict[str, list[str]] = {}
        for spelling, pattern, label in self._pairs:
            if spelling in answer and pattern.search(answer):
                found = hits.get(label)
                if found is None:
                    hits[label] = [spelling]
                else:
                    found.append(spelling)
        return [label for label, found in hits.items()
                if not all(any(other != label and f != g and patterns[f].search(g)
                               for other, gs in hits.items() for g in gs)
                           for f in found)]


def _key_part(value: Any) -> Hashable:
    """``value`` (labels or aliases) as a hashable key; TypeError when it cannot be one."""
    if type(value) is dict or isinstance(value, Mapping):
        return ("mapping", tuple((k, tuple(v) if type(v) is list else v)
                                 for k, v in value.items()))
    if type(value) is list or isinstance(value, tuple):
        return ("sequence", tuple(value))
    return value


def label_set(item: Item) -> LabelSet:
    """The prepared :class:`LabelSet` of ``item`` (built once per distinct label set)."""
    metadata = item.metadata
    labels = metadata.get("labels") or ()
    aliases = metadata.get("aliases") or {}
    try:
        # The target changes the set only when it is not a label or when a flat alias
        # list belongs to it; otherwise items of one task share one prepared set.
        target = item.target if (item.target not in labels
                                 or not isinstance(aliases, Mapping)) else None
        key = (_key_part(labels), _key_part(aliases), target)
        hash(key)
    except TypeError:
        return LabelSet(label_names(item))
    return _cached(key, item)


_MEMO: dict[Hashable, LabelSet] = {}
_MEMO_SIZE = 256
_MEMO_LOCK = threading.Lock()


def _cached(key: Hashable, item: Item) -> LabelSet:
    found = _MEMO.get(key)
    if found is None:
        found = LabelSet(label_names(item))
        with _MEMO_LOCK:  # scorers may run in worker threads
            if len(_MEMO) >= _MEMO_SIZE:
                _MEMO.pop(next(iter(_MEMO)))
            _MEMO[key] = found
    return found
