"""python-callable models whose measurements mean nothing, for the validity warnings
(``python:tests.robustify.validity_models:NAME``)."""

from __future__ import annotations

import hashlib


def _question(messages: list[dict[str, str]]) -> str:
    return [m["content"] for m in messages if m["role"] == "user"][-1]


def always_no(messages: list[dict[str, str]]) -> str:
    """One constant answer, whatever the question (SmolLM2 on yes/no passages)."""
    return "No"


def guess_letter(messages: list[dict[str, str]]) -> str:
    """A letter A-D drawn from the question's SHA-256: a guesser, at chance on 4 options."""
    digest = hashlib.sha256(_question(messages).encode("utf-8")).digest()
    return "ABCD"[digest[0] % 4]
