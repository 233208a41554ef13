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
    Label: preserves. Case carries no meaning in the questions we perturb; numbers,
    option letters and protected phrases are left as written.
    Options: ``mode`` = lower (drop capitals, the default), upper (shouting),
    random (mixed), title.
    """

    OPTIONS = {"mode": Option("lower", ("lower", "upper", "random", "title"),
                              "which case to apply")}

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
