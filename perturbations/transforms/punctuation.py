"""Punctuation noise: marks left out, or stray and repeated marks typed in.

Works on characters rather than words so that it can tell a sentence comma from the
comma of ``1,200`` and the point of ``3.5``: anything inside a protected span, and any
``.`` or ``,`` squeezed between two letters or digits (``e.g``, ``example.com``), is
left alone.
"""

from __future__ import annotations

import random
from typing import Sequence

from ..base import Option, TextTransform
from ..registry import register
from ..text import count_for

__all__ = ["Punctuation", "MODES", "DROPPABLE", "STRAY_MARKS", "ADD_RATE"]

MODES = ("drop", "add", "mix")
"""Values of the ``mode`` option."""

DROPPABLE = frozenset(",.?!;")
"""Marks ``drop`` may remove. Colons are kept: they often carry a prompt's structure
("Question:", "Options:")."""

STRAY_MARKS: tuple[tuple[str, float], ...] = ((",", 0.6), ("...", 0.25), (".", 0.1), ("..", 0.05))
"""Marks ``add`` types after a word, with their relative frequency."""

_REPEATS = {"?": ("??", "???", "?!", "?!?"), "!": ("!!", "!!!"), ".": ("..", "...")}
ADD_RATE = 0.25
"""Share of words followed by a stray mark at severity 1 (``add``)."""


def _protected_mask(n: int, spans: Sequence[tuple[int, int]]) -> bytearray:
    mask = bytearray(n)
    for s, e in spans:
        mask[max(s, 0):min(e, n)] = b"\x01" * max(0, min(e, n) - max(s, 0))
    return mask


def _free_mark(text: str, i: int, mask: bytearray) -> bool:
    """True if the mark at ``i`` is sentence punctuation we may touch."""
    if mask[i]:
        return False
    # a mark between two word characters is part of a token (e.g, 3.5, example.com)
    before = text[i - 1] if i > 0 else " "
    after = text[i + 1] if i + 1 < len(text) else " "
    return not (before.isalnum() and after.isalnum())


@register("punctuation", family="punctuation", label_policy="preserves")
class Punctuation(TextTransform):
    """Drop sentence punctuation, or add stray and repeated marks ("??", "!!", "...").

    Severity: ``drop``: share of droppable marks (``, . ? ! ;``) removed (= severity).
    ``add``: share of words followed by a stray mark (``0.25 * severity``; mostly
    commas, some "...") plus the chance that each sentence-final ``?``/``!``/``.`` is
    repeated (= severity; "?" -> "??", "?!"). ``mix``: both, each at half the severity.
    Label: preserves. Punctuation inside protected spans (decimals like 3.5 and .5,
    amounts like $.20, 1,200, option letters like "(B)", quoted terms) and marks inside
    tokens (e.g, example.com) are never touched; no letters or digits are added or
    removed.
    Options: ``mode`` = drop (the default), add, mix.
    """

    OPTIONS = {"mode": Option("drop", MODES, "remove marks, add stray marks, or both")}
    NOTHING_TO_CHANGE = "no punctuation the mode may touch"

    def count_candidates(self, text: str, severity: float,
                         protected: Sequence[tuple[int, int]]) -> int:
        mask = _protected_mask(len(text), protected)
        n = 0
        if self.options["mode"] in ("drop", "mix"):
            n += sum(1 for i, c in enumerate(text)
                     if c in DROPPABLE and _free_mark(text, i, mask))
        if self.options["mode"] in ("add", "mix"):
            n += sum(1 for i in range(len(text) - 1)
                     if text[i].isalpha() and text[i + 1] in " \t" and not mask[i])
            n += sum(1 for i, c in enumerate(text) if c in _REPEATS and _free_mark(text, i, mask))
        return n

    def perturb_text(self, text: str, severity: float, rng: random.Random,
                     protected: Sequence[tuple[int, int]]) -> str:
        mode = self.options["mode"]
        mask = _protected_mask(len(text), protected)
        scale = 0.5 if mode == "mix" else 1.0
        dropped: set[int] = set()
        inserted: dict[int, str] = {}  # insert before index (len(text) = at the end)
        if mode in ("drop", "mix"):
            marks = [i for i, c in enumerate(text) if c in DROPPABLE and _free_mark(text, i, mask)]
            k = count_for(len(marks), severity * scale, rng)
            dropped.update(rng.sample(marks, k))
        if mode in ("add", "mix"):
            self._plan_additions(text, severity * scale, rng, mask, dropped, inserted)
        if not dropped and not inserted:
            return text
        out: list[str] = []
        for i, c in enumerate(text):
            if i in inserted:
                out.append(inserted[i])
            if i not in dropped:
                out.append(c)
        out.append(inserted.get(len(text), ""))
        return "".join(out)

    @staticmethod
    def _plan_additions(text: str, severity: float, rng: random.Random, mask: bytearray,
                        dropped: set[int], inserted: dict[int, str]) -> None:
        n = len(text)
        # word ends: a letter followed by a space, outside protected spans
        ends = [i + 1 for i in range(n - 1)
                if text[i].isalpha() and text[i + 1] in " \t" and not mask[i]]
        k = count_for(len(ends), ADD_RATE * severity, rng)
        marks = [m for m, _ in STRAY_MARKS]
        weights = [w for _, w in STRAY_MARKS]
        for pos in sorted(rng.sample(ends, k)):
            inserted[pos] = rng.choices(marks, weights)[0]
        # sentence-final marks: followed by whitespace or the end of the text
        for i, c in enumerate(text):
            if c not in _REPEATS or i in dropped or not _free_mark(text, i, mask):
                continue
            if i + 1 < n and not text[i + 1].isspace():
                continue
            if rng.random() < severity:
                extra = rng.choice(_REPEATS[c])[1:]
                inserted[i + 1] = extra + inserted.get(i + 1, "")
