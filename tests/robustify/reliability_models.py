"""Python-callable models for the reliability tests (``python:tests.robustify.reliability_models:NAME``)."""

from __future__ import annotations

from typing import Any

HOSTILE_ANSWERS: tuple[str, ...] = (
    "<script>document.title='PWNED-script';document.body.setAttribute('data-pwned','script')"
    "</script>",
    "<img src=x onerror=\"document.title='PWNED-img';"
    "document.body.setAttribute('data-pwned','img')\">",
    "<a href=\"javascript:document.body.setAttribute('data-pwned','link')\">click me</a>",
    "<svg onload=\"document.body.setAttribute('data-pwned','svg')\"></svg>",
    "<iframe src=\"javascript:parent.document.body.setAttribute('data-pwned','iframe')\"></iframe>",
)
"""Answers that would run script if a report interpolated them raw."""


def _last_user(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


def echo(messages: list[dict[str, Any]]) -> str:
    """Answer with a deterministic function of the question (no I/O, instant)."""
    text = _last_user(messages)
    return "A" if len(text) % 2 else "B"


def hostile(messages: list[dict[str, Any]]) -> str:
    """Answer every question with one of :data:`HOSTILE_ANSWERS` (chosen by the question)."""
    text = _last_user(messages)
    return HOSTILE_ANSWERS[sum(map(ord, text)) % len(HOSTILE_ANSWERS)]
