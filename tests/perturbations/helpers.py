"""Shared checks for the per-transform test files."""

from __future__ import annotations

import statistics
from typing import Callable, Sequence

from perturbations.text import edit_rate

SEVERITIES = (0.1, 0.2, 0.5, 0.8, 1.0)


def assert_edit_rate_rises(texts: Sequence[str], run: Callable[[str, float, int], str],
                           severities: Sequence[float] = SEVERITIES) -> list[float]:
    """Mean edit rate over ``texts`` (seed = text index) strictly rises with severity."""
    means = [statistics.fmean(edit_rate(t, run(t, s, i)) for i, t in enumerate(texts))
             for s in severities]
    assert all(a < b for a, b in zip(means, means[1:])), means
    return means
