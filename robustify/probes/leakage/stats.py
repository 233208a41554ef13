"""The leakage probe's statistics: per item, then per model, against chance or controls.

**Verbatim.** An item right verbatim and wrong on *every* rewrite is a *memorisation
suspect*. Under the within-item permutation null ("verbatim" is a label stuck at random
on one of the item's k+1 versions) an item with exactly one right version is a suspect
with probability 1/(k+1) and any other item never, so the suspect count is
Poisson-binomial: an exact one-sided p-value and a 95% chance range
(:func:`verbatim_summary`, using :mod:`robustify.analysis.stats`).

**Completion.** :func:`completion_metrics` measures how much of the true remainder a
continuation reproduces (word n-grams, exact leading words, character similarity);
:func:`completion_summary` sets the benchmark items against their shuffled controls,
paired item by item.

:class:`LeakageResult` holds every frame of a probe.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd
from rapidfuzz import fuzz

from robustify.analysis.stats import bootstrap_ci, group_rng, poisson_binomial_pmf, wilson_interval
from robustify.reporting.format import MISSING, is_missing

__all__ = ["GROUPS", "VERBATIM_ITEM_COLUMNS", "COMPLETION_ITEM_COLUMNS", "verbatim_item_stats",
           "verbatim_summary", "completion_metrics", "completion_item_stats",
           "completion_summary"]

GROUPS = ("benchmark", "shuffled", "fresh", "known")
"""Completion-probe groups: the benchmark items, their word-shuffled controls, fresh
items written for this project, famous texts (positive control)."""


VERBATIM_ITEM_COLUMNS = (
    "model", "item_id", "task", "verbatim_score", "verbatim_right", "n_rewrites",
    "rewrites_right", "rewrite_accuracy", "suspect", "chance_prob", "rewrite_specs",
    "verbatim_parsed", "rewrite_parsed", "input", "rewrite_input",
)


def verbatim_item_stats(results: pd.DataFrame) -> pd.DataFrame:
    """Per model x item: the verbatim outcome against its rewrites.

    Args:
        results: Runner rows of :func:`verbatim_variants` (clean rows have
            ``spec == "clean"``). Rows whose call failed (score NaN) are left out; an
            item whose verbatim call failed, or with no scored rewrite, is dropped.

    Returns:
        One row per model x item: ``verbatim_right`` (score >= 0.5), ``n_rewrites``
        (scored rewrites), ``rewrites_right``, ``rewrite_accuracy``, ``suspect`` (right
        verbatim, wrong on every rewrite), ``chance_prob`` (the probability of being a
        suspect if the verbatim label fell at random on one of the item's versions:
        1/(k+1) when exactly one version is right, else 0), the rewrite specs, parsed
        answers and texts.
    """
    if results.empty:
        return pd.DataFrame(columns=list(VERBATIM_ITEM_COLUMNS))
    df = results.copy()
    df["score"] = pd.to_numeric(df["score"], errors="coerce")
    rows = []
    for (model, item_id), g in df.groupby(["model", "item_id"], sort=False):
        clean = g.loc[g["spec"] == "clean"]
        rewrites = g.loc[(g["spec"] != "clean") & g["score"].notna()]
        if clean.empty or clean["score"].isna().all() or rewrites.empty:
            continue
        verbatim = clean.iloc[0]
        v_right = bool(verbatim["score"] >= 0.5)
        right = rewrites["score"] >= 0.5
        k, r = int(len(rewrites)), int(right.sum())
        total_right = r + int(v_right)
        rows.append({
            "model": model, "item_id": item_id, "task": verbatim.get("task"),
            "verbatim_score": float(verbatim["score"]), "verbatim_right": v_right,
            "n_rewrites": k, "rewrites_right": r, "rewrite_accuracy": r / k,
            "suspect": v_right and r == 0,
            "chance_prob": (1.0 / (k + 1)) if total_right == 1 else 0.0,
            "rewrite_specs": ", ".join(rewrites["spec"].astype(str)),
            "verbatim_parsed": verbatim.get("parsed"),
            "rewrite_parsed": ", ".join(MISSING if is_missing(p) else str(p)
                                        for p in rewrites.get("parsed", [])),
            "input": verbatim.get("input"),
            "rewrite_input": _rewrite_example(verbatim, rewrites),
        })
    return pd.DataFrame(rows, columns=list(VERBATIM_ITEM_COLUMNS))


def _rewrite_example(verbatim: pd.Series, rewrites: pd.DataFrame) -> str:
    """One rewrite to show beside the question: a reworded one if any, with its spec.

    A results row holds the question text but not the options, so a choice shuffle
    (same text, options moved) is named as such rather than shown as an identical text.
    """
    reworded = rewrites.loc[rewrites["input"] != verbatim.get("input")]
    if len(reworded):
        first = reworded.iloc[0]
        return f"[{first['spec']}] {first['input']}"
    return f"[{rewrites.iloc[0]['spec']}] same wording, options reordered"


def verbatim_summary(item_stats: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0,
                     ci: float = 0.95) -> pd.DataFrame:
    """Per model: memorisation suspects against the chance baseline.

    Columns: ``n_items`` (items with a scored verbatim answer and at least one scored
    rewrite), ``verbatim_accuracy``, ``rewrite_accuracy`` (over rewrites),
    ``n_verbatim_right``, ``n_suspects``, ``suspect_rate`` with its Wilson interval
    ``ci_low``/``ci_high``, ``suspect_share_of_right`` (suspects / items right
    verbatim), ``chance_rate`` (expected rate under the within-item permutation null),
    ``chance_high`` (95th percentile of the null rate), ``excess_pp`` (suspect minus
    chance rate, in pp) with a bootstrap interval over items ``excess_ci_low_pp`` /
    ``excess_ci_high_pp``, ``p_value`` (exact one-sided P(suspects >= observed) under
    the null) and ``signal`` (True when p < 0.05).
    """
    rows = []
    if item_stats.empty:
        return pd.DataFrame(columns=["model", "n_items", "suspect_rate", "chance_rate",
                                     "p_value", "signal"])
    for model, g in item_stats.groupby("model", sort=False):
        n = int(len(g))
        suspects = int(g["suspect"].sum())
        probs = g["chance_prob"].to_numpy(dtype=float)
        pmf = poisson_binomial_pmf(probs)
        cdf = np.cumsum(pmf)
        p_value = float(min(1.0, pmf[suspects:].sum()))
        chance_high = int(np.searchsorted(cdf, 0.95 - 1e-12)) / n
        low, high = wilson_interval(suspects, n, ci)
        diff = g["suspect"].astype(float).to_numpy() - probs
        e_low, e_high = bootstrap_ci(diff, n_boot=n_boot, seed=group_rng(seed, ("excess", model)),
                                     ci=ci)
        n_right = int(g["verbatim_right"].sum())
        rewrite_acc = float(g["rewrites_right"].sum() / max(1, g["n_rewrites"].sum()))
        rows.append({
            "model": model, "n_items": n,
            "verbatim_accuracy": float(g["verbatim_right"].mean()),
            "rewrite_accuracy": rewrite_acc,
            "n_rewrites": int(g["n_rewrites"].sum()),
            "n_verbatim_right": n_right, "n_suspects": suspects,
            "suspect_rate": suspects / n, "ci_low": low, "ci_high": high,
            "suspect_share_of_right": suspects / n_right if n_right else math.nan,
            "chance_rate": float(probs.sum() / n), "chance_high": chance_high,
            "excess_pp": (suspects / n - probs.sum() / n) * 100.0,
            "excess_ci_low_pp": e_low * 100.0, "excess_ci_high_pp": e_high * 100.0,
            "p_value": p_value, "signal": bool(p_value < 0.05),
        })
    return pd.DataFrame(rows)


_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)


def _words(text: str | None) -> list[str]:
    return [w.lower().replace("’", "'") for w in _WORD.findall(text or "")]


def _strip_echo(prefix: list[str], continuation: list[str]) -> list[str]:
    """Drop a restatement of the prefix at the start of the continuation.

    Small chat models often repeat the text they were given before continuing it;
    that echo is not reproduction of the unseen remainder, so it is removed: the whole
    prefix when the continuation opens with a close copy of it (rapidfuzz ratio >= 85);
    else everything up to the prefix's last three words when they reappear within the
    first len(prefix) + 10 words (a framed or paraphrased echo); else the longest tail
    of the prefix the continuation starts with (2+ words).
    """
    if not continuation or not prefix:
        return continuation
    n = len(prefix)
    if len(continuation) >= n and fuzz.ratio(" ".join(continuation[:n]), " ".join(prefix)) >= 85:
        return continuation[n:]
    # a framed or paraphrased echo ('The original text is: "... conceived in"'): the
    # prefix's last three words reappear early on; continue from there
    tail = prefix[-3:]
    window = min(len(continuation), n + 10)
    for j in range(0, window - len(tail) + 1):
        if continuation[j:j + len(tail)] == tail:
            return continuation[j + len(tail):]
    for m in range(min(n, len(continuation)), 1, -1):
        if continuation[:m] == prefix[-m:]:
            return continuation[m:]
    return continuation


def completion_metrics(prefix: str, remainder: str, continuation: str | None, *,
                       ngram: int = 3) -> dict[str, float]:
    """How much of ``remainder`` a model's ``continuation`` reproduces.

    Words are lower-cased word tokens (punctuation ignored); an echo of the prefix at the
    start of the continuation is removed first (see :func:`_strip_echo`).

    Returns:
        ``ngram_overlap``: share of the remainder's word n-grams (n = ``ngram``, or the
        remainder's length if shorter) found anywhere in the first 2 x len(remainder)
        words of the continuation; ``exact_prefix``: leading words equal to the
        remainder's, over its length; ``similarity``: rapidfuzz ``ratio`` / 100 between
        the remainder and as many continuation words; ``n_remainder`` words. All NaN
        when the continuation is ``None`` (the call failed).

    >>> completion_metrics("to be or", "not to be", "not to be")["ngram_overlap"]
    1.0
    """
    rem = _words(remainder)
    if continuation is None or not rem:
        return {"ngram_overlap": math.nan, "exact_prefix": math.nan, "similarity": math.nan,
                "n_remainder": float(len(rem))}
    cont = _strip_echo(_words(prefix), _words(continuation))
    window = cont[:2 * len(rem)]
    n = max(1, min(ngram, len(rem)))
    wanted = [tuple(rem[i:i + n]) for i in range(len(rem) - n + 1)]
    have = {tuple(window[i:i + n]) for i in range(max(0, len(window) - n + 1))}
    overlap = sum(g in have for g in wanted) / len(wanted)
    exact = 0
    for a, b in zip(rem, cont):
        if a != b:
            break
        exact += 1
    similarity = fuzz.ratio(" ".join(rem), " ".join(cont[:len(rem)])) / 100.0
    return {"ngram_overlap": float(overlap), "exact_prefix": exact / len(rem),
            "similarity": float(similarity), "n_remainder": float(len(rem))}


COMPLETION_ITEM_COLUMNS = ("model", "group", "item_id", "source_id", "prefix", "remainder",
                            "continuation", "ngram_overlap", "exact_prefix", "similarity",
                            "reproduced", "error")


def completion_item_stats(results: pd.DataFrame, *, ngram: int = 3,
                          reproduced_at: float = 0.5) -> pd.DataFrame:
    """Per model x probe: the metrics of :func:`completion_metrics` and a flag.

    ``reproduced`` is True when at least ``reproduced_at`` of the remainder's n-grams
    came back. Failed calls keep NaN metrics and their error.
    """
    rows = []
    for rec in results.to_dict("records"):
        meta_group = rec.get("meta.group")
        metrics = completion_metrics(rec["input"], rec["target"], rec.get("response"),
                                     ngram=ngram)
        overlap = metrics["ngram_overlap"]
        rows.append({
            "model": rec["model"], "group": meta_group, "item_id": rec["item_id"],
            "source_id": rec.get("meta.source_id"), "prefix": rec["input"],
            "remainder": rec["target"], "continuation": rec.get("response"),
            "ngram_overlap": overlap, "exact_prefix": metrics["exact_prefix"],
            "similarity": metrics["similarity"],
            "reproduced": bool(not math.isnan(overlap) and overlap >= reproduced_at),
            "error": rec.get("error"),
        })
    return pd.DataFrame(rows, columns=list(COMPLETION_ITEM_COLUMNS))


def completion_summary(item_stats: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0,
                       ci: float = 0.95) -> pd.DataFrame:
    """Per model x group: mean reproduction with bootstrap intervals over items.

    Columns: ``n``, ``ngram_overlap`` (+ ``ngram_ci_low``/``ngram_ci_high``),
    ``similarity`` (+ interval), ``exact_prefix``, ``reproduced_rate``. On the
    ``benchmark`` rows also the paired excess over the item's own shuffled control,
    ``excess_ngram_pp`` and ``excess_similarity_pp`` with bootstrap intervals over items
    (``..._ci_low_pp``/``..._ci_high_pp``): how much more of the true remainder comes back
    than of a remainder the model cannot have seen, from the same words.
    """
    rows = []
    if item_stats.empty:
        return pd.DataFrame(columns=["model", "group", "n", "ngram_overlap", "similarity"])
    scored = item_stats.loc[item_stats["ngram_overlap"].notna()]
    for model in pd.unique(item_stats["model"]):
        mine = scored.loc[scored["model"] == model]
        for group in GROUPS:
            g = mine.loc[mine["group"] == group]
            if g.empty:
                continue
            row: dict[str, Any] = {"model": model, "group": group, "n": int(len(g))}
            for metric, short in (("ngram_overlap", "ngram"), ("similarity", "similarity")):
                values = g[metric].to_numpy(dtype=float)
                low, high = bootstrap_ci(values, n_boot=n_boot,
                                         seed=group_rng(seed, (model, group, metric)), ci=ci)
                row[metric] = float(values.mean())
                row[f"{short}_ci_low"], row[f"{short}_ci_high"] = low, high
            row["exact_prefix"] = float(g["exact_prefix"].mean())
            row["reproduced_rate"] = float(g["reproduced"].mean())
            if group == "benchmark":
                control = mine.loc[mine["group"] == "shuffled"].set_index("source_id")
                paired = g.loc[g["source_id"].isin(control.index)]
                for metric, short in (("ngram_overlap", "ngram"), ("similarity", "similarity")):
                    if paired.empty:
                        row[f"excess_{short}_pp"] = math.nan
                        row[f"excess_{short}_ci_low_pp"] = math.nan
                        row[f"excess_{short}_ci_high_pp"] = math.nan
                        continue
                    diff = (paired[metric].to_numpy(dtype=float)
                            - control.loc[paired["source_id"], metric].to_numpy(dtype=float))
                    low, high = bootstrap_ci(diff, n_boot=n_boot,
                                             seed=group_rng(seed, (model, "excess", metric)), ci=ci)
                    row[f"excess_{short}_pp"] = float(diff.mean()) * 100.0
                    row[f"excess_{short}_ci_low_pp"] = low * 100.0
                    row[f"excess_{short}_ci_high_pp"] = high * 100.0
            rows.append(row)
    return pd.DataFrame(rows)
