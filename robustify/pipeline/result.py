"""The result of a run: every view (summary, overview, charts, report) computed from its rows."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from perturbations import CLEAN
from perturbations.errors import ConfigError

from robustify.atomic import write_json_atomic, write_jsonl_atomic
from robustify.pipeline.jobfile import Gates


__all__ = ["RunResult"]


@dataclass
class RunResult:
    """Everything a run produced; every view is computed from ``results``.

    Attributes:
        results: The per-row frame (one row per model x variant, clean rows included).
        manifest: Run facts (seed, specs, models, data hash, counts); never a key.
        out_dir: Where the run was written, if it was.
        noise_floor_rows: Re-asked clean rows (column ``repeat``) when a noise floor was run.
    """

    results: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)
    out_dir: Path | None = None
    noise_floor_rows: pd.DataFrame | None = None

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> "RunResult":
        """Read a saved run (results.jsonl + manifest.json) without any model call."""
        from robustify.reporting import load_results

        run_dir = Path(run_dir)
        results, manifest = load_results(run_dir)
        floor_path = run_dir / "noise_floor.jsonl"
        floor = pd.read_json(floor_path, lines=True) if floor_path.exists() else None
        return cls(results=results, manifest=manifest, out_dir=run_dir, noise_floor_rows=floor)

    @property
    def seed(self) -> int:
        return int(self.manifest.get("seed", 0))

    def summary(self, by: Sequence[str] = ("model", "transform", "severity"), **kwargs: Any) -> pd.DataFrame:
        """Paired drop statistics per group (see :func:`robustify.analysis.summarize`)."""
        from robustify.analysis.paired import summarize

        kwargs.setdefault("seed", self.seed)
        return summarize(self.results, by=tuple(by), **kwargs)

    def overview(self) -> pd.DataFrame:
        """Per model: clean, mean perturbed and worst-case score, and the overestimation."""
        from robustify.analysis.paired import model_overview

        return model_overview(self.results, seed=self.seed)

    def variant_stats(self) -> pd.DataFrame:
        """Per spec, what the drawing did: the gold guard's redraws and drops (with the kinds
        of violation), unchanged variants and why, and the edit rates per field (word and
        character level) with the realised against the nominal typo rate
        (:meth:`perturbations.VariantTally.rows`)."""
        return pd.DataFrame(self.manifest.get("variants") or [])

    def realism_table(self) -> pd.DataFrame:
        """Per statistic (typos per 100 words, casing, punctuation, contractions, texting
        forms, whitespace, fillers, length), each setting's variants beside the clean items
        and the real traffic of ``--realism-ref``, with the distance to it."""
        rows = (self.manifest.get("realism") or {}).get("rows") or []
        return pd.DataFrame(rows).set_index("statistic") if rows else pd.DataFrame()

    def failures(self) -> pd.DataFrame:
        """Rows whose model call failed, with the error."""
        return self.results[self.results["error"].notna()]

    def noise_floor(self) -> pd.DataFrame | None:
        """Flip rate on clean items re-asked with no perturbation, if it was measured."""
        if self.noise_floor_rows is None:
            return None
        from robustify.analysis.paired import noise_floor

        return noise_floor(pd.concat([self.results[self.results["spec"] == CLEAN].assign(repeat=0),
                                      self.noise_floor_rows], ignore_index=True))

    # charts: every chart of the one chart list (robustify.reporting.charts), by name
    def chart_names(self) -> list[str]:
        """The charts :meth:`plot` draws, in report order (``overestimation`` first)."""
        from robustify.reporting import charts

        return charts.names()

    def plot(self, chart: str, ax: Any = None, **options: Any) -> Any:
        """Draw one chart of the report on ``ax`` (a new figure when ``None``); returns the Axes.

        Args:
            chart: A name from :meth:`chart_names`: ``overestimation``,
                ``drop_by_transform``, ``heatmap``, ``severity_curves``, ``flips``, or a
                plugin's (entry-point group ``robustify.charts``).
            **options: Passed to the chart, e.g. ``model=`` for ``severity_curves``.
        """
        from robustify.reporting import charts

        return charts.plot_chart(chart, charts.ChartData(self.results, seed=self.seed),
                                 ax=ax, **options)

    def plot_overestimation(self, ax: Any = None) -> Any:
        """Clean against noisy score per model (the headline chart)."""
        return self.plot("overestimation", ax=ax)

    def plot_drop(self, ax: Any = None) -> Any:
        """The drop per transform with its interval."""
        return self.plot("drop_by_transform", ax=ax)

    def plot_heatmap(self, ax: Any = None) -> Any:
        """Model x transform drops."""
        return self.plot("heatmap", ax=ax)

    def plot_severity(self, model: str | None = None, ax: Any = None) -> Any:
        """Score against severity per transform."""
        return self.plot("severity_curves", ax=ax, model=model)

    def plot_flips(self, ax: Any = None) -> Any:
        """Right-to-wrong and wrong-to-right flips per transform."""
        return self.plot("flips", ax=ax)

    def write_report(self, path: str | os.PathLike[str] | None = None) -> dict[str, Path]:
        """Write report.html, report.md, summary.csv, results and manifest to ``path``."""
        from robustify.reporting import write_report

        out = Path(path) if path is not None else self.out_dir
        if out is None:
            raise ConfigError("write_report needs a folder: this result was never saved")
        files = write_report(self.results, out, title=_title(self.manifest),
                             manifest=self.manifest, noise_floor=self.noise_floor())
        files["manifest"] = write_json_atomic(out / "manifest.json", self.manifest)
        if self.noise_floor_rows is not None:
            files["noise_floor"] = write_jsonl_atomic(
                out / "noise_floor.jsonl",
                (json.loads(r) for r in self.noise_floor_rows.to_json(orient="records",
                                                                      lines=True).splitlines()))
        return files

    def check_gates(self, gates: Gates) -> list[str]:
        """Messages for every gate the run fails (empty list: all passed)."""
        messages: list[str] = []
        if gates.max_error_rate is not None and len(self.results):
            rate = float(self.results["error"].notna().mean())
            if rate > gates.max_error_rate:
                messages.append(f"{rate:.1%} of model calls failed, more than the allowed "
                                f"{gates.max_error_rate:.1%}")
        if gates.fail_on_drop is None and not gates.per_transform:
            return messages
        summary = self.summary()
        for row in summary.itertuples(index=False):
            threshold = gates.per_transform.get(row.transform, gates.fail_on_drop)
            if threshold is None or row.label_policy == "may_break":
                continue
            if row.ci_low * 100 > threshold:
                messages.append(
                    f"{row.model} on {row.spec}: drop {row.drop * 100:.1f} pp "
                    f"(95% CI {row.ci_low * 100:.1f} to {row.ci_high * 100:.1f}) lies above the "
                    f"{threshold:g} pp gate")
        return messages


def _title(manifest: dict[str, Any]) -> str:
    data = ", ".join(Path(d.get("path", "?")).stem for d in manifest.get("data", [])) or "data"
    return f"robustify report: {data}"


