"""Consistency runs: free-text items without a gold answer, scored against the model itself.

An ``open`` item with no target (real traffic) has nothing to be right against. A run over
such items asks in two phases: first every clean item, then every variant, whose
``target`` becomes *that model's* answer to the clean item and whose
``metadata["reference"]`` says ``"clean_answer"``. The equivalence scorer of the job
(``similarity`` by default, :data:`robustify.scoring.DEFAULT_SCORERS`) then grades each
noisy answer against the clean one, so the usual paired drop, intervals and flips read as
*consistency*: the share of noisy answers that still agree with the clean answer.

A clean row is graded against itself (its target is its own answer) and scores 1.0 with
any sane scorer. Items with a production answer (``metadata["production_answer"]``, from
``--map answer=COLUMN``) are not asked clean: the production answer is the clean answer.
Items with a gold target in the same run keep it (``reference: "gold"``).

The variants are all read (and the variants file completed) before the first call, as in
an ordinary run; phase 2 runs one model at a time, because each model's variants carry
its own clean answers.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from perturbations import Item, Variant
from perturbations.errors import ConfigError

from robustify.models.base import FatalModelError
from robustify.records import RESULT_COLUMNS, Score
from robustify.scoring.registry import DEFAULT_SCORERS

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CLEAN_ANSWER", "GOLD", "PRODUCTION_ANSWER", "needs_consistency",
           "check_consistency", "consistency_facts", "run_consistency"]

CLEAN_ANSWER = "clean_answer"
"""``metadata["reference"]`` of a variant graded against the model's clean answer."""
GOLD = "gold"
"""``metadata["reference"]`` of an item graded against its gold target."""
PRODUCTION_ANSWER = "production_answer"
"""Metadata key of an item's production answer (the clean answer, not asked)."""


def _no_gold(item: Item) -> bool:
    return item.task == "open" and not item.target


def needs_consistency(items: Iterable[Item]) -> bool:
    """True when some item is ``open`` without a gold answer (a consistency run)."""
    return any(_no_gold(item) for item in items)


def check_consistency(job: Any, items: Sequence[Item]) -> None:
    """Refuse, before any call, what a consistency run cannot do.

    Raises:
        ConfigError: ``noise_floor`` with items that have no gold answer (the repeats would
            be graded against an empty target).
    """
    if job.noise_floor and needs_consistency(items):
        raise ConfigError(f"{job.where('noise_floor')}--noise-floor needs gold answers; "
                          f"open items without a target are scored against the model's own "
                          f"clean answer (a consistency run): drop --noise-floor")


def consistency_facts(items: Sequence[Item], scorer: Any) -> dict[str, Any]:
    """The manifest entry of a consistency run (``{}`` for an ordinary run)."""
    if not needs_consistency(items):
        return {}
    no_gold = [item for item in items if _no_gold(item)]
    production = sum(1 for item in no_gold if item.metadata.get(PRODUCTION_ANSWER))
    return {"consistency": {
        "reference": CLEAN_ANSWER,
        "gold_used": len(no_gold) < len(items),
        "items_without_gold": len(no_gold),
        "items_with_gold": len(items) - len(no_gold),
        "clean_answers": {"asked": len(no_gold) - production, "production": production},
        "scorer": scorer if isinstance(scorer, str) else DEFAULT_SCORERS["open"],
    }}


def _grade(score: Callable[[Item, str], Score], item: Item, text: str
           ) -> tuple[float, Any, bool, str | None]:
    result = score(item, text)
    detail = (json.dumps(result.detail, sort_keys=True, ensure_ascii=False,
                         separators=(",", ":"), default=str) if result.detail else None)
    return float(result.value), result.parsed, bool(result.unparseable), detail


def _with_reference(item: Item, target: str, reference: str) -> Item:
    return dataclasses.replace(item, target=target,
                               metadata={**item.metadata, "reference": reference})


def _graded_against_clean(score: Callable[[Item, str], Score]
                          ) -> Callable[[Item, str], Score]:
    def graded(item: Item, text: str) -> Score:
        if item.metadata.get("reference") == CLEAN_ANSWER and not item.target:
            return Score(math.nan, detail={"reason": "no clean answer (its call failed)"})
        return score(item, text)
    return graded


def _self_graded(frame: pd.DataFrame, items: dict[str, Item],
                 score: Callable[[Item, str], Score]) -> pd.DataFrame:
    """Clean rows of no-gold items: target = the answer itself, graded against itself."""
    frame = frame.copy()
    if "meta.reference" not in frame.columns:
        frame["meta.reference"] = None
    frame["meta.reference"] = frame["meta.reference"].astype(object)
    for index, item_id, response, error in zip(frame.index, frame["item_id"],
                                               frame["response"], frame["error"]):
        item = items[item_id]
        if not _no_gold(item):
            frame.at[index, "meta.reference"] = GOLD if item.task == "open" else None
            continue
        frame.at[index, "meta.reference"] = CLEAN_ANSWER
        if isinstance(error, str) or not isinstance(response, str):
            continue
        value, parsed, unparseable, detail = _grade(
            score, _with_reference(item, response, CLEAN_ANSWER), response)
        frame.at[index, "target"] = response
        frame.at[index, "score"] = value
        frame.at[index, "parsed"] = parsed
        frame.at[index, "unparseable"] = unparseable
        frame.at[index, "score_detail"] = detail
    return frame


def _production_rows(cleans: Sequence[Variant], labels: Sequence[str],
                     score: Callable[[Item, str], Score]) -> pd.DataFrame:
    """Clean rows built from production answers: nothing asked, the answer given."""
    import pandas as pd

    rows = []
    for label in labels:
        for variant in cleans:
            item = variant.item
            answer = str(item.metadata[PRODUCTION_ANSWER])
            graded = _with_reference(item, answer, CLEAN_ANSWER)
            value, parsed, unparseable, detail = _grade(score, graded, answer)
            row = {"model": label, "item_id": item.id, "variant_id": variant.variant_id,
                   "spec": variant.spec, "transform": variant.transform,
                   "severity": variant.severity, "severity_label": None,
                   "replicate": variant.replicate, "changed": False, "edit_rate": 0.0,
                   "label_policy": variant.label_policy, "task": item.task,
                   "input": item.input, "target": answer, "response": answer,
                   "parsed": parsed, "score": value, "unparseable": unparseable,
                   "score_detail": detail, "error": None, "latency": 0.0, "cached": False,
                   "tokens_in": None, "tokens_out": None, "hit_token_limit": False,
                   "answer_capped": False}
            row.update({f"meta.{k}": v for k, v in graded.metadata.items()})
            rows.append(row)
    frame = pd.DataFrame(rows, columns=None if rows else list(RESULT_COLUMNS))
    return frame.astype({"tokens_in": "Int64", "tokens_out": "Int64"})  # as the runner's


def _calls(frame: pd.DataFrame) -> int:
    return sum(int(s.get("calls", 0)) for s in frame.attrs.get("run_stats", {}).values())


def _merged_stats(frames: Sequence[pd.DataFrame]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for frame in frames:
        for label, stats in frame.attrs.get("run_stats", {}).items():
            into = out.setdefault(label, {})
            for key, value in stats.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) \
                        and isinstance(into.get(key, 0), (int, float)):
                    into[key] = into.get(key, 0) + value
                elif value is not None or key not in into:
                    into[key] = value
    return out


def run_consistency(variants: Iterable[Variant], backends: Sequence[Any], *,
                    build_messages: Callable[[Item], list[dict[str, str]]],
                    score: Callable[[Item, str], Score], cache: Any,
                    max_calls: int | None = None, progress: bool | str = True,
                    run_queries: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    """Ask clean items, then each model's variants graded against its clean answers.

    Args:
        variants: The clean originals and the variants (the job's stream; read whole
            before the first call).
        backends: The job's backends.
        build_messages, score, cache, max_calls, progress: As for
            :func:`robustify.runner.execute.run_queries` (``max_calls`` spans both phases).
        run_queries: The runner's ``run_queries`` (passed in: the pipeline chooses it).

    Returns:
        The results frame in the usual order (per model: clean rows, then variants).

    Raises:
        FatalModelError: a backend failed permanently; ``.results`` holds every row of
            both phases (the other models' runs completed).
    """
    everything = list(variants)
    order = {v.variant_id: i for i, v in enumerate(everything)}
    cleans = [v for v in everything if v.is_clean]
    noisy = [v for v in everything if not v.is_clean]
    items = {v.item.id: v.item for v in cleans}
    given = [v for v in cleans if _no_gold(v.item) and v.item.metadata.get(PRODUCTION_ANSWER)]
    asked = [v for v in cleans if not (_no_gold(v.item)
                                       and v.item.metadata.get(PRODUCTION_ANSWER))]
    fatal: FatalModelError | None = None
    frames: list[pd.DataFrame] = []
    failed: set[str] = set()
    if asked:
        try:  # the no-gold clean rows are graded once their answers are known
            first = run_queries(asked, backends, build_messages=build_messages,
                                score=lambda item, text: (Score(math.nan) if _no_gold(item)
                                                          else score(item, text)),
                                cache=cache, max_calls=max_calls, progress=progress)
        except FatalModelError as exc:
            if getattr(exc, "results", None) is None:
                raise
            fatal, first = exc, exc.results
            failed |= set(first.attrs.get("fatal", {}))
        frames.append(first)
    labels = [b.label for b in backends]
    graded_first = _self_graded(frames[0], items, score) if frames else None
    clean_rows = [f for f in (graded_first, _production_rows(given, labels, score)) if
                  f is not None and len(f)]
    used = _calls(frames[0]) if frames else 0
    graded = _graded_against_clean(score)
    for backend in backends:
        if backend.label in failed:
            continue
        answers = {row.item_id: row.target for part in clean_rows
                   for row in part.loc[part["model"] == backend.label].itertuples()
                   if row.spec == "clean" and _no_gold(items[row.item_id])}
        own = []
        for variant in noisy:
            item = variant.item
            if _no_gold(item):
                clean = answers.get(item.id)
                target = clean if isinstance(clean, str) and clean.strip() else ""
                item = _with_reference(item, target, CLEAN_ANSWER)
            elif item.task == "open":
                item = _with_reference(item, item.target, GOLD)
            own.append(dataclasses.replace(variant, item=item))
        if not own:
            continue
        left = None if max_calls is None else max(0, max_calls - used)
        try:
            part = run_queries(own, [backend], build_messages=build_messages, score=graded,
                               cache=cache, max_calls=left, progress=progress)
        except FatalModelError as exc:
            if getattr(exc, "results", None) is None:
                raise
            fatal, part = fatal or exc, exc.results
        used += _calls(part)
        frames.append(part)
    results = _ordered(clean_rows + frames[1:], labels, order)
    results.attrs["run_stats"] = _merged_stats(frames)
    fatals = {k: v for f in frames for k, v in f.attrs.get("fatal", {}).items()}
    if fatals:
        results.attrs["fatal"] = fatals
    if fatal is not None:
        fatal.results = results
        raise fatal
    return results


def _ordered(frames: Sequence[pd.DataFrame], labels: Sequence[str],
             order: dict[str, int]) -> pd.DataFrame:
    import pandas as pd

    frames = [f for f in frames if len(f)]
    if not frames:
        from robustify.runner.store import empty_frame

        return empty_frame()
    merged = pd.concat(frames, ignore_index=True)
    rank = {label: i for i, label in enumerate(labels)}
    keys = pd.DataFrame({"m": merged["model"].map(rank), "v": merged["variant_id"].map(order)})
    merged = merged.loc[keys.sort_values(["m", "v"], kind="mergesort").index]
    columns = list(RESULT_COLUMNS) + sorted(c for c in merged.columns if c.startswith("meta."))
    return merged.reset_index(drop=True)[columns]
