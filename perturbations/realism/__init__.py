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

from ..lazy import lazy_exports

__all__ = [
    "TrafficStats", "measure", "STAT_FIELDS", "STAT_LABELS",
    "FittedPart", "FittedProfile", "load_profile",
    "fit_profile", "refit", "simulate", "clean_questions", "KNOBS",
    "realism_table", "distance", "tolerance", "out_of_range", "measure_variants", "stats_of_spec",
    "PUBLISHED_RATES", "reference_corpora", "realistic_severity", "realistic_source",
    "build_reference_profile", "errors_per_100_words", "preset_table",
]

# Where each public name lives. Loaded on first use (PEP 562): importing one submodule,
# such as .levels during spec parsing, must not pull in the fitter and the engine.
_HOME = {
    **dict.fromkeys(("TrafficStats", "measure", "STAT_FIELDS", "STAT_LABELS"), "stats"),
    **dict.fromkeys(("FittedPart", "FittedProfile", "load_profile"), "profile_file"),
    **dict.fromkeys(("fit_profile", "refit", "simulate", "clean_questions", "KNOBS"), "fit"),
    **dict.fromkeys(("realism_table", "distance", "tolerance", "out_of_range",
                     "measure_variants", "stats_of_spec"), "compare"),
    **dict.fromkeys(("realistic_severity", "realistic_source"), "levels"),
    **dict.fromkeys(("PUBLISHED_RATES", "reference_corpora", "build_reference_profile",
                     "errors_per_100_words", "preset_table"), "anchors"),
}


__getattr__, __dir__ = lazy_exports(__name__, _HOME, __all__)
