"""Running the leakage probe: items and models in, a :class:`LeakageResult` out.

Nothing is rebuilt here: data comes from :func:`robustify.data.load_items`, backends from
:func:`robustify.models.parse_model_spec`, the cache from
:func:`robustify.runner.cache.open_cache`, and every call goes through
:func:`robustify.runner.execute.run_queries` (cached, deduplicated, concurrent), scored
by :func:`robustify.scoring.rules.score_answer` like any run.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from perturbations import Item
from perturbations.errors import ConfigError
from perturbations.version import __version__

from robustify.data import load_items
from robustify.models import parse_model_spec
from robustify.probes.leakage.result import LeakageResult
from robustify.probes.leakage.stats import (COMPLETION_ITEM_COLUMNS, VERBATIM_ITEM_COLUMNS,
                                            completion_item_stats, completion_metrics,
                                            completion_summary, verbatim_item_stats,
                                            verbatim_summary)
from robustify.probes.leakage.variants import (DEFAULT_REWRITES, FRESH_CONTROLS, KNOWN_TEXTS,
                                               check_cut, completion_messages,
                                               completion_variants, verbatim_variants)
from robustify.prompts import build_messages
from robustify.records import GenerationParams, Score
from robustify.runner.cache import open_cache
from robustify.runner.execute import run_queries
from robustify.scoring import score_answer

__all__ = ["PROBES", "probe_leakage"]

PROBES = ("verbatim", "completion")
"""Probe names accepted by :func:`probe_leakage`."""


def _backends(models: Sequence[Any], params: GenerationParams | None
              ) -> tuple[list[Any], list[Any]]:
    """Backends for the models (strings built here, objects used as given) and those to close."""
    built, owned = [], []
    for model in models:
        if isinstance(model, str):
            backend = parse_model_spec(model, params=params)
            owned.append(backend)
            built.append(backend)
        else:
            built.append(model)
    return built, owned


def _score_completion(item: Item, text: str | None) -> Score:
    if text is None:
        return Score(math.nan)
    # the row's score is the similarity, so results files sort and plot like any run
    metrics = completion_metrics(item.input, item.target, text)
    return Score(metrics["similarity"])


def _note_failures(rows: pd.DataFrame, probe: str, notes: list[str]) -> None:
    failed = int(rows["error"].notna().sum())
    if failed:
        notes.append(f"{probe} probe: {failed} of {len(rows)} calls failed and were left out")


def _model_rewrites(items: Sequence[Item], rewriter: Any, personas: Sequence[str], cache: Any,
                    seed: int, notes: list[str]) -> tuple[list[Any], pd.DataFrame | None]:
    """Checked paraphrases written by ``rewriter`` (:mod:`robustify.probes.rewrite`)."""
    from robustify.probes.rewrite import rewrite_variants

    variants: list[Any] = []
    rejections: pd.DataFrame | None = None
    for persona in personas:
        extra, rejected = rewrite_variants(items, f"rewrite:persona={persona}", rewriter, cache,
                                           seed)
        variants += extra
        rejections = rejected if rejections is None else pd.concat([rejections, rejected],
                                                                   ignore_index=True)
        notes.append(f"model-written rewrites ({persona}): {len(extra)} used, "
                     f"{len(rejected)} rejected by the checks")
    return variants, rejections


def _label(model: Any) -> str:
    return model if isinstance(model, str) else getattr(model, "label", repr(model))


def probe_leakage(items: Sequence[Item] | str = "sample", models: Sequence[Any] | str = (
                  "local:smollm2",), *, probes: Sequence[str] = PROBES,
                  rewrites: Sequence[str] = DEFAULT_REWRITES, replicates: int = 2,
                  seed: int = 0, limit: int | None = None,
                  cut: tuple[float, float] = (0.4, 0.6), ngram: int = 3,
                  include_choices: bool = True, fresh_controls: bool = True,
                  known_texts: bool = True, cache: Any = "default",
                  rewriter: Any = None, personas: Sequence[str] = ("paraphrase",),
                  completion_max_tokens: int = 64, n_boot: int = 2000,
                  progress: bool = False, data_label: str | None = None,
                  say: Any = None) -> LeakageResult:
    """Run the leakage probes on items and models.

    Args:
        items: Items, or a data path / ``"sample"`` read with :func:`robustify.data.load_items`.
        models: Model spec strings (``local:smollm2``, ``openai:...``, ``python:...``) or
            ready backends (used as given, not closed).
        probes: ``verbatim`` and/or ``completion``.
        rewrites: Specs for the verbatim probe (:data:`DEFAULT_REWRITES`).
        replicates: Draws per random rewrite.
        seed: Seeds the rewrites, the completion cuts and shuffles, and the bootstrap.
        limit: With a data path, a seeded sample of this many items.
        cut: Range of the share of words shown in the completion probe.
        ngram: n of the completion probe's n-gram overlap.
        include_choices: Completion texts include the options of multiple-choice items.
        fresh_controls, known_texts: Add :data:`FRESH_CONTROLS` / :data:`KNOWN_TEXTS`.
        cache: ``"default"`` (the run cache), a path, a ``ResponseCache``, or ``None``.
        rewriter: A model spec or backend that also writes paraphrase rewrites
            (:mod:`robustify.probes.rewrite`, checked; rejected ones are reported, never used).
        personas: Personas asked of ``rewriter``.
        completion_max_tokens: Answer budget of the completion prompts.
        n_boot: Bootstrap draws for every interval.
        progress: Show progress bars.
        data_label: Name of the data in the report.
        say: Called with one line as each probe starts (the CLI prints it to stderr).

    Returns:
        A :class:`LeakageResult`.

    Raises:
        ConfigError: bad probe name, rewrite spec or cut; model spec errors.
    """
    started = time.time()
    probes = list(probes)
    bad = [p for p in probes if p not in PROBES]
    if bad or not probes:
        raise ConfigError(f"unknown probe(s) {', '.join(bad) or '(none given)'}; choose from "
                          f"{', '.join(PROBES)}")
    check_cut(cut)  # now, not after the verbatim probe ran
    if rewriter is not None:
        from robustify.probes.rewrite import parse_rewrite_spec

        for persona in personas:
            parse_rewrite_spec(f"rewrite:persona={persona}")
    if isinstance(models, str) or not isinstance(models, Sequence):
        models = [models]
    if isinstance(items, (str, os.PathLike)):
        data_label = data_label or Path(str(items)).stem
        items = load_items(str(items), limit=limit, seed=seed)
    items = list(items)
    if not items:
        raise ConfigError("the leakage probe needs at least one item")
    notes: list[str] = []
    frames: list[pd.DataFrame] = []
    rejections: pd.DataFrame | None = None
    verbatim_items = pd.DataFrame(columns=list(VERBATIM_ITEM_COLUMNS))
    v_summary = pd.DataFrame()
    completion_items = pd.DataFrame(columns=list(COMPLETION_ITEM_COLUMNS))
    c_summary = pd.DataFrame()
    cache_obj, own_cache = open_cache(cache)
    owned: list[Any] = []
    try:
        # every backend is built (and so checked) before the first call of any probe
        if "verbatim" in probes:
            v_backends, built = _backends(models, None)
            owned += built
        if "completion" in probes:
            c_backends, built = _backends(models, GenerationParams(
                max_tokens=int(completion_max_tokens)))
            owned += built
        if "verbatim" in probes:
            variants = verbatim_variants(items, rewrites, seed=seed, replicates=replicates,
                                         notes=notes)
            if rewriter is not None:
                extra, rejections = _model_rewrites(items, rewriter, personas, cache_obj, seed,
                                                    notes)
                variants += extra
            if say is not None:
                say(f"verbatim probe: {len(variants)} prompts (items and rewrites) x "
                    f"{len(v_backends)} model(s)")
            rows = run_queries(variants, v_backends, build_messages=build_messages,
                               score=score_answer, cache=cache_obj, progress=progress)
            rows["probe"] = "verbatim"
            frames.append(rows)
            verbatim_items = verbatim_item_stats(rows)
            v_summary = verbatim_summary(verbatim_items, n_boot=n_boot, seed=seed)
            _note_failures(rows, "verbatim", notes)
        if "completion" in probes:
            prompts = completion_variants(
                items, seed=seed, cut=cut, include_choices=include_choices,
                fresh=FRESH_CONTROLS if fresh_controls else None,
                known=KNOWN_TEXTS if known_texts else None)
            if say is not None:
                say(f"completion probe: {len(prompts)} prompts (items and controls) x "
                    f"{len(c_backends)} model(s)")
            rows = run_queries(prompts, c_backends, build_messages=completion_messages,
                               score=_score_completion, cache=cache_obj, progress=progress)
            rows["probe"] = "completion"
            frames.append(rows)
            completion_items = completion_item_stats(rows, ngram=ngram)
            c_summary = completion_summary(completion_items, n_boot=n_boot, seed=seed)
            _note_failures(rows, "completion", notes)
    finally:
        for backend in owned:
            backend.close()
        if own_cache and cache_obj is not None:
            cache_obj.close()
    settings = {
        "data": data_label or "items", "n_items": len(items),
        "models": [_label(m) for m in models],
        "probes": probes, "seed": seed, "rewrites": list(rewrites), "replicates": replicates,
        "cut": list(cut), "cut_text": f"{cut[0] * 100:.0f}-{cut[1] * 100:.0f}%", "ngram": ngram,
        "include_choices": include_choices, "fresh_controls": fresh_controls,
        "known_texts": known_texts, "n_boot": n_boot, "robustify_version": __version__,
        "duration_s": round(time.time() - started, 2),
    }
    if rewriter is not None:
        settings["rewriter"] = _label(rewriter)
        settings["personas"] = list(personas)
    rows_all = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return LeakageResult(verbatim_items=verbatim_items, verbatim_summary=v_summary,
                         completion_items=completion_items, completion_summary=c_summary,
                         rows=rows_all, settings=settings, notes=notes,
                         rewrite_rejections=rejections)
