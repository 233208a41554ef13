"""Text helpers shared by the scorers: normalisation and whole-word containment.

>>> normalize_text("The Billing_Issue!")
'billing issue'
>>> contains_phrase("a double charge here", "double charge")
True
"""

from __future__ import annotations

import re
import string
import unicodedata

__all__ = ["normalize_text", "contains_phrase", "phrase_pattern"]

_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_PUNCT_TABLE = str.maketrans({c: " " for c in string.punctuation + "“”‘’«»…–—"})


def normalize_text(text: str, *, drop_articles: bool = True) -> str:
    """Lower-case, strip accents' compatibility forms, punctuation, articles and extra spaces.

    Underscores and hyphens become spaces, so ``billing_issue`` and ``billing-issue``
    both read ``billing issue``. Apostrophes are dropped rather than spaced (``don't``
    -> ``dont``) so contractions stay one token.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = text.replace("'", "").replace("’", "")
    text = text.translate(_PUNCT_TABLE)
    if drop_articles:
        text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def phrase_pattern(needle: str) -> re.Pattern[str]:
    """The compiled whole-word pattern :func:`contains_phrase` searches for ``needle``."""
    return re.compile(rf"(?<!\w){re.escape(needle)}(?!\w)")


def contains_phrase(haystack: str, needle: str) -> bool:
    """Whole-word containment on normalised strings (an empty needle is never contained)."""
    if not needle:
        return False
    return re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", haystack) is not None
