"""How the ranking of models changes under noise (HELM-style), with rank correlations."""

from __future__ import annotations

import math
from itertools import combinations
from typing import Sequence

import pandas as pd

from robustify.analysis.paired import _check_by, _clean_mask, _prepare, pair_with_clean
from robustify.analysis.stats import rank_correlations

__all__ = ["ranking_change"]


def ranking_change(results: pd.DataFrame, *, by: str = "transform",
                   policies: Sequence[str] | None = None) -> pd.DataFrame:
    """How the ranking of models under each transform differs from the clean ranking.

    Args:
        results: The per-row results frame with two or more models.
        by: Column that defines the conditions (``transform`` or ``spec``).
        policies: Keep only these label policies (default: all).

    Returns:
        One row per (condition, model): ``clean_score`` (mean over the model's scored clean
        rows), ``score`` (mean perturbed score), ``clean_rank`` and ``rank`` (1 = best;
        ties share the better rank), ``rank_change`` (clean_rank - rank, positive = moved
        up), and per condition ``spearman`` and ``kendall`` (rank correlation of clean vs
        perturbed scores across models; NaN with fewer than two models or a constant
        score), ``n_swaps`` and ``swaps``: the pairs ahead on clean and strictly behind
        under noise, written ``"a > b"`` for the clean order, separated by ``"; "``.
    """
    df = _prepare(results)
    paired = pair_with_clean(df)
    if policies is not None:
        paired = paired.loc[paired["label_policy"].isin(list(policies))]
    _check_by(paired, [by])
    clean = df.loc[_clean_mask(df)].drop_duplicates(["model", "item_id"])
    clean_score = clean.groupby("model", sort=False)["score"].mean()
    models = list(pd.unique(df["model"]))
    rows = []
    used = paired.loc[paired["paired"]]
    for condition in pd.unique(paired[by]):
        sub = used.loc[used[by] == condition]
        score = sub.groupby("model", sort=False)["score"].mean().reindex(models)
        base = clean_score.reindex(models)
        clean_rank = base.rank(ascending=False, method="min")
        rank = score.rank(ascending=False, method="min")
        rho, tau = rank_correlations(base.to_numpy(float), score.to_numpy(float))
        swaps = []
        for a, b in combinations(models, 2):
            ca, cb, sa, sb = base[a], base[b], score[a], score[b]
            if any(map(math.isnan, (ca, cb, sa, sb))):
                continue
            if ca > cb and sa < sb:
                swaps.append(f"{a} > {b}")
            elif cb > ca and sb < sa:
                swaps.append(f"{b} > {a}")
        for model in models:
            rows.append({
                by: condition, "model": model, "clean_score": float(base[model]),
                "score": float(score[model]),
                "clean_rank": float(clean_rank[model]), "rank": float(rank[model]),
                "rank_change": float(clean_rank[model] - rank[model]),
                "spearman": rho, "kendall": tau, "n_swaps": len(swaps),
                "swaps": "; ".join(swaps),
            })
    return pd.DataFrame(rows, columns=[by, "model", "clean_score", "score", "clean_rank", "rank",
                                       "rank_change", "spearman", "kendall", "n_swaps", "swaps"])


