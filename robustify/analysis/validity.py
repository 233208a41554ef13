"""Validity: does a run's drop mean anything at all?

A drop is only worth reading when the clean score measures the task. This module looks at
the results frame and finds, per model, the conditions under which the headline number is
meaningless or shaky:

``at_chance``
    The clean score is not above chance (one-sided Wilson bound, see :data:`CHANCE_CONFIDENCE`):
    chance is 1 / options for multiple choice, 1 / labels for classification, 0.5 for yes/no
    and 0 for free answers (there, no right clean answer at all).
``constant``
    At least :data:`CONSTANT_SHARE` of the clean answers are the same answer after
    normalisation (``"No"`` to every yes/no question), while the gold answers vary. In a
    consistency run (``open`` items without gold, ``meta.reference == "clean_answer"``)
    there is no gold: the same answer to nine messages in ten is warned about as such,
    since a model that always says the same thing agrees with itself whatever the noise.
``unparseable``
    More than :data:`UNPARSEABLE_SHARE` of the clean answers could not be parsed by the
    scorer (noisy answers that become unparseable are a real effect, counted in the flips).
``token_limit``
    More than :data:`TOKEN_LIMIT_SHARE` of the answers stopped at the token limit
    (column ``hit_token_limit``; a missing column counts as no answer cut).
``answer_capped``
    More than :data:`TOKEN_LIMIT_SHARE` of the answers were cut by the answer-size cap
    (column ``answer_capped``).
``no_change``
    A note, not a warning: the interval of the drop spans 0 (no detectable change).

Groups with fewer than :data:`MIN_ANSWERS` clean answers are not judged. A consistency
run has no chance level (its clean rows agree with themselves), so ``at_chance`` is not
judged there.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import pandas as pd

from perturbations.records import CLEAN
from robustify.analysis.stats import wilson_interval

__all__ = ["Finding", "CHANCE_CONFIDENCE", "CONSTANT_SHARE", "UNPARSEABLE_SHARE",
           "TOKEN_LIMIT_SHARE", "MIN_ANSWERS", "WARNING_KINDS", "chance_levels",
           "validity_findings", "warnings_by_model"]

CHANCE_CONFIDENCE = 0.95
"""One-sided confidence of the Wilson lower bound that must clear chance."""
CONSTANT_SHARE = 0.90
"""Share of identical clean answers (after normalisation) that makes an answer constant."""
UNPARSEABLE_SHARE = 0.20
"""Share of unparseable answers above which the score measures the format, not the task."""
TOKEN_LIMIT_SHARE = 0.10
"""Share of answers cut by the token limit (or the answer cap) above which a run is warned."""
MIN_ANSWERS = 5
"""Fewest clean answers of a model (per task kind) before chance or constancy is judged."""

WARNING_KINDS = ("at_chance", "constant", "unparseable", "token_limit", "answer_capped")
"""Kinds that make a measurement doubtful; ``no_change`` is a note."""

_FIXED_CHANCE = {"yes_no": 0.5, "short_answer": 0.0, "numeric": 0.0, "open": 0.0}
_LETTER = re.compile(r"^[A-Z]$")


@dataclass(frozen=True)
class Finding:
    """One validity finding about one model."""

    model: str
    kind: str
    """One of :data:`WARNING_KINDS` or ``no_change``."""
    message: str
    """A plain sentence, without the model's name."""
    task: str | None = None
    """The task kind it concerns (None: all of the model's rows)."""
    value: float = math.nan
    """The measured share or score behind it."""

    @property
    def is_warning(self) -> bool:
        return self.kind in WARNING_KINDS


def chance_levels(items: Iterable[Any]) -> dict[str, float]:
    """Chance score per task kind from items: the mean of 1 / options (or labels) per item.

    Multiple choice counts an item's ``choices``; classification its ``metadata["labels"]``
    (left out when an item has none); yes/no is 0.5; free answers 0.
    """
    shares: dict[str, list[float]] = {}
    for item in items:
        task = getattr(item, "task", None)
        if task == "multiple_choice" and getattr(item, "choices", None):
            shares.setdefault(task, []).append(1.0 / len(item.choices))
        elif task == "classification":
            labels = (getattr(item, "metadata", None) or {}).get("labels")
            if isinstance(labels, (list, tuple)) and labels:
                shares.setdefault(task, []).append(1.0 / len(labels))
        elif task in _FIXED_CHANCE and (task != "open" or getattr(item, "target", "")):
            shares.setdefault(task, []).append(_FIXED_CHANCE[task])  # open: with a gold
    return {task: round(sum(v) / len(v), 6) for task, v in shares.items()}


def _fallback_chance(task: str, clean: pd.DataFrame) -> float | None:
    """Chance from the rows alone (an old run without ``chance`` in its manifest)."""
    if task in _FIXED_CHANCE:
        return _FIXED_CHANCE[task]
    if task == "multiple_choice":
        letters = [str(t).strip().upper() for t in clean["target"].dropna()]
        letters = [t for t in letters if _LETTER.match(t)]
        # the highest gold letter is a lower bound of the options: chance at most this
        return 1.0 / max(2, max(ord(t) - 64 for t in letters)) if letters else None
    if task == "classification" and "meta.labels" in clean.columns:
        sizes = [len(v) for v in clean["meta.labels"] if isinstance(v, (list, tuple)) and v]
        if sizes:
            return sum(1.0 / n for n in sizes) / len(sizes)
    return None


def _norm(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    text = re.sub(r"[\s.!?,;:\"'()]+", " ", str(value)).strip().casefold()
    return text or None


def _flag(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(False, index=frame.index)
    return frame[column].map(lambda v: v is True or (not isinstance(v, str) and v == 1)
                             if v is not None and v is not pd.NA
                             and not (isinstance(v, float) and math.isnan(v)) else False)


def _own_reference(frame: pd.DataFrame) -> pd.Series:
    """Rows graded against the model's own clean answer (a consistency run)."""
    if "meta.reference" not in frame.columns:
        return pd.Series(False, index=frame.index)
    return frame["meta.reference"].astype(object).eq("clean_answer")


def _answered(frame: pd.DataFrame) -> pd.DataFrame:
    error = frame["error"] if "error" in frame.columns else pd.Series(None, index=frame.index)
    return frame.loc[error.isna()]


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def _task_findings(model: str, task: str | None, clean: pd.DataFrame,
                   chance: float | None, where: str, consistency: bool = False
                   ) -> list[Finding]:
    out: list[Finding] = []
    scored = clean.loc[pd.to_numeric(clean["score"], errors="coerce").notna()]
    n = len(scored)
    if n < MIN_ANSWERS:
        return out
    right = int((pd.to_numeric(scored["score"]) >= 0.5).sum())
    score = float(pd.to_numeric(scored["score"]).mean())
    if chance is not None and not consistency:
        low, _ = wilson_interval(right, n, ci=1 - 2 * (1 - CHANCE_CONFIDENCE))
        if right == 0 or low <= chance:
            what = (f"chance ({_pct(chance)}, the score of guessing)" if chance > 0
                    else "zero: no clean answer is right")
            out.append(Finding(model, "at_chance",
                               f"the clean score{where}, {_pct(score)} ({right} of {n} right), "
                               f"is not above {what}, so its drop measures noise on a model "
                               f"that does not do the task", task, score))
    answers = [a for a in (_norm(p if p is not None and not (isinstance(p, float) and
                                                          math.isnan(p)) else r)
                           for p, r in zip(scored.get("parsed", [None] * n),
                                           scored.get("response", [None] * n))) if a]
    if len(answers) >= MIN_ANSWERS:
        top, count = pd.Series(answers).value_counts().index[0], \
            int(pd.Series(answers).value_counts().iloc[0])
        gold = [g for g in map(_norm, scored.get("target", [])) if g]
        gold_share = (pd.Series(gold).value_counts().iloc[0] / len(gold)) if gold else 0.0
        share = count / len(answers)
        if consistency and share >= CONSTANT_SHARE:
            out.append(Finding(model, "constant",
                               f"{_pct(share)} of its clean answers{where} are the same "
                               f"answer ({top[:40]!r}): a model that says the same thing to "
                               f"every message agrees with itself whatever the noise",
                               task, share))
        elif not consistency and share >= CONSTANT_SHARE and gold_share < CONSTANT_SHARE:
            out.append(Finding(model, "constant",
                               f"{_pct(share)} of its clean answers{where} are the same "
                               f"answer ({top[:40]!r}) while the gold answers vary",
                               task, share))
    return out


def validity_findings(results: pd.DataFrame, *, chance: Mapping[str, float] | None = None,
                      overview: pd.DataFrame | None = None) -> list[Finding]:
    """Every validity finding of a results frame, model by model, warnings first.

    Args:
        results: The per-row results frame.
        chance: Chance score per task kind (:func:`chance_levels` of the items, kept in
            the manifest as ``chance``); a task missing here is estimated from the rows.
        overview: :func:`robustify.analysis.model_overview` of ``results``, for the
            ``no_change`` note (left out when None).
    """
    chance = dict(chance or {})
    out: list[Finding] = []
    if results is None or results.empty or "model" not in results.columns:
        return out
    is_clean = results["spec"] == CLEAN
    for model in pd.unique(results["model"]):
        rows = results.loc[results["model"] == model]
        clean = _answered(rows.loc[is_clean.loc[rows.index]])
        tasks = (list(pd.unique(clean["task"].dropna())) if "task" in clean.columns else [])
        model_findings: list[Finding] = []
        if not tasks:
            model_findings += _task_findings(str(model), None, clean, None, "")
        for task in tasks:
            part = clean.loc[clean["task"] == task]
            level = chance.get(str(task))
            if level is None:
                level = _fallback_chance(str(task), part)
            where = f" on {task} items" if len(tasks) > 1 else ""
            own = _own_reference(part)
            if own.any():  # consistency rows: graded against the model's own clean answer
                model_findings += _task_findings(str(model), str(task), part.loc[own], None,
                                                 where, consistency=True)
                part = part.loc[~own]
                if part.empty:
                    continue
            model_findings += _task_findings(str(model), str(task), part, level, where)
        if len(clean) >= MIN_ANSWERS:
            # clean answers only: a model that turns evasive under noise is a real effect
            share = float(_flag(clean, "unparseable").mean())
            if share > UNPARSEABLE_SHARE:
                model_findings.append(Finding(
                    str(model), "unparseable",
                    f"{_pct(share)} of its clean answers could not be parsed (counted wrong), "
                    f"so the score measures the answer format as much as the task", None, share))
        answered = _answered(rows)
        if len(answered):
            for column, kind, what in (
                    ("hit_token_limit", "token_limit", "stopped at the token limit "
                     "(max_tokens) and were scored cut short; raise --max-tokens"),
                    ("answer_capped", "answer_capped", "were cut by the answer-size cap")):
                share = float(_flag(answered, column).mean())
                if share > TOKEN_LIMIT_SHARE:
                    model_findings.append(Finding(str(model), kind,
                                                  f"{_pct(share)} of its answers {what}",
                                                  None, share))
        if overview is not None and len(overview):
            row = overview.loc[overview["model"] == model]
            if len(row):
                low = row["overestimation_ci_low_pp"].iloc[0]
                high = row["overestimation_ci_high_pp"].iloc[0]
                if pd.notna(low) and pd.notna(high) and float(low) <= 0.0 <= float(high):
                    model_findings.append(Finding(
                        str(model), "no_change",
                        "no detectable change: the interval of the drop spans 0", None,
                        float(row["overestimation_pp"].iloc[0])))
        out += model_findings
    return out


def warnings_by_model(findings: Iterable[Finding]) -> dict[str, list[str]]:
    """The warning messages of each model (``no_change`` notes left out), in order."""
    out: dict[str, list[str]] = {}
    for f in findings:
        if f.is_warning:
            out.setdefault(f.model, []).append(f.message)
    return out
