"""The guard: does a variant still ask what its clean item asks, with the same answer?

:func:`check_variant` compares a clean :class:`~perturbations.records.Item` with a
perturbed one under the variant's label policy and returns the violations it finds.
It is a pure function of the two items (no RNG, no state), so the engine can run it on
every variant, whatever transform made it, and redraw or drop the ones that fail.

What each policy must keep (see ``docs/guard.md``):

* ``preserves``: the target and the number of options; in every text field (question,
  passage, each option) every number by value (``.5``, ``1,000``, ``3/4``, ``20%``,
  ``$4.50``, ``twenty-five``; none lost, none added), every negation (none lost, none
  added), the decisive words (``except``, ``least``, ``false``, ``than``), upper-case
  words (``NOT``, ``EXCEPT``, acronyms), quoted terms, named entities and technical
  terms (recognisable: typos and case changes pass, replacements do not), option
  letters written in the text and the answer string where the text contains it.
* ``remaps``: the same in the question and passage; the options are the same texts in
  another order, the gold letter names the same option text, options that name other
  options by letter still name the same texts, "all of the above" keeps the same
  options above it, and a question that names options by letter sees them unmoved.
* ``may_break``: the target and the number of options; no number and no negation may
  appear that the clean text did not have (losing them is the point).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterator, Sequence

from rapidfuzz.distance import OSA

from .keywords import (caps_words, decisive_counts, is_acronym, is_caps_word, is_negation,
                       negation_count)
from .quantities import NUMBER_VOCABULARY
from .quantities import quantities
from .records import Item, answer_strings, choice_letter
from .references import option_links, question_letters
from .text import OPTION_LETTER, answer_spans, quoted_spans

__all__ = ["Violation", "check_variant", "without_asides", "POLICY_KEEPS", "VIOLATION_KINDS"]

POLICY_KEEPS = {
    "preserves": ("target", "options", "numbers", "negations", "decisive words",
                  "upper-case words", "quoted terms", "entities and terms",
                  "option letters", "answer string"),
    "remaps": ("gold option text", "option references", "numbers", "negations",
               "decisive words", "upper-case words", "quoted terms", "entities and terms",
               "option letters", "answer string"),
    "may_break": ("target", "options", "no new number", "no new negation"),
}
"""What each label policy must keep; the guard checks exactly these."""

VIOLATION_KINDS = (
    "target_changed", "choices_changed", "number_lost", "number_added", "negation_lost",
    "negation_added", "decisive_lost", "decisive_added", "caps_lost", "quote_lost",
    "entity_lost", "term_lost", "letter_lost", "answer_lost", "gold_moved", "link_broken",
    "question_letters",
)
"""Every ``Violation.kind`` the guard reports."""

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*(?:-[^\W_]+)*")
_SENTENCE_END = re.compile(r"[.!?:;\n]\W*$")
_FUNCTION = frozenset("""
a an the of to in on at for with and or but by as from is are was were be been am do does
did has have had it its this that these those what which who how why when where your my
our their his her i you we they he she them us me not no if so than then there here
""".split())


@dataclass(frozen=True)
class Violation:
    """One thing a variant lost or gained that its label policy forbids."""

    kind: str
    """One of :data:`VIOLATION_KINDS`."""
    field: str
    """``input``, ``context``, ``choices[2]``, ``choices`` or ``target``."""
    detail: str
    """What was lost or added, e.g. ``'0.5' lost`` or ``'three' added``."""

    def __str__(self) -> str:
        return f"{self.kind}@{self.field}: {self.detail}"


def check_variant(clean: Item, perturbed: Item, policy: str) -> tuple[Violation, ...]:
    """Violations of ``policy`` when ``clean`` became ``perturbed`` (empty: it passes).

    Args:
        clean: The original item.
        perturbed: The variant's item.
        policy: ``preserves``, ``remaps`` or ``may_break`` (the variant's label policy).
    """
    if perturbed == clean:
        return ()
    out: list[Violation] = []
    if policy != "remaps" and perturbed.target != clean.target:
        out.append(Violation("target_changed", "target",
                             f"{clean.target!r} -> {perturbed.target!r}"))
    if (clean.choices is None) != (perturbed.choices is None) or (
            clean.choices and len(clean.choices) != len(perturbed.choices or ())):
        out.append(Violation("choices_changed", "choices", "options added or removed"))
        return tuple(out)
    answers = answer_strings(clean)
    vocab = _entity_vocabulary(clean)
    for name, before, after, field_answers in _text_fields(clean, perturbed, policy, answers):
        if before == after:
            continue
        if policy == "may_break":
            out += _nothing_invented(name, before, after)
        else:
            out += _text_violations(name, before, after, field_answers, vocab)
    if policy == "remaps":
        out += _remap_violations(clean, perturbed)
    return tuple(out)


def _text_fields(clean: Item, perturbed: Item, policy: str, answers: Sequence[str]
                 ) -> Iterator[tuple[str, str, str, Sequence[str]]]:
    yield "input", clean.input, perturbed.input, answers
    yield "context", clean.context or "", perturbed.context or "", answers
    if clean.choices and perturbed.choices:
        if policy == "remaps" and sorted(clean.choices) == sorted(perturbed.choices):
            return  # moved, not rewritten: the remap checks cover them
        for i, (a, b) in enumerate(zip(clean.choices, perturbed.choices)):
            yield f"choices[{i}]", a, b, ()


MIN_ASIDE_WORDS = 3
"""An inserted run shorter than this is a filler or a tag, not a sentence of its own."""


def without_asides(before: str, after: str) -> str:
    """``after`` without the sentences added before or after the original text.

    A distractor ("I can't find my glasses anywhere.") is a sentence of its own: its
    negation does not negate the question. The original is located in ``after`` as the
    run of words with the highest score: +2 for a content word that matches an original
    word (typos allowed), 0 for a function word or negation the original has, -1 for any
    other. What lies before or after that run is an aside when it has at least
    :data:`MIN_ASIDE_WORDS` words, two of them content words the original lacks. Only
    the *added* checks use the result: cutting too much can hide an addition, never
    invent one.
    """
    a_words = list(_WORD.finditer(after))
    known = {m.group().lower() for m in _WORD.finditer(before)}
    # "I", "the", "can't" anchor nothing, unless the original has no other words
    lean = 0 if any(_content(w) for w in known) else 2
    weights = []
    for m in a_words:
        word = m.group().lower()
        if not _content(word):
            weights.append(lean if word in known else -1)
        else:
            hit = word in known or any(_close(k, word) for k in known if len(k) >= 3)
            weights.append(2 if hit else -2)  # -2: an unknown content word
    best = (0, 0, 0)  # (score, start, end)
    score, start = 0, 0
    for j, weight in enumerate(weights):
        if score <= 0:
            score, start = 0, j
        score += max(weight, -1)
        if score > best[0]:
            best = (score, start, j + 1)
    _, first, last = best
    if last == 0:
        return after

    def joined(j: int) -> bool:  # no sentence end between a_words[j - 1] and a_words[j]
        return re.search(r"[.!?…]", after[a_words[j - 1].end():a_words[j].start()]) is None

    # the original's own "Which", "the" at the edges, within the same sentence
    while first > 0 and weights[first - 1] == 0 and joined(first):
        first -= 1
    while last < len(weights) and weights[last] == 0 and joined(last):
        last += 1

    def aside(run: list[int]) -> bool:
        return len(run) >= MIN_ASIDE_WORDS and sum(1 for w in run if w == -2) >= 2

    out = after
    if aside(weights[last:]):
        out = out[:a_words[last].start()].rstrip()
    if aside(weights[:first]):
        out = out[a_words[first].start():]
    return out


def _content(word: str) -> bool:
    return len(word) >= 3 and word not in _FUNCTION and not is_negation(word)


def _nothing_invented(name: str, before: str, after: str) -> list[Violation]:
    added = quantities(after, pronouns=True) - quantities(before)
    out = [Violation("number_added", name, f"{_show(k)} added")
           for k in sorted(added) if k[0] != "word"]
    if negation_count(without_asides(before, after)) > negation_count(before):
        out.append(Violation("negation_added", name, "a negation appeared"))
    return out


def _text_violations(name: str, before: str, after: str, answers: Sequence[str],
                     vocab: frozenset[str]) -> list[Violation]:
    out: list[Violation] = []
    q_before, q_after = quantities(before), quantities(after)
    out += [Violation("number_lost", name, f"{_show(k)} lost") for k in sorted(q_before - q_after)]
    out += [Violation("number_added", name, f"{_show(k)} added")
            for k in sorted(q_after - q_before)]
    core = without_asides(before, after)
    n_before, n_after, n_core = negation_count(before), negation_count(after), negation_count(core)
    if n_after < n_before:
        out.append(Violation("negation_lost", name, f"{n_before} negations -> {n_after}"))
    elif n_core > n_before:
        out.append(Violation("negation_added", name, f"{n_before} negations -> {n_core}"))
    d_before = decisive_counts(before)
    out += [Violation("decisive_lost", name, f"{w!r} lost")
            for w in sorted(d_before - decisive_counts(after))]
    out += [Violation("decisive_added", name, f"{w!r} added")
            for w in sorted(decisive_counts(core) - d_before)]
    out += [Violation("caps_lost", name, f"{w!r} lost")
            for w in sorted(caps_words(before) - caps_words(after, emphasis_only=False))]
    lowered = after.lower()
    for s, e in quoted_spans(before):
        term = before[s + 1:e - 1].strip().lower()
        if term and lowered.count(term) < before.lower().count(term):
            out.append(Violation("quote_lost", name, f"{term!r} lost"))
    letters_before = Counter(m.group().strip("()") for m in OPTION_LETTER.finditer(before))
    letters_after = Counter(m.group().strip("()") for m in OPTION_LETTER.finditer(after))
    out += [Violation("letter_lost", name, f"option letter {k!r} lost")
            for k in sorted(letters_before - letters_after)]
    for answer in answers:
        if len(answer_spans(after, [answer])) < len(answer_spans(before, [answer])):
            out.append(Violation("answer_lost", name, f"{answer!r} lost"))
    out += _lost_words("entity_lost", name, before, after, vocab)
    out += _lost_words("term_lost", name, before, after, _term_words(before) - vocab)
    return out


# ---------------------------------------------------------------- entities and terms

def _entity_vocabulary(item: Item) -> frozenset[str]:
    """Lower-case words written capitalised inside a sentence anywhere in the item
    (names: "Sydney", "Mike" in "... asked Mike"), or with inner capitals or digits
    ("iPhone", "B12"). Upper-case words are checked exactly, elsewhere."""
    out: set[str] = set()
    for text in (item.input, item.context or "", *(item.choices or ())):
        for m in _WORD.finditer(text):
            word = m.group()
            if is_caps_word(word) or len(word) < 2 or word.startswith(("I'", "I’")):
                continue
            # "iPhone", "H2O", "COVID-19"; "1st", "3pm" and "90s" are numbers
            inner = any(c.isupper() for c in word[1:]) or (
                word[0].isalpha() and any(c.isdigit() for c in word))
            initial = not text[:m.start()].strip() or _SENTENCE_END.search(text[:m.start()])
            if inner or (word[0].isupper() and not initial):
                out.add(word.lower())
    return frozenset(out)


def _term_words(text: str) -> frozenset[str]:
    """Words that make a technical term with their neighbour: hyphenated compounds
    ("top-up"), the content word before one ("auto top-up") and the content words
    next to an acronym ("the ROC curve", "API key"; not next to emphasis such as NOT)."""
    words = [m.group() for m in _WORD.finditer(text)]
    out: set[str] = set()

    def content(w: str) -> bool:
        return len(w) >= 3 and w.isalpha() and w.lower() not in _FUNCTION and not w.isupper()

    for i, word in enumerate(words):
        parts = word.lower().split("-")
        hyphenated = len(parts) > 1 and not all(p.isdigit() or p in NUMBER_VOCABULARY
                                                for p in parts)
        if hyphenated:
            out.add(word.lower())
        if hyphenated or (is_acronym(word) and word.isalpha()):
            if i > 0 and content(words[i - 1]):
                out.add(words[i - 1].lower())
            if not hyphenated and i + 1 < len(words) and content(words[i + 1]):
                out.add(words[i + 1].lower())
    return frozenset(out)


def _close(word: str, candidate: str) -> bool:
    """Is ``candidate`` ``word`` with at most a typo or two, or run together with a
    neighbour by a whitespace slip ("theNile")? Hyphens do not count ("top up")."""
    word, candidate = word.replace("-", ""), candidate.replace("-", "")
    if word == candidate:
        return True
    limit = 1 if len(word) <= 5 else 2
    if abs(len(word) - len(candidate)) <= limit and \
            OSA.distance(word, candidate, score_cutoff=limit) <= limit:
        return True
    return len(candidate) > len(word) >= 2 and (
        candidate.startswith(word) or candidate.endswith(word)
        or (len(word) >= 4 and word in candidate))  # "autotop-upwill"


def _lost_words(kind: str, name: str, before: str, after: str,
                vocab: frozenset[str]) -> list[Violation]:
    if not vocab:
        return []
    words_before = Counter(m.group().lower() for m in _WORD.finditer(before))
    words_after = [m.group().lower() for m in _WORD.finditer(after)]
    # a compound may come apart ("top-up" -> "top up"): also try adjacent pairs
    pairs = [a + b for a, b in zip(words_after, words_after[1:])]
    out = []
    for word in sorted(vocab):
        need = words_before.get(word, 0)
        pool = words_after + pairs if "-" in word else words_after
        if need and sum(1 for w in pool if _close(word, w)) < need:
            out.append(Violation(kind, name, f"{word!r} lost"))
    return out


# ---------------------------------------------------------------- remaps

def _remap_violations(clean: Item, perturbed: Item) -> list[Violation]:
    if not clean.choices or not perturbed.choices:
        if perturbed.target != clean.target:
            return [Violation("target_changed", "target",
                              f"{clean.target!r} -> {perturbed.target!r}")]
        return []
    old, new = clean.choices, perturbed.choices
    if sorted(old) != sorted(new):
        return []  # option texts rewritten as well: the per-option text checks ran
    out: list[Violation] = []
    letters = [choice_letter(i) for i in range(len(old))]
    if clean.target in letters:
        gold = old[letters.index(clean.target)]
        got = new[letters.index(perturbed.target)] if perturbed.target in letters else None
        if got != gold:
            out.append(Violation("gold_moved", "target",
                                 f"{clean.target}={gold!r} became {perturbed.target}={got!r}"))
    elif perturbed.target != clean.target:
        out.append(Violation("target_changed", "target",
                             f"{clean.target!r} -> {perturbed.target!r}"))
    if list(old) == list(new):
        return out
    position = _positions(old, new)
    links = option_links(old)
    for i, refs in sorted(links.letters.items()):
        broken = [choice_letter(r) for r in sorted(refs) if new[r] != old[r]]
        if broken:
            out.append(Violation("link_broken", f"choices[{position[i]}]",
                                 f"{old[i]!r} names {', '.join(broken)}, which moved"))
    for i in sorted(links.above):
        if Counter(old[:i]) != Counter(new[:position[i]]):
            out.append(Violation("link_broken", f"choices[{position[i]}]",
                                 f"{old[i]!r} has other options above it"))
    for i in sorted(links.below):
        if Counter(old[i + 1:]) != Counter(new[position[i] + 1:]):
            out.append(Violation("link_broken", f"choices[{position[i]}]",
                                 f"{old[i]!r} has other options below it"))
    named = question_letters(clean.input, len(old)) | question_letters(clean.context or "",
                                                                       len(old))
    moved = [choice_letter(k) for k in sorted(named) if new[k] != old[k]]
    if moved:
        out.append(Violation("question_letters", "input",
                             f"the question names option {', '.join(moved)}, which moved"))
    return out


def _positions(old: Sequence[str], new: Sequence[str]) -> dict[int, int]:
    """Old index -> new index, duplicates matched in order."""
    free: dict[str, list[int]] = {}
    for j, text in enumerate(new):
        free.setdefault(text, []).append(j)
    return {i: free[text].pop(0) for i, text in enumerate(old)}


def _show(key: tuple[str, str]) -> str:
    kind, value = key
    return {"ord": f"ordinal {value}", "word": f"{value!r}"}.get(kind, repr(value))
