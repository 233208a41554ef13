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


HOSTILE_ITEMS: tuple[dict[str, Any], ...] = tuple(
    {"id": f"h{i}", "input": question, "target": "blue",
     "metadata": {"domain": "<img src=x onerror=\"document.body.setAttribute('data-pwned','meta')\">"}}
    for i, question in enumerate((
        "What colour is the <script>document.body.setAttribute('data-pwned','question')"
        "</script> sky on a clear day?",
        "Which colour, <a href=\"javascript:document.body.setAttribute('data-pwned','qlink')\">"
        "click</a>, has a clear summer sky?",
        "Name the colour of a cloudless sky <img src=x onerror=\"document.body.setAttribute("
        "'data-pwned','qimg')\"> at noon?",
        "Tell me the colour of the daytime sky <svg onload=\"document.body.setAttribute("
        "'data-pwned','qsvg')\"></svg> please?",
        "What is the usual colour of the sky </td></table><script>document.body.setAttribute("
        "'data-pwned','break')</script> over the sea?",
        "On a sunny day, what colour is the sky above us all?",
    )))
"""Benchmark items whose text (question and metadata) is itself hostile markup."""

_CLEAN_QUESTIONS = frozenset(item["input"] for item in HOSTILE_ITEMS)


def hostile_flip(messages: list[dict[str, Any]]) -> str:
    """Right on the clean questions of :data:`HOSTILE_ITEMS`, hostile markup on any variant.

    Every noisy variant then flips right -> wrong, so the report's examples section shows
    each hostile answer next to the hostile question.
    """
    text = _last_user(messages)
    if any(question in text for question in _CLEAN_QUESTIONS):
        return "blue"
    return HOSTILE_ANSWERS[sum(map(ord, text)) % len(HOSTILE_ANSWERS)]


SEEN_AT_FIRST_CALL: dict[str, Any] = {}
"""What :func:`variants_file_watcher` saw when it was first called (set by the test)."""


def variants_file_watcher(messages: list[dict[str, Any]]) -> str:
    """Echo, and on the first call record the lines of ``SEEN_AT_FIRST_CALL['path']``."""
    path = SEEN_AT_FIRST_CALL.get("path")
    if path is not None and "lines" not in SEEN_AT_FIRST_CALL:
        try:
            with open(path, encoding="utf-8") as fh:
                SEEN_AT_FIRST_CALL["lines"] = fh.read().splitlines()
        except FileNotFoundError:
            SEEN_AT_FIRST_CALL["lines"] = None
    return echo(messages)
