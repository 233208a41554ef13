"""The drop per slice of the data (subject, label, any categorical field) and the weakest ones."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import pandas as pd

from perturbations.errors import ConfigError
from robustify.analysis.paired import (LABEL_PRESERVING, SUMMARY_COLUMNS, summarize, 
    _clean_mask,
    _prepare,
    meta_columns,
    slice_columns,
)

__all__ = ["slices", "weakest_slices"]


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
        column: ``meta.domain``, ``task``... (``domain`` is accepted for ``meta.domain``).
        by: Columns to keep apart besides the slice column (default: per model).
        policies: Label policies pooled into a slice (default: label-preserving only;
            ``None`` keeps all).
        **kwargs: Passed to :func:`summarize` (``n_boot``, ``seed``, ``ci``).

    Returns:
        :func:`summarize` output grouped by ``(*by, column)``.
    """
    df = _prepare(results)
    column = _resolve_column(df, column)
    if policies is not None:
        df = df.loc[_clean_mask(df) | df["label_policy"].isin(list(policies))]
    return summarize(df, by=(*by, column), **kwargs)


def weakest_slices(results: pd.DataFrame, columns: Iterable[str] | None = None, *, k: int = 5,
                   min_items: int = 5, by: Sequence[str] = ("model",),
                   **kwargs: Any) -> pd.DataFrame:
    """The ``k`` slices with the largest drop among those with at least ``min_items`` items.

    Args:
        results: The per-row results frame.
        columns: Columns to slice by (default: every ``meta.*`` column).
        k: How many slices to return.
        min_items: Slices with fewer distinct items are skipped (their drop is noise).
        by: Kept apart besides the slice (default: per model).
        **kwargs: Passed to :func:`slices`.

    Returns:
        :func:`summarize` columns plus ``column`` (the sliced column) and ``value``,
        sorted by ``drop`` descending (ties: first appearance).
    """
    df = _prepare(results)
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
    return out.head(k).reset_index(drop=True)


