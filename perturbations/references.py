"""Option references: answer options that point at other options, and questions that
name options by letter.

"All of the above" means the options printed above it; "Both (a) and (b)" means the
options lettered a and b. Reordering the options silently changes what such an option
says, and a question that asks "Is (B) correct?" no longer points at the same option.
:func:`option_links` finds these links so that ``choice_shuffle`` can keep them true
and the guard can check that they still are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

__all__ = ["OptionLinks", "option_links", "letter_references", "question_letters"]

_SCOPE = re.compile(
    r"\b(?:all|none|both|neither|any|either|each|one)\s+(?:of\s+)?(?:the\s+)?"
    r"(?P<dir>above|below|previous|preceding|following|foregoing|others|other\s+options)\b"
    r"|\b(?:all|none|both|neither)\s+of\s+(?:these|those|them)\b",
    re.IGNORECASE)
# "(a)", "[B]", "a)" or a bare letter joined to another by and/or/nor/&/,: "A and B"
_PAREN = re.compile(r"[(\[]\s*([A-Za-z])\s*[)\]]|(?<![\w(\[])([A-Za-z])\)")
_JOINED = re.compile(
    r"(?<![\w'’])([A-Z]|[a-z])\s*(?:,|&|\band\b|\bor\b|\bnor\b)\s*(?:both\s+)?([A-Z]|[a-z])"
    r"(?![\w'’])")
_NAMED = re.compile(r"\b(?:options?|choices?|answers?|letters?|statements?)\s+"
                    r"\(?([A-Z])\)?(?:\s*(?:,|and|or|&)\s*\(?([A-Z])\)?)*\b")
_QUESTION = re.compile(r"[(\[]([A-Z])[)\]]|(?<![\w(\[])([A-Z])\)|"
                       r"\b(?:options?|choices?|answers?)\s+([A-Z])\b")


@dataclass(frozen=True)
class OptionLinks:
    """How the options of one item refer to each other."""

    letters: dict[int, frozenset[int]]
    """Option index -> indices of the options it names by letter."""
    above: frozenset[int]
    """Options that refer to the options before them ("All of the above")."""
    below: frozenset[int]
    """Options that refer to the options after them ("None of the following")."""
    others: frozenset[int]
    """Options that refer to all the other options, wherever they are ("Both of these")."""

    @property
    def any(self) -> bool:
        """True when some option refers to another."""
        return bool(self.letters or self.above or self.below or self.others)


def letter_references(text: str, n_options: int) -> frozenset[int]:
    """Indices of options that ``text`` names by letter, within the ``n_options`` letters.

    A lone capital "A" is an article, not a reference; letters count when bracketed
    ("(a)", "b)"), joined to another letter ("A and B", "a or c") or named
    ("option C", "answers A and D").
    """
    found: set[int] = set()
    for m in _PAREN.finditer(text):
        found.add(ord((m.group(1) or m.group(2)).upper()) - 65)
    for m in _JOINED.finditer(text):
        a, b = m.group(1), m.group(2)
        if a.isupper() == b.isupper():  # "A and B", "a and b"; not "a or B"
            found.update((ord(a.upper()) - 65, ord(b.upper()) - 65))
    for m in _NAMED.finditer(text):
        found.update(ord(c) - 65 for c in re.findall(r"\b([A-Z])\b", m.group()))
    return frozenset(i for i in found if 0 <= i < n_options)


def option_links(choices: Sequence[str]) -> OptionLinks:
    """Find the references between ``choices``."""
    n = len(choices)
    letters: dict[int, frozenset[int]] = {}
    above, below, others = set(), set(), set()
    for i, text in enumerate(choices):
        refs = letter_references(text, n) - {i}
        if refs:
            letters[i] = refs
        for m in _SCOPE.finditer(text):
            direction = (m.group("dir") or "").lower()
            if direction in ("above", "previous", "preceding", "foregoing"):
                above.add(i)
            elif direction == "following" or direction == "below":
                below.add(i)
            else:
                others.add(i)
    return OptionLinks(letters, frozenset(above), frozenset(below), frozenset(others))


def question_letters(text: str, n_options: int) -> frozenset[int]:
    """Options a question (or passage) names by letter: "(B)", "B)", "option C"."""
    found: set[int] = set()
    for m in _QUESTION.finditer(text):
        letter = m.group(1) or m.group(2) or m.group(3)
        found.add(ord(letter) - 65)
    return frozenset(i for i in found if 0 <= i < n_options) | letter_references(text, n_options)
