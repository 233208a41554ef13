"""Clause order: the same question with its clauses moved, as people who start elsewhere type it.

Words are moved, never changed, so numbers, names, negations and option letters survive.
Used by the leakage probe as a meaning-preserving rewrite (``clause_reorder@1``).
"""

from __future__ import annotations

import dataclasses
import random
import re

from ..base import Transform
from ..records import Item
from ..registry import register

__all__ = ["ClauseReorder", "reorder_clauses"]

_QUESTION_START = frozenset(
    "how what which who whom whose where when why is are was were do does did can could "
    "will would should shall may might must has have had am".split())
_SUBORDINATE = frozenset("if when because although though since while unless once".split())
_SUBJECT_START = frozenset("i we you they he she it my our your please this".split())
_LOWERABLE = _QUESTION_START | _SUBORDINATE | frozenset(
    "the a an my our your please there each every this that these those it we you they "
    "he she".split())
_PREPOSITIONS = ("according to", "in", "at", "on", "by", "for", "from", "during", "within",
                 "after", "before", "across", "without", "with", "under", "over", "near",
                 "around", "inside", "until")
_CLAUSE_MARKERS = frozenset("to that which who whom where when if because while and or but "
                            "so than".split())
_PP = re.compile(r"\s(" + "|".join(re.escape(p) for p in _PREPOSITIONS) + r")\s", re.IGNORECASE)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _decap(text: str) -> str:
    # Only lower a first word we know is not a name ("Tom has ..." must keep "Tom").
    first = text.split(" ", 1)[0]
    if first.lower() in _LOWERABLE and first != "I":
        return first.lower() + text[len(first):]
    return text


def _verb_form(word: str) -> bool:
    word = word.lower()
    return len(word) > 4 and word.endswith(("ed", "ing", "en"))


def reorder_clauses(text: str) -> str | None:
    """Reorder the clauses of a question without changing what it asks.

    Rules, first match wins:

    1. Several sentences ending in a question: the question moves first
       ("A pack has 6 bottles. How many are in 5 packs?" ->
       "How many are in 5 packs? A pack has 6 bottles.").
    2. Two comma-joined clauses: a leading condition moves to the end ("If X, how ...?" ->
       "How ..., if X?"), a statement before a question becomes its own sentence after
       it ("I ate 4 of them, how many are left?" -> "How many are left? I ate 4 of
       them."), two statements swap ("I want to cancel, I am not using it." ->
       "I am not using it, I want to cancel.").
    3. A one-clause question ending in a prepositional phrase fronts it ("What is the
       boiling point of water in degrees Celsius?" -> "In degrees Celsius, what is the
       boiling point of water?"), unless the phrase or the rest contains another clause.

    Words are moved, never changed, so numbers, names and option letters survive.

    Args:
        text: The question.

    Returns:
        The reordered text, or ``None`` when no rule applies.
    """
    stripped = " ".join(text.split())
    if not stripped:
        return None
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])", stripped)
    if len(sentences) >= 2:
        if sentences[-1].endswith("?") and not sentences[0].endswith("?"):
            return " ".join([sentences[-1], *sentences[:-1]])
        return None
    end = stripped[-1] if stripped[-1] in "?.!" else ""
    body = stripped[:-1] if end else stripped
    parts = body.split(", ")
    if len(parts) == 2 and "," not in parts[0] + parts[1]:
        a, b = parts
        words_a, words_b = a.split(), b.split()
        if len(words_a) >= 3 and len(words_b) >= 3:
            first_a, first_b = words_a[0].lower(), words_b[0].lower()
            if first_a in _SUBORDINATE:
                return f"{_cap(b)}, {_decap(a)}{end}"
            if first_b in _QUESTION_START and end == "?" and first_a not in _QUESTION_START:
                return f"{_cap(b)}? {_cap(a)}."
            if (first_a not in _QUESTION_START and first_b in _SUBJECT_START
                    and end in (".", "!", "")):
                return f"{_cap(b)}, {_decap(a)}{end}"
        return None
    if "," in body or end != "?":
        return None
    matches = list(_PP.finditer(body))
    for match in reversed(matches):
        head, phrase = body[:match.start()], body[match.start() + 1:]
        phrase_words = phrase.split()
        rest = phrase_words[len(match.group(1).split()):]
        head_words = head.split()
        if not 1 <= len(rest) <= 5 or len(head_words) < 4:
            continue
        if rest[0].lower() in ("to",) or any(w.lower() in _CLAUSE_MARKERS for w in rest):
            continue
        if any(w.lower() in _CLAUSE_MARKERS or w.lower() in _SUBORDINATE
               for w in head_words[1:]):
            return None
        if head_words[-1].lower() in _QUESTION_START or _verb_form(head_words[-1]):
            # "spoken by most people", "located in": the phrase belongs to the verb
            continue
        if match.group(1).lower() == "by" and any(_verb_form(w) for w in head_words):
            # "spoken in Mexico by most people": a passive's agent, not a circumstance
            continue
        if any(_verb_form(w) for w in rest):
            # "in our solar system called": the phrase runs into a participle
            continue
        return f"{_cap(phrase)}, {_decap(head)}?"
    return None


@register("clause_reorder", family="syntax", label_policy="preserves")
class ClauseReorder(Transform):
    """Reorder the clauses of the question without changing what it asks.

    Severity: the chance that a question one of the rules fits is reordered (1 -> every such
    question; the reordering itself has one form, see :func:`reorder_clauses`). Questions no
    rule fits come back unchanged.
    Label: preserves (words are moved, never changed).
    """

    def apply(self, item: Item, severity: float, rng: random.Random) -> Item:
        draw = rng.random()  # drawn whatever happens, so severity only moves the threshold
        if severity <= 0 or draw >= severity:
            return item
        new = reorder_clauses(item.input)
        return item if new is None or new == item.input else dataclasses.replace(item, input=new)

    def cannot_apply(self, item: Item, severity: float) -> str | None:
        new = reorder_clauses(item.input)
        return "no clause the rules can move" if new is None or new == item.input else None
