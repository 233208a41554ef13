"""Statistics of a list of messages: how noisy real traffic (or a set of variants) is.

:func:`measure` turns messages into a :class:`TrafficStats`: typo density, casing,
final and inner punctuation, contractions, texting forms, whitespace oddities, spoken
fillers and length. The same function measures a user's real messages and robustify's
variants, so the two can be compared field by field (:func:`compare`). How non-words
are told from names, brands and numbers is documented in
:mod:`perturbations.realism.wordlist`.
"""

from __future__ import annotations

import functools
import json
import re
import statistics
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable, Mapping

from .wordlist import APOSTROPHE_LESS, english_words, is_known

__all__ = ["TrafficStats", "measure", "STAT_FIELDS", "STAT_LABELS", "texting_forms",
           "message_facts"]

_DATA = Path(__file__).resolve().parent.parent / "data"
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_SKIP_SPANS = re.compile(r"\S+@\S+|https?://\S+|www\.\S+|[@#]\w+")
_CLOSERS = "\"'’”)]}*"
_FINAL = re.compile(r"[.?!…]$")
_INNER = re.compile(r"[,;:]|[.?!](?=\s+\S)")
_REPEATED = re.compile(r"[?!]{2,}|\.{2,}|…")
_WHITESPACE = re.compile(r" {2,}|\t|\n")
_DOUBLED = re.compile(r"\b([^\W\d_]+)\s+\1\b", re.IGNORECASE)
_CONTRACTION = re.compile(
    r"[^\W_]+['’](?:t|re|ve|ll|d|m)\b|\b(?:it|that|what|there|here|who|where|how|he|she|"
    r"let)['’]s\b", re.IGNORECASE)
_SPOKEN_FILLERS = frozenset({"um", "uh", "umm", "uhh", "er", "erm", "hmm", "mm", "uhm"})


@functools.cache
def texting_forms() -> frozenset[str]:
    """Lower-case chat forms: single-word texting forms of ``data/slang.json`` that are
    not ordinary words, its chat tags, and the informal spellings slang produces."""
    data = json.loads((_DATA / "slang.json").read_text(encoding="utf-8"))
    words = english_words()
    forms: set[str] = {"u", "ur", "r", "y", "k", "ya", "gonna", "wanna", "gotta", "kinda",
                       "sorta", "lemme", "gimme", "dunno", "cuz", "coz", "pls", "plz", "thx",
                       "ty", "idk", "lol", "tbh", "btw", "imo", "omg", "asap", "lmao"}
    for values in data.get("substitutions", {}).values():
        for value in values:
            token = value.lower()
            if _WORD.fullmatch(token) and token not in words:
                forms.add(token)
    for tag in [*data.get("tags", {}).get("prefix", ()), *data.get("tags", {}).get("suffix", ())]:
        for token in _WORD.findall(tag.lower()):
            if token not in words:
                forms.add(token)
    return frozenset(forms)


@dataclass(frozen=True)
class TrafficStats:
    """The noise of a set of messages. Shares are fractions of messages in [0, 1]."""

    n: int
    """Number of messages measured."""
    words: float
    """Mean words per message."""
    words_p90: float
    """90th percentile of words per message (long tail: pasted text, distractors)."""
    typos_per_100: float
    """Non-words per 100 checked words (see :mod:`perturbations.realism.wordlist`)."""
    typo_share: float
    """Share of messages with at least one non-word."""
    lower_share: float
    """Share of messages with letters but no capital letter."""
    upper_share: float
    """Share of messages written all in capitals (four letters or more)."""
    no_final_punct: float
    """Share of messages not ending in ``.``, ``?``, ``!`` or an ellipsis."""
    inner_punct_per_100: float
    """Commas, semicolons, colons and sentence marks inside the message per 100 words."""
    repeated_marks: float
    """Share of messages with ``??``, ``!!`` or ``...``."""
    contraction_share: float
    """Share of messages with a contraction ("don't", "it's"; also "dont")."""
    texting_share: float
    """Share of messages with a chat form ("u", "pls", "idk", "gonna", "dont")."""
    whitespace_share: float
    """Share of messages with a doubled space, a tab or a line break inside."""
    filler_share: float
    """Share of messages with a spoken filler ("um", "uh") or a doubled word ("the the")."""

    def to_dict(self) -> dict[str, float]:
        """Plain dict (rounded to 4 decimals), for YAML, JSON and reports."""
        return {k: (v if isinstance(v, int) else round(float(v), 4))
                for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> "TrafficStats":
        """Inverse of :meth:`to_dict`; missing fields are an error (``KeyError``)."""
        return cls(**{f.name: (int(data[f.name]) if f.name == "n" else float(data[f.name]))
                      for f in fields(cls)})


STAT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(TrafficStats) if f.name != "n")
"""The comparable fields of :class:`TrafficStats`, in display order."""

STAT_LABELS: Mapping[str, str] = {
    "words": "words per message", "words_p90": "words, 90th percentile",
    "typos_per_100": "typos per 100 words", "typo_share": "messages with a typo",
    "lower_share": "all lower case", "upper_share": "all capitals",
    "no_final_punct": "no final punctuation", "inner_punct_per_100": "inner marks per 100 words",
    "repeated_marks": "repeated marks (??, ...)", "contraction_share": "with a contraction",
    "texting_share": "with a chat form", "whitespace_share": "odd whitespace",
    "filler_share": "spoken fillers / doubled words",
}
"""Human labels of :data:`STAT_FIELDS` for tables."""


def _sentence_starts(text: str) -> set[int]:
    starts = {0}
    for m in re.finditer(r"[.?!]+[\s\"'’”)]*|\n", text):
        starts.add(m.end())
    return starts


def _prepare(text: str) -> tuple[str, str, bool, set[int]]:
    body = text.strip()
    letters = [c for c in body if c.isalpha()]
    all_caps = len(letters) >= 4 and not any(c.islower() for c in letters)
    masked = _SKIP_SPANS.sub(lambda m: " " * len(m.group()), body)
    return body, masked, all_caps, _sentence_starts(masked)


def _names(texts: list[str]) -> frozenset[str]:
    """Lower-case words the texts themselves write as names: capitalised mid-sentence,
    mixed case or as an acronym, and not in the word list ("Mulan", "AMC", "Olly")."""
    found: set[str] = set()
    for text in texts:
        _, masked, all_caps, starts = _prepare(text)
        if all_caps:
            continue
        for m in _WORD.finditer(masked):
            token = m.group()
            if token[:1].isupper() and (m.start() not in starts or token.isupper()
                                        or any(c.isupper() for c in token[1:])):
                low = token.lower()
                if not is_known(low):
                    found.add(low)
    return frozenset(found)


_PLACEHOLDER = re.compile(r"^(\w)\1{2,}$", re.IGNORECASE)


def message_facts(text: str, names: frozenset[str] = frozenset()) -> dict[str, float]:
    """Per-message counts behind :func:`measure` (words, non-words, flags).

    ``names`` are lower-case words known to be names in this traffic: they are never
    counted as non-words, whatever their case here.
    """
    body, masked, all_caps, starts = _prepare(text)
    letters = [c for c in body if c.isalpha()]
    texting = texting_forms()
    words = checked = typos = chat = contraction = filler = 0
    for m in _WORD.finditer(masked):
        token = m.group()
        words += 1
        low = token.lower().replace("’", "'")
        if low in texting or low in APOSTROPHE_LESS:
            chat += 1
            contraction += low in APOSTROPHE_LESS
            continue
        if low in _SPOKEN_FILLERS:
            filler += 1
            continue
        if any(c.isdigit() for c in token) or len(token) < 2 or low in names \
                or _PLACEHOLDER.match(token):
            continue
        at_start = m.start() in starts or not masked[:m.start()].strip()
        if not all_caps:
            if token.isupper():
                continue  # an acronym: AMC, PDA
            if token[0].isupper() and not at_start:
                continue  # a name, brand or place mid-sentence
            if any(c.isupper() for c in token[1:]):
                continue  # iPhone, GameSpot
        checked += 1
        if not is_known(token):
            typos += 1
    stripped = body.rstrip(_CLOSERS + " ")
    return {
        "words": words, "checked": checked, "typos": typos,
        "lower": float(bool(letters) and not any(c.isupper() for c in letters)),
        "upper": float(all_caps),
        "no_final": float(bool(body) and not _FINAL.search(stripped)),
        "inner": float(len(_INNER.findall(stripped[:-1] if _FINAL.search(stripped) else stripped))),
        "repeated": float(bool(_REPEATED.search(body))),
        "contraction": float(bool(_CONTRACTION.search(body)) or contraction > 0),
        "texting": float(chat > 0),
        "whitespace": float(bool(_WHITESPACE.search(body))),
        "filler": float(filler > 0 or bool(_DOUBLED.search(masked))),
    }


def measure(texts: Iterable[str], *, names_from: Iterable[str] = ()) -> TrafficStats:
    """Measure the noise of ``texts`` (messages; blank ones are skipped).

    Names are learnt from the texts first (a word written capitalised mid-sentence, in
    mixed case or as an acronym anywhere in them is a name everywhere in them), so
    "petaluma" is not a typo in traffic that also writes "Petaluma, CA". Pass the clean
    texts as ``names_from`` when measuring variants of them: a name the benchmark
    capitalises stays a name in a variant that lower-cased it.

    Raises:
        ValueError: no non-blank message.
        MissingDependencyError: the word list (pyspellchecker) is not installed.
    """
    kept = [t for t in texts if isinstance(t, str) and t.strip()]
    names = _names(kept) | _names([t for t in names_from if isinstance(t, str)])
    facts = [message_facts(t, names) for t in kept]
    if not facts:
        raise ValueError("no messages to measure")
    n = len(facts)
    lengths = sorted(f["words"] for f in facts)
    total_words = sum(lengths) or 1
    checked = sum(f["checked"] for f in facts) or 1
    share = lambda key: sum(f[key] for f in facts) / n  # noqa: E731
    p90 = statistics.quantiles(lengths, n=10, method="inclusive")[-1] if n > 1 else lengths[0]
    return TrafficStats(
        n=n,
        words=statistics.fmean(lengths),
        words_p90=float(p90),
        typos_per_100=100.0 * sum(f["typos"] for f in facts) / checked,
        typo_share=sum(1 for f in facts if f["typos"]) / n,
        lower_share=share("lower"),
        upper_share=share("upper"),
        no_final_punct=share("no_final"),
        inner_punct_per_100=100.0 * sum(f["inner"] for f in facts) / total_words,
        repeated_marks=share("repeated"),
        contraction_share=share("contraction"),
        texting_share=share("texting"),
        whitespace_share=share("whitespace"),
        filler_share=share("filler"),
    )
