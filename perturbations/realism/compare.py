"""Set variants beside real traffic: the realism table, a distance, and out-of-range flags.

A report shows, for each transform and severity, the statistics of its variants; when a
reference sample of real messages is given, the distance to it and the statistics that
fall outside the range the reference allows. "Outside the range" means further from
the reference than sampling noise explains: more than three standard errors of the
reference (binomial for shares, Poisson for rates per 100 words) plus a small floor
(:func:`tolerance`), so a setting is flagged for being unlike the traffic, not for
being a different random sample of it.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

from .stats import STAT_FIELDS, STAT_LABELS, TrafficStats, measure

__all__ = ["realism_table", "distance", "tolerance", "out_of_range", "measure_variants",
           "stats_of_spec", "DISTANCE_FIELDS"]

DISTANCE_FIELDS: tuple[str, ...] = (
    "typos_per_100", "lower_share", "upper_share", "no_final_punct", "contraction_share",
    "texting_share", "whitespace_share", "filler_share", "words")
"""The statistics :func:`distance` and :func:`out_of_range` compare."""

_RATES = ("typos_per_100", "inner_punct_per_100")
_LENGTHS = ("words", "words_p90")


def tolerance(field: str, reference: TrafficStats) -> float:
    """How far a statistic may be from ``reference`` and still count as in range."""
    value = float(getattr(reference, field))
    n = max(reference.n, 1)
    if field in _LENGTHS:
        return max(0.25 * value, 2.0)
    if field in _RATES:
        words = max(reference.words * n, 1.0)
        return 3.0 * math.sqrt(max(value, 0.1) * 100.0 / words) + 0.1
    return 3.0 * math.sqrt(max(value * (1 - value), 0.5 / n) / n) + 0.01


def out_of_range(stats: TrafficStats, reference: TrafficStats,
                 fields: Sequence[str] = DISTANCE_FIELDS) -> list[str]:
    """The fields of ``stats`` outside the range of ``reference`` (see :func:`tolerance`)."""
    return [f for f in fields
            if abs(getattr(stats, f) - getattr(reference, f)) > tolerance(f, reference)]


def distance(stats: TrafficStats, reference: TrafficStats,
             fields: Sequence[str] = DISTANCE_FIELDS) -> float:
    """Mean over ``fields`` of |difference| / tolerance: about 1 or less is within
    sampling noise of the reference; 10 is ten times further than noise explains."""
    return sum(abs(getattr(stats, f) - getattr(reference, f)) / tolerance(f, reference)
               for f in fields) / len(fields)


def measure_variants(variants: Iterable[object], clean_texts: Iterable[str] = ()) -> TrafficStats:
    """Statistics of the ``input`` of each variant (``Variant`` or ``Item``)."""
    texts = [getattr(getattr(v, "item", v), "input") for v in variants]
    return measure(texts, names_from=clean_texts)


def stats_of_spec(spec: str, clean_texts: Sequence[str], *, seed: int = 0,
                  replicates: int = 1) -> TrafficStats:
    """Statistics of the variants ``spec`` draws of ``clean_texts`` (ids ``c0``, ``c1`` ...)."""
    from ..engine import perturb
    from ..records import Item

    outs = [perturb(Item(id=f"c{i}", input=t, target="x"), spec, seed=seed, replicate=r).item.input
            for i, t in enumerate(clean_texts) for r in range(replicates)]
    return measure(outs, names_from=clean_texts)


def realism_table(columns: Mapping[str, TrafficStats], reference: str | None = None,
                  fields: Sequence[str] = STAT_FIELDS) -> list[dict[str, object]]:
    """Rows of a side-by-side table: one per statistic, one column per set of messages.

    Args:
        columns: Column name -> statistics, in display order (e.g. ``{"real traffic":
            ..., "fitted": ..., "typos@low": ...}``).
        reference: The column the others are compared with; adds the rows
            ``distance`` and ``outside real range`` (comma-separated fields).

    Returns:
        ``[{"statistic": label, "<column>": value, ...}, ...]``, ready for a DataFrame,
        Markdown or the CLI.
    """
    rows: list[dict[str, object]] = [{"statistic": "messages",
                                      **{c: s.n for c, s in columns.items()}}]
    for f in fields:
        rows.append({"statistic": STAT_LABELS[f],
                     **{c: round(float(getattr(s, f)), 3) for c, s in columns.items()}})
    if reference is not None:
        ref = columns[reference]
        rows.append({"statistic": "distance to " + reference,
                     **{c: round(distance(s, ref), 2) for c, s in columns.items()}})
        rows.append({"statistic": "outside real range",
                     **{c: ", ".join(out_of_range(s, ref)) or "-" for c, s in columns.items()}})
    return rows
