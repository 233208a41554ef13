"""Deterministic python-callable models for end-to-end CLI tests (``python:tests.robustify.e2e_models:NAME``).

``oracle`` knows the gold answer of every built-in sample item and recognises the item even
through typos and slang (fuzzy matching), so it is robust: no drop. ``brittle`` answers
right only when the question arrives verbatim and is confidently wrong as soon as the
text differs from the clean one in any way, so every changed variant flips.
"""

from __future__ import annotations

from functools import cache

from robustify.data import load_items


@cache
def _gold() -> dict[str, str]:
    return {item.input: item.target for item in load_items("sample")}


def _question(messages: list[dict[str, str]]) -> str:
    return [m["content"] for m in messages if m["role"] == "user"][-1]


def _lookup(messages: list[dict[str, str]]) -> str | None:
    text = _question(messages)
    # the longest clean question contained in the prompt (a short one may be a substring)
    hits = [q for q in _gold() if q in text]
    return _gold()[max(hits, key=len)] if hits else None


def oracle(messages: list[dict[str, str]]) -> str:
    """Right on clean and noisy questions alike: finds the closest clean question."""
    from rapidfuzz import fuzz, process

    answer = _lookup(messages)
    if answer is not None:
        return answer
    best = process.extractOne(_question(messages).lower(), list(_gold()),
                              scorer=fuzz.partial_ratio, processor=str.lower)
    return _gold()[best[0]]


def brittle(messages: list[dict[str, str]]) -> str:
    """Right on clean questions, confidently wrong on anything else."""
    answer = _lookup(messages)
    return answer if answer is not None else "I am not sure, maybe 12345"


CALLS: list[str] = []
"""Questions ``counting`` was asked in this process (tests clear it first)."""


def counting(messages: list[dict[str, str]]) -> str:
    """``brittle``, recording every call it receives in :data:`CALLS`."""
    CALLS.append(_question(messages))
    return brittle(messages)


def golden(messages: list[dict[str, str]]) -> str:
    """A mixed, fully deterministic model for the golden run: right, wrong and unparseable.

    The answer depends only on the question text (through SHA-256, never ``hash()``):
    verbatim clean questions are mostly right, noisy ones right when the fuzzy match
    finds their item and the digest allows it, otherwise confidently wrong or evasive.
    """
    import hashlib

    text = _question(messages)
    digest = int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16)
    if digest % 11 == 0:
        return "Sorry, could you say that again?"
    exact = _lookup(messages)
    if exact is not None:
        return exact if digest % 7 else "No"
    return oracle(messages) if digest % 3 else "I think it is 42, or maybe B"
