"""Texting style: chat abbreviations and slang from a lexicon, then (at higher severity)
dropped apostrophes, no capitals, no final punctuation and chat tags such as "lol".

The lexicon is :file:`perturbations/data/slang.json`, written for this project: keys
are words or phrases, values the texting forms (``you -> u``, ``I don't know -> idk``,
``going to -> gonna``). Phrases are matched on word boundaries, case-insensitively and
with straight or curly apostrophes; the replacement takes the casing of what it
replaces.
"""

from __future__ import annotations

import functools
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

from ..base import Option, TextTransform
from ..errors import DataError
from ..registry import register
from ..text import count_for, detokenize, match_case, tokenize

__all__ = ["Slang", "Lexicon", "PhraseMatcher", "lexicon", "LEXICON_PATH", "STYLES"]

LEXICON_PATH = Path(__file__).resolve().parent.parent / "data" / "slang.json"
"""Where the slang lexicon lives."""

STYLES = ("mix", "lexicon")
"""Values of the ``style`` option."""

_NEXT_WORD = re.compile(r"[ \t]+([^\W_]+)")
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")  # as perturbations.text tokenises words
_APOSTROPHES = re.compile(r"['’]")
_TRAILING_MARKS = ".?!"


@dataclass(frozen=True)
class Lexicon:
    """The parsed slang lexicon."""

    substitutions: Mapping[str, tuple[str, ...]]
    """Lower-case word or phrase -> texting forms (drawn uniformly)."""
    needs_verb: frozenset[str]
    """Phrases rewritten only before a verb ("going to" + "eat" -> "gonna eat", but
    "going to the shop" and "going to Paris" stay)."""
    not_verbs: frozenset[str]
    """Words that show the next word is not a verb (determiners, places ...)."""
    prefix_tags: tuple[str, ...]
    """Chat tags put before the text at high severity ("pls help", "quick q")."""
    suffix_tags: tuple[str, ...]
    """Chat tags put after the text at high severity ("lol", "??")."""
    matcher: PhraseMatcher
    """Finds the keys in a text."""

    @staticmethod
    def key_of(matched: str) -> str:
        """Normalise matched text back to its lexicon key."""
        return _normalise(matched)


def _normalise(text: str) -> str:
    return " ".join(_APOSTROPHES.sub("'", text).lower().split())


class PhraseMatcher:
    """Finds words and phrases of a lexicon in text, on word boundaries, ignoring case.

    Straight and curly apostrophes match each other and any run of whitespace matches
    the space between the words of a phrase. Where phrases overlap, the leftmost wins,
    and at one position the longest ("i don't know" before "i don't").

    One big regex alternation of hundreds of phrases is tried at every character and
    costs more than the rest of a transform; instead, phrases are grouped by their first
    word and only the group of each word actually in the text is tried, at that word.
    """

    def __init__(self, phrases: Iterable[str]) -> None:
        groups: dict[str, list[str]] = {}
        for phrase in sorted({_normalise(p) for p in phrases if p.strip()},
                             key=lambda k: (-len(k), k)):
            groups.setdefault(phrase.split()[0], []).append(phrase)
        self._by_first = {first: re.compile(_anchored(members), re.IGNORECASE)
                          for first, members in groups.items()}

    def search(self, text: str, pos: int = 0) -> re.Match[str] | None:
        """The first phrase match starting at a word at or after ``pos``."""
        for word in _WORD.finditer(text, pos):
            pattern = self._by_first.get(_normalise(word.group()))
            if pattern is not None:
                m = pattern.match(text, word.start())
                if m is not None:
                    return m
        return None

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        """Non-overlapping phrase matches, left to right."""
        pos = 0
        while True:
            m = self.search(text, pos)
            if m is None:
                return
            yield m
            pos = m.end()


def _anchored(phrases: Sequence[str]) -> str:
    body = "|".join(r"\s+".join(re.escape(w).replace("'", "['’]") for w in p.split())
                    for p in phrases)
    # not inside a longer word, not the tail of a contraction ("you" in "you're")
    return rf"(?<![\w'’])(?:{body})(?![\w])(?!['’][^\W_])"


@functools.cache
def lexicon() -> Lexicon:
    """Load and compile :data:`LEXICON_PATH` once.

    Raises:
        DataError: the file is missing or malformed (the message names the file and field).
    """
    path = str(LEXICON_PATH)
    try:
        with open(LEXICON_PATH, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise DataError("the slang lexicon is missing; reinstall robustify", path=path) from None
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from None
    subs = data.get("substitutions")
    if not isinstance(subs, dict) or not subs:
        raise DataError("needs a non-empty object of substitutions", path=path,
                        field="substitutions")
    clean: dict[str, tuple[str, ...]] = {}
    for key, values in subs.items():
        if not isinstance(values, list) or not values or \
                not all(isinstance(v, str) and v for v in values):
            raise DataError(f"entry {key!r} needs a list of non-empty strings", path=path,
                            field="substitutions")
        clean[_normalise(key)] = tuple(values)
    tags = data.get("tags") or {}
    return Lexicon(
        substitutions=clean,
        needs_verb=frozenset(_normalise(k) for k in data.get("needs_verb", ())),
        not_verbs=frozenset(w.lower() for w in data.get("not_verbs", ())),
        prefix_tags=tuple(tags.get("prefix", ())),
        suffix_tags=tuple(tags.get("suffix", ())),
        matcher=PhraseMatcher(clean),
    )


def _case_template(text: str, m: re.Match[str]) -> str:
    """The matched text, with a leading pronoun "I" counted as lower case mid-sentence.

    "I" is always written capitalised, so taking its case literally would turn "so I
    don't know" into "so Idk"; texters write "so idk" and capitalise only at the start
    of a sentence.
    """
    matched = m.group()
    if matched[:1] == "I" and (len(matched) == 1 or not matched[1].isalpha()) \
            and not matched.isupper():
        before = text[:m.start()]
        stripped = before.rstrip()
        mid_sentence = (stripped and stripped[-1] not in ".?!:"
                        and "\n" not in before[len(stripped):])
        if mid_sentence:
            return "i" + matched[1:]
    return matched


def _overlaps(start: int, end: int, spans: Sequence[tuple[int, int]]) -> bool:
    return any(s < end and start < e for s, e in spans)


def _ramp(severity: float, start: float, full: float) -> float:
    """0 up to ``start``, rising linearly to 1 at ``full``."""
    return min(1.0, max(0.0, (severity - start) / (full - start)))


@register("slang", family="slang", label_policy="preserves")
class Slang(TextTransform):
    """Rewrite the text in texting style: u, ur, pls, idk, gonna, tbh ...

    Severity: share of lexicon matches replaced (= severity). With ``style=mix`` the
    severity also sets the chance of the rest of the texting style: the whole text in
    lower case (probability = severity), the final ``.``/``?``/``!`` dropped
    (probability = severity), apostrophes dropped from each word (don't -> dont; from
    0 at severity 0.2 to every word at 0.8) and a chat tag such as "lol", "pls help" or
    "??" added (from 0 at severity 0.5 to always at 1; 60% at high).
    Label: preserves. Only wording and style change; the lexicon holds no digits (no
    "gr8", "b4") so no new number appears, and numbers, number words, option letters
    and declared phrases are never rewritten or lower-cased.
    Options: ``style`` = mix (the default: substitutions plus the texting style above)
    or lexicon (substitutions only).
    """

    OPTIONS = {"style": Option("mix", STYLES, "substitutions only, or the full texting style")}

    def perturb_text(self, text: str, severity: float, rng: random.Random,
                     protected: Sequence[tuple[int, int]]) -> str:
        lex = lexicon()
        text, protected = self._substitute(text, severity, rng, protected, lex)
        if self.options["style"] == "lexicon":
            return text
        return self._style(text, severity, rng, protected, lex)

    @staticmethod
    def _substitute(text: str, severity: float, rng: random.Random,
                    protected: Sequence[tuple[int, int]], lex: Lexicon
                    ) -> tuple[str, list[tuple[int, int]]]:
        matches = []
        for m in lex.matcher.finditer(text):
            if _overlaps(m.start(), m.end(), protected):
                continue
            key = lex.key_of(m.group())
            if key not in lex.substitutions:  # defensive: a key that normalises oddly
                continue
            if key in lex.needs_verb:
                nxt = _NEXT_WORD.match(text, m.end())
                if nxt is None:
                    continue
                word = nxt.group(1)
                upper_run = word.isupper() and m.group().isupper()
                if word.lower() in lex.not_verbs or not (word.islower() or upper_run):
                    continue  # a capitalised next word is a name: "going to Paris"
            matches.append((m, key))
        k = count_for(len(matches), severity, rng)
        if k == 0:
            return text, list(protected)
        chosen = sorted(rng.sample(range(len(matches)), k))
        pieces: list[str] = []
        shifts: list[tuple[int, int]] = []  # (original end, cumulative length change)
        pos = delta = 0
        for idx in chosen:
            m, key = matches[idx]
            new = match_case(_case_template(text, m), rng.choice(lex.substitutions[key]))
            pieces.append(text[pos:m.start()])
            pieces.append(new)
            delta += len(new) - (m.end() - m.start())
            shifts.append((m.end(), delta))
            pos = m.end()
        pieces.append(text[pos:])
        # Protected spans never overlap an edit, so each moves by the total length
        # change of the edits before it.
        moved = []
        for s, e in protected:
            d = 0
            for end, total in shifts:
                if end <= s:
                    d = total
            moved.append((s + d, e + d))
        return "".join(pieces), moved

    @staticmethod
    def _style(text: str, severity: float, rng: random.Random,
               protected: Sequence[tuple[int, int]], lex: Lexicon) -> str:
        tokens = tokenize(text, protected)
        p_apostrophe = _ramp(severity, 0.2, 0.8)
        lower = rng.random() < severity
        drop_final = rng.random() < severity
        add_tag = rng.random() < _ramp(severity, 0.5, 1.0)
        for tok in tokens:
            if not tok.editable:
                continue
            if p_apostrophe and _APOSTROPHES.search(tok.text) and rng.random() < p_apostrophe:
                tok.text = _APOSTROPHES.sub("", tok.text)
            if lower:
                tok.text = tok.text.lower()
        if drop_final and tokens and not tokens[-1].is_word and not tokens[-1].protected:
            last = tokens[-1]
            core = last.text.rstrip()
            trail = last.text[len(core):]
            last.text = core.rstrip(_TRAILING_MARKS) + trail
        out = detokenize(tokens)
        if add_tag and out.strip():
            body = out.rstrip()
            trail = out[len(body):]
            if rng.random() < 0.65 and lex.suffix_tags:
                out = f"{body} {rng.choice(lex.suffix_tags)}{trail}"
            elif lex.prefix_tags:
                stripped = body.lstrip()
                lead = body[:len(body) - len(stripped)]
                out = f"{lead}{rng.choice(lex.prefix_tags)} {stripped}{trail}"
        return out
