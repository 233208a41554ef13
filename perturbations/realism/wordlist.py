"""The offline English word list behind the typo count, and what it leaves out.

A word counts as a *non-word* (a typo that survived to the sent message) when, after the
exclusions below, neither it nor its British/American twin is in the word list:

* the word list is the English frequency dictionary that ships inside the
  ``pyspellchecker`` package (MIT licence, about 160,000 words counted in subtitle
  text, offline, no download), plus the few dozen everyday words of online support it
  lacks (:data:`EXTRA_WORDS`: "app", "wifi", "paypal" ...);
* British spellings count as words: "colour", "favourite", "realise", "centre",
  "travelled" are checked as "color", "favorite", "realize", "center", "traveled";
* names, brands and places are kept out by their shape: a capitalised word that does
  not start a sentence ("Shakira", "Chipotle"), a mixed-case word ("iPhone",
  "GameSpot") and an all-capitals word in a message that is not all capitals ("AMC",
  "PDA") are not checked at all;
* numbers and anything with a digit ("5pm", "2nd"), e-mail addresses, web addresses,
  @handles and #tags are not checked;
* chat forms ("u", "pls", "idk", "gonna") and contractions written without their
  apostrophe ("dont", "thats") are counted as texting style, not as typos.
"""

from __future__ import annotations

import functools
import re
from typing import AbstractSet

from ..errors import MissingDependencyError

__all__ = ["english_words", "is_known", "EXTRA_WORDS", "APOSTROPHE_LESS",
           "british_variants"]

EXTRA_WORDS = frozenset("""
app apps wifi online offline login logout signup signin username password passwords
website websites webpage email emails emailed emailing inbox smartphone smartphones
iphone android laptop laptops tablet tablets bluetooth paypal venmo google gmail
ebay amazon netflix spotify uber lyft zelle covid selfie selfies emoji emojis
voicemail voicemails ringtone checkout prepaid postpaid contactless chatbot chatbots
txt url urls pdf pdfs otp pin pins atm atms tv tvs dvd dvds ok okay hey hi bye
""".split())
"""Everyday words of online support missing from pyspellchecker's subtitle-based list."""

APOSTROPHE_LESS = frozenset("""
dont cant wont isnt arent wasnt werent doesnt didnt hasnt havent hadnt shouldnt couldnt
wouldnt mustnt im ive youre youve youll youd theyre theyve theyll theyd weve thats
whats wheres whos hows theres heres lets itll shes hes
""".split())
"""Contractions typed without their apostrophe ("dont"): texting style, not typos."""

_BRITISH = (
    (re.compile(r"our(s|ed|ing|ite|ites|able)?$"), r"or\1"),
    (re.compile(r"is(e|ed|es|ing|ation|ations)$"), r"iz\1"),
    (re.compile(r"ys(e|ed|es|ing)$"), r"yz\1"),
    (re.compile(r"tre(s)?$"), r"ter\1"),
    (re.compile(r"ll(ed|ing|er|ers)$"), r"l\1"),
    (re.compile(r"ogue(s)?$"), r"og\1"),
    (re.compile(r"ence$"), r"ense"),
)


def british_variants(word: str) -> list[str]:
    """American spellings a British spelling may stand for ("colour" -> ["color"])."""
    return [pattern.sub(repl, word) for pattern, repl in _BRITISH if pattern.search(word)]


@functools.cache
def english_words() -> AbstractSet[str]:
    """The lower-case word list (loaded once, about 0.3 s).

    Raises:
        MissingDependencyError: ``pyspellchecker`` is not installed.
    """
    try:
        from spellchecker import SpellChecker
    except ImportError:
        raise MissingDependencyError(
            "measuring typos needs the offline English word list of pyspellchecker; "
            "install it with 'pip install pyspellchecker'") from None
    words = set(SpellChecker(language="en").word_frequency.dictionary)
    return frozenset(words | EXTRA_WORDS)


def is_known(word: str) -> bool:
    """True when ``word`` (any case, straight or curly apostrophe) is an English word."""
    w = word.lower().replace("’", "'")
    words = english_words()
    if w in words:
        return True
    if w.endswith("'s") and w[:-2] in words:  # possessive: "kate's" -> "kate"
        return True
    return any(v in words for v in british_variants(w))
