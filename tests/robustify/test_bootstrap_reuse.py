"""bootstrap_ci reuses an interval drawn before only when the draws would be the same."""

from __future__ import annotations

import numpy as np

from robustify.analysis import stats


def _fresh(values, **kwargs):
    stats._DRAWN.clear()
    return stats.bootstrap_ci(values, **kwargs)


def test_a_reused_interval_equals_a_fresh_one_and_advances_the_generator_alike() -> None:
    values = np.random.default_rng(3).random(400)
    clusters = np.repeat(np.arange(200), 2)
    first = np.random.default_rng(11)
    fresh = _fresh(values, clusters=clusters, seed=first)
    follow = stats.bootstrap_ci(values, seed=first)  # the next draw from the same RNG
    assert len(stats._DRAWN) == 2
    again = np.random.default_rng(11)
    assert stats.bootstrap_ci(values, clusters=clusters, seed=again) == fresh
    assert stats.bootstrap_ci(values, seed=again) == follow  # state was advanced exactly
    assert len(stats._DRAWN) == 2  # both were reused, nothing new was drawn


def test_different_data_seed_or_coverage_is_drawn_again() -> None:
    values = np.linspace(0, 1, 300)
    base = _fresh(values, seed=1)
    assert stats.bootstrap_ci(values, seed=2) != base
    assert stats.bootstrap_ci(values, seed=1, ci=0.9) != base
    assert stats.bootstrap_ci(values[::-1].copy(), seed=1) != base  # row order matters here
    assert len(stats._DRAWN) == 4


def test_an_unseeded_interval_is_never_reused() -> None:
    values = np.random.default_rng(0).random(500)
    _fresh(values, seed=None)
    stats.bootstrap_ci(values, seed=None)
    assert len(stats._DRAWN) == 0
