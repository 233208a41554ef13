"""python: models that attack the runner: they never return, or answer 10 MB.

Used by ``test_hostile_models.py`` as ``python:tests.robustify.hostile_models:NAME``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

__all__ = ["never_sync", "never_async", "ten_megabytes"]


def never_sync(messages: list[dict[str, Any]]) -> str:
    """Blocks its thread for an hour (cannot be interrupted from outside)."""
    time.sleep(3600)
    return "too late"


async def never_async(messages: list[dict[str, Any]]) -> str:
    """Awaits for an hour (cancellable)."""
    await asyncio.sleep(3600)
    return "too late"


def ten_megabytes(messages: list[dict[str, Any]]) -> str:
    """A 10 MB answer (multi-byte characters at the cut included)."""
    return "é" + "A" * 10_000_000
