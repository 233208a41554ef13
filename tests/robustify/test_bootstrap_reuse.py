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


def test_the_chunk_size_never_changes_an_interval(monkeypatch) -> None:
    # the draws are made in chunks of indices; any chunking gives the same interval and
    # leaves a passed generator in the same state (sizes around the old 2,000,000 too)
    cases = []
    for m, repeat in ((2, 1), (7, 3), (2999, 1), (3000, 2), (70_001, 1)):
        rng = np.random.default_rng(m)
        values = rng.random(m * repeat)
        clusters = np.repeat(np.arange(m), repeat)
        if repeat > 1:  # unequal clusters take the gathered-denominator path
            clusters[-1] = 0
        cases.append((values, clusters))
    for values, clusters in cases:
        seen = set()
        for chunk in (1, 7, 1 << 18, 2_000_000, 10**9):
            monkeypatch.setattr(stats, "_CHUNK_INDICES", chunk)
            rng = np.random.default_rng(5)
            interval = _fresh(values, clusters=clusters, n_boot=300, seed=rng)
            seen.add((interval, rng.integers(1 << 30)))
        assert len(seen) == 1, (len(values), seen)
