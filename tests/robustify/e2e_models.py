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
