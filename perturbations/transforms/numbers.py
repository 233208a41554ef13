"""Numbers spelled out: the user writes "twenty-five" where the benchmark has "25"."""

from __future__ import annotations

import random
import re
from typing import Sequence

from ..base import TextTransform
from ..registry import register
from ..text import count_for

__all__ = ["Numbers", "NUMBER_RUN", "int_to_words", "ordinal_words", "year_words",
           "number_to_words"]

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10 ** 12, "trillion"), (10 ** 9, "billion"), (10 ** 6, "million"),
           (1000, "thousand"))
_MAX = 10 ** 15 - 1
_IRREGULAR_ORDINALS = {"one": "first", "two": "second", "three": "third", "five": "fifth",
                       "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}
_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"),
               "€": ("euro", "euros", "cent", "cents"),
               "£": ("pound", "pounds", "penny", "pence")}
_YEAR_CUES = frozenset("in since from until till by before after during year around circa "
                       "of".split())

# One numeric run with what may surround it. The run itself is permissive on purpose
# ("3:30", "1,2,3", "2019-05-01" are matched) so that shapes we do not convert are
# recognised and left alone whole instead of being converted piece by piece.
NUMBER_RUN = re.compile(
    r"(?<![\w.,:/$€£-])"
    r"(?P<sign>-(?=[$€£]?\d))?"
    r"(?P<cur>[$€£])?"
    r"(?P<num>\d(?:[\d,.:/-]*\d)?)"
    r"(?P<suf>%|st\b|nd\b|rd\b|th\b)?"
    r"(?![\w$€£%])"
)
_GROUPED = re.compile(r"\d{1,3}(?:,\d{3})+")
_PLAIN = re.compile(r"0|[1-9]\d*")
_DECIMAL = re.compile(r"(?P<int>0|[1-9]\d*|\d{1,3}(?:,\d{3})+)\.(?P<frac>\d+)")


def _below_thousand(n: int) -> str:
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [_ONES[hundreds], "hundred"]
    if rest:
        if rest < 20:
            words.append(_ONES[rest])
        else:
            tens, ones = divmod(rest, 10)
            words.append(_TENS[tens] + (f"-{_ONES[ones]}" if ones else ""))
    return " ".join(words)


def int_to_words(n: int) -> str:
    """Spell a non-negative integer in American English, without "and".

    >>> int_to_words(1200)
    'one thousand two hundred'
    >>> int_to_words(25)
    'twenty-five'

    Raises:
        ValueError: ``n`` is negative or above 999,999,999,999,999.
    """
    if n < 0 or n > _MAX:
        raise ValueError(f"cannot spell {n}: only 0..{_MAX} are supported")
    if n == 0:
        return "zero"
    words: list[str] = []
    for value, name in _SCALES:
        if n >= value:
            count, n = divmod(n, value)
            words += [_below_thousand(count), name]
    if n:
        words.append(_below_thousand(n))
    return " ".join(words)


def ordinal_words(n: int) -> str:
    """Spell an ordinal: 1 -> "first", 22 -> "twenty-second", 100 -> "one hundredth"."""
    cardinal = int_to_words(n)
    head, sep, last = cardinal.rpartition(" ")
    prefix, dash, unit = last.rpartition("-")
    if unit in _IRREGULAR_ORDINALS:
        unit = _IRREGULAR_ORDINALS[unit]
    elif unit.endswith("y"):
        unit = unit[:-1] + "ieth"
    else:
        unit += "th"
    return f"{head}{sep}{prefix}{dash}{unit}"


def year_words(n: int) -> str:
    """Spell a year the way it is read aloud: 1999 -> "nineteen ninety-nine",
    1905 -> "nineteen oh five", 2007 -> "two thousand seven", 2024 -> "twenty twenty-four"."""
    if n < 1000 or n > 9999 or 2000 <= n < 2010 or n % 1000 == 0:
        return int_to_words(n)
    century, rest = divmod(n, 100)
    if rest == 0:
        return f"{int_to_words(century)} hundred"
    tail = int_to_words(rest) if rest >= 10 else f"oh {_ONES[rest]}"
    return f"{int_to_words(century)} {tail}"


def _suffix_for(n: int) -> str:
    if n % 100 in (11, 12, 13):
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def _parse_int(text: str) -> int | None:
    if _GROUPED.fullmatch(text):
        return int(text.replace(",", ""))
    if _PLAIN.fullmatch(text):
        return int(text)
    return None  # leading zeros (codes, "007") and everything else


def number_to_words(run: str, *, year: bool = False) -> str | None:
    """Spell one numeric expression, or return None for shapes left alone.

    Handles integers (``7``, ``1,200``), decimals (``3.5`` -> "three point five"),
    percentages, ordinals (``3rd``), negative numbers and $/€/£ amounts
    (``$4.50`` -> "four dollars and fifty cents"). Times, dates, fractions, lists and
    codes with leading zeros return None.

    Args:
        run: The text of one number, as matched in a sentence.
        year: Read a plain four-digit integer as a year.
    """
    m = NUMBER_RUN.fullmatch(run)
    if not m:
        return None
    sign, cur, num, suf = m.group("sign"), m.group("cur"), m.group("num"), m.group("suf")
    if cur and suf:
        return None
    value = _parse_int(num)
    words: str | None = None
    if value is not None:
        if value > _MAX:
            return None
        if suf in ("st", "nd", "rd", "th"):
            if sign or "," in num or _suffix_for(value) != suf or value == 0:
                return None
            return ordinal_words(value)
        if cur:
            singular, plural = _CURRENCIES[cur][:2]
            words = f"{int_to_words(value)} {singular if value == 1 else plural}"
        elif year and not sign and not suf and len(num) == 4:
            words = year_words(value)
        else:
            words = int_to_words(value)
    else:
        dm = _DECIMAL.fullmatch(num)
        if dm is None or (suf and suf != "%"):
            return None
        whole = int(dm.group("int").replace(",", ""))
        frac = dm.group("frac")
        if whole > _MAX:
            return None
        if cur:
            singular, plural, cent, cents = _CURRENCIES[cur]
            if len(frac) != 2:
                return None
            pennies = int(frac)
            parts = []
            if whole:
                parts.append(f"{int_to_words(whole)} {singular if whole == 1 else plural}")
            if pennies or not whole:
                parts.append(f"{int_to_words(pennies)} {cent if pennies == 1 else cents}")
            words = " and ".join(parts)
        else:
            words = f"{int_to_words(whole)} point {' '.join(_ONES[int(d)] for d in frac)}"
    if suf == "%":
        words += " percent"
    if sign:
        words = "minus " + words
    return words


def _previous_word(text: str, start: int) -> str:
    m = re.search(r"([^\W\d_]+)\W*$", text[:start])
    return m.group(1).lower() if m else ""


def _sentence_start(text: str, start: int) -> bool:
    before = text[:start].rstrip()
    return not before or before[-1] in ".!?\n"


@register("numbers", family="numbers", label_policy="preserves")
class Numbers(TextTransform):
    """Spell numbers out in words, as people who type them out do.

    Integers ("3" -> "three", "25" -> "twenty-five", "1,200" -> "one thousand two
    hundred", up to 999 trillion), decimals ("3.5" -> "three point five"), ordinals
    ("3rd" -> "third"), percentages ("15%" -> "fifteen percent"), negative numbers and
    $/€/£ amounts ("$4.50" -> "four dollars and fifty cents"). A four-digit number after
    a year cue ("in 1813") is read as a year ("eighteen thirteen"). Times (3:30), dates,
    fractions, lists like "1,2,3", codes with leading zeros and numbers inside a declared
    protected phrase are left as written. A number that starts a sentence is capitalised.

    Severity: share of the convertible numbers that are spelled out (0.5 -> about half;
    1 -> all of them).
    Label: preserves. The value is the same, only its spelling changes; this transform
    rewrites protected numbers on purpose (``touches_protected``).
    Options: none besides ``fields``.
    """

    touches_protected = True
    NOTHING_TO_CHANGE = "no number it can spell out"

    def count_candidates(self, text: str, severity: float,
                         protected: Sequence[tuple[int, int]]) -> int:
        return len(self._candidates(text, protected))

    def perturb_text(self, text: str, severity: float, rng: random.Random,
                     protected: Sequence[tuple[int, int]]) -> str:
        candidates = self._candidates(text, protected)
        k = count_for(len(candidates), severity, rng)
        chosen = sorted(rng.sample(candidates, k), reverse=True)
        for start, end, words in chosen:
            text = text[:start] + words + text[end:]
        return text

    @staticmethod
    def _candidates(text: str, protected: Sequence[tuple[int, int]]
                    ) -> list[tuple[int, int, str]]:
        """(start, end, words) of every number this transform can spell out."""
        candidates: list[tuple[int, int, str]] = []
        for m in NUMBER_RUN.finditer(text):
            start, end = m.span()
            # A number inside a longer protected phrase ("Route 66") belongs to the phrase.
            if any(s < end and start < e and (s < start or e > end) for s, e in protected):
                continue
            year = _previous_word(text, start) in _YEAR_CUES
            words = number_to_words(m.group(), year=year)
            if words is None:
                continue
            if _sentence_start(text, start):
                words = words[0].upper() + words[1:]
            candidates.append((start, end, words))
        return candidates
