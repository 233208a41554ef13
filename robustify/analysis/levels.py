"""Realistic against stress: which rows of a run measure what real users will meet."""

from __future__ import annotations

import pandas as pd

from perturbations.records import CLEAN

__all__ = ["REALISTIC_LABELS", "split_levels"]


REALISTIC_LABELS = ("realistic", "fitted")
"""Severity labels of noise anchored on real typed traffic (``@realistic``, a fitted
profile); every other level is stress: heavier than people type."""


def split_levels(results: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(clean + realistic rows, clean + stress rows)`` of a results frame.

    The realistic rows answer the toolkit's question (what will real users get?); the
    stress rows show how the model degrades beyond that. Either may hold only clean rows.
    """
    clean = results["spec"] == CLEAN
    realistic = results["severity_label"].isin(REALISTIC_LABELS)
    return results[clean | realistic], results[clean | ~realistic]
