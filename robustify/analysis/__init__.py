"""Analysis: the results frame -> paired drops, intervals, flips, worst case, rankings.

Every perturbed row is paired with the same model's answer to its own clean item.

- :mod:`.stats`: the statistics every report uses (bootstrap, McNemar, Wilson, ranks, RNGs);
- :mod:`.paired`: pairing, the summary per group, the model overview, may_break, noise floor;
- :mod:`.levels`: realistic rows (anchored on real typed traffic) against stress rows;
- :mod:`.rankings`: how the ranking of models changes under noise;
- :mod:`.severity`: score against severity and its area;
- :mod:`.slices`: the drop per slice of the data;
- :mod:`.validity`: when a run's numbers mean nothing (chance, constant answers, cut answers).
"""

from __future__ import annotations

from robustify.analysis.levels import REALISTIC_LABELS, split_levels
from robustify.analysis.paired import (CLEAN, LABEL_PRESERVING, SUMMARY_COLUMNS,
                                       may_break_summary, model_overview,
                                       noise_floor, pair_with_clean, summarize)
from robustify.analysis.rankings import ranking_change
from robustify.analysis.severity import severity_auc, severity_curve
from robustify.analysis.slices import meta_columns, slice_columns, slices, weakest_slices
from robustify.analysis.validity import (Finding, chance_levels, validity_findings,
                                         warnings_by_model)
from robustify.analysis.stats import (bootstrap_ci, group_rng, kendall_tau_b, mcnemar_exact,
                                      spearman_rho, wilson_interval)

__all__ = ["CLEAN", "LABEL_PRESERVING", "SUMMARY_COLUMNS", "pair_with_clean", "slice_columns",
           "summarize", "model_overview", "ranking_change", "severity_curve", "severity_auc",
           "slices", "weakest_slices", "may_break_summary", "noise_floor", "bootstrap_ci",
           "mcnemar_exact", "meta_columns", "group_rng", "wilson_interval", "spearman_rho",
           "kendall_tau_b", "REALISTIC_LABELS", "split_levels", "Finding", "chance_levels",
           "validity_findings", "warnings_by_model"]
