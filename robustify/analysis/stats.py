"""The statistics every report uses, in one place: bootstrap, McNemar, Wilson, ranks, RNGs.

Pure functions of numbers (numpy only, no frames). Every random draw comes from
:func:`group_rng`: a ``numpy.random.Generator`` seeded from the run's seed and a stable
digest of the group's key, so a group's interval never changes when other groups are
added, and the same seed gives the same intervals in the run report, the leakage probe
and the comparison of runs.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from statistics import NormalDist
from typing import Any, Sequence

import numpy as np
import pandas as pd

from perturbations.errors import ConfigError, DataError

__all__ = ["group_rng", "bootstrap_ci", "mcnemar_exact", "wilson_interval", "rank_correlations",
           "poisson_binomial_pmf", "spearman_rho", "kendall_tau_b", "jsonable_key"]


def group_rng(seed: int | np.random.Generator, key: Any) -> np.random.Generator:
    """An RNG of its own for one group: seed + a SHA-256 digest of the group key (never ``hash()``).

    ``key`` is any JSON-able value (a tuple of group values, an item id ...); a ready
    Generator is passed through.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    digest = hashlib.sha256(json.dumps(jsonable_key(key), sort_keys=True).encode("utf-8")).digest()
    return np.random.default_rng([int(seed), int.from_bytes(digest[:8], "little")])


def jsonable_key(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [jsonable_key(v) for v in value]
    if _missing(value) and not isinstance(value, str):
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    return value if isinstance(value, (int, str)) else str(value)


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def bootstrap_ci(values: Sequence[float] | np.ndarray, *, clusters: Sequence[Any] | None = None,
                 n_boot: int = 2000, seed: int | np.random.Generator = 0,
                 ci: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean of ``values``, resampling clusters.

    Each bootstrap draw picks clusters (items) with replacement and takes the mean over
    all rows of the drawn clusters, so rows of one cluster (the replicates of an item)
    are kept together. With ``clusters=None`` every row is its own cluster (and row
    order matters); with clusters the interval does not depend on row order. For a
    paired drop pass ``clean - perturbed`` as ``values``.

    Args:
        values: Per-row values; NaN is not allowed (filter first).
        clusters: Cluster label per row (e.g. the item id), or ``None``.
        n_boot: Number of bootstrap draws; 0 returns ``(nan, nan)``.
        seed: Seed (or a ready Generator) for ``numpy.random.default_rng``.
        ci: Coverage, e.g. 0.95.

    Returns:
        ``(low, high)``; ``(nan, nan)`` for no rows; a zero-width interval for one
        cluster (there is nothing to resample).
    """
    if not 0.0 < ci < 1.0:
        raise ConfigError(f"ci must lie strictly between 0 and 1, got {ci!r}")
    x = np.asarray(values, dtype=float)
    if x.size == 0 or n_boot <= 0:
        return (math.nan, math.nan)
    if np.isnan(x).any():
        raise DataError("bootstrap_ci got NaN values; drop unscored rows first")
    if clusters is None:
        codes = np.arange(x.size)
    else:
        labels = pd.Series(list(clusters), dtype=object)
        try:
            # Sorted cluster codes make the interval independent of row order.
            codes = pd.factorize(labels, sort=True, use_na_sentinel=False)[0]
        except TypeError:  # labels of mixed, unorderable types
            codes = pd.factorize(labels, use_na_sentinel=False)[0]
    m = int(codes.max()) + 1
    sums = np.bincount(codes, weights=x, minlength=m)
    counts = np.bincount(codes, minlength=m).astype(float)
    if m == 1:
        point = float(sums[0] / counts[0])
        return (point, point)
    generator = isinstance(seed, np.random.Generator)
    # Only a fixed seed or a Generator (whose state is part of the key) can be reused.
    key = (_draw_key(sums, counts, n_boot, ci, seed)
           if generator or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool))
           else None)
    found = _DRAWN.get(key) if key is not None else None
    if found is not None:
        # The same draws were made before (the report and the terminal summary ask for
        # the same intervals): reuse them, leaving a passed Generator where they left it.
        low, high, after = found
        if generator and after is not None:
            seed.bit_generator.state = after  # type: ignore[union-attr]
        return (low, high)
    rng = seed if generator else np.random.default_rng(seed)
    # Every cluster the same size (one row per item, the usual case): the denominator
    # of every draw is m x that size, exactly, so it need not be gathered.
    uniform = bool((counts == counts[0]).all())
    # Draw in chunks of at most 2 MB of indices (the draws do not depend on the chunks):
    # a large benchmark never needs an n_boot x n_items index matrix, and fresh multi-MB
    # arrays cost more in page faults than the arithmetic (0.3 s for one 16 MB chunk on
    # a virtual machine, where the whole interval takes 0.03 s).
    chunk = max(1, min(n_boot, _CHUNK_INDICES // m))
    stats = np.empty(n_boot)
    done = 0
    while done < n_boot:
        size = min(chunk, n_boot - done)
        idx = rng.integers(0, m, size=(size, m))
        denominator = counts[0] * m if uniform else counts[idx].sum(axis=1)
        stats[done:done + size] = sums[idx].sum(axis=1) / denominator
        done += size
    alpha = (1.0 - ci) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    if key is not None:
        with _DRAWN_LOCK:
            if len(_DRAWN) >= _DRAWN_SIZE:
                _DRAWN.pop(next(iter(_DRAWN)), None)
            _DRAWN[key] = (float(low), float(high),
                           rng.bit_generator.state if generator else None)
    return (float(low), float(high))


_CHUNK_INDICES = 1 << 18
"""Bootstrap indices drawn at a time (2 MB)."""

_DRAWN: dict[tuple[Any, ...], tuple[float, float, Any]] = {}
"""Recent intervals by (data digest, n_boot, ci, RNG state): :func:`bootstrap_ci` is pure."""
_DRAWN_SIZE = 64
_DRAWN_LOCK = threading.Lock()


def _draw_key(sums: np.ndarray, counts: np.ndarray, n_boot: int, ci: float,
              seed: Any) -> tuple[Any, ...]:
    digest = hashlib.blake2b(sums.tobytes(), digest_size=16)
    digest.update(counts.tobytes())
    if isinstance(seed, np.random.Generator):
        state = json.dumps(seed.bit_generator.state, sort_keys=True,
                           default=lambda v: v.tolist() if hasattr(v, "tolist") else repr(v))
    else:
        state = repr(seed)
    return (digest.hexdigest(), int(n_boot), float(ci), state)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pair counts.

    Under the null both kinds of flips are equally likely, so ``min(b, c)`` follows
    Binomial(b + c, 1/2); the two-sided p-value is twice its lower tail, capped at 1.

    Args:
        b: Pairs right on clean and wrong when perturbed.
        c: Pairs wrong on clean and right when perturbed.

    Returns:
        The p-value; 1.0 when there is no discordant pair.

    >>> mcnemar_exact(8, 1)
    0.0390625
    """
    b, c = int(b), int(c)
    n = b + c
    if n == 0:
        return 1.0
    # exact integer arithmetic: sum C(n, k) for k <= min(b, c), then one correctly
    # rounded division by 2**n (Python divides big integers exactly)
    term = total = 1
    for k in range(1, min(b, c) + 1):
        term = term * (n - k + 1) // k
        total += term
    return min(1.0, 2 * total / 2 ** n)


def spearman_rho(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation: Pearson's r of the average ranks (ties share a rank).

    >>> round(spearman_rho(np.array([1., 2., 3., 4.]), np.array([1., 3., 2., 4.])), 6)
    0.8
    """
    rx = pd.Series(x).rank(method="average").to_numpy()
    ry = pd.Series(y).rank(method="average").to_numpy()
    return float(np.corrcoef(rx, ry)[0, 1])


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b: (concordant - discordant) pairs, corrected for ties in x and y.

    Quadratic in the number of models, which is small.

    >>> round(kendall_tau_b(np.array([1., 2., 3., 4.]), np.array([1., 3., 2., 4.])), 6)
    0.666667
    """
    dx = np.sign(x[:, None] - x[None, :])
    dy = np.sign(y[:, None] - y[None, :])
    upper = np.triu_indices(len(x), k=1)
    dx, dy = dx[upper], dy[upper]
    denominator = math.sqrt(float(np.count_nonzero(dx)) * float(np.count_nonzero(dy)))
    return float((dx * dy).sum() / denominator) if denominator else math.nan


def rank_correlations(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    # Constant input has no ranking.
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return (math.nan, math.nan)
    return (spearman_rho(x, y), kendall_tau_b(x, y))


def poisson_binomial_pmf(probabilities: Sequence[float] | np.ndarray) -> np.ndarray:
    """Distribution of the number of successes of independent Bernoulli trials.

    Args:
        probabilities: Success probability of each trial.

    Returns:
        ``pmf[s]`` = P(exactly s successes), for s = 0 .. len(probabilities).

    >>> poisson_binomial_pmf([0.5, 0.5]).tolist()
    [0.25, 0.5, 0.25]
    """
    p = np.asarray(probabilities, dtype=float)
    pmf = np.zeros(p.size + 1)
    pmf[0] = 1.0
    for n, q in enumerate(p, start=1):
        # new[s] = old[s](1-q) + old[s-1] q, done on the used prefix only
        pmf[1:n + 1] = pmf[1:n + 1] * (1.0 - q) + pmf[0:n] * q
        pmf[0] *= 1.0 - q
    return pmf


def wilson_interval(successes: int, n: int, ci: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion (sensible at 0 and 1, unlike the bootstrap).

    >>> [round(x, 4) for x in wilson_interval(0, 10)]
    [0.0, 0.2775]
    """
    if n <= 0:
        return (math.nan, math.nan)
    z = NormalDist().inv_cdf(0.5 + ci / 2.0)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # exact bounds at the edges (the formula leaves rounding dust such as 3e-17)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)
