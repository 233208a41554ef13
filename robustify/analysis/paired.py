"""Paired analysis of a results frame: how much does noise cost each model?

Everything here takes the per-row results frame (one row per model x variant, clean
originals included with ``spec == "clean"``; see ``docs/ARCHITECTURE.md``) and returns a
tidy :class:`pandas.DataFrame`. Nothing is printed, drawn or written.

Conventions shared by every function:

* **Paired, never pooled.** Each perturbed row is compared with the clean row of the same
  ``(model, item_id)`` (:func:`pair_with_clean`), never with the model's overall clean
  accuracy. A row whose own score or whose clean score is NaN (a failed or unscored call)
  is left out of the drop statistics and counted in ``n_failed``.
* **Scores are fractions** in [0, 1]; columns ending in ``_pp`` are percentage points
  (fraction x 100).
* **Right/wrong** means score >= 0.5 (partial-credit scores are thresholded) wherever a
  binary outcome is needed: flips and McNemar's test.
* **Intervals** are percentile bootstrap intervals that resample *items* (all replicates
  of a resampled item come along), so correlated replicates do not make them too narrow.
  Every group draws from its own ``numpy.random.default_rng`` seeded from ``seed`` and the
  group's key, so a group's interval does not change when other groups are added.
* **Order** of output rows follows the first appearance of models, transforms and other
  text keys in the input; numeric keys (severity) are sorted ascending.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from perturbations.errors import ConfigError, DataError
from perturbations.records import CLEAN  # the spec of clean rows: one constant, re-exported
from robustify.analysis.stats import bootstrap_ci, group_rng, mcnemar_exact

__all__ = ["CLEAN", "LABEL_PRESERVING", "SUMMARY_COLUMNS", "pair_with_clean",
           "summarize", "model_overview", "may_break_summary", "noise_floor"]

log = logging.getLogger(__name__)


LABEL_PRESERVING = ("preserves", "remaps")
"""Label policies under which the gold answer is still derivable from the perturbed item."""

_REQUIRED = ("model", "item_id", "spec", "score")

SUMMARY_COLUMNS = (
    "n_rows", "n_items", "n_replicates", "n_changed", "n_failed", "n_scored",
    "clean_score", "perturbed_score", "drop", "drop_pp", "ci_low", "ci_high",
    "ci_low_pp", "ci_high_pp", "relative_drop", "p_value",
    "flips_right_to_wrong", "flips_wrong_to_right", "flips_right_to_unparseable",
    "flip_rate", "consistency", "unparseable_rate", "clean_unparseable_rate",
    "token_limit_rate", "mean_edit_rate", "label_policy", "spec", "severity_label",
)
"""Statistic columns :func:`summarize` adds after the group columns (see its docstring)."""


# --------------------------------------------------------------------------- helpers


def _prepare(results: pd.DataFrame) -> pd.DataFrame:
    """A defensive copy with every column the analysis reads, in the expected dtype."""
    if not isinstance(results, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame of results, got {type(results).__name__}")
    missing = [c for c in _REQUIRED if c not in results.columns]
    if missing:
        raise DataError(f"results frame lacks column(s) {', '.join(missing)}; "
                        "see RESULT_COLUMNS in robustify/records.py")
    df = results.copy()
    df = df.reset_index(drop=True)
    if "transform" not in df.columns:
        df["transform"] = df["spec"].astype(str).str.split("@").str[0]
    defaults: dict[str, Any] = {
        "severity": 0.0, "severity_label": None, "replicate": 0, "changed": True,
        "edit_rate": np.nan, "label_policy": "preserves", "parsed": None, "response": None,
        "input": None, "target": None, "error": None, "unparseable": False,
        "hit_token_limit": False,
    }
    for column, value in defaults.items():
        if column not in df.columns:
            df[column] = value
    df["score"] = pd.to_numeric(df["score"], errors="coerce").astype(float)
    df["severity"] = pd.to_numeric(df["severity"], errors="coerce").astype(float)
    df["replicate"] = pd.to_numeric(df["replicate"], errors="coerce").fillna(0).astype(int)
    df["edit_rate"] = pd.to_numeric(df["edit_rate"], errors="coerce").astype(float)
    df["unparseable"] = _as_bool(df["unparseable"], default=False)
    df["hit_token_limit"] = _as_bool(df["hit_token_limit"], default=False)
    df["changed"] = _as_bool(df["changed"], default=True)
    df["label_policy"] = df["label_policy"].where(df["label_policy"].notna(), "preserves")
    return df


def _as_bool(series: pd.Series, *, default: bool) -> pd.Series:
    # Object columns read back from JSON hold None for missing values; fillna on an
    # object series would warn about downcasting, so map explicitly.
    return series.map(lambda v: default if v is None or (isinstance(v, float) and math.isnan(v))
                      else bool(v)).astype(bool)


def _clean_mask(df: pd.DataFrame) -> pd.Series:
    return (df["spec"] == CLEAN) | (df["transform"] == CLEAN)


def _norm_answer(value: Any) -> str | None:
    """Comparable form of a parsed answer: stripped, case-folded, single-spaced."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = " ".join(str(value).split()).casefold()
    return text or None


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _check_by(df: pd.DataFrame, by: Sequence[str]) -> list[str]:
    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in by if c not in df.columns]
    if missing:
        close = [c for c in df.columns if any(m.split(".")[-1] in str(c) for m in missing)]
        hint = f" (did you mean {', '.join(map(str, close))}?)" if close else ""
        raise ConfigError(f"cannot group by {', '.join(missing)}: no such column{hint}")
    return by


def _ordered(frame: pd.DataFrame, keys: Sequence[str], reference: pd.DataFrame) -> pd.DataFrame:
    """Sort ``frame`` by ``keys``: text keys by first appearance in ``reference``,
    numeric keys ascending (NaN last)."""
    if frame.empty or not keys:
        return frame.reset_index(drop=True)
    sort_cols = []
    tmp = frame.copy()
    for i, key in enumerate(keys):
        col = f"__order{i}"
        if pd.api.types.is_numeric_dtype(frame[key]) and not pd.api.types.is_bool_dtype(frame[key]):
            tmp[col] = frame[key].astype(float).fillna(np.inf)
        else:
            uniques = pd.unique(reference[key]) if key in reference.columns else pd.unique(frame[key])
            lookup = {_key_token(v): n for n, v in enumerate(uniques)}
            tmp[col] = frame[key].map(lambda v: lookup.get(_key_token(v), len(lookup)))
        sort_cols.append(col)
    tmp = tmp.sort_values(sort_cols, kind="mergesort")
    return tmp.drop(columns=sort_cols).reset_index(drop=True)


def _key_token(value: Any) -> str:
    return "\x00nan" if _is_missing(value) and not isinstance(value, str) else repr(value)


# ------------------------------------------------------------------------- pairing


def pair_with_clean(results: pd.DataFrame) -> pd.DataFrame:
    """Join every perturbed row with the clean row of its own ``(model, item_id)``.

    Args:
        results: The per-row results frame.

    Returns:
        The perturbed rows (clean rows removed), in input order, with every original
        column plus ``clean_score``, ``clean_parsed``, ``clean_response``, ``clean_input``,
        ``clean_unparseable``, ``clean_error`` and derived columns:

        * ``has_clean``: a clean row exists for the pair;
        * ``paired``: both scores are numbers (the row counts in drop statistics);
        * ``drop``: ``clean_score - score`` (NaN unless ``paired``);
        * ``flip``: ``"right->wrong"``, ``"wrong->right"``, ``"same"`` or None (unpaired);
        * ``consistent``: 1.0 when the parsed answer equals the clean parsed answer,
          0.0 when it differs (including no answer), NaN when the clean answer has no
          parsed value or the perturbed call failed.

    Raises:
        DataError: A required column is missing.
    """
    df = _prepare(results)
    clean_mask = _clean_mask(df)
    clean = df.loc[clean_mask]
    dup = clean.duplicated(["model", "item_id"], keep="first")
    if dup.any():
        log.warning("%d duplicate clean rows (same model and item); the first of each is used",
                    int(dup.sum()))
        clean = clean.loc[~dup]
    rename = {"score": "clean_score", "parsed": "clean_parsed", "response": "clean_response",
              "input": "clean_input", "unparseable": "clean_unparseable", "error": "clean_error"}
    right = clean[["model", "item_id", *rename]].rename(columns=rename)
    right["has_clean"] = True
    perturbed = df.loc[~clean_mask]
    paired = perturbed.merge(right, on=["model", "item_id"], how="left", validate="many_to_one")
    paired["has_clean"] = _as_bool(paired["has_clean"], default=False)
    paired["clean_score"] = paired["clean_score"].astype(float)
    paired["clean_unparseable"] = _as_bool(paired["clean_unparseable"], default=False)
    ok = paired["score"].notna() & paired["clean_score"].notna()
    paired["paired"] = ok
    paired["drop"] = (paired["clean_score"] - paired["score"]).where(ok)
    was_right = paired["clean_score"] >= 0.5
    is_right = paired["score"] >= 0.5
    flip = np.where(was_right & ~is_right, "right->wrong",
                    np.where(~was_right & is_right, "wrong->right", "same"))
    paired["flip"] = pd.Series(flip, index=paired.index, dtype=object).where(ok, None)
    consistent = []
    for clean_parsed, parsed, score in zip(paired["clean_parsed"], paired["parsed"],
                                           paired["score"]):
        reference = _norm_answer(clean_parsed)
        if reference is None or math.isnan(score):
            consistent.append(math.nan)
        else:
            consistent.append(1.0 if _norm_answer(parsed) == reference else 0.0)
    paired["consistent"] = np.asarray(consistent, dtype=float)
    return paired


# ------------------------------------------------------------------------- summary


def _answered(frame: pd.DataFrame, error_col: str = "error",
              response_col: str | None = None) -> pd.Series:
    answered = frame[error_col].map(_is_missing)
    if response_col is not None:
        answered &= ~frame[response_col].map(lambda v: v is None or
                                             (isinstance(v, float) and math.isnan(v)))
    return answered.astype(bool)


def _group_stats(g: pd.DataFrame, *, rng: np.random.Generator, n_boot: int,
                 ci: float) -> dict[str, Any]:
    used = g.loc[g["paired"]]
    n_scored = int(len(used))
    clean_score = float(used["clean_score"].mean()) if n_scored else math.nan
    perturbed_score = float(used["score"].mean()) if n_scored else math.nan
    drop = clean_score - perturbed_score if n_scored else math.nan
    low, high = bootstrap_ci((used["clean_score"] - used["score"]).to_numpy(),
                             clusters=used["item_id"].to_numpy(), n_boot=n_boot, seed=rng, ci=ci)
    was_right = used["clean_score"] >= 0.5
    is_right = used["score"] >= 0.5
    r2w = int((was_right & ~is_right).sum())
    w2r = int((~was_right & is_right).sum())
    r2u = int((was_right & ~is_right & used["unparseable"]).sum())
    # McNemar needs independent pairs. With several rows per item (replicates, or
    # severities pooled into one group) each item counts once, by the sign of its net
    # flips: a sign test over items, identical to McNemar with one row per item.
    if n_scored:
        net = pd.Series((was_right & ~is_right).astype(int).to_numpy()
                        - (~was_right & is_right).astype(int).to_numpy()
                        ).groupby(used["item_id"].to_numpy(), sort=False).sum()
        p_value = mcnemar_exact(int((net > 0).sum()), int((net < 0).sum()))
    else:
        p_value = math.nan
    answered = g.loc[_answered(g)]
    clean_items = g.drop_duplicates("item_id")
    clean_items = clean_items.loc[clean_items["has_clean"] & _answered(clean_items, "clean_error")]
    policies = sorted({str(p) for p in g["label_policy"].dropna()})
    specs = list(dict.fromkeys(str(s) for s in g["spec"].dropna()))
    labels = list(dict.fromkeys(str(s) for s in g["severity_label"].dropna()))
    consistency = used["consistent"].dropna()
    return {
        "n_rows": int(len(g)),
        "n_items": int(g["item_id"].nunique()),
        "n_replicates": int(g["replicate"].nunique()),
        "n_changed": int(g["changed"].sum()),
        "n_failed": int(len(g) - n_scored),
        "n_scored": n_scored,
        "clean_score": clean_score,
        "perturbed_score": perturbed_score,
        "drop": drop,
        "drop_pp": drop * 100.0,
        "ci_low": low,
        "ci_high": high,
        "ci_low_pp": low * 100.0,
        "ci_high_pp": high * 100.0,
        # Undefined (NaN) rather than infinite when the clean score is 0.
        "relative_drop": drop / clean_score if n_scored and clean_score > 0 else math.nan,
        "p_value": p_value,
        "flips_right_to_wrong": r2w,
        "flips_wrong_to_right": w2r,
        "flips_right_to_unparseable": r2u,
        "flip_rate": (r2w + w2r) / n_scored if n_scored else math.nan,
        "consistency": float(consistency.mean()) if len(consistency) else math.nan,
        "unparseable_rate": float(answered["unparseable"].mean()) if len(answered) else math.nan,
        "clean_unparseable_rate": (float(clean_items["clean_unparseable"].mean())
                                   if len(clean_items) else math.nan),
        "token_limit_rate": (float(answered["hit_token_limit"].mean()) if len(answered)
                             else math.nan),
        "mean_edit_rate": (float(g["edit_rate"].mean()) if g["edit_rate"].notna().any()
                           else math.nan),
        "label_policy": ",".join(policies) if policies else None,
        "spec": ",".join(specs) if specs else None,
        "severity_label": labels[0] if len(labels) == 1 else (",".join(labels) or None),
    }


def _summarize_paired(paired: pd.DataFrame, by: Sequence[str], *, n_boot: int, seed: int,
                      ci: float, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    by = _check_by(paired, by)
    rows = []
    if len(paired):
        for key, g in paired.groupby(by, sort=False, dropna=False):
            key = key if isinstance(key, tuple) else (key,)
            stats = _group_stats(g, rng=group_rng(seed, key), n_boot=n_boot, ci=ci)
            rows.append({**dict(zip(by, key)), **stats})
    columns = [*by, *[c for c in SUMMARY_COLUMNS if c not in by]]
    out = pd.DataFrame(rows, columns=columns)
    if out.empty:
        # Typed even when empty, so callers can do arithmetic on the columns.
        out = out.astype({c: ("int64" if c.startswith(("n_", "flips_")) else "float64")
                          for c in columns if c in SUMMARY_COLUMNS
                          and c not in ("label_policy", "spec", "severity_label")})
    for column in by:
        if column in paired.columns and pd.api.types.is_numeric_dtype(paired[column]):
            out[column] = out[column].astype(paired[column].dtype)
    return _ordered(out, by, reference if reference is not None else paired)


def summarize(results: pd.DataFrame, *, by: Sequence[str] = ("model", "transform", "severity"),
              n_boot: int = 2000, seed: int = 0, ci: float = 0.95,
              only_changed: bool = False) -> pd.DataFrame:
    """Paired drop statistics per group of perturbed rows (clean rows are the reference).

    Args:
        results: The per-row results frame.
        by: Columns to group by: any result column, e.g. ``("model", "transform")``,
            ``("model", "spec")``, ``("model", "task")`` or ``("model", "meta.domain")``.
        n_boot: Bootstrap draws for the drop interval (0 skips it: NaN bounds).
        seed: Seed of the bootstrap; each group derives its own generator from it.
        ci: Interval coverage.
        only_changed: Keep only variants the transform actually changed (``changed``);
            by default no-op variants count, as they would in production.

    Returns:
        One row per group, the ``by`` columns followed by:

        * ``n_rows`` perturbed rows, ``n_items`` distinct items, ``n_replicates`` (distinct
          replicate indices), ``n_changed`` rows the transform changed, ``n_failed`` rows left out
          because their score or their clean score is NaN, ``n_scored`` rows used;
        * ``clean_score``, ``perturbed_score``: mean scores over the used pairs;
        * ``drop`` = clean - perturbed (fraction) and ``drop_pp`` (percentage points);
        * ``ci_low``/``ci_high`` (fraction) and ``ci_low_pp``/``ci_high_pp``: paired
          bootstrap interval of the drop over items (clustered by item);
        * ``relative_drop`` = drop / clean score, NaN when the clean score is 0;
        * ``p_value``: exact two-sided McNemar test on right/wrong (score >= 0.5); with
          several rows per item (replicates, pooled severities) each item counts once by
          the sign of its net flips (an exact sign test over items);
        * ``flips_right_to_wrong``, ``flips_wrong_to_right`` (row counts),
          ``flips_right_to_unparseable`` (the right->wrong flips with no parseable answer),
          ``flip_rate`` = flips / used rows;
        * ``consistency``: share of variants whose parsed answer equals the model's own
          clean parsed answer (over rows whose clean answer was parsed);
        * ``unparseable_rate`` among answered perturbed rows, ``clean_unparseable_rate``
          on the same items' clean answers; ``token_limit_rate``: share of answered
          perturbed rows cut at ``max_tokens`` (``hit_token_limit``); ``mean_edit_rate``;
        * ``label_policy``, ``spec``, ``severity_label``: the values in the group, joined
          with commas when there are several.

    Raises:
        ConfigError: ``by`` names a column that does not exist, or ``ci`` is not in (0, 1).
        DataError: a required column is missing.
    """
    paired = pair_with_clean(results)
    if only_changed:
        paired = paired.loc[paired["changed"]]
    return _summarize_paired(paired, by, n_boot=n_boot, seed=seed, ci=ci)


# ------------------------------------------------------------------ model overview


def model_overview(results: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0,
                   ci: float = 0.95,
                   policies: Sequence[str] = LABEL_PRESERVING) -> pd.DataFrame:
    """Per model: clean score, mean and worst-case score under noise, and the overestimation.

    Only label-preserving variants (``policies``, by default ``preserves`` and
    ``remaps``) count: under a ``may_break`` transform a wrong answer may be the only
    honest one (see :func:`may_break_summary`).

    Args:
        results: The per-row results frame.
        n_boot: Bootstrap draws for the intervals (0 skips them).
        seed: Bootstrap seed.
        ci: Interval coverage.
        policies: Label policies that count as realistic, answer-preserving noise.

    Returns:
        One row per model with ``n_items`` (scored clean items), ``n_variants`` and
        ``n_failed`` (label-preserving variant rows, and those left out), ``n_transforms``,
        ``clean_score`` (mean over the model's scored clean rows), ``overestimation`` /
        ``overestimation_pp`` (the paired mean drop over all scored label-preserving
        variants), ``perturbed_score`` = clean_score - overestimation (equal to the mean
        score of those variants when no call failed), with
        ``overestimation_ci_low_pp``/``overestimation_ci_high_pp``, ``worst_case_score``
        (per item the minimum over its clean score and all its scored label-preserving
        variants, then averaged over items: HELM's worst case), ``worst_case_gap_pp``
        (clean - worst case) with ``worst_case_ci_low_pp``/``worst_case_ci_high_pp``.
    """
    df = _prepare(results)
    paired = pair_with_clean(df)
    keep = paired.loc[paired["label_policy"].isin(list(policies))]
    clean = df.loc[_clean_mask(df)].drop_duplicates(["model", "item_id"])
    rows = []
    for model in pd.unique(df["model"]):
        c = clean.loc[(clean["model"] == model) & clean["score"].notna()]
        v = keep.loc[keep["model"] == model]
        used = v.loc[v["paired"]]
        rng = group_rng(seed, ("overview", model))
        if len(used):
            over = float(used["clean_score"].mean() - used["score"].mean())
            o_low, o_high = bootstrap_ci((used["clean_score"] - used["score"]).to_numpy(),
                                         clusters=used["item_id"].to_numpy(),
                                         n_boot=n_boot, seed=rng, ci=ci)
        else:
            over, o_low, o_high = math.nan, math.nan, math.nan
        if len(c) and len(used):  # no scored variant: no worst case, not the clean score
            lowest = used.groupby("item_id", sort=False)["score"].min()
            item_clean = c.set_index("item_id")["score"]
            worst = np.fmin(item_clean, lowest.reindex(item_clean.index))
            gap = (item_clean - worst).to_numpy()
            w_low, w_high = bootstrap_ci(gap, clusters=item_clean.index.to_numpy(),
                                         n_boot=n_boot, seed=rng, ci=ci)
            clean_score, worst_score = float(item_clean.mean()), float(worst.mean())
        else:
            gap = np.array([])
            clean_score = float(c["score"].mean()) if len(c) else math.nan
            worst_score = w_low = w_high = math.nan
        rows.append({
            "model": model,
            "n_items": int(len(c)),
            "n_variants": int(len(v)),
            "n_failed": int(len(v) - len(used)),
            "n_transforms": int(v["transform"].nunique()),
            "clean_score": clean_score,
            # On the clean score's footing: the clean score minus the paired drop. It is
            # the plain mean of the scored variants when no call failed, and does not
            # shift when failures hit easy or hard items unevenly.
            "perturbed_score": clean_score - over,
            "overestimation": over,
            "overestimation_pp": over * 100.0,
            "overestimation_ci_low_pp": o_low * 100.0,
            "overestimation_ci_high_pp": o_high * 100.0,
            "worst_case_score": worst_score,
            "worst_case_gap_pp": float(gap.mean()) * 100.0 if gap.size else math.nan,
            "worst_case_ci_low_pp": w_low * 100.0,
            "worst_case_ci_high_pp": w_high * 100.0,
        })
    return pd.DataFrame(rows, columns=[
        "model", "n_items", "n_variants", "n_failed", "n_transforms", "clean_score",
        "perturbed_score", "overestimation", "overestimation_pp", "overestimation_ci_low_pp",
        "overestimation_ci_high_pp", "worst_case_score", "worst_case_gap_pp",
        "worst_case_ci_low_pp", "worst_case_ci_high_pp"])


# ---------------------------------------------------------------------- may_break


def may_break_summary(results: pd.DataFrame, *, by: Sequence[str] = ("model", "transform"),
                      detector: Callable[[str | None], bool] | None = None,
                      n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> pd.DataFrame:
    """Drop and clarification rate for transforms that may break the gold label.

    Under ``may_break`` transforms (ambiguity, heavy truncation) asking "what do you mean?"
    can be the best answer, so besides the drop this reports how often the model asks
    for clarification or says the question is incomplete, on the perturbed items and on
    the same items' clean versions.

    Args:
        results: The per-row results frame.
        by: Grouping columns.
        detector: ``text -> bool``; default ``robustify.scoring.clarify.asks_for_clarification``
            (imported on first use). If it cannot be imported the rates are NaN.
        n_boot, seed, ci: As in :func:`summarize`.

    Returns:
        :func:`summarize` columns for the ``may_break`` rows plus
        ``clarification_rate`` (share of answered perturbed rows), ``clean_clarification_rate``
        (share of the same items' answered clean rows) and ``clarification_delta_pp``
        (perturbed - clean, percentage points). Empty when no row is ``may_break``.
    """
    paired = pair_with_clean(results)
    mb = paired.loc[paired["label_policy"] == "may_break"]
    by = list(by)
    out = _summarize_paired(mb, by, n_boot=n_boot, seed=seed, ci=ci)
    extra = ["clarification_rate", "clean_clarification_rate", "clarification_delta_pp"]
    if out.empty:
        return pd.DataFrame(columns=[*out.columns, *extra])
    if detector is None:
        try:
            from robustify.scoring.clarify import asks_for_clarification as detector
        except ImportError as exc:
            log.warning("clarification rates unavailable: %s", exc)
    rates: dict[tuple, tuple[float, float]] = {}
    for key, g in mb.groupby(by, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        if detector is None:
            rates[tuple(map(_key_token, key))] = (math.nan, math.nan)
            continue
        answered = g.loc[_answered(g, response_col="response")]
        items = g.drop_duplicates("item_id")
        items = items.loc[items["has_clean"] & _answered(items, "clean_error", "clean_response")]
        rate = (float(np.mean([bool(detector(t)) for t in answered["response"]]))
                if len(answered) else math.nan)
        clean_rate = (float(np.mean([bool(detector(t)) for t in items["clean_response"]]))
                      if len(items) else math.nan)
        rates[tuple(map(_key_token, key))] = (rate, clean_rate)
    pairs = [rates.get(tuple(_key_token(v) for v in row), (math.nan, math.nan))
             for row in out[by].itertuples(index=False, name=None)]
    out["clarification_rate"] = [p[0] for p in pairs]
    out["clean_clarification_rate"] = [p[1] for p in pairs]
    out["clarification_delta_pp"] = (out["clarification_rate"]
                                     - out["clean_clarification_rate"]) * 100.0
    return out


# -------------------------------------------------------------------- noise floor


def noise_floor(clean_repeats: pd.DataFrame, *, by: Sequence[str] = ("model",),
                n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> pd.DataFrame:
    """Flip rate of the clean items when they are simply asked again (no perturbation).

    A perturbation's flip rate only means something above this floor: sampling noise,
    batching or server-side nondeterminism flip answers too. Each item's repeat 0 (or
    its lowest repeat) is the reference, exactly as the clean row is for a variant; every
    other repeat is compared with it.

    Args:
        clean_repeats: Rows of re-asked clean items with a ``repeat`` column
            (``model``, ``item_id``, ``score``, optional ``parsed``). Non-clean rows (by
            ``spec``) are ignored.
        by: Grouping columns (default per model).
        n_boot, seed, ci: Bootstrap over items, as in :func:`summarize`.

    Returns:
        Per group: ``n_items``, ``n_repeats`` (max repeats per item, reference included),
        ``n_pairs`` (scored comparisons), ``flip_rate`` (right/wrong changed, score >= 0.5
        is right) with ``ci_low``/``ci_high``, ``flip_rate_pp``, ``answer_change_rate``
        (parsed answer differs, over pairs where both were parsed), ``mean_score``.

    Raises:
        DataError: no ``repeat`` column or a required column missing.
    """
    if "repeat" not in clean_repeats.columns:
        raise DataError("noise_floor needs a 'repeat' column (0 = the original clean answer)")
    df = clean_repeats.copy().reset_index(drop=True)
    for column in ("model", "item_id", "score"):
        if column not in df.columns:
            raise DataError(f"noise_floor needs a {column!r} column")
    if "spec" in df.columns:
        df = df.loc[df["spec"].isna() | (df["spec"] == CLEAN)]
    if "parsed" not in df.columns:
        df["parsed"] = None
    df["score"] = pd.to_numeric(df["score"], errors="coerce").astype(float)
    df["repeat"] = pd.to_numeric(df["repeat"], errors="coerce").fillna(0).astype(int)
    by = _check_by(df, by)
    original = df
    df = df.sort_values("repeat", kind="mergesort")
    keys = ["model", "item_id"] + [b for b in by if b not in ("model", "item_id")]
    ref = df.drop_duplicates(keys, keep="first")
    ref = ref[keys + ["repeat", "score", "parsed"]].rename(
        columns={"repeat": "ref_repeat", "score": "ref_score", "parsed": "ref_parsed"})
    pairs = df.merge(ref, on=keys, how="inner")
    pairs = pairs.loc[pairs["repeat"] != pairs["ref_repeat"]]
    rows = []
    for key, g in df.groupby(by, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        mask = np.ones(len(pairs), dtype=bool)
        for column, value in zip(by, key):
            mask &= (pairs[column] == value).to_numpy()
        p = pairs.loc[mask]
        scored = p.loc[p["score"].notna() & p["ref_score"].notna()]
        flips = ((scored["score"] >= 0.5) != (scored["ref_score"] >= 0.5)).astype(float)
        low, high = bootstrap_ci(flips.to_numpy(), clusters=scored["item_id"].to_numpy(),
                                 n_boot=n_boot, seed=group_rng(seed, ("noise", *key)), ci=ci)
        changes = [float(_norm_answer(a) != _norm_answer(b))
                   for a, b in zip(p["parsed"], p["ref_parsed"])
                   if _norm_answer(a) is not None and _norm_answer(b) is not None]
        rate = float(flips.mean()) if len(flips) else math.nan
        rows.append({**dict(zip(by, key)),
                     "n_items": int(g["item_id"].nunique()),
                     "n_repeats": int(g.groupby("item_id").size().max()),
                     "n_pairs": int(len(scored)),
                     "flip_rate": rate, "flip_rate_pp": rate * 100.0,
                     "ci_low": low, "ci_high": high,
                     "answer_change_rate": float(np.mean(changes)) if changes else math.nan,
                     "mean_score": float(g["score"].mean())})
    out = pd.DataFrame(rows, columns=[*by, "n_items", "n_repeats", "n_pairs", "flip_rate",
                                      "flip_rate_pp", "ci_low", "ci_high",
                                      "answer_change_rate", "mean_score"])
    return _ordered(out, by, original)

