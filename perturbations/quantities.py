"""Numbers as values: what the guard compares between a clean and a perturbed text.

A number may be written ``25``, ``twenty-five``, ``1,200``, ``one thousand two
hundred``, ``.5``, ``$4.50``, ``four dollars and fifty cents``, ``3rd``, ``third``,
``15%`` or ``in eighteen thirteen``. :func:`quantities` reads every such expression of a
text into a comparable key, so a text whose numbers were spelled out by the ``numbers``
transform yields the same keys as the original, while ``$.20`` -> ``$20``, ``.5`` ->
``5`` or a new ``three`` (``There's`` -> ``Three's``) do not.

Keys are tuples: ``("num", "4.5")`` for a cardinal value (currency and percent signs are
dropped, cents become hundredths of the main unit), ``("ord", "3")`` for an ordinal,
``("lit", "3:30")`` for shapes read as written (times, dates, fractions, lists, codes
with leading zeros) and ``("word", "half")`` for quantity words.
"""

from __future__ import annotations

import re
from collections import Counter
from decimal import Decimal, InvalidOperation

from .keywords import QUANTITY_WORDS

__all__ = ["quantities", "Key", "NUMBER_VOCABULARY"]

Key = tuple[str, str]

_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine".split())}
_TEENS = {w: i + 10 for i, w in enumerate(
    "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: (i + 2) * 10 for i, w in enumerate(
    "twenty thirty forty fifty sixty seventy eighty ninety".split())}
_SCALES = {"thousand": 10 ** 3, "million": 10 ** 6, "billion": 10 ** 9, "trillion": 10 ** 12}
_ORDINALS = {
    **{w: i + 1 for i, w in enumerate(
        "first second third fourth fifth sixth seventh eighth ninth".split())},
    **{w: i + 10 for i, w in enumerate(
        "tenth eleventh twelfth thirteenth fourteenth fifteenth sixteenth seventeenth "
        "eighteenth nineteenth".split())},
    **{w: (i + 2) * 10 for i, w in enumerate(
        "twentieth thirtieth fortieth fiftieth sixtieth seventieth eightieth ninetieth"
        .split())},
}
_ORDINAL_SCALES = {"hundredth": 100, "thousandth": 10 ** 3, "millionth": 10 ** 6,
                   "billionth": 10 ** 9}
_CARDINAL = {**_UNITS, **_TEENS, **_TENS}
_NUMBER_WORD = set(_CARDINAL) | set(_SCALES) | {"hundred"} | set(_ORDINALS) \
    | set(_ORDINAL_SCALES)
# "that one", "the one from before", "which one", "no one": a pronoun, not a number
_PRONOUN_ONE_AFTER = frozenset(
    "the that this which each every any no another other same last next only right wrong "
    "new old big small little first".split())
NUMBER_VOCABULARY = frozenset(_NUMBER_WORD)
"""Every cardinal, ordinal and scale word :func:`quantities` reads as a number."""
_MAIN_UNITS = frozenset("dollar dollars euro euros pound pounds buck bucks".split())
_SUB_UNITS = frozenset("cent cents penny pence pennies".split())

# a digit run with what may surround it, a word, or any other character
_LEX = re.compile(
    r"(?P<num>(?:(?<![\w.,])-(?=[$€£]?\.?\d))?[$€£]?(?:\d+(?:[.,:/]\d+)*|(?<![\w.])\.\d+)"
    r"(?:%|(?:st|nd|rd|th)(?![^\W\d_]))?)"
    r"|(?P<word>[^\W\d_]+)|(?P<space>[ \t]+)|(?P<other>.)", re.DOTALL)
_GROUPED = re.compile(r"\d{1,3}(?:,\d{3})+")
_DECIMAL = re.compile(r"(?:\d+|\d{1,3}(?:,\d{3})+)?\.\d+")


def _fmt(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _digits(raw: str) -> tuple[str, Decimal | str]:
    """(kind, value) of one digit lexeme: kind num, ord or lit."""
    sign = raw.startswith("-")
    core = raw.lstrip("-").lstrip("$€£").rstrip("%")
    ordinal = core[-2:] in ("st", "nd", "rd", "th")
    if ordinal:
        core = core[:-2]
    if re.fullmatch(r"0|[1-9]\d*", core) or _GROUPED.fullmatch(core):
        value = Decimal(core.replace(",", ""))
    elif _DECIMAL.fullmatch(core):
        value = Decimal(core.replace(",", ""))
    else:
        return "lit", core
    if ordinal:
        return "ord", value
    return "num", -value if sign else value


def _parse_words(words: list[str]) -> list[tuple[str, Decimal]]:
    """Values of a run of number words; adjacent groups that read as a year are joined."""
    groups: list[tuple[str, int, bool]] = []  # (kind, value, may be half of a year)
    total = current = 0
    open_group = False
    last_scale = 10 ** 15

    def close() -> None:
        nonlocal total, current, open_group, last_scale
        if open_group:
            value = total + current
            groups.append(("num", value, total == 0 and 10 <= current <= 99))
        total = current = 0
        open_group = False
        last_scale = 10 ** 15

    for w in words:
        if w == "oh":  # only reached inside a year ("nineteen oh five")
            close()
            groups.append(("oh", 0, False))
            continue
        if w in _ORDINALS or w in _ORDINAL_SCALES:
            if w in _ORDINAL_SCALES:
                value = total + (current or 1) * _ORDINAL_SCALES[w]
            elif current % 100 == 0 or (_ORDINALS[w] < 10 and current % 10 == 0
                                        and current % 100 >= 20):
                value = total + current + _ORDINALS[w]
            else:
                close()
                value = _ORDINALS[w]
            total = current = 0
            open_group = False
            groups.append(("ord", value, False))
            last_scale = 10 ** 15
            continue
        if w in _SCALES:
            scale = _SCALES[w]
            if scale >= last_scale:
                close()
            total += (current or 1) * scale
            current = 0
            last_scale = scale
            open_group = True
            continue
        if w == "hundred":
            if current >= 100:
                close()
            current = (current or 1) * 100
            open_group = True
            continue
        v = _CARDINAL[w]
        below = current % 100
        fits = (below == 0 and (current == 0 or v < 100)) if v >= 10 else \
            (below == 0 or (below >= 20 and below % 10 == 0))
        if open_group and (not fits or (v == 0 and current)):
            close()
        current += v
        open_group = True
    close()
    out: list[tuple[str, Decimal]] = []
    i = 0
    while i < len(groups):
        kind, value, century = groups[i]
        nxt = groups[i + 1] if i + 1 < len(groups) else None
        if century and nxt is not None and nxt[0] == "oh" and i + 2 < len(groups) \
                and groups[i + 2][0] == "num" and groups[i + 2][1] < 10:
            out.append(("num", Decimal(value * 100 + groups[i + 2][1])))
            i += 3
            continue
        if century and nxt is not None and nxt[0] == "num" and nxt[2]:
            out.append(("num", Decimal(value * 100 + nxt[1])))  # "nineteen ninety-nine"
            i += 2
            continue
        if kind != "oh":
            out.append((kind, Decimal(value)))
        i += 1
    return out


def quantities(text: str, *, pronouns: bool = False) -> Counter[Key]:
    """Every number and quantity word of ``text`` as a comparable key, with counts.

    Args:
        text: Any text.
        pronouns: Skip a "one" that reads as a pronoun ("that one", "the one from
            before", "one another"). Off by default: the reading depends on the word
            before, which a filler or typo may change while the "one" stays.
    """
    lex = [(m.lastgroup, m.group()) for m in _LEX.finditer(text)]
    items: list[list] = []  # [kind, value, index of last lexeme, unit]
    i = 0
    while i < len(lex):
        kind, raw = lex[i]
        if kind == "num":
            k, value = _digits(raw)
            items.append([k, value, i, None])
            i += 1
            continue
        word = raw.lower() if kind == "word" else ""
        if word in QUANTITY_WORDS:
            items.append(["word", word, i, None])
        if word not in _NUMBER_WORD or (pronouns and word == "one" and _pronoun(lex, i)):
            i += 1
            continue
        words, j = [word], i + 1
        decimals: list[str] = []
        while j + 1 < len(lex):
            gap, nxt = lex[j], lex[j + 1]
            w = nxt[1].lower() if nxt[0] == "word" else ""
            joined = gap[1] == "-" or gap[0] == "space"
            if joined and w in _NUMBER_WORD:
                words.append(w)
                j += 2
            elif gap[0] == "space" and w == "and" and words[-1] in ("hundred", *_SCALES) \
                    and j + 3 < len(lex) and lex[j + 3][1].lower() in _CARDINAL:
                j += 2
            elif gap[0] == "space" and w == "oh" and words[-1] in _CARDINAL \
                    and j + 3 < len(lex) and lex[j + 3][1].lower() in _UNITS:
                words.append("oh")
                j += 2
            elif gap[0] == "space" and w == "point" and j + 3 < len(lex) \
                    and lex[j + 3][1].lower() in _UNITS:
                j += 2
                while j + 1 < len(lex) and lex[j][0] == "space" \
                        and lex[j + 1][1].lower() in _UNITS:
                    decimals.append(str(_UNITS[lex[j + 1][1].lower()]))
                    j += 2
                break
            else:
                break
        parsed = _parse_words(words)
        if decimals and parsed and parsed[-1][0] == "num":
            last = parsed[-1][1]
            parsed[-1] = ("num", Decimal(f"{last}.{''.join(decimals)}"))
        before = [w for k, w in lex[max(0, i - 2):i] if k == "word"]
        if before and before[-1].lower() == "minus" and parsed and parsed[0][0] == "num":
            parsed[0] = ("num", -parsed[0][1])
        for n, (k, value) in enumerate(parsed):
            items.append([k, value, j - 1 if n == len(parsed) - 1 else i, None])
        i = j
    return _with_units(items, lex)


def _pronoun(lex: list[tuple[str | None, str]], i: int) -> bool:
    """Is the "one" at ``lex[i]`` a pronoun ("that one", "one another")?"""
    before = lex[i - 2][1].lower() if i >= 2 and lex[i - 1][0] == "space" else ""
    after = lex[i + 2][1].lower() if i + 2 < len(lex) and lex[i + 1][0] == "space" else ""
    return before in _PRONOUN_ONE_AFTER or after in ("another", "anothers")


def _with_units(items: list[list], lex: list[tuple[str | None, str]]) -> Counter[Key]:
    """Apply currency words ("fifty cents" = 0.5; "four dollars and fifty cents" = 4.5)."""
    for item in items:
        if item[0] != "num":
            continue
        end = item[2]
        if end + 2 < len(lex) and lex[end + 1][0] == "space":
            unit = lex[end + 2][1].lower()
            if unit in _SUB_UNITS:
                item[1] = item[1] / 100
                item[3] = "sub"
            elif unit in _MAIN_UNITS:
                item[3] = "main"
                item[2] = end + 2
    out: Counter[Key] = Counter()
    skip = set()
    for n, item in enumerate(items):
        if n in skip:
            continue
        kind, value, end, unit = item
        if unit == "main" and n + 1 < len(items) and items[n + 1][3] == "sub":
            between = "".join(raw for _, raw in lex[end + 1:_first_index(items[n + 1], lex)])
            if between.strip().lower() == "and":
                value = value + items[n + 1][1]
                skip.add(n + 1)
        if isinstance(value, Decimal):
            try:
                value = _fmt(value)
            except InvalidOperation:  # pragma: no cover - Decimal of parsed digits
                value = str(value)
        out[(kind, value)] += 1
    return out


def _first_index(item: list, lex: list[tuple[str | None, str]]) -> int:
    """Index of the first lexeme of a sub-unit amount (its number words start there)."""
    i = item[2]
    while i - 2 >= 0 and lex[i - 1][0] in ("space", "other") and lex[i - 1][1] in (" ", "-") \
            and lex[i - 2][1].lower() in _NUMBER_WORD:
        i -= 2
    return i
