"""Score against severity: the curve per model and transform, and the area under it."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from robustify.analysis.paired import _ordered, pair_with_clean

__all__ = ["severity_curve", "severity_auc"]


def severity_curve(results: pd.DataFrame, *, policies: Sequence[str] | None = None
                   ) -> pd.DataFrame:
    """Score against severity per model x transform, with severity 0 = the clean score.

    The severity-0 point of a curve is the mean clean score over the items that curve's
    scored variants cover, so every point of one curve averages the same items.
    Perturbed rows at severity 0 (the identity by contract) are not added twice.

    Args:
        results: The per-row results frame.
        policies: Keep only these label policies (default: all).

    Returns:
        Rows ``model``, ``transform``, ``severity``, ``severity_label`` (``"clean"`` at
        0), ``score``, ``drop_pp`` (clean point - this point), ``n_scored``, ``n_items``,
        sorted by model, transform (first appearance) and severity.
    """
    paired = pair_with_clean(results)
    if policies is not None:
        paired = paired.loc[paired["label_policy"].isin(list(policies))]
    used = paired.loc[paired["paired"] & (paired["severity"] > 0)]
    rows = []
    for (model, transform), g in used.groupby(["model", "transform"], sort=False):
        base = float(g.drop_duplicates("item_id")["clean_score"].mean())
        rows.append({"model": model, "transform": transform, "severity": 0.0,
                     "severity_label": "clean", "score": base, "drop_pp": 0.0,
                     "n_scored": int(g["item_id"].nunique()),
                     "n_items": int(g["item_id"].nunique())})
        for severity, s in g.groupby("severity", sort=True):
            labels = list(dict.fromkeys(str(v) for v in s["severity_label"].dropna()))
            score = float(s["score"].mean())
            rows.append({"model": model, "transform": transform, "severity": float(severity),
                         "severity_label": labels[0] if len(labels) == 1 else None,
                         "score": score, "drop_pp": (base - score) * 100.0,
                         "n_scored": int(len(s)), "n_items": int(s["item_id"].nunique())})
    out = pd.DataFrame(rows, columns=["model", "transform", "severity", "severity_label", "score",
                                      "drop_pp", "n_scored", "n_items"])
    return _ordered(out, ["model", "transform", "severity"], paired)


def severity_auc(data: pd.DataFrame) -> pd.DataFrame:
    """Normalised area under each score-vs-severity curve.

    For each model x transform the curve's points (severity 0 = clean score, then each
    measured severity) are joined by straight lines; the area under them (trapezoid
    rule) over [0, max severity] is divided by the width max severity. The result is a
    score on the same 0..1 scale: the average score over the severity range. A model
    unaffected by the noise has ``auc == clean_score``; ``auc_ratio`` = auc / clean score
    (NaN when the clean score is 0) compares models with different clean scores.

    Args:
        data: Either a results frame (has ``item_id``) or the output of
            :func:`severity_curve`.

    Returns:
        Rows ``model``, ``transform``, ``auc``, ``clean_score``, ``auc_ratio``,
        ``max_severity``, ``n_points``. A curve with a single point has NaN ``auc``.
    """
    curve = severity_curve(data) if "item_id" in data.columns else data
    rows = []
    for (model, transform), g in curve.groupby(["model", "transform"], sort=False):
        g = g.dropna(subset=["severity", "score"]).sort_values("severity", kind="mergesort")
        x = g["severity"].to_numpy(float)
        y = g["score"].to_numpy(float)
        zero = g.loc[g["severity"] == 0, "score"]
        clean = float(zero.iloc[0]) if len(zero) else math.nan
        width = float(x.max() - x.min()) if len(x) else 0.0
        if len(x) < 2 or width <= 0:
            auc = math.nan
        else:
            auc = float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0) / width)
        rows.append({"model": model, "transform": transform, "auc": auc, "clean_score": clean,
                     "auc_ratio": auc / clean if clean > 0 and not math.isnan(auc) else math.nan,
                     "max_severity": float(x.max()) if len(x) else math.nan,
                     "n_points": int(len(x))})
    return pd.DataFrame(rows, columns=["model", "transform", "auc", "clean_score", "auc_ratio",
                                       "max_severity", "n_points"])


