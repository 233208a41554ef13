"""The result of a run: every view (summary, overview, charts, report) computed from its rows."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from perturbations import CLEAN
from perturbations.errors import ConfigError

from robustify.atomic import (publish_folder, remove_tree, staging_folder, write_json_atomic,
                              write_jsonl_atomic)
from robustify.errors import OutputError
from robustify.pipeline.jobfile import Gates

if TYPE_CHECKING:
    import pandas as pd

    from robustify.reporting.chart_process import ChartProcess
    from robustify.reporting.headline import ReportNumbers


__all__ = ["RunResult"]


@dataclass
class RunResult:
    """Everything a run produced; every view is computed from ``results``.

    Attributes:
        results: The per-row frame (one row per model x variant, clean rows included).
        manifest: Run facts (seed, specs, models, data hash, counts); never a key.
        out_dir: Where the run was written, if it was.
        noise_floor_rows: Re-asked clean rows (column ``repeat``) when a noise floor was run.
        reported: The numbers of the report this result last wrote (:meth:`write_report`):
            summary, overviews, warnings, as computed then. The CLI's terminal summary
            prints them, so it says what the report says without a second bootstrap.
            The views (:meth:`summary`, :meth:`overview`...) always compute afresh.
    """

    results: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)
    out_dir: Path | None = None
    noise_floor_rows: pd.DataFrame | None = None
    reported: ReportNumbers | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> "RunResult":
        """Read a saved run (results.jsonl + manifest.json) without any model call."""
        import pandas as pd

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
        import pandas as pd

        return pd.DataFrame(self.manifest.get("variants") or [])

    def realism_table(self) -> pd.DataFrame:
        """Per statistic (typos per 100 words, casing, punctuation, contractions, texting
        forms, whitespace, fillers, length), each setting's variants beside the clean items
        and the real traffic of ``--realism-ref``, with the distance to it."""
        import pandas as pd

        rows = (self.manifest.get("realism") or {}).get("rows") or []
        return pd.DataFrame(rows).set_index("statistic") if rows else pd.DataFrame()

    def validity(self, overview: pd.DataFrame | None = None) -> list[Any]:
        """Validity findings per model (:func:`robustify.analysis.validity_findings`): at
        chance, one constant answer, unparseable or cut answers, and "no detectable change"
        notes. Chance levels come from the manifest's ``chance`` (per task kind).

        Args:
            overview: :meth:`overview` if already computed (its bootstrap is not redone).
        """
        from robustify.analysis.validity import validity_findings

        chance = self.manifest.get("chance")
        return validity_findings(self.results, chance=chance if isinstance(chance, dict) else None,
                                 overview=self.overview() if overview is None else overview)

    def warnings(self, overview: pd.DataFrame | None = None) -> dict[str, list[str]]:
        """Validity warnings by model (no entry: the model's measurement looks sound);
        ``overview`` as for :meth:`validity`."""
        from robustify.analysis.validity import warnings_by_model

        return warnings_by_model(self.validity(overview))

    def failures(self) -> pd.DataFrame:
        """Rows whose model call failed, with the error."""
        return self.results[self.results["error"].notna()]

    def noise_floor(self) -> pd.DataFrame | None:
        """Flip rate on clean items re-asked with no perturbation, if it was measured."""
        import pandas as pd

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

    def write_report(self, path: str | os.PathLike[str] | None = None, *,
                     chart_process: "ChartProcess | None" = None) -> dict[str, Path]:
        """Write report.html, report.md, summary.csv, results and manifest to ``path``,
        as a whole or not at all (``chart_process``: see
        :func:`robustify.reporting.write_report`).

        Everything is written into a staging folder inside ``path`` first and renamed into
        place only when all of it is there, the manifest last
        (:func:`robustify.atomic.publish_folder`), so a full disk or an interrupt never
        leaves a report without its results.

        Raises:
            OutputError: disk full, permission denied: nothing was published.
        """
        out = Path(path) if path is not None else self.out_dir
        if out is None:
            raise ConfigError("write_report needs a folder: this result was never saved")
        out = Path(out)
        from robustify.reporting.headline import ReportNumbers

        numbers = ReportNumbers(self.results, self.manifest)
        staging = None
        try:
            staging = staging_folder(out)
            files = self._write_files(staging, chart_process, numbers)
            publish_folder(staging, out)
            self.reported = numbers
        except OSError as exc:
            raise OutputError(f"{out}: cannot write the run folder ({exc.strerror or exc}); "
                              f"nothing half-written was left: free space or fix the "
                              f"permission and run again") from None
        finally:
            if staging is not None:
                remove_tree(staging)
        return {key: out / Path(written).relative_to(staging) for key, written in files.items()}

    def _write_files(self, out: Path, chart_process: "ChartProcess | None" = None,
                     numbers: "ReportNumbers | None" = None) -> dict[str, Path]:
        from robustify.reporting import write_report

        variants = (Path(self.out_dir) / "variants.jsonl" if self.out_dir is not None
                    else None)  # the run's own, also when writing into a staging folder
        files = write_report(self.results, out, title=_title(self.manifest),
                             manifest=self.manifest, noise_floor=self.noise_floor(),
                             variants_file=variants if variants and variants.is_file() else None,
                             chart_process=chart_process, numbers=numbers)
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
        warned = self.warnings()
        judged: set[str] = set()
        for row in summary.itertuples(index=False):
            threshold = gates.per_transform.get(row.transform, gates.fail_on_drop)
            if threshold is None or row.label_policy == "may_break":
                continue
            judged.add(str(row.model))
            if row.ci_low * 100 > threshold:
                doubt = (" (and the measurement itself is doubtful, see below)"
                         if str(row.model) in warned else "")
                messages.append(
                    f"{row.model} on {row.spec}: drop {row.drop * 100:.1f} pp "
                    f"(95% CI {row.ci_low * 100:.1f} to {row.ci_high * 100:.1f}) lies above the "
                    f"{threshold:g} pp gate{doubt}")
        for model in judged:
            if model in warned:
                # a drop gate cannot pass a model whose score means nothing
                messages.append(f"{model}: the drop gate was applied to a meaningless "
                                f"measurement: " + "; ".join(warned[model]))
        return messages

    def __repr__(self) -> str:
        """One line per model: items, clean score, realistic (else stress) drop, warnings."""
        import pandas as pd

        from robustify.reporting.format import pct, pp

        models = list(pd.unique(self.results["model"])) if len(self.results) else []
        head = (f"RunResult({len(models)} model{'s' if len(models) != 1 else ''}, "
                f"{self.results['item_id'].nunique() if len(self.results) else 0} items, "
                f"{len(self.results)} rows" + (f", out={str(self.out_dir)!r}" if self._saved()
                                               else "") + ")")
        if not models:
            return head
        warned = self.warnings()
        lines = [head]
        for row in self._drops().to_dict("records"):
            n = len(warned.get(str(row["model"]), []))
            lines.append(f"  {row['model']}: " + ("consistency: " if self.manifest.get(
                             "consistency") else "") + f"clean {pct(row['clean_score'])}, "
                         f"{row['level']} drop {pp(row['overestimation_pp'])} pp "
                         f"[{pp(row['overestimation_ci_low_pp'])}, "
                         f"{pp(row['overestimation_ci_high_pp'])}]"
                         + (f", {n} warning{'s' if n != 1 else ''}" if n else ""))
        return "\n".join(lines)

    def _saved(self) -> bool:
        return self.out_dir is not None and (Path(self.out_dir) / "manifest.json").is_file()

    def _drops(self) -> pd.DataFrame:
        """Per model the overview at realistic levels when the run has them, else at all."""
        import pandas as pd

        from robustify.analysis import model_overview, split_levels

        overall = self.overview()
        realistic_rows, _ = split_levels(self.results)
        level = pd.Series("stress", index=overall.index)
        if (realistic_rows["spec"] != CLEAN).any():
            realistic = model_overview(realistic_rows, seed=self.seed).set_index("model")
            for i, model in enumerate(overall["model"]):
                if model in realistic.index and pd.notna(
                        realistic.loc[model, "overestimation_pp"]):
                    for col in ("overestimation_pp", "overestimation_ci_low_pp",
                                "overestimation_ci_high_pp"):
                        overall.loc[overall.index[i], col] = realistic.loc[model, col]
                    level.iloc[i] = "realistic"
        return overall.assign(level=level)

    def _repr_html_(self) -> str:
        """The report's headline box, for notebooks (warnings first, then each model)."""
        import pandas as pd

        from robustify.analysis import LABEL_PRESERVING
        from robustify.reporting.document import render_fragment
        from robustify.reporting.headline import consistency_of, data_label, headline_box

        if not len(self.results):
            return "<p>RunResult: no rows</p>"
        overview = self.overview()
        preserving = list(pd.unique(self.results.loc[
            self.results["label_policy"].isin(LABEL_PRESERVING)
            & (self.results["spec"] != CLEAN), "transform"]))
        box = headline_box(self.results, overview, preserving, label=data_label(self.manifest),
                           ci=0.95, seed=self.seed, n_boot=2000, warnings=self.warnings(overview),
                           consistency=consistency_of(self.manifest))
        return render_fragment([box])


def _title(manifest: dict[str, Any]) -> str:
    data = ", ".join(Path(d.get("path", "?")).stem for d in manifest.get("data", [])) or "data"
    return f"robustify report: {data}"


