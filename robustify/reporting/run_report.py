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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from perturbations.version import __version__

import robustify.analysis as analysis
from robustify._secrets import redact
from robustify.atomic import write_text_atomic
from robustify.reporting import charts
from robustify.reporting.document import (Block, Diff, Document, Example, Figure, Heading,
                                          Paragraph, Table, frame_table)
from robustify.reporting.noise_sections import realism_blocks, variant_blocks
from robustify.reporting.format import MISSING, is_missing, num, pct, pp, pvalue, truncate
from robustify.reporting.format import ci as fmt_ci
from robustify.reporting.results_io import load_noise_floor, load_results, write_results_jsonl

__all__ = ["write_report", "rebuild_report"]

log = logging.getLogger(__name__)


def _sev(label: Any, value: Any) -> str:
    value_text = MISSING if is_missing(value) else f"{float(value):g}"
    if not is_missing(label) and "," not in str(label):
        return f"{label} ({value_text})"
    return value_text


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if isinstance(obj, Mapping):
        # sorted like manifest.json, so a rebuilt report is identical to the run's own
        for key in sorted(obj, key=str):
            out += _flatten(obj[key], f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, (list, tuple)):
        if all(not isinstance(v, (Mapping, list, tuple)) for v in obj):
            out.append((prefix, ", ".join(str(redact(v, prefix)) for v in obj)))
        else:
            for i, v in enumerate(obj):
                out += _flatten(v, f"{prefix}.{i}")
    else:
        out.append((prefix, "" if obj is None else str(redact(obj if isinstance(obj, str)
                                                              else str(obj), prefix))))
    return out


@dataclass
class _Context:
    results: pd.DataFrame
    paired: pd.DataFrame
    data: charts.ChartData
    ci: float

    @property
    def summary(self) -> pd.DataFrame:
        return self.data.summary

    @property
    def overview(self) -> pd.DataFrame:
        return self.data.overview

    @property
    def curve(self) -> pd.DataFrame:
        return self.data.curve

    @property
    def data_label(self) -> str:
        return str(self.data.data_label)


def _data_label(manifest: Mapping[str, Any] | None, explicit: str | None) -> str:
    if explicit:
        return explicit
    manifest = manifest or {}
    data = manifest.get("data")
    names: list[str] = []
    if isinstance(data, list):
        for d in data:
            if isinstance(d, Mapping):
                names.append(str(d.get("name") or Path(str(d.get("path", "data"))).stem))
            else:
                names.append(Path(str(d)).stem)
    elif isinstance(data, str):
        names.append(Path(data).stem)
    elif isinstance(manifest.get("dataset"), str):
        names.append(str(manifest["dataset"]))
    return ", ".join(names) or "this benchmark"


def _drop_sentence(row: Mapping[str, Any], level: str, what: str) -> str:
    over = float(row["overestimation_pp"])
    low, high = row["overestimation_ci_low_pp"], row["overestimation_ci_high_pp"]
    ci_text = ("" if is_missing(low) else
               f" ({level} CI {pp(low, sign=False)} to {pp(high, sign=False)} pp)")
    if not is_missing(low) and float(low) <= 0.0 <= float(high):
        return (f"holds under {what}: the drop, {pp(over, sign=False)} pp{ci_text}, is not "
                f"distinguishable from none (no detectable change)")
    verb = "overstates" if over >= 0 else "understates"
    return f"{verb} its score under {what} by {pp(abs(over), sign=False)} pp{ci_text}"


def _headlines(ctx: _Context, transforms: Sequence[str]) -> list[str]:
    """One sentence per model: the drop at realistic levels first, then under stress."""
    level = f"{ctx.ci * 100:g}%"
    realistic_rows, stress_rows = analysis.split_levels(ctx.results)
    has_realistic = len(realistic_rows) > (ctx.results["spec"] == analysis.CLEAN).sum()
    realistic = (analysis.model_overview(realistic_rows, seed=ctx.data.seed, n_boot=ctx.data.n_boot).set_index("model")
                 if has_realistic else None)
    stress = analysis.model_overview(stress_rows, seed=ctx.data.seed, n_boot=ctx.data.n_boot).set_index("model")
    realistic_specs = ", ".join(map(str, pd.unique(
        ctx.results.loc[ctx.results["severity_label"].isin(analysis.REALISTIC_LABELS), "spec"])))
    in_stress = set(stress_rows.loc[stress_rows["spec"] != analysis.CLEAN, "transform"])
    stress_noise = (", ".join(t for t in map(str, transforms) if t in in_stress)
                    or "no label-preserving transform")
    out = []
    for row in ctx.overview.to_dict("records"):
        model, clean = row["model"], row["clean_score"]
        if is_missing(clean) or is_missing(row["overestimation_pp"]):
            out.append(f"On {ctx.data_label}, {model} has no scored label-preserving variants, "
                       "so the effect of noise could not be measured.")
            continue
        start = f"On {ctx.data_label}, {model}'s clean score of {pct(clean)}"
        if realistic is not None and model in realistic.index and \
                not is_missing(realistic.loc[model, "overestimation_pp"]):
            text = (start + " " + _drop_sentence(realistic.loc[model], level,
                                                  f"noise fitted to real typed messages "
                                                  f"({realistic_specs})") + ".")
            if model in stress.index and not is_missing(stress.loc[model, "overestimation_pp"]):
                text += (f" Under stress levels, heavier than people type ({stress_noise}), "
                         f"it " + _drop_sentence(stress.loc[model], level, "them")
                         .replace(" its score under them", "") + ".")
        else:
            text = (start + " " + _drop_sentence(row, level, f"stress noise ({stress_noise})") +
                    ". This run has no realistic level, and these levels are heavier than "
                    "people type: add the profile transform or @realistic, or fit your "
                    "traffic with calibrate.")
        if not is_missing(row.get("worst_case_score")):
            text += (f" Its worst case (per item, the lowest score over the clean question and "
                     f"all its noisy versions) is {pct(row['worst_case_score'])}.")
        out.append(text)
    return out


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


def _examples(ctx: _Context, per_transform: int) -> list[Block]:
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
            fields = (
                ("model", str(r["model"])),
                ("item", str(r["item_id"])),
                ("variant", f"{r['spec']} (replicate {r['replicate']})"),
                ("gold answer", truncate(r.get("target"))),
                ("original", truncate(r.get("clean_input"))),
                ("perturbed", Diff.of(truncate(r.get("clean_input")), truncate(r.get("input")))),
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
            _overview_table(ctx.overview),
            Paragraph("Overestimation = clean score minus the mean score under label-preserving "
                      "noise, paired item by item; intervals resample items.", "note")],
        "drop_by_transform": [
            _summary_table(ctx.summary),
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
    if ctx.results["model"].nunique() <= 1 or ctx.summary.empty:
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
    if not meta or ctx.summary.empty:
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
              min_slice_items: int) -> Document:
    results, summary = ctx.results, ctx.summary
    preserving = [t for t in pd.unique(ctx.paired["transform"])
                  if (ctx.paired.loc[ctx.paired["transform"] == t, "label_policy"]
                      .isin(analysis.LABEL_PRESERVING).all())]
    doc = Document(title)
    if summary.empty:
        doc.para("This run has no perturbed rows: there is no drop to report.")
    for i, text in enumerate(_headlines(ctx, preserving)):
        doc.para(text, "headline" if i == 0 else "")
    doc.add(_chart_sections(ctx, figures, noise_floor))
    doc.add(realism_blocks(manifest))
    doc.add(variant_blocks(manifest))
    doc.add(_ranking_blocks(ctx))
    doc.heading("Examples of flipped answers", 2, "examples")
    doc.para("Original question and its noisy version (removed words struck through, added "
             "words underlined), with both answers.", "note")
    doc.add(_examples(ctx, examples_per_transform))
    doc.add(_may_break_blocks(ctx, n_boot, seed))
    doc.add(_slice_blocks(ctx, n_boot, seed, min_slice_items))
    doc.heading("Run facts", 2, "run")
    facts = [("rows", str(len(results))),
             ("models", ", ".join(map(str, pd.unique(results["model"])))),
             ("bootstrap", f"{n_boot} draws, seed {seed}, {ctx.ci:.0%} intervals")]
    # the variants and realism tables have sections of their own
    facts += _flatten({k: v for k, v in (manifest or {}).items()
                       if k not in ("variants", "realism")})
    doc.table(["fact", "value"], facts)
    doc.para(f"Made by robustify {__version__}.", "muted")
    return doc


# --------------------------------------------------------------------- entry points


def write_report(results: pd.DataFrame, out_dir: str | os.PathLike[str], *, title: str,
                 manifest: Mapping[str, Any] | None = None,
                 formats: Sequence[str] = ("png", "svg"),
                 noise_floor: pd.DataFrame | None = None, data_label: str | None = None,
                 n_boot: int = 2000, seed: int | None = None, ci: float = 0.95,
                 examples_per_transform: int = 3, min_slice_items: int = 5,
                 dpi: int = 110) -> dict[str, Path]:
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

    Returns:
        Paths by key: ``html``, ``md``, ``summary_csv``, ``results_csv``,
        ``results_jsonl`` and ``chart_<name>_<format>`` per chart file.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if seed is None:
        seed = int((manifest or {}).get("seed", 0) or 0)
    formats = [f.lower().lstrip(".") for f in formats]
    data = charts.ChartData(results, data_label=_data_label(manifest, data_label),
                            n_boot=n_boot, seed=seed, ci=ci)
    ctx = _Context(results=results, paired=analysis.pair_with_clean(results), data=data, ci=ci)
    figures = {name: charts.render(name, data, formats=formats, dpi=dpi)
               for name in charts.names() if charts.get(name).available(data)}
    doc = _document(ctx, figures, title=title, manifest=manifest, noise_floor=noise_floor,
                    n_boot=n_boot, seed=seed, examples_per_transform=examples_per_transform,
                    min_slice_items=min_slice_items)
    files = doc.write(out, "report", formats=formats)
    files["summary_csv"] = write_text_atomic(out / "summary.csv", ctx.summary.to_csv(index=False))
    files["results_csv"] = write_text_atomic(out / "results.csv", results.to_csv(index=False))
    files["results_jsonl"] = write_results_jsonl(results, out / "results.jsonl")
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
    if title is None:
        title = str(manifest.get("title") or
                    f"robustify report: {_data_label(manifest, None)}")
    return write_report(results, out_dir if out_dir is not None else run_dir, title=title,
                        manifest=manifest, **kwargs)
