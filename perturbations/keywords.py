"""The words a question hinges on: negations, decisive words, quantities, emphasis.

A typo, a homophone or a synonym is harmless on most words and fatal on a few: the
``not`` of "Which is not a mammal?", the ``EXCEPT`` of "All of these EXCEPT", the
``dozens`` of a word problem. This module names those few. :mod:`perturbations.text`
protects them (transforms leave them byte-identical) and :mod:`perturbations.guard`
checks that a variant still has them. Plain word lists and counters, no state.
"""

from __future__ import annotations

import re
from collections import Counter

__all__ = [
    "NEGATION_WORDS",
    "NEGATION_FORMS",
    "DECISIVE_WORDS",
    "DECISIVE_ALIASES",
    "QUANTITY_WORDS",
    "VAGUE_QUANTIFIERS",
    "normalise_word",
    "is_negation",
    "negation_count",
    "decisive_counts",
    "is_caps_word",
    "is_acronym",
    "EMPHASIS_WORDS",
    "shouted",
    "caps_words",
]

NEGATION_WORDS = frozenset(
    "not no never none nor neither nothing nobody nowhere cannot noone".split())
"""Words that negate on their own; every ``n't`` contraction negates too."""

NEGATION_FORMS = frozenset("""
dont doesnt didnt isnt arent wasnt werent cant couldnt wont wouldnt shouldnt hasnt havent
hadnt mustnt neednt aint shant mightnt idk idc idt dunno nvr nvm nope nah ngl nothin nuthin
""".split())
"""Texting spellings that still carry a negation (apostrophe dropped, chat acronyms)."""

DECISIVE_WORDS = frozenset("except excluding unless without least false incorrect untrue than"
                           .split())
"""Lower-case words besides negations that decide what is asked ("all EXCEPT", "LEAST
likely", "which is false", "more than")."""

DECISIVE_ALIASES = {"xcept": "except", "w/o": "without"}
"""Texting spellings counted as the decisive word they stand for."""

QUANTITY_WORDS = frozenset(
    "half halves twice thrice double triple quadruple dozen dozens hundreds thousands "
    "millions billions pair pairs couple".split())
"""Words that state an amount without being a number word proper."""

EMPHASIS_WORDS = frozenset("""
not no never none nor neither nothing cannot except excluding unless without least most
best worst false true incorrect correct untrue only always all any both either must
should first last more less greater fewer than and or
""".split())
"""Words written in capitals for emphasis ("NOT", "LEAST", "FALSE"); in capitals any
other short word is read as an acronym ("ROC", "API")."""

VAGUE_QUANTIFIERS = frozenset(
    "few several many numerous multiple lots plenty various some most all each every both "
    "lot bunch handful tons loads majority minority".split())
"""Quantifiers no synonym may replace ("dozens" -> "lots" changes the amount)."""

_APOSTROPHE = re.compile(r"[’ʼ`]")
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*|w/o", re.UNICODE | re.IGNORECASE)


def normalise_word(word: str) -> str:
    """Lower case with straight apostrophes."""
    return _APOSTROPHE.sub("'", word).lower()


def is_negation(word: str) -> bool:
    """True for a word that carries a negation: not, never, cannot, don't, dont, idk ..."""
    w = normalise_word(word)
    return w in NEGATION_WORDS or w.endswith("n't") or w in NEGATION_FORMS


def negation_count(text: str) -> int:
    """How many negations ``text`` holds ("do not" and "don't" count one each)."""
    return sum(1 for m in _WORD.finditer(text) if is_negation(m.group()))


def decisive_counts(text: str) -> Counter[str]:
    """Decisive words of ``text`` (lower case, aliases resolved) with their counts."""
    out: Counter[str] = Counter()
    for m in _WORD.finditer(text):
        w = normalise_word(m.group())
        w = DECISIVE_ALIASES.get(w, w)
        if w in DECISIVE_WORDS:
            out[w] += 1
    return out


def is_caps_word(word: str) -> bool:
    """An upper-case word of two or more letters: NOT, EXCEPT, ROC, H2O."""
    letters = sum(1 for c in word if c.isalpha())
    return letters >= 2 and word.isupper()


def is_acronym(word: str) -> bool:
    """An upper-case word that names something (ROC, API, H2O), not emphasis (NOT)."""
    return is_caps_word(word) and normalise_word(word) not in EMPHASIS_WORDS \
        and not is_negation(word) and sum(c.isalpha() for c in word) <= 6


def shouted(text: str) -> bool:
    """True when most words are upper case: then capitals carry no emphasis."""
    words = [m.group() for m in _WORD.finditer(text) if sum(c.isalpha() for c in m.group()) >= 2]
    caps = sum(1 for w in words if is_caps_word(w))
    return caps >= 3 and caps > 0.6 * len(words)


def caps_words(text: str, *, emphasis_only: bool = True) -> Counter[str]:
    """Upper-case words (emphasis such as NOT, LEAST; acronyms such as ROC) with counts;
    empty when the whole text is shouted, unless ``emphasis_only`` is False."""
    if emphasis_only and shouted(text):
        return Counter()
    return Counter(m.group() for m in _WORD.finditer(text) if is_caps_word(m.group()))
