"""Leakage probe: is a model's benchmark score partly memory of the benchmark itself?

Two probes, both *signals, not proof*:

**Verbatim against rewritten.** Every item is asked verbatim and in a few
meaning-preserving rewrites (shuffled options, WordNet synonyms, contractions, a
clause reordering written here, optionally model-written paraphrases from
:mod:`robustify.probes.rewrite`). An item the model answers right verbatim and wrong in *every*
one of its rewrites is a *memorisation suspect*. Some suspects arise by chance: a model
that is shaky on an item is right on one of its versions now and then, and that
version is the verbatim one with probability 1/(k+1). The chance baseline is therefore
an exact within-item permutation: if "verbatim" were just a label stuck at random on
one of the item's k+1 versions, an item with exactly one right version would be a
suspect with probability 1/(k+1) and any other item never. The expected number of
suspects is the sum of those probabilities; its distribution is Poisson-binomial, which
gives an exact one-sided p-value and the 95% chance range. A model with more suspects
than chance answers the verbatim wording better than its own rewrites: the pattern
memorisation leaves. Rewrites that are simply harder (a clumsy synonym) raise the
count too, which is why the wording everywhere says *suspect*.

**Completion.** The model sees the first 40-60% of an item's words (a seeded cut) and
is asked to continue. Its continuation is compared with the true remainder: the share
of the remainder's word n-grams it reproduces, how many leading words it gets exactly,
and a character similarity (rapidfuzz ratio). The figures mean something only against
controls the model cannot have seen: the same items with their words shuffled (seeded,
same cut, paired item by item) and a few fresh items written for this project.
Famous public-domain openings (the Gettysburg Address, ...) serve as a positive control
showing what reproduction of a text the model did see looks like.

The package, one concern per module:

- :mod:`.variants`: what is asked (rewrites, clause reordering, completion prompts, controls);
- :mod:`.stats`: per item and per model, against chance and controls;
- :mod:`.report`: the charts and leakage.html / leakage.md;
- :mod:`.result`: :class:`LeakageResult`;
- :mod:`.run`: :func:`probe_leakage`, on the data loaders, backends, cache and runner.

>>> result = probe_leakage("sample", ["local:smollm2"], limit=20)   # doctest: +SKIP
>>> result.verbatim_summary[["model", "suspect_rate", "chance_rate", "p_value"]]  # doctest: +SKIP
>>> result.write_report("reports/leakage")                          # doctest: +SKIP

CLI: ``python -m robustify leakage --data sample --model local:smollm2 --limit 40``.
"""

from __future__ import annotations

from robustify.analysis.stats import poisson_binomial_pmf, wilson_interval
from robustify.probes.leakage.report import (SIGNALS_NOT_PROOF, plot_completion, plot_suspects,
                                             write_leakage_report)
from robustify.probes.leakage.result import LeakageResult
from robustify.probes.leakage.run import PROBES, probe_leakage
from robustify.probes.leakage.stats import (GROUPS, completion_item_stats, completion_metrics,
                                            completion_summary, verbatim_item_stats,
                                            verbatim_summary)
from robustify.probes.leakage.variants import (COMPLETION_SYSTEM,
                                               DEFAULT_REWRITES, FRESH_CONTROLS, KNOWN_TEXTS,
                                               completion_messages, completion_variants,
                                               probe_text, reorder_clauses, verbatim_variants)

__all__ = [
    "DEFAULT_REWRITES",
    "PROBES",
    "GROUPS",
    "FRESH_CONTROLS",
    "KNOWN_TEXTS",
    "COMPLETION_SYSTEM",
    "SIGNALS_NOT_PROOF",
    "LeakageResult",
    "probe_leakage",
    "reorder_clauses",
    "verbatim_variants",
    "verbatim_item_stats",
    "verbatim_summary",
    "poisson_binomial_pmf",
    "wilson_interval",
    "probe_text",
    "completion_variants",
    "completion_messages",
    "completion_metrics",
    "completion_item_stats",
    "completion_summary",
    "plot_suspects",
    "plot_completion",
    "write_leakage_report",
]
