"""Fake rewriter models for the rewrite tests: deterministic, instant, no model needed.

Use them as ``rewrite:persona=hurried:model=python:tests.robustify.beyond_rewriter:lowercase``.
"""

from __future__ import annotations

__all__ = ["lowercase", "question_of"]


def question_of(messages: list[dict[str, str]]) -> str:
    """The question a rewrite prompt asks to rewrite."""
    content = messages[-1]["content"]
    return content.split("Question: ", 1)[1].rsplit("\n\nRewritten question:", 1)[0]


def lowercase(messages: list[dict[str, str]]) -> str:
    """A hurried typist: lower case, no question mark, "pls" tacked on, a chat-model label."""
    return "Rewritten question: " + question_of(messages).lower().rstrip("?") + " pls"
