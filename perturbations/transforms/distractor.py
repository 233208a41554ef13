"""Distractors: off-topic chatter around the question ("My cat just knocked over my coffee.")."""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path
from typing import Any, Sequence

from ..base import TextTransform
from ..registry import register

__all__ = ["Distractor", "load_distractors", "sentence_count"]

_DATA = Path(__file__).resolve().parent.parent / "data"


@functools.cache
def load_distractors() -> dict[str, Any]:
    """The lexicon in ``perturbations/data/distractors.json`` (loaded once)."""
    text = (_DATA / "distractors.json").read_text(encoding="utf-8")
    return json.loads(text)


def sentence_count(severity: float) -> int:
    """How many distractor sentences a severity adds: 1 up to 0.25, 2 up to 0.5, ... 4."""
    if severity <= 0:
        return 0
    return min(4, max(1, int(severity * 4 + 0.999999)))


@register("distractor", family="distractor", label_policy="preserves")
class Distractor(TextTransform):
    """Add irrelevant sentences of everyday chatter before or after the question.

    Sentences come from ``data/distractors.json``: short asides ("Sorry, typing this on
    my phone.") and longer stories ("I was arguing about this with my roommate over
    breakfast ..."). None contains a digit, a number word, "yes"/"no" or an option
    letter, so a distractor never offers the model a quantity or an answer. Each
    sentence goes before or after the question at random.

    Severity: how many and how long: 1 sentence up to 0.25, 2 up to 0.5, 3 up to 0.75,
    4 above; the share of long sentences rises with severity (none at 0.2, about
    half at 0.5, all from 0.8 on).
    Label: preserves. The question is kept verbatim; only unrelated text is added.
    Options: none besides ``fields``.
    """

    def perturb_text(self, text: str, severity: float, rng: random.Random,
                     protected: Sequence[tuple[int, int]]) -> str:
        lex = load_distractors()
        n = sentence_count(severity)
        long_share = max(0.0, min(1.0, (severity - 0.2) / 0.6))
        pools = {"short": list(lex["short"]), "long": list(lex["long"])}
        before: list[str] = []
        after: list[str] = []
        for _ in range(n):
            pool = pools["long"] if rng.random() < long_share and pools["long"] else pools["short"]
            if not pool:
                break
            sentence = pool.pop(rng.randrange(len(pool)))
            (before if rng.random() < 0.5 else after).append(sentence)
        body = text.strip()
        lead = text[:len(text) - len(text.lstrip())]
        trail = text[len(text.rstrip()):]
        parts = before + [body] + after
        return lead + " ".join(parts) + trail
