"""Model-written rewrites, part 2: what a rewrite must pass before it is used.

:func:`clean_rewrite` strips what chat models wrap around an answer; :func:`check_rewrite`
gives every reason to reject it: empty or a refusal, unchanged or rambling, a protected
span lost (numbers in any form, option letters, declared phrases, names), a number
added, or the answer given away.
"""

from __future__ import annotations

import re

from perturbations import Item
from perturbations.records import choice_letter
from perturbations.text import protected_spans

__all__ = ["clean_rewrite", "check_rewrite"]

_LABEL_LINE = re.compile(
    r"^\s*(?:\*\*)?(?:here(?:'s| is)[^:\n]*|rewritten(?: question)?|rewrite|question|"
    r"sure[^:\n]*|output)\s*:\s*(?:\*\*)?\s*", re.IGNORECASE)


def clean_rewrite(text: str | None) -> str:
    """Strip what chat models wrap around an answer: a label ("Rewritten question:"),
    quotes, and anything after the first non-empty line.

    Only this mechanical clean-up is done; everything else is judged by
    :func:`check_rewrite`, never repaired.
    """
    if not text:
        return ""
    lines = [ln.strip() for ln in str(text).strip().splitlines()]
    out = ""
    for line in lines:
        line = _LABEL_LINE.sub("", line).strip()
        if line:
            out = line
            break
    if len(out) >= 2 and out[0] == out[-1] and out[0] in "\"'“”`":
        out = out[1:-1].strip()
    out = out.strip("“”\"`").strip()
    return out


_REFUSAL = re.compile(
    r"\b(i'?m sorry|i am sorry|i apologi[sz]e|as an ai\b|as a language model|i cannot|i can't "
    r"(?:help|assist|do|provide|rewrite)|i can not|i'?m (?:not able|unable)|i am (?:not able|"
    r"unable)|i'?m not available|i won'?t be able|unable to (?:help|assist|provide|rewrite))",
    re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_DIGIT_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17",
    "eighteen": "18", "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40",
    "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90",
    "hundred": "100", "thousand": "1000", "dozen": "12", "first": "1", "second": "2",
    "third": "3",
}
_WORD_OF_DIGITS = {v: k for k, v in _DIGIT_WORDS.items() if k not in ("first", "second",
                                                                       "third", "dozen")}
_SENTENCE_START = re.compile(r"(?:^|[.!?]\s+)([A-Z][a-z]*)")


def _contains(haystack: str, needle: str) -> bool:
    needle = needle.strip().lower()
    if not needle:
        return True
    return re.search(r"(?<!\w)" + re.escape(needle) + r"(?!\w)", haystack.lower()) is not None


def _numbers(text: str) -> set[str]:
    found = {m.group().replace(",", "") for m in _NUMBER.finditer(text)}
    for word in re.findall(r"[A-Za-z]+", text.lower()):
        if word in _DIGIT_WORDS and word not in ("first", "second", "third", "one"):
            found.add(_DIGIT_WORDS[word])
    return found


def _span_survives(span: str, rewrite: str) -> bool:
    if _contains(rewrite, span):
        return True
    key = span.lower().strip()
    # a number may change form: "three" -> "3", "12" -> "twelve", "$4.50" -> "4.50"
    if key in _DIGIT_WORDS and _contains(rewrite, _DIGIT_WORDS[key]):
        return True
    digits = re.sub(r"[^\d.]", "", key)
    if digits and (_contains(rewrite, digits) or
                   (digits in _WORD_OF_DIGITS and _contains(rewrite, _WORD_OF_DIGITS[digits]))):
        return True
    return False


def _names(text: str) -> list[str]:
    """Capitalised words inside a sentence (the first word of a sentence is skipped)."""
    starts = {m.start(1) for m in _SENTENCE_START.finditer(text)}
    names = []
    for m in re.finditer(r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*", text):
        start, word = m.start(), m.group()
        if start in starts:
            # "Tom has ..." starts a sentence; keep the rest of a multi-word name
            parts = word.split()
            if len(parts) == 1:
                continue
            word = " ".join(parts[1:])
        if word not in ("I",) and word not in names:
            names.append(word)
    return names


def _answer_phrases(item: Item) -> list[str]:
    """Texts that would give the answer away if a rewrite newly contained them."""
    phrases: list[str] = []
    if item.task == "multiple_choice" and item.choices:
        letters = [choice_letter(i) for i in range(len(item.choices))]
        if item.target in letters:
            phrases.append(item.choices[letters.index(item.target)])
    elif item.task == "classification":
        phrases += [item.target, item.target.replace("_", " ")]
    elif item.task == "yes_no":
        pass  # "yes"/"no" are everyday words; their presence gives nothing away
    else:
        phrases.append(item.target)
        aliases = item.metadata.get("aliases")
        if isinstance(aliases, (list, tuple)):
            phrases += [str(a) for a in aliases]
    return [p for p in dict.fromkeys(phrases) if len(p.strip()) >= 2]


_SEVERITY = ("empty", "refusal", "answer_leaked", "new_number", "lost_span", "unchanged",
             "too_long")


def check_rewrite(item: Item, rewrite: str, *, keep_spans: bool = True,
                  raw: str | None = None) -> list[str]:
    """Every reason to reject ``rewrite`` of ``item`` (empty list: accepted).

    Reasons start with a code, followed by the detail, gravest first: ``empty``,
    ``refusal``, ``answer_leaked``, ``new_number``, ``lost_span``, ``unchanged``,
    ``too_long``.

    Args:
        item: The original item.
        rewrite: The cleaned rewrite (:func:`clean_rewrite`).
        keep_spans: Check protected spans and names (off for personas that may drop them).
        raw: The model's raw answer, searched for refusals too.
    """
    reasons: list[str] = []
    text = rewrite.strip()
    if len(text) < 3 or not re.search(r"[^\W\d_]", text):
        return ["empty: the rewriter returned no usable text"]
    if _REFUSAL.search(text) or (raw is not None and _REFUSAL.search(raw[:200])):
        reasons.append("refusal: the rewriter apologised or refused instead of rewriting")
    original = item.input
    if " ".join(text.lower().split()) == " ".join(original.lower().split()):
        reasons.append("unchanged: the rewrite is the question as it was")
    if len(text.split()) > 3 * len(original.split()) + 15:
        reasons.append(f"too_long: {len(text.split())} words for a {len(original.split())}-word "
                       f"question (the rewriter probably answered or rambled)")
    if keep_spans:
        declared = item.metadata.get("protect") or ()
        if isinstance(declared, str):
            declared = (declared,)
        spans = [original[s:e] for s, e in protected_spans(original, [str(p) for p in declared])]
        lost = [s for s in dict.fromkeys(spans) if not _span_survives(s, text)]
        lost += [n for n in _names(original) if not _contains(text, n) and n not in lost]
        if lost:
            reasons.append("lost_span: " + ", ".join(repr(s) for s in lost) + " missing")
    new_numbers = sorted(_numbers(text) - _numbers(original))
    answer = _answer_phrases(item)
    leaked = [p for p in answer if _contains(text, p) and not _contains(original, p)]
    if item.task == "numeric" and item.target.replace(",", "") in new_numbers:
        leaked.append(item.target)
    if leaked:
        reasons.append("answer_leaked: " + ", ".join(repr(p) for p in dict.fromkeys(leaked))
                       + " newly present")
    if new_numbers and not leaked:
        reasons.append("new_number: " + ", ".join(new_numbers) + " not in the question")
    elif new_numbers:
        others = [n for n in new_numbers if n != item.target.replace(",", "")]
        if others:
            reasons.append("new_number: " + ", ".join(others) + " not in the question")
    # the gravest reason first: it becomes the row's ``reason``
    return sorted(reasons, key=lambda r: _SEVERITY.index(r.split(":", 1)[0]))
