"""Whitespace noise: doubled spaces, stray tabs and line breaks, words run together.

``double`` is the whitespace slip people actually leave in typed messages (a doubled
space); ``extra`` also adds tabs and line breaks, which come from pasting text rather
than typing it, and is a stress setting.

Only whitespace changes: deleting every whitespace character from the input and from
the output gives the same string, so no letter, digit or mark is ever lost or added.
"""

from __future__ import annotations

import random
from typing import Sequence

from ..base import Option, TextTransform
from ..registry import register
from ..text import Token, count_for, tokenize

__all__ = ["Whitespace", "MODES", "GAP_RATE", "EXTRA_WHITESPACE", "MERGE_SHARE"]

MODES = ("extra", "double", "merge", "mix")
"""Values of the ``mode`` option."""

GAP_RATE = 0.5
"""Share of the gaps between words changed at severity 1 (``high`` = 0.8 -> 40%)."""

EXTRA_WHITESPACE: tuple[tuple[str, float], ...] = (
    (" ", 0.45), ("  ", 0.15), ("\t", 0.15), ("\n", 0.25))
"""What ``extra`` appends to a gap, with relative frequencies (a doubled space is the
most common slip; line breaks come from pasting)."""

MERGE_SHARE = 0.4
"""In ``mix``, the share of chosen gaps that are merged rather than widened."""


@register("whitespace", family="whitespace", label_policy="preserves")
class Whitespace(TextTransform):
    """Add stray spaces, tabs and line breaks between words, or run words together.

    Severity: share of the gaps between two words that are changed, ``0.5 * severity``
    (low 10%, medium 25%, high 40%).
    Label: preserves. Only whitespace is added or removed; a word is never merged with
    a number, number word, option letter or declared phrase, so protected tokens stay
    separate and byte-identical; two merges never touch the same word, so at most two
    words run together.
    Options: ``mode`` = extra (append a space, two spaces, a tab or a line break to a
    gap; pasted text), double (append one space: a doubled space, the slip typed
    messages show), merge (delete the space between two words: "the capital" -> "thecapital";
    only gaps made of plain spaces), mix (the default: 40% merges, 60% extra).
    """

    OPTIONS = {"mode": Option("mix", MODES, "add whitespace, remove it, or both")}

    def perturb_text(self, text: str, severity: float, rng: random.Random,
                     protected: Sequence[tuple[int, int]]) -> str:
        mode = self.options["mode"]
        tokens = tokenize(text, protected)
        gaps = [i for i in range(1, len(tokens) - 1)
                if not tokens[i].is_word and not tokens[i].protected and tokens[i].text.isspace()
                and tokens[i - 1].is_word and tokens[i + 1].is_word]
        if mode == "merge":
            gaps = [i for i in gaps if self._mergeable(tokens, i)]
        k = count_for(len(gaps), GAP_RATE * severity, rng)
        if k == 0:
            return text
        chosen = sorted(rng.sample(gaps, k))
        texts = [t.text for t in tokens]
        merged_words: set[int] = set()
        choices = [w for w, _ in EXTRA_WHITESPACE]
        weights = [p for _, p in EXTRA_WHITESPACE]
        for i in chosen:
            merge = mode == "merge" or (mode == "mix" and self._mergeable(tokens, i)
                                        and rng.random() < MERGE_SHARE)
            if merge and (i - 1) not in merged_words:
                texts[i] = ""
                merged_words.update((i - 1, i + 1))
            elif mode == "double":
                texts[i] += " "
            elif mode != "merge":
                texts[i] += rng.choices(choices, weights)[0]
        return "".join(texts)

    @staticmethod
    def _mergeable(tokens: list[Token], i: int) -> bool:
        return (tokens[i].text.strip(" ") == "" and tokens[i - 1].editable
                and tokens[i + 1].editable)
