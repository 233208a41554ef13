"""Python-callable models for the scoring tests (named in ``python:`` model specs)."""

from __future__ import annotations

from robustify.records import Completion, GenerationParams

CALLS: list[tuple[str, int]] = []
"""(last user message, max_tokens) of every call in this process."""


def budget(messages: list[dict[str, str]], params: GenerationParams) -> Completion:
    """Answer with the answer budget it was given; cut ("length") when it is below 100."""
    CALLS.append((messages[-1]["content"], params.max_tokens))
    return Completion(text=f"{params.max_tokens}",
                      finish_reason="length" if params.max_tokens < 100 else "stop")
