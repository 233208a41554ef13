"""What a leakage probe returns: its frames, settings and notes, with their views."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from robustify.probes.leakage.report import plot_completion, plot_suspects, write_leakage_report

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["LeakageResult"]


@dataclass
class LeakageResult:
    """Everything a leakage probe produced; every frame is also written by the report.

    Attributes:
        verbatim_items: Per model x item (:func:`verbatim_item_stats`).
        verbatim_summary: Per model (:func:`verbatim_summary`).
        completion_items: Per model x probe (:func:`completion_item_stats`).
        completion_summary: Per model x group (:func:`completion_summary`).
        rows: The raw runner rows of both probes (column ``probe``).
        settings: Seed, rewrites, cut, data label, item count ... (shown in the report).
        notes: Skipped rewrites, rejected model rewrites, failures.
        rewrite_rejections: Model-written rewrites that failed their checks.
    """

    verbatim_items: pd.DataFrame
    verbatim_summary: pd.DataFrame
    completion_items: pd.DataFrame
    completion_summary: pd.DataFrame
    rows: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    rewrite_rejections: pd.DataFrame | None = None

    def suspects(self, k: int = 10) -> pd.DataFrame:
        """The ``k`` most suspect items per model.

        Suspects first, most rewrites (all wrong) first, then the items whose completion
        probe reproduced most of the true remainder (both signals together).
        """
        items = self.verbatim_items.loc[self.verbatim_items["suspect"]].copy()
        if items.empty:
            return items
        overlap = self.completion_items.loc[self.completion_items["group"] == "benchmark",
                                            ["model", "source_id", "ngram_overlap"]]
        overlap = overlap.rename(columns={"source_id": "item_id",
                                          "ngram_overlap": "completion_overlap"})
        items = items.merge(overlap, on=["model", "item_id"], how="left")
        items = items.sort_values(["model", "n_rewrites", "completion_overlap"],
                                  ascending=[True, False, False], kind="mergesort",
                                  na_position="last")
        order = {m: i for i, m in enumerate(pd.unique(self.verbatim_items["model"]))}
        items = items.sort_values("model", key=lambda s: s.map(order), kind="mergesort")
        return items.groupby("model", sort=False).head(k).reset_index(drop=True)

    def plot_suspects(self, ax: "Axes | None" = None) -> "Axes":
        """:func:`plot_suspects` of this result."""
        return plot_suspects(self.verbatim_summary, ax=ax)

    def plot_completion(self, ax: "Axes | None" = None, metric: str = "ngram_overlap") -> "Axes":
        """:func:`plot_completion` of this result."""
        return plot_completion(self.completion_summary, ax=ax, metric=metric)

    def write_report(self, out_dir: str | os.PathLike[str], *, top: int = 10) -> dict[str, Path]:
        """Write leakage.html, leakage.md, charts and CSVs (see :func:`write_leakage_report`)."""
        return write_leakage_report(self, out_dir, top=top)
