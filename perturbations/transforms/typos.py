"""Typing and recognition errors inside words: keyboard slips, transpositions, dropped
and doubled letters, OCR confusions and common misspellings.

The error *models* are data: a QWERTY adjacency derived from key geometry, a table of
letter-for-letter OCR confusions, and the natural-misspelling list nlpaug ships
(``nlpaug/res/word/spelling/spelling_en.txt``). The *sampling* is ours: every draw
comes from the variant's own ``random.Random``, because nlpaug's augmenters sample
from the global RNGs and cannot be made reproducible per item.
"""

from __future__ import annotations

import functools
import heapq
import importlib.util
import os
import random
import re
from typing import Callable, Mapping, Sequence

from rapidfuzz.distance import OSA

from ..base import Option, TextTransform
from ..errors import MissingDependencyError
from ..registry import register
from ..text import NUMBER_WORDS, Token, count_for, detokenize, match_case, tokenize

__all__ = [
    "Typos",
    "KINDS",
    "KEYBOARD_NEIGHBOURS",
    "OCR_CONFUSIONS",
    "MIX_WEIGHTS",
    "WORD_RATE",
    "misspellings",
    "keyboard_typo",
    "swap_typo",
    "omit_typo",
    "double_typo",
    "ocr_typo",
    "misspell_typo",
]

KINDS = ("keyboard", "swap", "omit", "double", "ocr", "misspell", "mix")
"""Values of the ``kind`` option."""

WORD_RATE = 0.5
"""Share of eligible words given a typo at severity 1 (so ``high`` = 0.8 -> 40%)."""

MIX_WEIGHTS: Mapping[str, float] = {
    "keyboard": 0.35, "swap": 0.25, "omit": 0.20, "double": 0.05, "misspell": 0.15,
}
"""Relative frequency of each error kind in ``kind=mix`` (renormalised per word over the
kinds that apply to it; OCR errors are not typing errors and are left out)."""

# Key centres in key widths; each row is shifted right by the physical stagger of a
# standard QWERTY board. Neighbours are the keys left and right in the same row and the
# keys of the rows above and below whose centres lie within one key width, which gives
# the familiar 2-6 neighbours per letter (s: a d w e z x).
_ROWS = (("qwertyuiop", 0.0), ("asdfghjkl", 0.25), ("zxcvbnm", 0.75))


def _keyboard_neighbours() -> dict[str, tuple[str, ...]]:
    pos = {ch: (x + off, y) for y, (row, off) in enumerate(_ROWS) for x, ch in enumerate(row)}
    out: dict[str, tuple[str, ...]] = {}
    for ch, (x, y) in pos.items():
        out[ch] = tuple(sorted(
            other for other, (ox, oy) in pos.items()
            if other != ch and ((oy == y and abs(ox - x) == 1.0)
                                or (abs(oy - y) == 1 and abs(ox - x) <= 1.0))))
    return out


KEYBOARD_NEIGHBOURS: Mapping[str, tuple[str, ...]] = _keyboard_neighbours()
"""Lower-case letter -> lower-case letters of the physically adjacent QWERTY keys.

Built from key geometry instead of nlpaug's ``char/keyboard/en.json`` because that
table mixes in digits and symbols, lists some keys as their own neighbour ("a") and
has a stray entry with a leading space (" t"); only letters are realistic substitutes
inside a word that must stay readable."""

OCR_CONFUSIONS: tuple[tuple[str, str], ...] = (
    ("rn", "m"), ("m", "rn"), ("cl", "d"), ("d", "cl"), ("vv", "w"), ("w", "vv"),
    ("ri", "n"), ("li", "h"), ("h", "li"), ("nn", "m"), ("in", "m"),
    ("l", "I"), ("I", "l"), ("e", "c"), ("c", "e"), ("o", "a"), ("a", "o"), ("o", "u"),
    ("u", "v"), ("v", "u"), ("r", "k"), ("f", "t"), ("t", "f"), ("h", "b"), ("b", "h"),
    ("g", "q"), ("C", "G"), ("O", "D"), ("O", "U"), ("E", "B"), ("i", "l"),
)
"""(seen, read-as) pairs of characters a recogniser confuses in print.

Letters only, by design: the classic digit confusions (l->1, O->0, S->5, B->8) are
left out because a digit inside a word is picked up as a protected number by the
next transform in a composed spec and reads as a quantity to a numeric-answer scorer.
The letter pairs of nlpaug's ``char/ocr/en.json`` (o->u, r->k, C->G, O->D/U, E->B)
are included."""

_MIN_LETTERS = 3  # people rarely mistype one- and two-letter words


def _letters(word: str) -> int:
    if word.isalpha():  # the common case, without a per-character loop
        return len(word)
    return sum(1 for c in word if c.isalpha())


def keyboard_typo(word: str, rng: random.Random) -> str | None:
    """Replace one ASCII letter by a QWERTY neighbour of the same case (None if no letter)."""
    positions = [i for i, c in enumerate(word) if c.lower() in KEYBOARD_NEIGHBOURS
                 and c.isascii()]
    if not positions:
        return None
    i = rng.choice(positions)
    c = word[i]
    sub = rng.choice(KEYBOARD_NEIGHBOURS[c.lower()])
    return word[:i] + (sub.upper() if c.isupper() else sub) + word[i + 1:]


def swap_typo(word: str, rng: random.Random) -> str | None:
    """Transpose two adjacent, different letters of the same case.

    The first letter stays in place when the word is long enough, and pairs that differ
    in case are skipped so a capitalised word keeps its capital where it was.
    """
    positions = [i for i in range(len(word) - 1)
                 if word[i].isalpha() and word[i + 1].isalpha() and word[i] != word[i + 1]
                 and word[i].isupper() == word[i + 1].isupper()]
    inner = [i for i in positions if i > 0]
    if len(word) > 3 and inner:
        positions = inner
    if not positions:
        return None
    i = rng.choice(positions)
    return word[:i] + word[i + 1] + word[i] + word[i + 2:]


def omit_typo(word: str, rng: random.Random) -> str | None:
    """Drop one letter (not the first one when another letter is available)."""
    positions = [i for i, c in enumerate(word) if c.isalpha()]
    inner = [i for i in positions if i > 0]
    if inner:
        positions = inner
    if len(positions) < 1 or _letters(word) < 2:
        return None
    i = rng.choice(positions)
    return word[:i] + word[i + 1:]


def double_typo(word: str, rng: random.Random) -> str | None:
    """Type one letter twice (never the first letter of a word of 3+ letters)."""
    positions = [i for i, c in enumerate(word) if c.isalpha()]
    inner = [i for i in positions if i > 0]
    if inner:
        positions = inner
    if not positions:
        return None
    i = rng.choice(positions)
    return word[:i + 1] + word[i] + word[i + 1:]


# one scan finds whether a word has anything an OCR engine could misread
_OCR_ANY = re.compile("|".join(sorted({re.escape(s) for s, _ in OCR_CONFUSIONS})))


def _index_by_first(pairs: Sequence[tuple[str, str]]) -> dict[str, tuple[tuple[str, str], ...]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for seen, read in pairs:
        out.setdefault(seen[0], []).append((seen, read))
    return {c: tuple(v) for c, v in out.items()}


_OCR_BY_FIRST = _index_by_first(OCR_CONFUSIONS)


def ocr_typo(word: str, rng: random.Random) -> str | None:
    """Apply one OCR confusion from :data:`OCR_CONFUSIONS` at a random place."""
    spots = [(start, seen, read) for start, c in enumerate(word)
             for seen, read in _OCR_BY_FIRST.get(c, ()) if word.startswith(seen, start)]
    if not spots:
        return None
    start, seen, read = rng.choice(spots)
    return word[:start] + read + word[start + len(seen):]


def misspell_typo(word: str, rng: random.Random) -> str | None:
    """Replace the word by one of its natural misspellings (None if it has none)."""
    options = misspellings().get(word.lower())
    if not options:
        return None
    return match_case(word, rng.choice(options))


_OPS: Mapping[str, Callable[[str, random.Random], str | None]] = {
    "keyboard": keyboard_typo,
    "swap": swap_typo,
    "omit": omit_typo,
    "double": double_typo,
    "ocr": ocr_typo,
    "misspell": misspell_typo,
}


def _spelling_path() -> str:
    # find_spec locates the package without executing it: importing nlpaug pulls in
    # numpy and costs more than half a second, and only its data file is needed here.
    spec = importlib.util.find_spec("nlpaug")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "typos:kind=misspell (and kind=mix) needs nlpaug's misspelling list; "
            "install it with 'pip install nlpaug'")
    path = os.path.join(list(spec.submodule_search_locations)[0], "res", "word", "spelling",
                        "spelling_en.txt")
    if not os.path.exists(path):
        raise MissingDependencyError(
            f"nlpaug is installed but its misspelling list is missing ({path}); "
            "reinstall it with 'pip install --force-reinstall nlpaug'")
    return path


@functools.cache
def misspellings() -> Mapping[str, tuple[str, ...]]:
    """Correct lower-case word -> natural misspellings, cleaned from nlpaug's list.

    The raw list (``word miss1 miss2 ...`` per line, from natural rewriting data) is
    noisy, so an entry is kept only when the correct word is 3+ lower-case letters and
    the misspelling is made of letters, is within a small optimal-string-alignment
    distance of the word (1 for words up to 5 letters, 2 beyond), is not itself a
    correct word of the list (``the -> she``, ``does -> goes`` change the meaning) and
    is not a number word. Order follows the file (nlpaug's own loader de-duplicates
    through ``set``, which makes its order depend on ``PYTHONHASHSEED``).
    """
    raw: dict[str, list[str]] = {}
    with open(_spelling_path(), encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) < 2:
                continue
            raw.setdefault(parts[0], []).extend(parts[1:])
    correct = {k.lower() for k in raw}
    out: dict[str, tuple[str, ...]] = {}
    for key, values in raw.items():
        if not (key.isalpha() and key.islower() and key.isascii() and len(key) >= _MIN_LETTERS):
            continue
        limit = 1 if len(key) <= 5 else 2
        kept: dict[str, None] = {}
        for value in values:
            v = value.lower()
            if (v == key or abs(len(v) - len(key)) > limit or not v.isalpha()
                    or not v.isascii() or v in correct or v in NUMBER_WORDS or len(v) < 2):
                continue
            if OSA.distance(key, v, score_cutoff=limit) <= limit:
                kept[v] = None
        if kept:
            out[key] = tuple(kept)
    return out


@register("typos", family="typos", label_policy="preserves")
class Typos(TextTransform):
    """Typos inside words: keyboard slips, swaps, dropped or doubled letters, misspellings.

    Severity: share of eligible words that get one typo, ``0.5 * severity`` (low 10%,
    medium 25%, high 40% of the words; 1 -> half). Eligible words have at least three
    letters (people rarely mistype "of" or "a") and longer words are picked more
    often. For ``ocr`` and ``misspell`` the share is taken over the words the error
    applies to (words with an OCR-confusable letter group; words in the misspelling list).
    Label: preserves. Only spelling changes; numbers, number words, option letters and
    declared phrases are never touched, and a typo that would turn a word into a number
    word ("tent" -> "ten") is rejected.
    Options: ``kind`` = keyboard (a QWERTY neighbour of the same case), swap (adjacent
    transposition), omit (drop a letter), double (type a letter twice), ocr (print
    recognition confusions such as rn->m, cl->d, l->I; letters only, never digits),
    misspell (a natural misspelling from nlpaug's list), mix (the default: 35% keyboard,
    25% swap, 20% omit, 5% double, 15% misspell where the word has one).
    """

    OPTIONS = {"kind": Option("mix", KINDS, "which kind of typo to make")}

    def perturb_text(self, text: str, severity: float, rng: random.Random,
                     protected: Sequence[tuple[int, int]]) -> str:
        kind = self.options["kind"]
        tokens = tokenize(text, protected)
        if kind in ("misspell", "mix"):
            misspellings()  # fail with MissingDependencyError before drawing anything
        candidates = self._candidates(tokens, kind)
        k = count_for(len(candidates), WORD_RATE * severity, rng)
        if k == 0:
            return text
        # Weighted sampling without replacement (Efraimidis-Spirakis): longer words have
        # more keystrokes and so more chances of a slip.
        keyed = [(rng.random() ** (1.0 / min(n, 12)), i) for i, n in candidates]
        chosen = sorted(i for _, i in heapq.nlargest(k, keyed))
        for i in chosen:
            tok = tokens[i]
            new = self._typo(tok.text, kind, rng)
            if new is not None:
                tok.text = new
        return detokenize(tokens)

    @staticmethod
    def _candidates(tokens: list[Token], kind: str) -> list[tuple[int, int]]:
        """(token index, letter count) of the words this kind of typo can hit."""
        out = []
        for i, tok in enumerate(tokens):
            if not tok.is_word or tok.protected:
                continue
            n = _letters(tok.text)
            if n < _MIN_LETTERS:
                continue
            if kind == "ocr" and _OCR_ANY.search(tok.text) is None:
                continue
            if kind == "misspell" and tok.text.lower() not in misspellings():
                continue
            out.append((i, n))
        return out

    @staticmethod
    def _typo(word: str, kind: str, rng: random.Random) -> str | None:
        for _ in range(3):  # a few tries: some draws give a number word or nothing
            if kind == "mix":
                names = [n for n in MIX_WEIGHTS
                         if n != "misspell" or word.lower() in misspellings()]
                op = _OPS[rng.choices(names, [MIX_WEIGHTS[n] for n in names])[0]]
            else:
                op = _OPS[kind]
            new = op(word, rng)
            if new is not None and new != word and new.lower() not in NUMBER_WORDS:
                return new
        return None
