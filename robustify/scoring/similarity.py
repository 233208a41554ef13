"""The ``similarity`` scorer: is the answer a close rewording of ``item.target``?

A lexical equivalence test for free-text answers, without a model call: both texts go
through the house normalisation (:func:`robustify.scoring.text.normalize_text`), then
rapidfuzz's ``token_sort_ratio`` (a character-level similarity of the sorted words, in
0..1) is compared with :data:`LEXICAL_THRESHOLD`. Character overlap cannot see meaning, so
two guards veto a match outright whatever the ratio:

* **negation**: the answers must hold the same number of negation words (``not``,
  ``never``, ``no``, ``dont`` ...); a leading "Yes," / "No," answer word is compared
  apart, so "No, it is not" matches "It is not", "Yes." matches "Yes, it is" and
  "Yes, ..." never matches "No, ...";
* **numbers**: the answers must state the same numbers (``1,000`` = ``1000``; number
  words are read only in a text with no digits, as :func:`~robustify.scoring.parse_number`
  does).

The target may carry aliases (``metadata["aliases"]``); the best-matching one counts.
``Score.detail["similarity"]`` holds the raw ratio (rounded to 4 places) and
``detail["veto"]`` names the guard that refused a match.

>>> from perturbations import Item
>>> item = Item(id="q", input="Was my refund approved?", target="The refund was approved.")
>>> score_similarity(item, "Your refund was approved!").value
1.0
>>> s = score_similarity(item, "The refund was not approved.")
>>> s.value, s.detail["veto"]
(0.0, 'negation')
"""

from __future__ import annotations

import re
from typing import Callable

from perturbations.records import Item
from rapidfuzz import fuzz

from robustify.records import Score
from robustify.scoring.registry import register_scorer
from robustify.scoring.rules import _answer_aliases, _numbers_in
from robustify.scoring.text import normalize_text

__all__ = ["LEXICAL_THRESHOLD", "Measure", "score_similarity", "similarity_scorer",
           "lexical_similarity", "negation_count", "answer_polarity", "numbers_stated"]

LEXICAL_THRESHOLD = 0.80
"""Normalised ``token_sort_ratio`` at or above which two answers count as the same
(calibrated on paraphrase pairs: docs/open-ended.md, "Similarity scorer")."""

_NEGATIONS = frozenset(
    "not no never none nothing nobody nowhere neither nor cannot without "
    "cant dont doesnt didnt isnt arent wasnt werent wont wouldnt shouldnt couldnt "
    "hasnt havent hadnt mustnt neednt aint nope".split())
# "Yes," / "No." / "Nope -" opening an answer: an answer word, not a negated phrase.
_POLARITY = re.compile(r"^\W*(yes|yeah|yep|no|nope)\b\s*(?:[,.!;:\u2014\u2013-]|$)",
                       re.IGNORECASE)
_POSITIVE = frozenset({"yes", "yeah", "yep"})
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def answer_polarity(text: str) -> tuple[str | None, str]:
    """The leading yes/no answer word (``"yes"``, ``"no"`` or ``None``) and the rest.

    >>> answer_polarity("No, it was not approved.")
    ('no', 'it was not approved.')
    >>> answer_polarity("No refund was approved.")
    (None, 'No refund was approved.')
    """
    match = _POLARITY.match(text)
    if match is None:
        return None, text
    word = "yes" if match.group(1).lower() in _POSITIVE else "no"
    return word, text[match.end():].strip()


def negation_count(normalized: str) -> int:
    """How many negation words a normalised text holds (``dont`` and ``not`` count alike)."""
    return sum(1 for word in normalized.split() if word in _NEGATIONS)


def numbers_stated(text: str) -> tuple[float, ...]:
    """The numbers a raw text states, sorted (digits; number words only without digits)."""
    return tuple(sorted(round(value, 9) for value, _ in _numbers_in(text)))


def _canonical(text: str) -> str:
    # "1,000" and "1000" are one token after this, not "1 000" against "1000"
    return normalize_text(_THOUSANDS.sub("", text))


Measure = Callable[[str, str], float]
"""How close two normalised texts are, in 0..1 (1 = the same)."""


def _token_sort(a: str, b: str) -> float:
    return fuzz.token_sort_ratio(a, b) / 100.0


def lexical_similarity(a: str, b: str) -> float:
    """rapidfuzz ``token_sort_ratio`` of the normalised texts, in 0..1 (1 = same words)."""
    return _token_sort(_canonical(a), _canonical(b))


def _compare(text: str, reference: str, measure: Measure) -> tuple[float, str | None]:
    """The raw similarity of two raw texts and the guard that vetoes a match, if any."""
    pol_a, body_a = answer_polarity(text)
    pol_b, body_b = answer_polarity(reference)
    norm_a, norm_b = _canonical(body_a), _canonical(body_b)
    if pol_a and pol_a == pol_b and not (norm_a and norm_b):
        return 1.0, None  # "Yes." against "Yes, it opens on Sundays.": the word is the answer
    ratio = measure(norm_a, norm_b)
    if pol_a and pol_b and pol_a != pol_b:
        return ratio, "polarity"
    if negation_count(norm_a) != negation_count(norm_b):
        return ratio, "negation"
    if numbers_stated(body_a) != numbers_stated(body_b):
        return ratio, "numbers"
    return ratio, None


def similarity_scorer(threshold: float = LEXICAL_THRESHOLD, *,
                      measure: Measure = _token_sort) -> Callable[[Item, str], Score]:
    """A similarity scorer with its own threshold (for ``scorer=`` in the API).

    Args:
        threshold: The similarity at or above which an answer matches (inclusive).
        measure: ``(normalised_a, normalised_b) -> 0..1``; default rapidfuzz
            ``token_sort_ratio``. The negation, number and yes/no guards apply whatever
            the measure (:mod:`robustify.scoring.similarity_embed` passes a cosine).

    Raises:
        ValueError: ``threshold`` is not in (0, 1].
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"similarity threshold must be in (0, 1], got {threshold!r}")

    def score(item: Item, text: str) -> Score:
        answer = normalize_text(text)
        if not answer:
            return Score(0.0, parsed=None, unparseable=True, detail={"reason": "empty"})
        best: tuple[float, str | None, str] | None = None
        for reference in _answer_aliases(item):
            ratio, veto = _compare(text, reference, measure)
            key = (veto is None, ratio)
            if best is None or key > (best[1] is None, best[0]):
                best = (ratio, veto, reference)
        assert best is not None  # _answer_aliases always holds the target
        ratio, veto, reference = best
        ratio = round(ratio, 4)  # the decision reads the figure the detail shows
        detail: dict[str, object] = {"similarity": ratio, "threshold": threshold}
        if veto:
            detail["veto"] = veto
        if reference != item.target:
            detail["matched"] = reference
        same = veto is None and ratio >= threshold
        return Score(1.0 if same else 0.0, parsed=answer, detail=detail)

    score.__doc__ = f"Similarity >= {threshold} with no negation/number/yes-no mismatch."
    return score


score_similarity = register_scorer("similarity")(similarity_scorer())
"""The registered ``similarity`` scorer (threshold :data:`LEXICAL_THRESHOLD`)."""
