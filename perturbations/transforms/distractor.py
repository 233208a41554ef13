"""Distractors: off-topic chatter around the question ("My cat just knocked over my coffee.")."""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path
from typing import Any, Sequence

from ..base import TextTransform
from ..registry import register

__all__ = ["Distractor", "load_distractors", "sentence_count", "long_share", "MAX_SENTENCES"]

_DATA = Path(__file__).resolve().parent.parent / "data"


@functools.cache
def load_distractors() -> dict[str, Any]:
    """The lexicon in ``perturbations/data/distractors.json`` (loaded once)."""
    text = (_DATA / "distractors.json").read_text(encoding="utf-8")
    return json.loads(text)


MAX_SENTENCES = 2
"""At most this many asides: real chat messages run to a few dozen words, not a page."""


def sentence_count(severity: float) -> int:
    """How many distractor sentences a severity adds: 1 up to 0.5, 2 above."""
    if severity <= 0:
        return 0
    return 1 if severity <= 0.5 else MAX_SENTENCES


def long_share(severity: float) -> float:
    """Chance that an aside is a long one: 0 up to 0.5, rising to one in two at 1."""
    return max(0.0, min(0.5, (severity - 0.5)))


@register("distractor", family="distractor", label_policy="preserves")
class Distractor(TextTransform):
    """Add irrelevant sentences of everyday chatter before or after the question.

    Sentences come from ``data/distractors.json``: short asides ("Sorry, typing this on
    my phone.") and longer stories ("I was arguing about this with my roommate over
    breakfast ..."). None contains a digit, a number word, "yes"/"no" or an option
    letter, so a distractor never offers the model a quantity or an answer. Each
    sentence goes before or after the question at random.

    Severity: how many and how long, kept within the length of real chat messages
    (a question plus at most about 30 words of chatter): 1 short sentence up to 0.5,
    2 sentences above; from 0.5 on each may be a long one (at most one per message),
    with a chance rising to one in two at 1 (0.3 at high).
    Label: preserves. The question is kept verbatim; only unrelated text is added.
    Options: none besides ``fields``.
    """

    def perturb_text(self, text: str, severity: float, rng: random.Random,
                     protected: Sequence[tuple[int, int]]) -> str:
        lex = load_distractors()
        n = sentence_count(severity)
        p_long = long_share(severity)
        pools = {"short": list(lex["short"]), "long": list(lex["long"])}
        before: list[str] = []
        after: list[str] = []
        for _ in range(n):
            pool = pools["long"] if rng.random() < p_long and pools["long"] else pools["short"]
            if pool is pools["long"]:
                pools["long"] = []  # one long aside at most: chat messages stay short
            if not pool:
                break
            sentence = pool.pop(rng.randrange(len(pool)))
            (before if rng.random() < 0.5 else after).append(sentence)
        body = text.strip()
        lead = text[:len(text) - len(text.lstrip())]
        trail = text[len(text.rstrip()):]
        parts = before + [body] + after
        return lead + " ".join(parts) + trail
