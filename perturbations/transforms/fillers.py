"""Fillers and disfluencies: how a question looks when it was spoken, not written."""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path
from typing import Any, Sequence

from ..base import TextTransform
from ..keywords import DECISIVE_WORDS, QUANTITY_WORDS, is_negation
from ..quantities import NUMBER_VOCABULARY
from ..registry import register
from ..text import Token, count_for, detokenize, tokenize

__all__ = ["Fillers", "load_fillers_lexicon"]

_DATA = Path(__file__).resolve().parent.parent / "data"

# Relative weights of the three disfluency kinds at a chosen gap.
_WEIGHTS = (("filler", 0.6), ("repeat", 0.25), ("correction", 0.15))


@functools.cache
def load_fillers_lexicon() -> dict[str, Any]:
    """The lexicon in ``perturbations/data/fillers.json`` (loaded once)."""
    text = (_DATA / "fillers.json").read_text(encoding="utf-8")
    return json.loads(text)


def _pick_kind(rng: random.Random) -> str:
    r = rng.random() * sum(w for _, w in _WEIGHTS)
    for kind, weight in _WEIGHTS:
        r -= weight
        if r < 0:
            return kind
    return _WEIGHTS[-1][0]


def _lower_first(tok: Token, lowercase: Sequence[str]) -> None:
    # "So basically, what is ..." reads right only with the capital dropped, but a
    # name ("Sarah") keeps it: only common sentence openers are lowered.
    if tok.editable and tok.text.lower() in lowercase and tok.text[1:].islower():
        tok.text = tok.text.lower()


def _weighty(word: str) -> bool:
    """A word whose repetition or fragment reads as meaning: a negation ("not not" is a
    double negation), a number or quantity ("two two"), a decisive word."""
    w = word.lower()
    return is_negation(w) or w in NUMBER_VOCABULARY or w in QUANTITY_WORDS \
        or w in DECISIVE_WORDS or any(c.isdigit() for c in w)


def _gaps(tokens: list[Token]) -> tuple[list[int], list[int]]:
    """(indices of word tokens, gaps that may take a disfluency); gap g sits before word
    ``word_idx[g]`` and gap 0 is the start of the text."""
    word_idx = [i for i, t in enumerate(tokens) if t.is_word]
    gaps: list[int] = []
    if word_idx and word_idx[0] == 0:
        gaps.append(0)
    for g in range(1, len(word_idx)):
        i = word_idx[g]
        between = tokens[i - 1]
        if i - 1 == word_idx[g - 1] + 1 and not between.protected and \
                between.text.isspace() and "\n" not in between.text:
            gaps.append(g)
    return word_idx, gaps


@register("fillers", family="fillers", label_policy="preserves")
class Fillers(TextTransform):
    """Insert spoken fillers and disfluencies: "um", "you know", "the the", "on mon- on Monday".

    At each chosen gap between two words one disfluency is inserted: a filler word or
    phrase ("um", "uh", "like", "you know", "I mean", "kind of"), a repetition of the next
    word ("the the"), or a self-correction that starts the next word, breaks off and
    restarts ("on mon- on Monday"). A chosen gap before the first word gets an opener
    ("so basically", "okay so") instead.

    Severity: share of the word gaps (including the start of the text) that receive a
    disfluency (0.2 -> one gap in five; 1 -> every gap).
    Label: preserves. Nothing is removed or reworded; numbers, negations ("not" never
    becomes "not not", a double negation), decisive words, option letters and protected
    phrases are never repeated, split or broken into, and a self-correction never
    starts with a fragment that is itself a negation or number ("a no- a normal").
    Options: none besides ``fields``.
    """

    NOTHING_TO_CHANGE = "no gap between words"

    def count_candidates(self, text: str, severity: float,
                         protected: Sequence[tuple[int, int]]) -> int:
        return len(_gaps(tokenize(text, protected))[1])

    def perturb_text(self, text: str, severity: float, rng: random.Random,
                     protected: Sequence[tuple[int, int]]) -> str:
        lex = load_fillers_lexicon()
        tokens = tokenize(text, protected)
        word_idx, gaps = _gaps(tokens)
        if not word_idx:
            return text
        chosen = sorted(rng.sample(gaps, count_for(len(gaps), severity, rng)))
        inserts: dict[int, str] = {}  # token index -> text inserted before it
        for g in chosen:
            i = word_idx[g]
            word = tokens[i]
            if g == 0 and i == 0:
                opener = rng.choice(lex["openers"])
                inserts[i] = opener[:1].upper() + opener[1:] + ", "
                _lower_first(word, lex["lowercase_after_opener"])
                continue
            kind = _pick_kind(rng)
            prev = tokens[word_idx[g - 1]]
            repeatable = word.editable and not _weighty(word.text)
            if kind == "correction" and repeatable and len(word.text) >= 4 and \
                    word.text.isalpha() and prev.editable and \
                    prev.text.lower() in lex["correction_hosts"]:
                cut = rng.randint(2, min(3, len(word.text) - 1))
                fragment = word.text[:cut].lower()
                inserts[i] = word.text + " " if _weighty(fragment) else \
                    f"{fragment}- {prev.text} "
            elif kind in ("repeat", "correction") and repeatable:
                inserts[i] = word.text + " "
            else:
                # long phrases are rarer than a quick "um"
                pool = lex["phrases"] if rng.random() < 0.12 else lex["fillers"]
                filler = rng.choice(pool)
                if rng.random() < 0.3:  # set off by commas: "the, um, cat"
                    tokens[i - 1].text = ", "
                    inserts[i] = f"{filler}, "
                else:
                    inserts[i] = f"{filler} "
        for i, extra in inserts.items():
            tokens[i].text = extra + tokens[i].text
        return detokenize(tokens)
