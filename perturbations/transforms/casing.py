"""Casing noise: the shift key pressed too little, too much, or at random."""

from __future__ import annotations

import random
from typing import Sequence

from ..base import Option, TextTransform
from ..registry import register
from ..text import count_for, detokenize, tokenize

__all__ = ["Casing"]


@register("casing", family="casing", label_policy="preserves")
class Casing(TextTransform):
    """Change the case of words the way hurried typists do.

    Severity: share of words whose case is changed (0.5 -> about half the editable
    words; 1 -> every word, as a phone keyboard with auto-capitalisation off types).
    Label: preserves. Case carries no meaning in the questions we perturb, except in
    upper-case words (NOT, EXCEPT, acronyms), which are left as written together with
    numbers, option letters and protected phrases.
    Options: ``mode`` = lower (drop capitals, the default), upper (shouting),
    random (mixed), title.
    """

    OPTIONS = {"mode": Option("lower", ("lower", "upper", "random", "title"),
                              "which case to apply")}

    NOTHING_TO_CHANGE = "no word whose case the mode would change"

    def count_candidates(self, text: str, severity: float,
                         protected: Sequence[tuple[int, int]]) -> int:
        mode = self.options["mode"]
        change = {"lower": str.lower, "upper": str.upper,
                  "title": lambda w: w[:1].upper() + w[1:].lower()}.get(mode)
        return sum(1 for t in tokenize(text, protected) if t.editable and (
            change(t.text) != t.text if change else t.text.lower() != t.text.upper()))

    def perturb_text(self, text: str, severity: float, rng: random.Random,
                     protected: Sequence[tuple[int, int]]) -> str:
        mode = self.options["mode"]
        tokens = tokenize(text, protected)
        editable = [t for t in tokens if t.editable]
        chosen = rng.sample(editable, count_for(len(editable), severity, rng))
        for tok in chosen:
            if mode == "lower":
                tok.text = tok.text.lower()
            elif mode == "upper":
                tok.text = tok.text.upper()
            elif mode == "title":
                tok.text = tok.text[:1].upper() + tok.text[1:].lower()
            else:
                tok.text = "".join(c.upper() if rng.random() < 0.5 else c.lower()
                                   for c in tok.text)
        return detokenize(tokens)
