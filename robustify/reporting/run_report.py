"""The run report: what a run's results say, as one page, its Markdown twin, CSVs and charts.

:func:`write_report` turns a results frame into a folder::

    report.html      self-contained: charts as base64 PNG, strict CSP, no script at all
    report.md        the same content; charts as files beside it
    charts/*.png|svg one file per chart of the chart list and format
    summary.csv      summarize() per model x transform x severity
    results.csv      every row (one per model x variant)
    results.jsonl    every row, one JSON object per line (what rebuild_report reads)

The page is a :class:`~robustify.reporting.document.Document` (every text escaped when it
is rendered); every chart of :mod:`robustify.reporting.charts` has a section, anchored by
its name, and this module only adds the tables and words around them. Every file is
written atomically, so a crash never leaves half a report.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import pandas as pd

from perturbations.version import __version__

import robustify.analysis as analysis
from robustify.atomic import write_text_atomic
from robustify.reporting import charts
from robustify.reporting.browse import browse_blocks
from robustify.reporting.document import (Block, Diff, Document, Example, Figure, Heading,
                                          Paragraph, Table, frame_table)
from robustify.reporting.headline import ReportNumbers, consistency_of, headline_box, run_facts
from robustify.reporting.headline import data_label as _data_label
from robustify.reporting.noise_sections import realism_blocks, variant_blocks
from robustify.reporting.format import MISSING, is_missing, num, pct, pp, pvalue, short, truncate
from robustify.reporting.format import ci as fmt_ci
from robustify.reporting.results_io import (load_choices, load_noise_floor, load_results,
                                            write_results_jsonl)

if TYPE_CHECKING:
    from robustify.reporting.chart_process import ChartProcess

__all__ = ["write_report", "rebuild_report"]

log = logging.getLogger(__name__)


def _sev(label: Any, value: Any) -> str:
    value_text = MISSING if is_missing(value) else f"{float(value):g}"
    if not is_missing(label) and "," not in str(label):
        return f"{label} ({value_text})"
    return value_text


@dataclass
class _Context:
    results: pd.DataFrame
    paired: pd.DataFrame
    numbers: ReportNumbers
    ci: float

    @property
    def curve(self) -> pd.DataFrame:
        return self.numbers.data.curve

    @property
    def data_label(self) -> str:
        return str(self.numbers.data.data_label)


_CI = ("95% CI (pp)", ("ci_low_pp", "ci_high_pp"), fmt_ci)


def _summary_table(summary: pd.DataFrame) -> Table:
    columns = [
        ("model", "model"), ("transform", "transform"),
        ("severity", ("severity_label", "severity"), _sev),
        ("items", "n_items", num), ("changed", "n_changed", num), ("failed", "n_failed", num),
        ("clean", "clean_score", pct), ("noisy", "perturbed_score", pct),
        ("drop (pp)", "drop_pp", pp), _CI, ("relative drop", "relative_drop", pct),
        ("McNemar p", "p_value", pvalue),
        ("right→wrong", "flips_right_to_wrong", num), ("wrong→right", "flips_wrong_to_right", num),
        ("consistency", "consistency", pct), ("unparseable", "unparseable_rate", pct),
        ("label policy", "label_policy"),
    ]
    if "severity" not in summary.columns:
        columns = [c for c in columns if c[0] != "severity"]
    return frame_table(summary, columns, text={"model", "transform", "severity", "label policy"})


def _overview_table(overview: pd.DataFrame) -> Table:
    return frame_table(overview, [
        ("model", "model"), ("items", "n_items", num), ("variants", "n_variants", num),
        ("failed", "n_failed", num), ("clean", "clean_score", pct),
        ("mean under noise", "perturbed_score", pct),
        ("overestimation (pp)", "overestimation_pp", pp),
        ("95% CI (pp)", ("overestimation_ci_low_pp", "overestimation_ci_high_pp"), fmt_ci),
        ("worst case", "worst_case_score", pct),
        ("clean − worst (pp)", "worst_case_gap_pp", pp),
        ("95% CI (pp)", ("worst_case_ci_low_pp", "worst_case_ci_high_pp"), fmt_ci),
    ], text={"model"})


def _answer(text: Any, parsed: Any, score: Any) -> str:
    shown = "none" if is_missing(parsed) else parsed
    return f"{truncate(text)}  [parsed: {shown}, score {num(score)}]"


def _options(choices: Sequence[str] | None) -> str:
    if not choices:
        return "not recorded (variants.jsonl holds them)"
    return "  ".join(f"{chr(65 + i)}) {short(c, 80)}" for i, c in enumerate(choices))


def _examples(ctx: _Context, per_transform: int,
              choices: Mapping[str, Sequence[str]]) -> list[Block]:
    paired = ctx.paired
    flipped = paired.loc[paired["flip"].isin(["right->wrong", "wrong->right"])].copy()
    if flipped.empty:
        return [Paragraph("No answer changed between a clean question and its noisy version.")]
    models = {m: i for i, m in enumerate(pd.unique(ctx.results["model"]))}
    flipped["__kind"] = (flipped["flip"] != "right->wrong").astype(int)
    flipped["__model"] = flipped["model"].map(models)
    flipped["__sev"] = -flipped["severity"].astype(float)
    flipped = flipped.sort_values(["__kind", "__sev", "__model", "item_id", "replicate"],
                                  kind="mergesort")
    clean = ctx.results.loc[ctx.results["spec"] == analysis.CLEAN]
    clean_target = {(m, i): (t, v) for m, i, t, v in zip(clean["model"], clean["item_id"],
                                                        clean["target"], clean["variant_id"])}
    blocks: list[Block] = []
    for transform in pd.unique(paired["transform"]):
        rows = flipped.loc[flipped["transform"] == transform]
        if rows.empty:
            continue
        # Prefer distinct items: several models failing on one item say less than
        # several items.
        rows = pd.concat([rows.drop_duplicates("item_id"), rows]).drop_duplicates(
            subset=["model", "variant_id"]).head(per_transform)
        blocks.append(Heading(f"{transform}", 3))
        for r in rows.to_dict("records"):
            kind = "right → wrong" if r["flip"] == "right->wrong" else "wrong → right"
            fields: tuple[tuple[str, Any], ...] = (
                ("model", str(r["model"])),
                ("item", str(r["item_id"])),
                ("variant", f"{r['spec']} (replicate {r['replicate']})"),
                ("gold answer", truncate(r.get("target"))),
                ("original", truncate(r.get("clean_input"))),
                ("perturbed", Diff.of(truncate(r.get("clean_input")), truncate(r.get("input")))),
            )
            if r.get("task") == "multiple_choice" and r.get("label_policy") == "remaps":
                # the options moved: show both orders and both gold letters
                clean_gold = clean_target.get((r["model"], r["item_id"]), (None, None))
                fields = fields[:3] + (
                    ("gold answer", f"{truncate(clean_gold[0])} in the original order, "
                                    f"{truncate(r.get('target'))} in the variant's"),
                    ("original options", _options(choices.get(str(clean_gold[1])))),
                    ("variant options", _options(choices.get(str(r["variant_id"])))),
                ) + fields[4:]
            fields += (
                ("clean answer", _answer(r.get("clean_response"), r.get("clean_parsed"),
                                         r["clean_score"])),
                ("noisy answer", _answer(r.get("response"), r.get("parsed"), r["score"])),
            )
            blocks.append(Example(f"{kind}: {r['model']} on {r['item_id']}", fields))
    return blocks


def _severity_blocks(ctx: _Context) -> list[Block]:
    if ctx.curve.empty:
        return []
    auc = analysis.severity_auc(ctx.curve)
    return [
        frame_table(auc, [
            ("model", "model"), ("transform", "transform"), ("clean", "clean_score", pct),
            ("area under curve", "auc", pct), ("area / clean", "auc_ratio", pct),
            ("max severity", "max_severity", num),
        ], text={"model", "transform"}),
        Paragraph("Area under the curve: the average score over severities 0 to the highest "
                  "measured (trapezoid rule, divided by that width). Area / clean = 100% means "
                  "noise had no effect.", "note"),
    ]


def _noise_floor_blocks(noise_floor: pd.DataFrame | None) -> list[Block]:
    if noise_floor is None or noise_floor.empty:
        return []
    return [
        Heading("Noise floor", 3),
        Paragraph("Clean questions simply asked again: flips here are not caused by "
                  "perturbation. A transform's flip rate means something only above this.",
                  "note"),
        frame_table(noise_floor, [
            ("model", "model", lambda model: "" if model is None else model),
            ("items", "n_items", num), ("asks per item", "n_repeats", num),
            ("flip rate", "flip_rate", pct),
            ("95% CI", ("ci_low", "ci_high"), lambda low, high: MISSING if is_missing(low)
             else f"[{pct(low)}, {pct(high)}]"),
            ("answer changed", "answer_change_rate", pct),
        ], text={"model"}),
    ]


def _chart_sections(ctx: _Context, figures: Mapping[str, Mapping[str, bytes]],
                    noise_floor: pd.DataFrame | None) -> list[Block]:
    """One section per chart of the chart list, in its order, with the tables that go with it."""
    content: dict[str, list[Block]] = {
        "overestimation": [
            _overview_table(ctx.numbers.overview),
            Paragraph("Overestimation = clean score minus the mean score under label-preserving "
                      "noise, paired item by item; intervals resample items.", "note")],
        "drop_by_transform": [
            _summary_table(ctx.numbers.summary),
            Paragraph("McNemar p: exact test that right→wrong and wrong→right flips are equally "
                      "likely. Consistency: share of noisy answers equal to the model's own "
                      "clean answer.", "note")],
        "severity_curves": _severity_blocks(ctx),
        "flips": _noise_floor_blocks(noise_floor),
    }
    blocks: list[Block] = []
    for name in charts.names():
        chart, extra = charts.get(name), content.get(name, [])
        if name not in figures and not extra:
            continue
        blocks.append(Heading(chart.title, 2, name))
        if name in figures:
            blocks.append(Figure(name, figures[name], chart.alt, chart.caption))
        blocks += extra
    return blocks


def _ranking_blocks(ctx: _Context) -> list[Block]:
    if ctx.results["model"].nunique() <= 1 or ctx.numbers.summary.empty:
        return []
    per_condition = analysis.ranking_change(ctx.results).drop_duplicates("transform")
    return [
        Heading("Ranking under noise", 2, "ranking"),
        frame_table(per_condition, [
            ("transform", "transform"), ("Spearman ρ", "spearman", num),
            ("Kendall τ", "kendall", num), ("pairs that swap", "n_swaps", num),
            ("swapped (clean order)", "swaps", lambda swaps: str(swaps) or "none"),
        ], text={"transform", "swapped (clean order)"}),
        Paragraph("Rank correlation of the models' clean scores with their scores under each "
                  "transform (1 = same order). A swap 'a > b' means a beats b on clean "
                  "questions but b beats a under this noise.", "note"),
    ]


def _may_break_blocks(ctx: _Context, n_boot: int, seed: int) -> list[Block]:
    may_break = analysis.may_break_summary(ctx.results, n_boot=n_boot, seed=seed, ci=ctx.ci)
    if may_break.empty:
        return []
    return [
        Heading("Transforms that may break the label", 2, "may-break"),
        Paragraph("Under these transforms (ambiguity, heavy truncation) the gold answer may no "
                  "longer follow from the question, so asking for clarification can be the "
                  "best answer. They are left out of the headline numbers.", "note"),
        frame_table(may_break, [
            ("model", "model"), ("transform", "transform"), ("items", "n_items", num),
            ("clean", "clean_score", pct), ("noisy", "perturbed_score", pct),
            ("drop (pp)", "drop_pp", pp), _CI,
            ("asks to clarify (noisy)", "clarification_rate", pct),
            ("asks to clarify (clean)", "clean_clarification_rate", pct),
        ], text={"model", "transform"}),
    ]


def _slice_blocks(ctx: _Context, n_boot: int, seed: int, min_items: int) -> list[Block]:
    meta = analysis.slice_columns(ctx.results)
    if not meta or ctx.numbers.summary.empty:
        return []
    weakest = analysis.weakest_slices(ctx.results, meta, k=8, min_items=min_items,
                                      n_boot=n_boot, seed=seed, ci=ctx.ci)
    if weakest.empty:
        return [Heading("Weakest slices", 2, "slices"),
                Paragraph(f"No slice has {min_items} or more items.", "note")]
    return [
        Heading("Weakest slices", 2, "slices"),
        frame_table(weakest, [
            ("model", "model"),
            ("column", "column", lambda column: str(column).removeprefix("meta.")),
            ("value", "value", str), ("items", "n_items", num), ("clean", "clean_score", pct),
            ("noisy", "perturbed_score", pct), ("drop (pp)", "drop_pp", pp), _CI,
        ], text={"model", "column", "value"}),
        Paragraph(f"Metadata values with the largest drop under label-preserving noise, "
                  f"among slices of at least {min_items} items.", "note"),
    ]


def _document(ctx: _Context, figures: Mapping[str, Mapping[str, bytes]], *, title: str,
              manifest: Mapping[str, Any] | None, noise_floor: pd.DataFrame | None,
              n_boot: int, seed: int, examples_per_transform: int,
              min_slice_items: int, choices: Mapping[str, Sequence[str]] | None = None
              ) -> Document:
    numbers = ctx.numbers
    results, summary = ctx.results, numbers.summary
    preserving = [t for t in pd.unique(ctx.paired["transform"])
                  if (ctx.paired.loc[ctx.paired["transform"] == t, "label_policy"]
                      .isin(analysis.LABEL_PRESERVING).all())]
    doc = Document(title)
    if summary.empty:
        doc.para("This run has no perturbed rows: there is no drop to report.")
    doc.add([headline_box(results, numbers.overview, preserving, label=ctx.data_label,
                          ci=ctx.ci, seed=numbers.data.seed, n_boot=numbers.data.n_boot,
                          warnings=numbers.warnings, consistency=consistency_of(manifest),
                          levels=numbers.levels)])
    doc.add(_chart_sections(ctx, figures, noise_floor))
    doc.add(realism_blocks(manifest))
    doc.add(variant_blocks(manifest))
    doc.add(_ranking_blocks(ctx))
    doc.heading("Examples of flipped answers", 2, "examples")
    doc.para("Original question and its noisy version (removed words struck through, added "
             "words underlined), with both answers.", "note")
    doc.add(_examples(ctx, examples_per_transform, choices or {}))
    doc.add(_may_break_blocks(ctx, n_boot, seed))
    doc.add(_slice_blocks(ctx, n_boot, seed, min_slice_items))
    doc.add(browse_blocks(results, ctx.paired))
    doc.heading("Run facts", 2, "run")
    doc.add([run_facts(results, manifest, n_boot=n_boot, seed=seed, ci=ctx.ci)])
    doc.para(f"Made by robustify {__version__}.", "muted")
    return doc


# --------------------------------------------------------------------- entry points


def _remapped_ids(results: pd.DataFrame) -> set[str]:
    """Variant ids whose options a report example may show (remapped multiple choice)."""
    if "label_policy" not in results.columns or "task" not in results.columns:
        return set()
    mc = results.loc[results["task"] == "multiple_choice"]
    items = set(mc.loc[mc["label_policy"] == "remaps", "item_id"])
    return set(map(str, mc.loc[mc["item_id"].isin(items), "variant_id"]))


def write_report(results: pd.DataFrame, out_dir: str | os.PathLike[str], *, title: str,
                 manifest: Mapping[str, Any] | None = None,
                 formats: Sequence[str] = ("png", "svg"),
                 noise_floor: pd.DataFrame | None = None, data_label: str | None = None,
                 n_boot: int = 2000, seed: int | None = None, ci: float = 0.95,
                 examples_per_transform: int = 3, min_slice_items: int = 5,
                 dpi: int = 110,
                 choices: Mapping[str, Sequence[str]] | None = None,
                 variants_file: str | os.PathLike[str] | None = None,
                 chart_process: "ChartProcess | None" = None,
                 numbers: ReportNumbers | None = None) -> dict[str, Path]:
    """Write the report folder for a results frame (no model is called).

    Args:
        results: The per-row results frame.
        out_dir: Folder to write into (created if needed); existing files are replaced.
        title: Page title and first heading.
        manifest: Run facts shown in "Run facts" (credential-shaped values are hidden).
        formats: Chart file formats beside report.md (``png``, ``svg``, ``pdf``). The HTML
            always embeds PNG.
        noise_floor: Output of :func:`robustify.analysis.noise_floor`, if measured.
        data_label: Name of the data in the headline; default from the manifest's ``data``.
        n_boot: Bootstrap draws for every interval.
        seed: Bootstrap seed; default the manifest's ``seed`` (else 0).
        ci: Interval coverage.
        examples_per_transform: Flipped items shown per transform.
        min_slice_items: Smallest slice shown under "Weakest slices".
        dpi: Resolution of the PNG charts.
        choices: Answer options per variant id (clean ones included), shown in the
            examples of transforms that reorder them; default read from ``variants.jsonl``
            in ``out_dir`` when it is there.
        variants_file: Where the run's ``variants.jsonl`` is when it is not in ``out_dir``
            (a report written into a staging folder or another folder).
        chart_process: A :class:`~robustify.reporting.chart_process.ChartProcess` that
            draws the charts while this process writes the files and the document (same
            bytes); None draws them here.
        numbers: The :class:`~robustify.reporting.headline.ReportNumbers` of ``results``
            to state (and fill); its label and bootstrap settings replace ``data_label``,
            ``n_boot``, ``seed`` and ``ci``. Default: made here.

    Returns:
        Paths by key: ``html``, ``md``, ``summary_csv``, ``results_csv``,
        ``results_jsonl`` and ``chart_<name>_<format>`` per chart file.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if seed is None:
        seed = int((manifest or {}).get("seed", 0) or 0)
    formats = [f.lower().lstrip(".") for f in formats]
    if numbers is None:
        numbers = ReportNumbers(results, manifest, label=data_label, n_boot=n_boot, seed=seed,
                                ci=ci)
    data = numbers.data  # over its own shallow copy of the results (see below)
    n_boot, seed, ci = data.n_boot, data.seed, data.ci

    def frames() -> list[str]:  # the bootstrap frames; the charts they make
        for name in data.FRAMES:
            data.frame(name)
        return [name for name in charts.names() if charts.get(name).available(data)]

    def rows_files() -> dict[str, Path]:
        return {"results_csv": write_text_atomic(out / "results.csv",
                                                 results.to_csv(index=False)),
                "results_jsonl": write_results_jsonl(results, out / "results.jsonl")}

    figures: dict[str, Mapping[str, bytes]]
    if chart_process is not None:
        # frames first, so the helper draws while this thread writes the rest
        figures = chart_process.draw(frames(), data, formats=formats, dpi=dpi)
        written_rows = rows_files()
    else:
        # The bootstrap intervals (numpy, mostly outside the GIL) are drawn in a thread
        # while this one writes the per-row files (Python, inside it): two cores, not
        # one. The thread reads its own shallow copy of the results, so neither sees the
        # other's internal caches.
        with ThreadPoolExecutor(1, thread_name_prefix="robustify-report") as pool:
            pending = pool.submit(frames)
            written_rows = rows_files()
            names = pending.result()
        figures = {name: charts.render(name, data, formats=formats, dpi=dpi)
                   for name in names}
    ctx = _Context(results=results, paired=analysis.pair_with_clean(results), numbers=numbers,
                   ci=ci)
    if choices is None:
        choices = load_choices(Path(variants_file) if variants_file is not None
                               else out / "variants.jsonl", _remapped_ids(results))
    doc = _document(ctx, figures, title=title, manifest=manifest, noise_floor=noise_floor,
                    n_boot=n_boot, seed=seed, examples_per_transform=examples_per_transform,
                    min_slice_items=min_slice_items, choices=choices)
    files = doc.write(out, "report", formats=formats)
    files["summary_csv"] = write_text_atomic(out / "summary.csv",
                                             numbers.summary.to_csv(index=False))
    files.update(written_rows)
    log.info("report written to %s", files["html"])
    return files


def rebuild_report(run_dir: str | os.PathLike[str], *, out_dir: str | os.PathLike[str] | None
                   = None, title: str | None = None, **kwargs: Any) -> dict[str, Path]:
    """Rebuild a run's report from its saved files, without any model call.

    Reads ``results.jsonl`` (or ``results.parquet``), ``manifest.json`` and, when present,
    ``noise_floor.jsonl`` from ``run_dir``.

    Args:
        run_dir: A run folder written by ``python -m robustify run``.
        out_dir: Where to write (default: ``run_dir`` itself).
        title: Page title (default: the manifest's ``title``, else from the data name).
        **kwargs: Passed to :func:`write_report`.

    Returns:
        The paths written, as :func:`write_report`.
    """
    results, manifest = load_results(run_dir)
    if "noise_floor" not in kwargs:
        kwargs["noise_floor"] = load_noise_floor(run_dir, results)
    if "choices" not in kwargs:  # the options of reordered variants, from the run itself
        kwargs["choices"] = load_choices(Path(run_dir) / "variants.jsonl", _remapped_ids(results))
    if title is None:
        title = str(manifest.get("title") or
                    f"robustify report: {_data_label(manifest, None)}")
    return write_report(results, out_dir if out_dir is not None else run_dir, title=title,
                        manifest=manifest, **kwargs)
