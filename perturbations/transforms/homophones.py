"""Speech-to-text errors: words that sound alike are written wrong ("their" for "there")."""

from __future__ import annotations

import functools
import json
import random
import unicodedata
from pathlib import Path
from typing import Sequence

from ..base import TextTransform
from ..keywords import DECISIVE_WORDS, QUANTITY_WORDS, is_negation
from ..quantities import NUMBER_VOCABULARY
from ..registry import register
from ..text import NUMBER_WORDS, Token, count_for, detokenize, match_case, tokenize

__all__ = ["Homophones", "homophone_table", "transcript_rate"]

_DATA = Path(__file__).resolve().parent.parent / "data"


@functools.cache
def homophone_table() -> dict[str, tuple[str, ...]]:
    """Word -> the other spellings of its group, from ``data/homophones.json``.

    Number words never appear as replacements: "to" is never written "two". A group
    with a negation or a word a question turns on (not/knot, know/no, except/accept,
    than/then) is left out whole, whatever the data file says: neither side may be
    swapped into the other.
    """
    raw = (_DATA / "homophones.json").read_text(encoding="utf-8")
    table: dict[str, tuple[str, ...]] = {}
    for group in json.loads(raw)["groups"]:
        if any(_decides(w) for w in group):
            continue
        words = [w.lower() for w in group if w.lower() not in NUMBER_WORDS]
        for word in words:
            others = tuple(w for w in words if w != word)
            if others:
                table[word] = others
    return table


def _decides(word: str) -> bool:
    w = word.lower()
    return is_negation(w) or w in DECISIVE_WORDS or w in QUANTITY_WORDS \
        or w in NUMBER_VOCABULARY


def transcript_rate(severity: float) -> float:
    """Share of punctuation dropped and words lower-cased: 0 up to 0.5, then up to 1 at 1."""
    return max(0.0, min(1.0, (severity - 0.5) * 2))


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P")


@register("homophones", family="speech", label_policy="preserves")
class Homophones(TextTransform):
    """Write words as a speech recogniser mishears them: homophones swapped, and at high
    severity no punctuation or capitals.

    Candidates are the words of ``data/homophones.json`` (their/there/they're,
    your/you're, its/it's, to/too, weather/whether, here/hear, ...); each chosen one is
    replaced by another spelling of its group, keeping its case and apostrophe style.
    Number words are never produced or replaced, so "to" never becomes "two"; negations
    and the words a question turns on are never swapped in or out (no not/knot,
    know/no, except/accept, than/then); a capitalised word inside a sentence is a name
    and stays ("the Great Wall" never becomes "the Grate Wall").

    Severity: share of candidate words swapped (0.5 -> about half). Above 0.5 the text
    also loses punctuation and capitals as a raw transcript does: the share of
    punctuation marks dropped and words lower-cased is ``2 * (severity - 0.5)``
    (0.6 at 0.8, all at 1). Apostrophes and hyphens inside words stay.
    Label: preserves. The words sound the same; numbers (``.5`` too), option letters,
    upper-case words such as NOT and protected phrases keep their punctuation and case.
    Options: none besides ``fields``.
    """

    NOTHING_TO_CHANGE = "no homophone to swap"

    def count_candidates(self, text: str, severity: float,
                         protected: Sequence[tuple[int, int]]) -> int:
        tokens = tokenize(text, protected)
        n = len(_candidates(tokens, text))
        if transcript_rate(severity) > 0:
            n += sum(1 for t in tokens if t.editable and t.text != t.text.lower()) \
                + len(_punct_gaps(tokens))
        return n

    def perturb_text(self, text: str, severity: float, rng: random.Random,
                     protected: Sequence[tuple[int, int]]) -> str:
        table = homophone_table()
        tokens = tokenize(text, protected)
        candidates = _candidates(tokens, text)
        for tok in rng.sample(candidates, count_for(len(candidates), severity, rng)):
            curly = "’" in tok.text
            new = rng.choice(table[tok.text.lower().replace("’", "'")])
            if curly:
                new = new.replace("'", "’")
            tok.text = match_case(tok.text, new)
        rate = transcript_rate(severity)
        if rate > 0:
            words = [t for t in tokens if t.editable and t.text != "I"
                     and not t.text.startswith(("I'", "I’"))]
            for tok in rng.sample(words, count_for(len(words), rate, rng)):
                tok.text = tok.text.lower()
            gaps = _punct_gaps(tokens)
            for i in rng.sample(gaps, count_for(len(gaps), rate, rng)):
                tok = tokens[i]
                stripped = "".join(ch for ch in tok.text if not _is_punct(ch))
                between_words = 0 < i < len(tokens) - 1
                # "end.Next" must not fuse into one word once the period is gone
                if between_words and not stripped:
                    stripped = " "
                tok.text = stripped
        return detokenize(tokens)


def _punct_gaps(tokens: list[Token]) -> list[int]:
    """Gaps with punctuation a transcript drops; the hyphen of a compound stays
    ("top-up"), or the next transform could split it ("top, um, up")."""
    return [i for i, t in enumerate(tokens)
            if not t.is_word and not t.protected and any(map(_is_punct, t.text))
            and not (t.text in ("-", "‐") and 0 < i < len(tokens) - 1
                     and tokens[i - 1].is_word and tokens[i + 1].is_word)]


def _candidates(tokens: list[Token], text: str) -> list[Token]:
    """Words of the homophone table that are not names (capitalised mid-sentence)."""
    table = homophone_table()
    out: list[Token] = []
    initial = True
    for tok in tokens:
        if not tok.is_word:
            if tok.text.strip() and tok.text.rstrip()[-1] in ".!?:\n" or "\n" in tok.text:
                initial = True
            continue
        name = not initial and tok.text[:1].isupper() and tok.text != "I" \
            and not tok.text.startswith(("I'", "I’"))
        initial = False
        if tok.editable and not name and tok.text.lower().replace("’", "'") in table:
            out.append(tok)
    return out
