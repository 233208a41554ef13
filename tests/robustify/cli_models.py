"""Python-callable models for the CLI convenience tests (``python:tests.robustify.cli_models:NAME``)."""

from __future__ import annotations

import os
import time


def constant(messages: list[dict[str, str]]) -> str:
    """Always ``greeting`` (a label of the small intent files the tests write)."""
    return "greeting"


def slow(messages: list[dict[str, str]]) -> str:
    """``constant`` after ``CLI_MODELS_SLEEP`` seconds (default 2): calls that take a while."""
    time.sleep(float(os.environ.get("CLI_MODELS_SLEEP", "2")))
    return "greeting"
