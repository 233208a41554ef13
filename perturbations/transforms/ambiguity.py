"""Ambiguity: the user leaves out what the question hinges on.

Real users say "how far is it from there?" instead of "how far is Paris from Lyon in
kilometres?". This transform makes a question vague in four ways (``kind``):

* ``referent``: named entities and noun phrases become vague referents
  ("that place", "this guy", "the thing I mentioned");
* ``quantity``: numbers become vague quantities ("a few", "lots of", "back then");
* ``qualifier``: explicit constraints are dropped ("only", "at least", "in 2019",
  "in kilometres", "according to the passage");
* ``format``: the requested answer format is dropped ("Answer with a single letter.").

Every kind first lists candidate edits (a span and the vague phrases that may replace
it), then severity picks a share of them. The lexicon is ``data/vague.json``.
"""

from __future__ import annotations

import functools
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..base import Option, TextTransform
from ..registry import register
from ..text import count_for, tokenize
from .numbers import NUMBER_RUN

__all__ = ["Ambiguity", "load_vague_lexicon"]

_DATA = Path(__file__).resolve().parent.parent / "data"

_KINDS = ("referent", "quantity", "qualifier", "format")

# Cardinal number words that state an amount ("one", "first", "half" are left alone:
# they work as pronouns and ordinals as often as quantities).
_CARDINALS = ("two three four five six seven eight nine ten eleven twelve thirteen fourteen "
              "fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty "
              "seventy eighty ninety hundred thousand million billion dozen hundreds "
              "thousands millions billions dozens").split()
_SMALL_WORDS = {"two"}
_MEDIUM_WORDS = {"three", "four", "five", "six", "seven", "eight", "nine"}
_CARD = "|".join(_CARDINALS)
_NUMBER_WORDS_RUN = re.compile(
    rf"(?<![\w-])(?:an?\s+)?(?:{_CARD})(?:(?:-|\s+|\s+and\s+)(?:{_CARD}))*(?![\w-])",
    re.IGNORECASE)
_CLOCK_SUFFIX = re.compile(r"\s*(?:a\.?m\.?|p\.?m\.?|o'clock)(?![\w])", re.IGNORECASE)
_STOP = frozenset("""
a an the this that these those my your his her its our their and or but if then than so
of in on at to for from by with about as into over under after before between through
during without within is are was were be been being am do does did done have has had
i me you he she it we they them us him what which who whom whose when where why how
not no yes can could will would shall should may might must there here also just very
too more most less least many much some any all each every other another such own same
up down out off again once only few both either neither one
please back now today tonight still ever else yet already soon later right away
""".split())
_DAY_PARTS = frozenset({"morning", "mornings", "afternoon", "afternoons", "evening",
                        "evenings", "night", "nights"})
_TIME_LEADS = frozenset({"last", "next", "this", "that", "every"})
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@functools.cache
def load_vague_lexicon() -> dict[str, Any]:
    """The lexicon in ``perturbations/data/vague.json`` (loaded once)."""
    text = (_DATA / "vague.json").read_text(encoding="utf-8")
    return json.loads(text)


@functools.cache
def _compiled(key: str) -> tuple[re.Pattern[str], ...]:
    flags = re.IGNORECASE | (re.DOTALL if key == "format_sentences" else 0)
    return tuple(re.compile(p, flags) for p in load_vague_lexicon()[key])


@dataclass(frozen=True)
class _Edit:
    start: int
    end: int
    choices: tuple[str, ...]
    """Replacements to draw from; ``("",)`` deletes the span."""


def _at_sentence_start(text: str, pos: int) -> bool:
    before = text[:pos].rstrip(" \t\"'“‘(")
    return not before or before[-1] in ".!?\n"


def _previous_word(text: str, pos: int) -> str:
    m = re.search(r"([^\W_]+)[^\w]*$", text[:pos])
    return m.group(1).lower() if m else ""


def _next_word(text: str, pos: int) -> str | None:
    """The word right after ``pos`` (across spaces only), or None at punctuation/end."""
    m = re.match(r"[ \t]+([^\W\d_]+)", text[pos:])
    return m.group(1).lower() if m else None


# ---------------------------------------------------------------- referent

def _referent_edits(text: str, protected: Sequence[tuple[int, int]]) -> list[_Edit]:
    lex = load_vague_lexicon()
    refs = lex["referents"]
    tokens = tokenize(text, protected)
    offsets = []
    pos = 0
    for tok in tokens:
        offsets.append(pos)
        pos += len(tok.text)
    connectors = set(lex["entity_connectors"])
    not_entities = set(lex["not_entities"])
    titles = set(lex["person_titles"])
    times = set(lex["time_names"])
    dets = set(lex["determiners"])
    plural_dets = set(lex["plural_determiners"])

    def capitalized(i: int) -> bool:
        tok = tokens[i]
        word = tok.text
        # "Is", "The", "What" are capitalised only because they open a sentence
        return (tok.editable and word[:1].isupper() and word.lower() not in not_entities
                and word.lower() not in _STOP
                and not (len(word) == 1 and word.isupper()) and not word[:1].isdigit())

    edits: list[_Edit] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.is_word:
            i += 1
            continue
        start = offsets[i]
        # Named entity: a run of capitalised words, maybe joined by "of", "and", "the".
        if capitalized(i):
            j = i
            words = [tok.text]
            while j + 2 < len(tokens) and tokens[j + 1].text == " ":
                if capitalized(j + 2):
                    words.append(tokens[j + 2].text)
                    j += 2
                elif (tokens[j + 2].text.lower() in connectors and j + 4 < len(tokens)
                      and tokens[j + 3].text == " " and capitalized(j + 4)):
                    words += [tokens[j + 2].text, tokens[j + 4].text]
                    j += 4
                else:
                    break
            lowered = [w.lower().rstrip(".") for w in words]
            time_name = len(words) == 1 and lowered[0] in times
            if time_name and j + 2 < len(tokens) and tokens[j + 1].text == " " \
                    and tokens[j + 2].text.lower() in _DAY_PARTS:
                j += 2  # "Sunday mornings" is one referent
            end = offsets[j] + len(tokens[j].text)
            # "the Nile", "last Tuesday": the word before belongs to the referent
            lead = _word_before(tokens, i)
            if lead is not None and (tokens[lead].text.lower() in dets or (
                    time_name and tokens[lead].text.lower() in _TIME_LEADS)):
                start = offsets[lead]
            initial = _at_sentence_start(text, start)
            if not initial or len(words) > 1 or start != offsets[i]:
                cue = _previous_word(text, start)
                if lowered[0] in titles:
                    kind = "person"
                elif time_name:
                    kind = "time"
                elif cue in lex["place_cues"]:
                    kind = "place"
                elif cue in lex["person_cues"]:
                    kind = "person"
                else:
                    kind = "generic"
                edits.append(_Edit(start, end, tuple(refs[kind])))
            i = j + 1
            continue
        # Noun phrase: determiner + up to three content words.
        if tok.text.lower() in dets and tok.editable:
            j = i
            words = []
            while (j + 2 < len(tokens) and tokens[j + 1].text == " " and len(words) < 3
                   and _content_word(tokens[j + 2])):
                word = tokens[j + 2].text
                # Without a tagger, "the sky looks" must not swallow the verb: after the
                # first word, a word ending in -s or -ed most likely is one.
                if words and re.search(r"(?:[^su]s|ed)$", word) and not words[-1].endswith("s"):
                    break
                words.append(word)
                j += 2
            if words:
                end = offsets[j] + len(tokens[j].text)
                plural = tok.text.lower() in plural_dets or (
                    words[-1].endswith("s") and not words[-1].endswith("ss"))
                edits.append(_Edit(start, end, tuple(refs["things" if plural else "thing"])))
                i = j + 1
                continue
        i += 1
    return edits


def _content_word(tok: Any) -> bool:
    return (tok.editable and tok.text.isalpha() and tok.text.islower()
            and tok.text not in _STOP)


def _word_before(tokens: Sequence[Any], i: int) -> int | None:
    """Index of the word separated from ``tokens[i]`` by one space, if any."""
    if i >= 2 and tokens[i - 1].text == " " and tokens[i - 2].is_word and tokens[i - 2].editable:
        return i - 2
    return None


# ---------------------------------------------------------------- quantity

def _size(value: float) -> str:
    if value <= 2:
        return "small"
    if value < 10:
        return "medium"
    return "large"


def _word_size(text: str) -> str:
    words = set(re.findall(r"[a-z]+", text.lower())) - {"a", "an", "and"}
    if words <= _SMALL_WORDS:
        return "small"
    if words <= _SMALL_WORDS | _MEDIUM_WORDS:
        return "medium"
    return "large"


def _amount_choices(text: str, start: int, end: int, size: str) -> tuple[str, ...]:
    q = load_vague_lexicon()["quantities"]
    if _previous_word(text, start) in ("the", "these", "those", "my", "your", "his", "her",
                                       "our", "their", "its"):
        return tuple(q["after_determiner"][size])
    following = _next_word(text, end)
    form = "before_noun" if following is not None and following != "of" else "alone"
    return tuple(q[size][form])


def _quantity_edits(text: str) -> list[_Edit]:
    lex = load_vague_lexicon()
    q = lex["quantities"]
    edits: list[_Edit] = []
    for m in NUMBER_RUN.finditer(text):
        start, end = m.span()
        num, suf, cur = m.group("num"), m.group("suf"), m.group("cur")
        plain = num.replace(",", "")
        clock = _CLOCK_SUFFIX.match(text, end)
        prev = _previous_word(text, start)
        if cur:
            choices = q["money"]
        elif suf == "%":
            choices = q["percent"]
        elif suf:
            choices = q["ordinal"]
        elif ":" in num or clock:
            if clock:
                end = clock.end()
            choices = q["clock"]
        elif re.fullmatch(r"1\d{3}|20\d{2}", plain) and (prev in lex["year_phrase_cues"]
                                                       or prev in lex["year_cues"]):
            if prev in lex["year_phrase_cues"]:
                # "in 2019" -> "a while ago": the preposition goes with the year
                start = _rfind_word(text, prev, start)
                choices = q["year_phrase"]
            else:
                choices = q["year"]
        elif re.fullmatch(r"\d+(?:\.\d+)?", plain):
            value = float(plain)
            if value == 0:
                choices = ("hardly any",)
            elif value == 1:
                # "a few" would be wrong rather than vague; keep it near one
                choices = ("one or two", "maybe one")
            else:
                choices = _amount_choices(text, start, end, _size(value))
        else:  # dates, fractions, lists, versions: some number
            choices = ("some number", "whatever it was")
        edits.append(_Edit(start, end, tuple(choices)))
    for m in _NUMBER_WORDS_RUN.finditer(text):
        start, end = m.span()
        edits.append(_Edit(start, end, _amount_choices(text, start, end, _word_size(m.group()))))
    return edits


def _rfind_word(text: str, word: str, before: int) -> int:
    m = None
    for m in re.finditer(rf"(?<!\w){re.escape(word)}(?!\w)", text[:before], re.IGNORECASE):
        pass
    return m.start() if m else before


# ---------------------------------------------------------------- qualifier / format

def _pattern_edits(text: str, key: str) -> list[_Edit]:
    edits = []
    for pattern in _compiled(key):
        for m in pattern.finditer(text):
            if m.end() > m.start() and m.group().strip(" ,"):
                edits.append(_Edit(m.start(), m.end(), ("",)))
    return edits


def _format_edits(text: str) -> list[_Edit]:
    edits = _pattern_edits(text, "format_inline")
    sentence_patterns = _compiled("format_sentences")
    pos = 0
    for piece in _SENTENCE_END.split(text):
        start = text.index(piece, pos)
        end = start + len(piece)
        pos = end
        stripped = piece.strip()
        # Never drop the question itself, only an instruction next to it.
        if stripped and not stripped.endswith("?") and any(
                p.search(stripped) for p in sentence_patterns):
            edits.append(_Edit(start, end, ("",)))
    return edits


# ---------------------------------------------------------------- assembly

def _non_overlapping(edits: list[_Edit]) -> list[_Edit]:
    """Keep the longest of overlapping edits, scanning left to right."""
    chosen: list[_Edit] = []
    for e in sorted(edits, key=lambda e: (e.start, -(e.end - e.start), e.choices)):
        if chosen and e.start < chosen[-1].end:
            continue
        chosen.append(e)
    return chosen


def _tidy(text: str, original: str) -> str:
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r"[ \t]+([,.;:?!])", r"\1", text)
    text = re.sub(r",(?=[.;:?!,])", "", text)
    text = re.sub(r"^[\s,;:]+", "", text)
    text = re.sub(r"[ \t]+\n", "\n", text)
    if not original[-1:].isspace():
        text = text.rstrip()
    if original[:1].isupper() and text[:1].islower():
        text = text[:1].upper() + text[1:]
    return text


@register("ambiguity", family="ambiguity", label_policy="may_break")
class Ambiguity(TextTransform):
    """Make the question vague: referents, quantities, constraints or format go missing.

    ``referent`` replaces named entities and noun phrases with vague ones ("that place",
    "this guy", "the thing I mentioned"); ``quantity`` turns numbers and number words
    into vague amounts ("a few", "lots of", "back then"); ``qualifier`` removes explicit
    constraints ("only", "at least", "in 2019", "in kilometres", "according to the
    passage"); ``format`` removes the requested answer format ("Answer with a single
    letter.", "in one word", "(yes/no)"). ``mix`` pools the candidates of all four.

    Severity: share of the candidate spans made vague (0.5 -> about half of them;
    1 -> all). Texts with no candidate for the chosen kind come back unchanged.
    Label: may_break. Once "in 2019" or the entity is gone, the gold answer may no longer
    follow from the question; the model should ask for clarification instead.
    Options: ``kind`` = referent | quantity | qualifier | format | mix (default mix).
    """

    OPTIONS = {"kind": Option("mix", (*_KINDS, "mix"), "what is made vague")}

    def perturb_text(self, text: str, severity: float, rng: random.Random,
                     protected: Sequence[tuple[int, int]]) -> str:
        kind = self.options["kind"]
        kinds = _KINDS if kind == "mix" else (kind,)
        edits: list[_Edit] = []
        if "referent" in kinds:
            edits += _referent_edits(text, protected)
        if "quantity" in kinds:
            edits += _quantity_edits(text)
        if "qualifier" in kinds:
            edits += _pattern_edits(text, "qualifiers")
        if "format" in kinds:
            edits += _format_edits(text)
        candidates = _non_overlapping(edits)
        chosen = rng.sample(candidates, count_for(len(candidates), severity, rng))
        if not chosen:
            return text
        out = text
        for edit in sorted(chosen, key=lambda e: e.start, reverse=True):
            phrase = rng.choice(edit.choices)
            if phrase and _at_sentence_start(out, edit.start):
                phrase = phrase[:1].upper() + phrase[1:]
            out = out[:edit.start] + phrase + out[edit.end:]
        return _tidy(out, text)
