"""Realism: measure real messages, fit profiles that reproduce them, compare variants.

The lower-layer half of ``calibrate`` and of the realism table in reports::

    from perturbations.realism import measure, fit_profile, FittedProfile, realism_table

    real = measure(messages)                          # TrafficStats of real traffic
    prof = fit_profile(real, clean_texts, seed=0)     # parts + severities + shares
    prof.save("support.yaml")                         # run with --transforms profile:support.yaml
    FittedProfile.load("support.yaml")
    realism_table({"real": real, "fitted": prof.fitted}, reference="real")

See ``docs/realism.md``.
"""

from __future__ import annotations

from .anchors import (PUBLISHED_RATES, build_reference_profile, errors_per_100_words,
                      preset_table, realistic_severity, realistic_source, reference_corpora)
from .compare import (distance, measure_variants, out_of_range, realism_table, stats_of_spec,
                      tolerance)
from .fit import KNOBS, clean_questions, fit_profile, refit, simulate
from .profile_file import FittedPart, FittedProfile, load_profile
from .stats import STAT_FIELDS, STAT_LABELS, TrafficStats, measure

__all__ = [
    "TrafficStats", "measure", "STAT_FIELDS", "STAT_LABELS",
    "FittedPart", "FittedProfile", "load_profile",
    "fit_profile", "refit", "simulate", "clean_questions", "KNOBS",
    "realism_table", "distance", "tolerance", "out_of_range", "measure_variants", "stats_of_spec",
    "PUBLISHED_RATES", "reference_corpora", "realistic_severity", "realistic_source",
    "build_reference_profile", "errors_per_100_words", "preset_table",
]
