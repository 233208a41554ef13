"""Contractions: "do not" -> "don't", "it is" -> "it's", and back.

The table is :file:`perturbations/data/contractions.json`, written for this project.
Contracting is constrained by grammar: an auxiliary cannot be contracted at the end of a
clause ("I know what it is." never becomes "what it's."), and "have"/"has" contract only
as auxiliaries, before a past participle ("I have been" -> "I've been", but "I have a
cat" stays). Where two contractions compete the negative one wins ("it will not" ->
"it won't", not "it'll not"; "I am not" -> "I'm not"). Expanding resolves the ambiguous endings by the next word: "'s" is "is"
unless "been", "got", "gotten" or "had" follows ("it's been" -> "it has been"); "'d" is
"would" unless a past participle or "better" follows ("he'd gone" -> "he had gone").
"""

from __future__ import annotations

import functools
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ..base import Option, TextTransform
from ..errors import DataError
from ..registry import register
from ..text import count_for, match_case
from .slang import PhraseMatcher

__all__ = ["Contractions", "ContractionTable", "table", "TABLE_PATH", "MODES"]

TABLE_PATH = Path(__file__).resolve().parent.parent / "data" / "contractions.json"
"""Where the contraction table lives."""

MODES = ("contract", "expand")
"""Values of the ``mode`` option."""

_APOSTROPHES = re.compile(r"['’]")
_NEXT_WORD = re.compile(r"[ \t]+([^\W_]+(?:['’][^\W_]+)*)")


@dataclass(frozen=True)
class ContractionTable:
    """The parsed contraction table, with one phrase matcher per direction."""

    contract: Mapping[str, str]
    """Long form -> contraction (lower case, straight apostrophe)."""
    expand: Mapping[str, tuple[str, str | None]]
    """Contraction -> (default long form, alternative before a marker word or None)."""
    needs_next_word: frozenset[str]
    """Long forms contracted only when a word follows."""
    needs_participle: frozenset[str]
    """Long forms contracted only before a past participle."""
    has_markers: frozenset[str]
    """Words after "'s" that make it "has"."""
    participles: frozenset[str]
    """Irregular past participles (regular ones end in -ed)."""
    adverbs: frozenset[str]
    """Words skipped when looking for the word after an auxiliary ("have never seen")."""
    had_markers: frozenset[str]
    """Words after "'d" that make it "had" besides participles ("better")."""
    contract_matcher: PhraseMatcher
    """Finds the long forms."""
    expand_matcher: PhraseMatcher
    """Finds the contractions."""

    @staticmethod
    def key_of(matched: str) -> str:
        """Normalise matched text to its table key."""
        return " ".join(_APOSTROPHES.sub("'", matched).lower().split())


@functools.cache
def table() -> ContractionTable:
    """Load and compile :data:`TABLE_PATH` once.

    Raises:
        DataError: the file is missing or malformed.
    """
    path = str(TABLE_PATH)
    try:
        with open(TABLE_PATH, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise DataError("the contraction table is missing; reinstall robustify",
                        path=path) from None
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from None
    contract = {ContractionTable.key_of(k): v.lower() for k, v in data["contract"].items()}
    expand: dict[str, tuple[str, str | None]] = {}
    for key, value in data["expand"].items():
        if isinstance(value, str):
            expand[ContractionTable.key_of(key)] = (value.lower(), None)
        elif isinstance(value, list) and len(value) == 2:
            expand[ContractionTable.key_of(key)] = (value[0].lower(), value[1].lower())
        else:
            raise DataError(f"expansion of {key!r} must be a string or [default, alternative]",
                            path=path, field="expand")

    def words(name: str) -> frozenset[str]:
        return frozenset(ContractionTable.key_of(w) for w in data.get(name, ()))

    return ContractionTable(
        contract=contract,
        expand=expand,
        needs_next_word=words("needs_next_word"),
        needs_participle=words("needs_participle"),
        has_markers=words("has_markers"),
        participles=words("participles"),
        adverbs=words("adverbs"),
        had_markers=words("had_markers"),
        contract_matcher=PhraseMatcher(contract),
        expand_matcher=PhraseMatcher(expand),
    )


def _next_words(text: str, pos: int, limit: int = 3) -> list[str]:
    """Up to ``limit`` words following ``pos`` in the same clause (lower case)."""
    out: list[str] = []
    while len(out) < limit:
        m = _NEXT_WORD.match(text, pos)
        if m is None:
            break
        out.append(ContractionTable.key_of(m.group(1)))
        pos = m.end()
    return out


def _head_after_adverbs(words: Sequence[str], adverbs: frozenset[str]) -> str | None:
    for w in words:
        if w not in adverbs:
            return w
    return None


def _is_participle(word: str | None, tab: ContractionTable) -> bool:
    if word is None:
        return False
    return word in tab.participles or (len(word) > 4 and word.endswith("ed")
                                       and not word.endswith("eed"))


@register("contractions", family="contractions", label_policy="preserves")
class Contractions(TextTransform):
    """Contract long forms ("do not" -> "don't") or expand contractions ("it's" -> "it is").

    Severity: share of the candidate phrases changed (= severity; 1 changes every
    candidate). Candidates are the table entries found in the text that the grammar
    allows to change (see the module notes); a text without any is left as it is.
    Label: preserves. Meaning is kept: ambiguous contractions are expanded by the next
    word ("it's been" -> "it has been", "it's red" -> "it is red"; "he'd gone" -> "he had
    gone", "he'd go" -> "he would go"), "can't" expands to "cannot", and phrases that
    overlap numbers, number words or declared phrases are left alone.
    Options: ``mode`` = contract (the default) or expand. Contractions are written with
    the apostrophe style the text already uses (’ if it has curly and no straight ones).
    """

    OPTIONS = {"mode": Option("contract", MODES, "contract long forms or expand contractions")}
    rewrites_negations = True  # "do not" -> "don't" keeps the negation
    NOTHING_TO_CHANGE = "no phrase to contract or expand"

    def count_candidates(self, text: str, severity: float,
                         protected: Sequence[tuple[int, int]]) -> int:
        return len(self._edits(text, protected))

    def perturb_text(self, text: str, severity: float, rng: random.Random,
                     protected: Sequence[tuple[int, int]]) -> str:
        edits = self._edits(text, protected)
        k = count_for(len(edits), severity, rng)
        if k == 0:
            return text
        curly = "’" in text and "'" not in text
        pieces: list[str] = []
        pos = 0
        for idx in sorted(rng.sample(range(len(edits)), k)):
            start, end, new = edits[idx]
            pieces += [text[pos:start], new.replace("'", "’") if curly else new]
            pos = end
        pieces.append(text[pos:])
        return "".join(pieces)

    def _edits(self, text: str, protected: Sequence[tuple[int, int]]
               ) -> list[tuple[int, int, str]]:
        """(start, end, replacement) of every phrase the grammar lets change."""
        tab = table()
        expand = self.options["mode"] == "expand"
        matcher = tab.expand_matcher if expand else tab.contract_matcher
        edits: list[tuple[int, int, str]] = []
        pos = 0
        while True:
            m = matcher.search(text, pos)
            if m is None:
                break
            pos = m.end()
            key = tab.key_of(m.group())
            after = _next_words(text, m.end())
            if not expand and after[:1] == ["not"]:
                # "it will not" -> "it won't" rather than "it'll not": when the auxiliary
                # has a negative contraction, let the search restart at the auxiliary.
                aux = key.split()[-1]
                if " " in key and f"{aux} not" in tab.contract:
                    pos = m.start() + len(m.group()) - len(m.group().split()[-1])
                    continue
            if any(s < m.end() and m.start() < e for s, e in protected):
                continue
            new = self._expansion(key, after, tab) if expand else self._contraction(key, after, tab)
            if new is not None:
                edits.append((m.start(), m.end(), match_case(m.group(), new)))
        return edits

    @staticmethod
    def _contraction(key: str, after: Sequence[str], tab: ContractionTable) -> str | None:
        short = tab.contract.get(key)
        if short is None:
            return None
        if key in tab.needs_next_word and not after:
            return None
        if key in tab.needs_participle and \
                not _is_participle(_head_after_adverbs(after, tab.adverbs), tab):
            return None
        return short

    @staticmethod
    def _expansion(key: str, after: Sequence[str], tab: ContractionTable) -> str | None:
        entry = tab.expand.get(key)
        if entry is None:
            return None
        default, alternative = entry
        if alternative is None:
            return default
        head = _head_after_adverbs(after, tab.adverbs)
        if key.endswith("'s"):
            return alternative if head in tab.has_markers else default
        if head in tab.had_markers or _is_participle(head, tab):
            return alternative
        return default
