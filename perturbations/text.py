"""Tokens, protected spans and edit rates: the text plumbing every transform shares.

A transform that edits words never sees raw regex matches: it gets a list of
:class:`Token` objects, each marked ``protected`` when it overlaps a span the answer
depends on (numbers, option letters, phrases an item lists under
``metadata["protect"]``). Joining the tokens back with :func:`detokenize` gives the
text exactly, so a transform that edits nothing returns its input byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from rapidfuzz.distance import Levenshtein

__all__ = [
    "Token",
    "tokenize",
    "detokenize",
    "protected_spans",
    "edit_rate",
    "NUMBER_WORDS",
    "match_case",
    "count_for",
]

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)

NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy "
    "eighty ninety hundred thousand million billion half twice double triple dozen "
    "first second third fourth fifth".split()
)
"""Words that carry a quantity; protected like digits."""

# numbers with separators, decimals, currency and percent; option letters such as "(B)" or "B)"
_NUMBER = re.compile(r"[$€£]?\d+(?:[.,:/]\d+)*%?")
_OPTION = re.compile(r"(?<!\w)\(?[A-Z]\)(?!\w)")


@dataclass
class Token:
    """A piece of text: a word (letters/digits with inner apostrophes) or the gap between."""

    text: str
    """The exact characters."""
    is_word: bool
    """True for word tokens, False for whitespace and punctuation runs."""
    protected: bool = False
    """True when the token overlaps a protected span; transforms must leave it alone."""

    @property
    def editable(self) -> bool:
        """A word that transforms may change."""
        return self.is_word and not self.protected


def protected_spans(text: str, phrases: Iterable[str] = ()) -> list[tuple[int, int]]:
    """Character spans of ``text`` that the answer may depend on.

    Numbers (``3``, ``1,200``, ``$4.50``, ``15%``), number words (``three``, ``dozen``),
    option letters (``(B)``) and every occurrence of each phrase in ``phrases``
    (case-insensitive) are protected.
    """
    spans: list[tuple[int, int]] = [m.span() for m in _NUMBER.finditer(text)]
    spans += [m.span() for m in _OPTION.finditer(text)]
    for m in _WORD.finditer(text):
        if m.group().lower() in NUMBER_WORDS:
            spans.append(m.span())
    lowered = text.lower()
    for phrase in phrases:
        phrase = str(phrase).strip().lower()
        if not phrase:
            continue
        start = lowered.find(phrase)
        while start != -1:
            spans.append((start, start + len(phrase)))
            start = lowered.find(phrase, start + 1)
    return sorted(spans)


def tokenize(text: str, protected: Sequence[tuple[int, int]] = ()) -> list[Token]:
    """Split ``text`` into word and gap tokens; ``"".join`` of their texts is ``text``."""
    tokens: list[Token] = []
    pos = 0
    for m in _WORD.finditer(text):
        if m.start() > pos:
            tokens.append(Token(text[pos:m.start()], False))
        tokens.append(Token(m.group(), True))
        pos = m.end()
    if pos < len(text):
        tokens.append(Token(text[pos:], False))
    if protected:
        # one sweep over tokens and sorted spans: O(tokens + spans)
        spans = sorted(protected)
        offset, j = 0, 0
        for tok in tokens:
            end = offset + len(tok.text)
            while j < len(spans) and spans[j][1] <= offset:
                j += 1
            k = j
            while k < len(spans) and spans[k][0] < end:
                if spans[k][1] > offset:
                    tok.protected = True
                    break
                k += 1
            offset = end
    return tokens


def detokenize(tokens: Iterable[Token]) -> str:
    """Join tokens back into text."""
    return "".join(t.text for t in tokens)


def edit_rate(original: str, perturbed: str) -> float:
    """Character Levenshtein distance divided by the original length (0 when unchanged)."""
    if original == perturbed:
        return 0.0
    return Levenshtein.distance(original, perturbed) / max(len(original), 1)


def match_case(template: str, word: str) -> str:
    """Give ``word`` the casing pattern of ``template`` (UPPER, Title or lower)."""
    if len(template) > 1 and template.isupper():
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def count_for(n_candidates: int, rate: float, rng) -> int:
    """How many of ``n_candidates`` to edit at ``rate``, rounding the fraction at random.

    ``rate * n`` is rarely whole; rounding it stochastically (with the variant's own RNG)
    keeps the expected edit count exactly ``rate * n`` even on short texts, instead of
    always rounding three words at 20% down to zero edits.
    """
    if n_candidates <= 0 or rate <= 0:
        return 0
    expected = rate * n_candidates
    whole = int(expected)
    if rng.random() < expected - whole:
        whole += 1
    return min(max(whole, 0), n_candidates)
