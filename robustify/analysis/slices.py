"""The drop per slice of the data (subject, label, any categorical field) and the weakest ones.

Slices come by default: :func:`robustify.analysis.slice_columns` finds the task kind,
the gold ``label`` of classification and yes/no rows, and every categorical metadata
field with few distinct values; the report's "Weakest slices" section lists the slices
of those columns with the largest drop.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from perturbations.errors import ConfigError
from robustify.analysis.paired import (LABEL_PRESERVING, SUMMARY_COLUMNS, _clean_mask,
                                       _prepare, summarize)

__all__ = ["slices", "weakest_slices", "slice_columns", "meta_columns", "with_label",
           "LABEL_TASKS"]


def meta_columns(results: pd.DataFrame) -> list[str]:
    """Names of the item-metadata columns (``meta.<key>``) of a results frame."""
    return [c for c in results.columns if str(c).startswith("meta.")]


LABEL_TASKS = ("classification", "yes_no")
"""Task kinds whose gold answer is a label: their ``target`` is the ``label`` slice."""


def with_label(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` with a ``label`` column: the gold label of classification and yes/no
    rows (missing elsewhere), so results can be sliced per label. Unchanged when the
    frame has no such rows or already has ``label``."""
    if "label" in results.columns or not {"task", "target"} <= set(results.columns):
        return results
    labelled = results["task"].isin(LABEL_TASKS)
    if not labelled.any():
        return results
    out = results.copy()
    out["label"] = results["target"].where(labelled)
    return out


def slice_columns(results: pd.DataFrame, *, max_values: int = 30) -> list[str]:
    """Columns worth slicing by: ``task``, ``label`` (see :func:`with_label`) and the
    categorical ``meta.*`` columns.

    A useful slice column holds scalar values (lists such as ``meta.labels`` cannot be
    grouped) with between 2 and ``max_values`` distinct values, fewer than the items
    (a per-item free-text field like a worked solution is not a slice).
    """
    results = with_label(results)
    n_items = results["item_id"].nunique() if "item_id" in results.columns else len(results)
    out = []
    for column in ["task", "label", *meta_columns(results)]:
        if column not in results.columns:
            continue
        values = results[column].dropna()
        if not all(isinstance(v, (str, int, float, bool, np.integer, np.floating, np.bool_))
                   for v in values):
            continue
        distinct = values.nunique()
        if 2 <= distinct <= max_values and distinct < n_items:
            out.append(column)
    return out


def _resolve_column(df: pd.DataFrame, column: str) -> str:
    if column in df.columns:
        return column
    if f"meta.{column}" in df.columns:
        return f"meta.{column}"
    raise ConfigError(f"no column {column!r} in the results (metadata columns: "
                      f"{', '.join(meta_columns(df)) or 'none'})")


def slices(results: pd.DataFrame, column: str, *, by: Sequence[str] = ("model",),
           policies: Sequence[str] | None = LABEL_PRESERVING, **kwargs: Any) -> pd.DataFrame:
    """The drop statistics of :func:`summarize` per value of one column (a slice).

    Args:
        results: The per-row results frame.
        column: ``meta.domain``, ``task``, ``label``... (``domain`` is accepted for
            ``meta.domain``; ``label`` is the gold label of classification and yes/no rows).
        by: Columns to keep apart besides the slice column (default: per model).
        policies: Label policies pooled into a slice (default: label-preserving only;
            ``None`` keeps all).
        **kwargs: Passed to :func:`summarize` (``n_boot``, ``seed``, ``ci``).

    Returns:
        :func:`summarize` output grouped by ``(*by, column)``.
    """
    df = with_label(_prepare(results))
    column = _resolve_column(df, column)
    if column == "label":  # rows of other task kinds have no label: no slice of their own
        df = df.loc[df["label"].notna()]
    if policies is not None:
        df = df.loc[_clean_mask(df) | df["label_policy"].isin(list(policies))]
    return summarize(df, by=(*by, column), **kwargs)


def weakest_slices(results: pd.DataFrame, columns: Iterable[str] | None = None, *,
                   k: int | None = 5,
                   min_items: int = 5, by: Sequence[str] = ("model",),
                   **kwargs: Any) -> pd.DataFrame:
    """The ``k`` slices with the largest drop among those with at least ``min_items`` items.

    Args:
        results: The per-row results frame.
        columns: Columns to slice by (default: every ``meta.*`` column).
        k: How many slices to return (``None``: every slice, worst first).
        min_items: Slices with fewer distinct items are skipped (their drop is noise).
        by: Kept apart besides the slice (default: per model).
        **kwargs: Passed to :func:`slices`.

    Returns:
        :func:`summarize` columns plus ``column`` (the sliced column) and ``value``,
        sorted by ``drop`` descending (ties: first appearance).
    """
    df = with_label(_prepare(results))
    columns = slice_columns(df) if columns is None else [_resolve_column(df, c) for c in columns]
    frames = []
    for column in columns:
        s = slices(df, column, by=by, **kwargs)
        s = s.rename(columns={column: "value"})
        s.insert(len(by), "column", column)
        frames.append(s)
    base = [*by, "column", "value", *SUMMARY_COLUMNS]
    if not frames:
        return pd.DataFrame(columns=base)
    out = pd.concat([f.astype({"value": object}) for f in frames], ignore_index=True)
    out = out.loc[(out["n_items"] >= min_items) & out["drop"].notna() & out["value"].notna()]
    out = out.sort_values("drop", ascending=False, kind="mergesort")
    return (out if k is None else out.head(k)).reset_index(drop=True)


