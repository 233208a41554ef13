"""A python model that counts its calls (``python:tests.robustify.hostile_files_models:counted``).

Each call appends one line to the file named by ``ROBUSTIFY_TEST_CALLS`` (when set), so a
test can assert that a refused input made no model call at all.
"""

from __future__ import annotations

import os
from typing import Any

COUNTED_MODEL = "python:tests.robustify.hostile_files_models:counted"


def counted(messages: list[dict[str, Any]]) -> str:
    """Record the call, then answer ``"A"``."""
    path = os.environ.get("ROBUSTIFY_TEST_CALLS")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("call\n")
    return "A"
