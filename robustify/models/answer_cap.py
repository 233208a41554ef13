"""The answer-size cap: answers longer than a limit are cut, and the cut is recorded.

The runner applies :func:`cap_answer` to every answer of every backend before it is
cached or scored, so a model that answers megabytes stores at most the cap once in the
cache and once per row in the results. The limit is a backend's ``max_answer_bytes``
attribute when it has one, else :data:`DEFAULT_MAX_ANSWER_BYTES`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from robustify.records import Completion

__all__ = ["DEFAULT_MAX_ANSWER_BYTES", "cap_answer", "answer_limit"]

DEFAULT_MAX_ANSWER_BYTES = 64 * 1024
"""Longest answer kept, in UTF-8 bytes (64 KiB); the rest is cut off."""


def answer_limit(backend: Any) -> int:
    """The cap of ``backend``: its ``max_answer_bytes`` or the default."""
    limit = getattr(backend, "max_answer_bytes", None)
    return limit if isinstance(limit, int) and limit > 0 else DEFAULT_MAX_ANSWER_BYTES


def cap_answer(completion: Completion, limit: int = DEFAULT_MAX_ANSWER_BYTES) -> Completion:
    """``completion`` with its text cut to ``limit`` UTF-8 bytes (at a character boundary)
    and ``capped=True``; returned unchanged when it fits.

    >>> cap_answer(Completion("héllo"), 2).text, cap_answer(Completion("hi"), 2).capped
    ('h', False)
    """
    text = completion.text
    if len(text) * 4 <= limit:  # no character takes more than 4 bytes
        return completion
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return completion
    cut = data[:limit].decode("utf-8", "ignore")
    return dataclasses.replace(completion, text=cut, capped=True)
