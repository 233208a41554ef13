"""How answers are graded: one scorer per task kind, plus generic ones chosen by name.

Every scorer takes ``(item, text)`` and returns a :class:`~robustify.records.Score`.
Three outcomes are kept apart, because a perturbation that makes a model ramble is a
different finding from one that makes it wrong:

* right or wrong: ``Score(1.0 | 0.0, parsed=<extracted answer>)``;
* unparseable: no answer could be extracted (``Score(0.0, parsed=None, unparseable=True)``),
  counted as 0 in accuracy but flagged;
* unscored: the call failed (``text is None``), ``Score(nan)``.

>>> from perturbations import Item
>>> item = Item(id="q", input="Is it raining?", target="yes", task="yes_no")
>>> score_yes_no(item, "Yes, it is.").value
1.0
"""

from __future__ import annotations

import math
import re
from collections import Counter
from fractions import Fraction
from typing import Any, Mapping

from perturbations.errors import ConfigError
from perturbations.records import Item, choice_letter

from robustify.records import Score
from robustify.scoring.labels import label_set
from robustify.scoring.registry import register_scorer
from robustify.scoring.text import contains_phrase, normalize_text

__all__ = [
    "score_multiple_choice", "score_exact", "score_normalized", "score_numeric",
    "score_yes_no", "score_classification", "score_short_answer", "score_contains",
    "score_token_f1", "score_regex", "normalize_text", "parse_number",
]




def _unparseable(**detail: Any) -> Score:
    return Score(0.0, parsed=None, unparseable=True, detail=detail)


def _graded(right: bool, parsed: str, **detail: Any) -> Score:
    return Score(1.0 if right else 0.0, parsed=parsed, detail=detail)


# --- text normalisation (robustify.scoring.text) ------------------------------------

_contains_phrase = contains_phrase


def _strip_wrappers(text: str) -> str:
    # Markdown emphasis, code ticks and quotes around a bare answer carry no meaning.
    return text.strip().strip("*_`\"' \t\n")


# --- exact / normalised / contains / token F1 / regex -----------------------------------

def _answer_aliases(item: Item) -> list[str]:
    """The target plus its aliases; ``metadata["aliases"]`` may be a list or a dict."""
    aliases = item.metadata.get("aliases") or ()
    if isinstance(aliases, Mapping):
        aliases = aliases.get(item.target, ())
    if isinstance(aliases, str):
        aliases = (aliases,)
    out = [item.target]
    out += [str(a) for a in aliases if str(a) not in out]
    return out


@register_scorer("exact")
def score_exact(item: Item, text: str) -> Score:
    """Right when the stripped answer equals the target exactly (case-sensitive)."""
    answer = text.strip()
    if not answer:
        return _unparseable(reason="empty")
    return _graded(answer == item.target.strip(), answer)


@register_scorer("normalized")
def score_normalized(item: Item, text: str) -> Score:
    """Right when the normalised answer equals the normalised target or an alias."""
    answer = normalize_text(text)
    if not answer:
        return _unparseable(reason="empty")
    for alias in _answer_aliases(item):
        if answer == normalize_text(alias):
            return _graded(True, answer, matched=alias)
    return _graded(False, answer)


@register_scorer("contains")
def score_contains(item: Item, text: str) -> Score:
    """Right when the target or an alias occurs as whole words in the normalised answer."""
    answer = normalize_text(text)
    if not answer:
        return _unparseable(reason="empty")
    for alias in _answer_aliases(item):
        if _contains_phrase(answer, normalize_text(alias)):
            return _graded(True, normalize_text(alias), matched=alias)
    return _graded(False, answer)


@register_scorer("short_answer")
def score_short_answer(item: Item, text: str) -> Score:
    """Short factual answers: normalised exact match, else whole-word containment.

    A numeric target also matches the same number written differently ("1,000" for
    "1000", "eight" for "8") as the final or only number of the answer.
    """
    exact = score_normalized(item, text)
    if exact.unparseable or exact.value == 1.0:
        return exact
    contained = score_contains(item, text)
    if contained.value == 1.0:
        return contained
    target_number = parse_number(item.target)
    if target_number is not None and _is_plain_number(item.target):
        found = _numbers_in(text)
        if found and any(_same_number(n, target_number) for n, _ in found):
            return _graded(True, _format_number(target_number), matched="number")
    return _graded(False, normalize_text(text))


def _is_plain_number(text: str) -> bool:
    return re.fullmatch(r"\s*[-$€£]?[\d,.]+%?\s*", text) is not None


def _tokens(text: str) -> list[str]:
    return normalize_text(text).split()


def _f1(prediction: list[str], gold: list[str]) -> float:
    if not prediction or not gold:
        return float(prediction == gold)
    common = Counter(prediction) & Counter(gold)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(prediction)
    recall = overlap / len(gold)
    return 2 * precision * recall / (precision + recall)


@register_scorer("token_f1")
def score_token_f1(item: Item, text: str) -> Score:
    """Partial credit: SQuAD-style token F1 against the target, best over aliases."""
    prediction = _tokens(text)
    if not prediction:
        return _unparseable(reason="empty")
    best, best_alias = 0.0, item.target
    for alias in _answer_aliases(item):
        value = _f1(prediction, _tokens(alias))
        if value > best:
            best, best_alias = value, alias
    return Score(best, parsed=" ".join(prediction), detail={"matched": best_alias})


@register_scorer("regex")
def score_regex(item: Item, text: str) -> Score:
    """Grade with the pattern in ``metadata["answer_regex"]`` (searched, case-insensitive).

    With a capturing group the pattern *extracts* the answer: group 1 is compared with
    the target after normalisation, and no match means unparseable. Without a group it
    *accepts*: a match is right, no match is wrong.

    Raises:
        ConfigError: the item has no ``answer_regex`` or the pattern does not compile.
    """
    pattern = item.metadata.get("answer_regex")
    if not pattern:
        raise ConfigError(f"item {item.id!r}: the regex scorer needs metadata['answer_regex']")
    try:
        compiled = re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ConfigError(f"item {item.id!r}: answer_regex {pattern!r} does not compile: "
                          f"{exc}") from None
    match = compiled.search(text)
    if compiled.groups:
        if match is None or match.group(1) is None:
            return _unparseable(reason="no match")
        parsed = match.group(1).strip()
        gold = {normalize_text(a) for a in _answer_aliases(item)}
        return _graded(normalize_text(parsed) in gold, parsed)
    if match is None:
        return _graded(False, text.strip())
    return _graded(True, match.group(0))


# --- numbers --------------------------------------------------------------------------

_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate(
    "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if w != "_"}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000}
_NUMBER_WORD = "|".join(sorted([*_UNITS, *_TENS, *_SCALES, "a dozen", "dozen"],
                               key=len, reverse=True))
_WORD_NUMBER = re.compile(
    rf"(?<![\w-])(?:{_NUMBER_WORD})(?:(?:[\s-]+|\s+and\s+)(?:{_NUMBER_WORD}))*(?![\w-])",
    re.IGNORECASE)
# A minus sign counts only at a token start, so "3-4" is two numbers, not 3 and -4.
_DIGIT_NUMBER = re.compile(
    r"(?<![\w.,])(?P<sign>[-−])?[$€£]?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:\s*/\s*\d+)?|\.\d+)"
    r"(?!\d)")


def _words_to_number(words: str) -> float | None:
    total, current, seen = 0, 0, False
    for word in re.split(r"[\s-]+", words.lower()):
        if word in ("and", "a", ""):
            continue
        if word == "dozen":
            current = (current or 1) * 12
        elif word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current = (current or 1) * 100
        elif word in _SCALES:
            total += (current or 1) * _SCALES[word]
            current = 0
        else:
            return None
        seen = True
    return float(total + current) if seen else None


def _numbers_in(text: str) -> list[tuple[float, int]]:
    """Every number in ``text`` as ``(value, end offset)``.

    Number words are read only when the text has no digits: "one" in "the answer is 7,
    one more than 6" is not a number anyone meant.
    """
    found: list[tuple[float, int]] = []
    for m in _DIGIT_NUMBER.finditer(text):
        raw = m.group("num").replace(",", "").replace(" ", "")
        try:
            value = float(Fraction(raw)) if "/" in raw else float(raw)
        except (ValueError, ZeroDivisionError):
            continue
        if m.group("sign"):
            value = -value
        found.append((value, m.end()))
    if found:
        return found
    for m in _WORD_NUMBER.finditer(text):
        value = _words_to_number(m.group())
        if value is not None:
            found.append((value, m.end()))
    found.sort(key=lambda pair: pair[1])
    return found


def parse_number(text: str) -> float | None:
    """The single number a short text states ("1,200", "$4.50", "-3", "3/4", "twelve")."""
    found = _numbers_in(text)
    return found[-1][0] if found else None


def _same_number(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def _format_number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(round(value, 10))


# Explicit final-answer markers win over the last number in a rambling answer.
_NUMERIC_MARKERS = (
    re.compile(r"####\s*(.+)"),
    re.compile(r"\\boxed\{([^}]*)\}"),
    re.compile(r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*(.+)", re.IGNORECASE),
)


@register_scorer("numeric")
def score_numeric(item: Item, text: str) -> Score:
    """Numeric final answer: the number after ``####``/``\\boxed{}``/"the answer is",
    else the last number in the text.

    "1,200" == "1200", "12.0" == "12", "$4.50" == "4.5", "3/4" == "0.75", number words
    ("twelve", "two hundred and five") count. A percent sign is ignored (the target
    says the unit).
    """
    target = parse_number(item.target)
    if target is None:
        raise ConfigError(f"item {item.id!r}: numeric target {item.target!r} is not a number")
    for marker in _NUMERIC_MARKERS:
        matches = list(marker.finditer(text))
        for m in reversed(matches):
            found = _numbers_in(m.group(1))
            if found:
                value = found[0][0]
                return _graded(_same_number(value, target), _format_number(value),
                               source="marker")
    found = _numbers_in(text)
    if not found:
        return _unparseable(reason="no number")
    value = found[-1][0]
    return _graded(_same_number(value, target), _format_number(value), source="last")


# --- yes / no ---------------------------------------------------------------------------

_YES_WORDS = {"yes", "yeah", "yep", "yup", "true", "correct", "right", "affirmative",
              "certainly", "sure"}
_NO_WORDS = {"no", "nope", "nah", "false", "incorrect", "wrong", "negative"}
_YES_STRONG = {"yes", "yeah", "yep", "yup", "true", "correct", "affirmative"}
_NO_STRONG = {"no", "nope", "nah", "false", "incorrect", "negative"}
_YN_PREFIX = re.compile(
    r"^(?:(?:final\s+)?answer\s*[:\-]|a\s*:|the\s+(?:correct\s+)?answer\s+is\s*:?|"
    r"my\s+answer\s+is\s*:?|i\s+(?:would\s+)?say\s*:?)\s*", re.IGNORECASE)
_YN_BOTH = re.compile(r"^(?:yes\s*(?:and|or|/)\s*no|no\s*(?:and|or|/)\s*yes)\b", re.IGNORECASE)
_YN_NEGATED = re.compile(r"^(?:(?:definitely|certainly|absolutely|of course)\s+not|"
                         r"not\s+(?:really|at all))\b", re.IGNORECASE)
_YN_THAT_IS = re.compile(r"^(?:that|this|it)(?:'s|’s|\s+is)\s+(not\s+)?(true|correct|right|"
                         r"false|incorrect|wrong)\b", re.IGNORECASE)
_YN_ANSWER_IS = re.compile(r"\banswer\s+(?:is|would be)\s*:?\s*\W*(yes|no|true|false)\b",
                           re.IGNORECASE)


def _parse_yes_no(text: str) -> str | None:
    answer = _strip_wrappers(text)
    answer = _YN_PREFIX.sub("", answer)
    answer = _strip_wrappers(answer)
    if _YN_BOTH.match(answer):
        return None
    if _YN_NEGATED.match(answer):
        return "no"
    m = _YN_THAT_IS.match(answer)
    if m:
        positive = m.group(2).lower() in ("true", "correct", "right")
        return "yes" if positive != bool(m.group(1)) else "no"
    first = re.match(r"[A-Za-z]+", answer)
    if first:
        word = first.group().lower()
        # "right", "sure", "wrong" ... also open sentences ("Sure! Here is ...", "Right
        # now ..."); they count only when they are the whole answer.
        alone = re.fullmatch(r"[A-Za-z]+\W*", answer) is not None
        if word in _YES_STRONG or (word in _YES_WORDS and alone):
            return "yes"
        if word in _NO_STRONG or (word in _NO_WORDS and alone):
            return "no"
    m = _YN_ANSWER_IS.search(answer)
    if m:
        return "yes" if m.group(1).lower() in ("yes", "true") else "no"
    # Later in the text only an unambiguous bare "Yes"/"No" sentence counts: "no" inside a
    # sentence ("there is no evidence") is not an answer.
    bare = {w.lower() for w in re.findall(r"(?:^|[.!?]\s+|\n)(yes|no)\s*[.!,]", answer,
                                          re.IGNORECASE)}
    if len(bare) == 1:
        return bare.pop()
    return None


def _gold_yes_no(item: Item) -> str:
    gold = normalize_text(item.target)
    if gold in ("yes", "true", "y", "1"):
        return "yes"
    if gold in ("no", "false", "n", "0"):
        return "no"
    raise ConfigError(f"item {item.id!r}: yes/no target {item.target!r} is not yes or no")


@register_scorer("yes_no")
def score_yes_no(item: Item, text: str) -> Score:
    """Yes/no questions: "Yes.", "no", "Yes, because ...", "True"/"False", "Answer: No".

    "I don't know", "Yes and no" and answers that never commit are unparseable.
    """
    gold = _gold_yes_no(item)
    parsed = _parse_yes_no(text)
    if parsed is None:
        return _unparseable(reason="no yes/no")
    return _graded(parsed == gold, parsed)


# --- multiple choice --------------------------------------------------------------------

def _mc_strong_letters(text: str, letters: str) -> list[str]:
    """Letters the answer names in an unmistakable way, in order of appearance."""
    cls = f"[{letters}]"
    found: list[tuple[int, str]] = []
    stripped = _strip_wrappers(text)
    whole = re.fullmatch(rf"(?:option|choice|answer)?\s*[(\[]?({cls})[)\].:]?", stripped,
                         re.IGNORECASE)
    if whole:
        return [whole.group(1).upper()]
    patterns = [
        # "B. Paris", "(B) Paris", "B) Paris", "B: Paris", "**B.** Paris" at the start
        rf"^\W{{0,3}}[(\[]?({cls})[)\].:][\s*]",
        # "(B)" or "[B]" anywhere
        rf"[(\[]({cls})[)\]]",
        # "answer is B", "Answer: B", "option B", "choice (C)", "letter D"
        # (the keyword is case-insensitive, the letter is not: "the answer is a bit ...")
        rf"(?i:answer\s*(?:is|would be|:)|option|choice|letter)\s*:?\s*[(\[*]?({cls})\b(?!['’])",
    ]
    for pattern in patterns:
        for m in re.finditer(pattern, stripped):
            found.append((m.start(1), m.group(1).upper()))
    found.sort()
    return [letter for _, letter in found]


# "A" and "I" are words; followed by one of these they are still option letters
# ("A or B", "A is right", "I is wrong"), followed by anything else they are English.
_ENGLISH_LETTER_WORDS = {
    "A": frozenset({"or", "and", "nor", "is", "was", "would", "seems", "looks", "because",
                    "since", "but"}),
    "I": frozenset({"or", "and", "nor", "is", "seems", "looks"}),
}


def _mc_weak_letters(text: str, letters: str) -> list[str]:
    """Stand-alone capital letters, skipping the English words "A" and "I" in sentences."""
    out = []
    for m in re.finditer(rf"(?<![\w'’])([{letters}])(?![\w'’])", text):
        letter = m.group(1)
        following = re.match(r"\s+([A-Za-z]+)", text[m.end():])
        if (letter in _ENGLISH_LETTER_WORDS and following
                and following.group(1).lower() not in _ENGLISH_LETTER_WORDS[letter]):
            continue
        out.append(letter)
    return out


def _singular(text: str) -> str:
    return " ".join(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
                    for w in text.split())


def _mc_text_matches(text: str, choices: tuple[str, ...]) -> list[int]:
    answer = normalize_text(text)
    norm = [normalize_text(c) for c in choices]
    hits = [i for i, c in enumerate(norm) if _contains_phrase(answer, c)]
    if not hits:
        # "Root" for the option "Roots": retry with plural endings stripped on both sides
        answer, norm = _singular(answer), [_singular(c) for c in norm]
        hits = [i for i, c in enumerate(norm) if _contains_phrase(answer, c)]
    # "Paris" is inside "Paris, Texas": keep only the longest of nested matches.
    return [i for i in hits
            if not any(j != i and norm[i] != norm[j] and _contains_phrase(norm[j], norm[i])
                       for j in hits)]


@register_scorer("multiple_choice")
def score_multiple_choice(item: Item, text: str) -> Score:
    """Multiple choice: a letter ("B", "(B)", "Answer: B", "B. Paris", "The answer is B")
    or the text of one option ("Paris").

    An answer naming two different letters, or a letter contradicted by the text of a
    different option, is unparseable. The words "A" and "I" at the start of a sentence
    are not read as letters.
    """
    if not item.choices:
        raise ConfigError(f"item {item.id!r}: the multiple_choice scorer needs choices")
    letters = "".join(choice_letter(i) for i in range(len(item.choices)))
    gold = item.target.strip().upper()
    if not text.strip():
        return _unparseable(reason="empty")
    strong = list(dict.fromkeys(_mc_strong_letters(text, letters)))
    if strong:
        # "A is wrong; the answer is B" names two letters even though only B is marked.
        strong += [w for w in _mc_weak_letters(text, letters) if w not in strong]
    if len(strong) > 1:
        return _unparseable(reason="several letters", letters=strong)
    by_text = _mc_text_matches(text, item.choices)
    if strong:
        letter = strong[0]
        index = ord(letter) - ord("A")
        others = [i for i in by_text if i != index]
        if others and index not in by_text:
            return _unparseable(reason="letter contradicts option text", letters=strong,
                                options=[choice_letter(i) for i in others])
        return _graded(letter == gold, letter, source="letter")
    answer = normalize_text(text)
    if len(by_text) > 1:
        # Several options quoted: the one the answer is, or starts with, is the answer.
        # ... but not "Venus or Mars", which hedges between two.
        leading = [i for i in by_text
                   if answer == normalize_text(item.choices[i])
                   or (answer.startswith(normalize_text(item.choices[i]) + " ")
                       and answer[len(normalize_text(item.choices[i])):].split()[0]
                       not in ("or", "and", "nor"))]
        by_text = leading if len(leading) == 1 else by_text
    if len(by_text) == 1:
        letter = choice_letter(by_text[0])
        return _graded(letter == gold, letter, source="text")
    if len(by_text) > 1:
        return _unparseable(reason="several options",
                            options=[choice_letter(i) for i in by_text])
    weak = list(dict.fromkeys(_mc_weak_letters(text, letters)))
    if len(weak) == 1:
        return _graded(weak[0] == gold, weak[0], source="bare letter")
    return _unparseable(reason="several letters" if weak else "no option", letters=weak)


# --- classification ---------------------------------------------------------------------

@register_scorer("classification")
def score_classification(item: Item, text: str) -> Score:
    """A label from ``metadata["labels"]``, matched case-, underscore- and space-insensitively,
    or one of its ``metadata["aliases"][label]``.

    The answer is the label it equals, else the label it starts with, else the only
    label it mentions. Several labels (or none) mentioned: unparseable.
    """
    answer = normalize_text(text, drop_articles=False)
    if not answer:
        return _unparseable(reason="empty")
    labels = label_set(item)
    exact = labels.exact(answer)
    if exact is not None:
        return _graded(exact == item.target, exact, source="exact")
    starts = labels.leading(answer)
    if len(starts) == 1:
        return _graded(starts[0] == item.target, starts[0], source="leading")
    mentioned = labels.mentioned(answer)
    if len(mentioned) == 1:
        return _graded(mentioned[0] == item.target, mentioned[0], source="mention")
    return _unparseable(reason="several labels" if mentioned else "no label",
                        labels=mentioned)
