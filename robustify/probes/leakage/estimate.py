"""``leakage --estimate``: the calls each probe needs and, from a few timed calls, how long.

Nothing is asked beyond :data:`robustify.runner.latency.SAMPLE_CALLS` clean prompts per
model (their answers go to the cache, so the probe reuses them).
"""

from __future__ import annotations

from typing import Any, Sequence

from perturbations import Item

from robustify.probes.leakage.variants import (FRESH_CONTROLS, KNOWN_TEXTS, completion_messages,
                                               completion_variants, verbatim_variants)
from robustify.prompts import build_messages
from robustify.records import GenerationParams
from robustify.runner.cache import open_cache
from robustify.runner.execute import estimate_calls
from robustify.runner.latency import measure_latency, time_estimate

__all__ = ["estimate_leakage"]


def estimate_leakage(items: Sequence[Item], models: Sequence[str], *, probes: Sequence[str],
                     rewrites: Sequence[str], replicates: int = 2, seed: int = 0,
                     cut: tuple[float, float] = (0.4, 0.6), fresh_controls: bool = True,
                     known_texts: bool = True, cache: Any = "default",
                     completion_max_tokens: int = 64, measure: bool = True
                     ) -> list[dict[str, Any]]:
    """One row per probe and model: ``probe``, ``model``, ``calls``, ``cache_hits``,
    ``latency_s`` (median of the timed calls, or None) and ``estimated_s``."""
    from robustify.models import parse_model_spec

    cache_obj, own = open_cache(cache)
    rows: list[dict[str, Any]] = []
    backends: list[Any] = []
    try:
        plans = []
        if "verbatim" in probes:
            built = [parse_model_spec(m) for m in models]
            backends += built
            plans.append(("verbatim", verbatim_variants(items, rewrites, seed=seed,
                                                        replicates=replicates, notes=[]),
                          built, build_messages))
        if "completion" in probes:
            built = [parse_model_spec(m, params=GenerationParams(
                max_tokens=int(completion_max_tokens))) for m in models]
            backends += built
            plans.append(("completion", completion_variants(
                items, seed=seed, cut=cut, fresh=FRESH_CONTROLS if fresh_controls else None,
                known=KNOWN_TEXTS if known_texts else None), built, completion_messages))
        latency: dict[str, list[float]] = {}
        for probe, variants, built, messages in plans:
            est = estimate_calls(variants, built, messages, cache_obj)
            for backend in built:
                facts = est["per_model"][backend.label]
                if measure and facts["calls"] and backend.label not in latency:
                    latency[backend.label] = measure_latency(backend, items, build_messages,
                                                             cache_obj)
                seconds = latency.get(backend.label, [])
                concurrency = int(getattr(backend, "max_concurrency", 1) or 1)
                wall = time_estimate(facts["calls"], seconds, concurrency)
                rows.append({"probe": probe, "model": backend.label, "calls": facts["calls"],
                             "cache_hits": facts["cache_hits"],
                             "latency_s": (sorted(seconds)[len(seconds) // 2]
                                           if seconds else None),
                             "concurrency": concurrency, "estimated_s": wall})
    finally:
        for backend in backends:
            backend.close()
        if own and cache_obj is not None:
            cache_obj.close()
    return rows
