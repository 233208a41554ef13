"""Tokens, protected spans and edit rates: the text plumbing every transform shares.

A transform that edits words never sees raw regex matches: it gets a list of
:class:`Token` objects, each marked ``protected`` when it overlaps a span the answer
depends on. :func:`protected_spans` gives numbers, option letters and phrases an item
lists under ``metadata["protect"]``; :func:`guard_spans` adds the words the question
hinges on (negations, decisive and upper-case words, quantity words, quoted terms) and
:func:`answer_spans` the gold answer where the text contains it.
:meth:`perturbations.base.TextTransform.apply` protects all three. Joining the tokens
back with :func:`detokenize` gives the text exactly, so a transform that edits nothing
returns its input byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from rapidfuzz.distance import Levenshtein

from .keywords import (DECISIVE_ALIASES, DECISIVE_WORDS, QUANTITY_WORDS, is_caps_word,
                       is_negation, normalise_word, shouted)
from .quantities import NUMBER_VOCABULARY

__all__ = [
    "Token",
    "tokenize",
    "detokenize",
    "protected_spans",
    "guard_spans",
    "answer_spans",
    "quoted_spans",
    "field_edit",
    "edit_rate",
    "NUMBER_WORDS",
    "OPTION_LETTER",
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
"""Words that carry a quantity; protected like digits (:func:`guard_spans` adds the
rest of the number vocabulary: "sixth", "hundredth", "dozens", "pair" ...)."""

# numbers with separators, decimals (also ".5", "$.20"), currency and percent; option
# letters such as "(B)" or "B)"
_NUMBER = re.compile(r"(?:(?<![\w-])-(?=[$€£]?\.?\d))?[$€£]?(?:\d+(?:[.,:/]\d+)*|(?<![\w.])\.\d+)%?")
_OPTION = re.compile(r"(?<!\w)\(?[A-Z]\)(?!\w)")
OPTION_LETTER = _OPTION
"""An option letter written into a text: ``(B)`` or ``B)``."""


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

    Numbers (``3``, ``-3``, ``1,200``, ``$4.50``, ``.5``, ``15%``), number words (``three``,
    ``dozen``),
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


# a quoted term: "hearth", “hearth”, 'hearth', ‘hearth’ (the closing ’ must not be an
# apostrophe inside a word)
_QUOTED = re.compile(r'"[^"\n]{1,80}"|“[^”\n]{1,80}”|(?<![\w\'])\'[^\'\n]{1,80}\'(?![\w])'
                     r"|‘[^‘’\n]{1,80}’(?![^\W_])")
# a number in words with what joins it: "twenty-five", "one hundred twenty"; the hyphen
# or space inside is kept, or "twenty five" could become "twenty, um, five"
_NUMBER_RUN = re.compile(
    r"(?<![^\W_])(?:%s)(?:(?:-|[ \t]+(?:and[ \t]+)?)(?:%s))+(?![^\W_])"
    % (("|".join(sorted(NUMBER_VOCABULARY, key=len, reverse=True)),) * 2), re.IGNORECASE)
MAX_QUOTED_WORDS = 6
"""Longer quotations are reported speech, not a term the question asks about."""


def quoted_spans(text: str) -> list[tuple[int, int]]:
    """Spans of short quoted terms, quotes included (``what do we mean by "hearth"``)."""
    return [m.span() for m in _QUOTED.finditer(text)
            if len(_WORD.findall(m.group())) <= MAX_QUOTED_WORDS]


def guard_spans(text: str, *, negations: bool = True) -> list[tuple[int, int]]:
    """Spans of the words a question hinges on, which no ``preserves`` edit may touch.

    Negations (``not``, ``never``, ``don't``, ``cannot``), decisive words (``except``,
    ``least``, ``false``, ``than``), number and quantity words (``sixth``, ``dozens``,
    ``pair``),
    upper-case words (``NOT``, ``EXCEPT``, acronyms such as ``ROC``; none when the whole
    text is shouted) and short quoted terms. ``negations=False`` leaves lower-case
    negations out, for transforms that rewrite them without losing them
    ("do not" -> "don't").
    """
    spans: list[tuple[int, int]] = []
    caps = not shouted(text)
    for m in _WORD.finditer(text):
        word = m.group()
        w = normalise_word(word)
        if (caps and is_caps_word(word)) or w in DECISIVE_WORDS or w in QUANTITY_WORDS \
                or w in NUMBER_VOCABULARY \
                or w in DECISIVE_ALIASES or (negations and is_negation(word)):
            spans.append(m.span())
    spans += [m.span() for m in _NUMBER_RUN.finditer(text)]
    spans += quoted_spans(text)
    return sorted(spans)


def answer_spans(text: str, answers: Iterable[str]) -> list[tuple[int, int]]:
    """Whole-word, case-insensitive occurrences of each answer string in ``text``."""
    spans: list[tuple[int, int]] = []
    for answer in answers:
        answer = answer.strip()
        if not answer:
            continue
        pattern = re.compile(rf"(?<![^\W_]){re.escape(answer)}(?![^\W_])", re.IGNORECASE)
        spans += [m.span() for m in pattern.finditer(text)]
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


MIN_ELIGIBLE_LETTERS = 3
"""A word is *eligible* for the realised word rate when it has this many letters and is
not protected (the words a typo may hit)."""


def field_edit(original: str, perturbed: str,
               protected: Sequence[tuple[int, int]] = ()) -> dict[str, float | int]:
    """Edit rates of one field: what a variant's ``field_edits`` records.

    Returns ``chars`` (character Levenshtein distance / original length), ``words``
    (word error rate: word-level Levenshtein distance / original word count),
    ``eligible`` (unprotected words of 3+ letters in the original) and ``edited`` (how
    many of those were replaced or deleted), so ``edited / eligible`` is the realised
    share of eligible words changed, comparable with a transform's nominal rate.
    """
    tokens = tokenize(original, protected)
    before = [t for t in tokens if t.is_word]
    after = [t.text for t in tokenize(perturbed) if t.is_word]
    eligible = {i for i, t in enumerate(before)
                if t.editable and sum(c.isalpha() for c in t.text) >= MIN_ELIGIBLE_LETTERS}
    words = [t.text for t in before]
    if original == perturbed:
        return {"chars": 0.0, "words": 0.0, "eligible": len(eligible), "edited": 0}
    touched = {op.src_pos for op in Levenshtein.editops(words, after)
               if op.tag in ("replace", "delete")}
    return {
        "chars": round(edit_rate(original, perturbed), 6),
        "words": round(Levenshtein.distance(words, after) / max(len(words), 1), 6),
        "eligible": len(eligible),
        "edited": len(touched & eligible),
    }
