"""Model-written rewrites: a model retypes each question in a persona, and every rewrite is checked.

Rule-based transforms cannot write like a hurried customer or a non-native speaker; a
model can. This module asks any backend (``local:smollm2``, ``openai:...``,
``python:...``) to rewrite an item's question in a persona or style, then checks every
rewrite before it is used:

* it is not empty and not a refusal ("I'm sorry", "As an AI" ...);
* it is not the question unchanged, and not rambling (over 3x the original words + 15);
* the protected spans survive: numbers (a number word may become digits and back),
  option letters, phrases the item declares under ``metadata["protect"]``
  (:func:`perturbations.text.protected_spans`) and names (capitalised words inside a
  sentence). Personas whose point is to leave details out (``vague``) skip this check
  and are labelled ``may_break``;
* it adds no number the question did not have (the model worked the problem);
* the answer is not leaked: the gold target, its aliases, the correct option's text or
  the class label is not newly present;
* optionally a judge model confirms the two questions ask the same thing.

A rejected rewrite is never used: it is returned with its reasons (a DataFrame, one row
per item) so runs can count and report them. Calls go through the runner, so they are
cached in the :class:`~robustify.runner.cache.ResponseCache` like any other (keyed by the
rewriter's identity, including its seeded :class:`~robustify.records.GenerationParams`,
and the messages), deduplicated and concurrent.

The package: :mod:`.specs` (personas, prompts, spec strings), :mod:`.checks` (what a
rewrite must pass), :mod:`.run` (asking through the runner, the manifest entry).

Spec strings (parsed by :func:`parse_rewrite_spec`, not by the transform registry)::

    rewrite:persona=hurried
    rewrite:persona=non_native:model=openai:gpt-4o-mini@http://127.0.0.1:8080/v1
    rewrite:persona=terse_query:temperature=0.7:judge=local:smollm2

``model=`` and ``judge=`` take a whole model spec (colons included), so put them last.
The variant records a canonical spec with the models as slugs, e.g.
``rewrite:persona=hurried:model=local-smollm2``; :func:`rewrite_manifest` records the
full model identity and the prompt.

>>> variants, rejected = rewrite_variants(items, "rewrite:persona=hurried")   # doctest: +SKIP
>>> rejected[["item_id", "reason"]]                                          # doctest: +SKIP
"""

from __future__ import annotations

from robustify.probes.rewrite.checks import check_rewrite, clean_rewrite
from robustify.probes.rewrite.run import (RewriteOutcome, rewrite_manifest, rewrite_variants,
                                          run_rewrite_specs)
from robustify.probes.rewrite.specs import (DEFAULT_REWRITER, JUDGE_SYSTEM, JUDGE_TEMPLATE,
                                            PERSONAS, REJECTION_COLUMNS, SYSTEM_PROMPT,
                                            USER_TEMPLATE, Persona, RewriteSpec,
                                            is_rewrite_spec, parse_rewrite_spec,
                                            rewrite_messages, split_rewrite_specs)

__all__ = [
    "PERSONAS",
    "Persona",
    "RewriteSpec",
    "RewriteOutcome",
    "REJECTION_COLUMNS",
    "DEFAULT_REWRITER",
    "SYSTEM_PROMPT",
    "USER_TEMPLATE",
    "JUDGE_SYSTEM",
    "JUDGE_TEMPLATE",
    "parse_rewrite_spec",
    "is_rewrite_spec",
    "split_rewrite_specs",
    "rewrite_messages",
    "clean_rewrite",
    "check_rewrite",
    "rewrite_variants",
    "rewrite_manifest",
    "run_rewrite_specs",
]
