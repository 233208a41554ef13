"""The run report: one self-contained HTML page, its Markdown twin, CSVs and charts.

:func:`write_report` turns a results frame into a folder::

    report.html      self-contained: charts as base64 PNG, strict CSP, no script at all
    report.md        the same content; charts as files beside it
    charts/*.png|svg one file per chart and format
    summary.csv      summarize() per model x transform x severity
    results.csv      every row (one per model x variant)
    results.jsonl    every row, one JSON object per line (what rebuild_report reads)

Safety: every piece of data text (model output, questions, model names, metadata,
manifest values) goes through :func:`html.escape` before it reaches either document,
and the page forbids scripts with a Content-Security-Policy, so a model answering
``<script>...`` cannot run anything in a reader's browser. Every file is written
atomically, so a crash never leaves half a report.
"""

from __future__ import annotations

import base64
import difflib
import html
import io
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from perturbations.errors import DataError
from perturbations.version import __version__

import robustify.analysis as analysis
from robustify.reporting import plots
from robustify._secrets import redact
from robustify.atomic import write_bytes_atomic, write_text_atomic
from robustify.records import RESULT_COLUMNS

__all__ = ["write_report", "rebuild_report", "load_results", "write_results_jsonl",
           "word_diff", "figure_size", "CSP"]

log = logging.getLogger(__name__)

CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
       "form-action 'none'")
"""Content-Security-Policy of report.html: no script, no network, inline images only."""

_EXAMPLE_TEXT_LIMIT = 600

# ------------------------------------------------------------------------ helpers


def _e(value: Any) -> str:
    """HTML-escape anything (quotes included); the only way data enters a document."""
    return html.escape("" if value is None else str(value), quote=True)


def _md(value: Any) -> str:
    """Escape text for Markdown: HTML first, then the inline Markdown metacharacters.

    Quotes stay as they are (no tag can start without ``<``, which is escaped), so the
    Markdown reads "the model's answer", not "the model&#x27;s answer".
    """
    text = html.escape("" if value is None else str(value), quote=False)
    text = re.sub(r"([\\`*_\[\]|~])", r"\\\1", text)
    return text.replace("\r\n", "\n").replace("\n", "<br>")


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _pct(x: Any, digits: int = 1) -> str:
    return "–" if _missing(x) else f"{float(x) * 100:.{digits}f}%"


def _pp(x: Any, digits: int = 1, sign: bool = True) -> str:
    if _missing(x):
        return "–"
    return f"{float(x):+.{digits}f}" if sign else f"{float(x):.{digits}f}"


def _ci(low: Any, high: Any) -> str:
    return "–" if _missing(low) or _missing(high) else f"[{float(low):+.1f}, {float(high):+.1f}]"


def _p(x: Any) -> str:
    if _missing(x):
        return "–"
    return "<0.001" if float(x) < 0.001 else f"{float(x):.3f}"


def _num(x: Any) -> str:
    if _missing(x):
        return "–"
    if isinstance(x, (int, np.integer)) or float(x).is_integer():
        return str(int(x))
    return f"{float(x):.3g}"


def _sev(row: Mapping[str, Any]) -> str:
    label, value = row.get("severity_label"), row.get("severity")
    value_text = "–" if _missing(value) else f"{float(value):g}"
    if not _missing(label) and "," not in str(label):
        return f"{label} ({value_text})"
    return value_text


def _truncate(text: Any, limit: int = _EXAMPLE_TEXT_LIMIT) -> str:
    text = "" if _missing(text) else str(text)
    return text if len(text) <= limit else text[:limit].rstrip() + " …"


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


_TOKEN = re.compile(r"\s+|[\w'’]+|[^\w\s]", re.UNICODE)


def word_diff(original: str | None, perturbed: str | None) -> str:
    """Word-level diff as escaped HTML: removed words in ``<del>``, added in ``<ins>``.

    Whitespace is kept as it was, so the perturbed text reads naturally with the
    changes marked. Every fragment is HTML-escaped; the only tags are del/ins.
    """
    a = _TOKEN.findall("" if _missing(original) else str(original))
    b = _TOKEN.findall("" if _missing(perturbed) else str(perturbed))
    parts: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            parts.append(_e("".join(a[i1:i2])))
            continue
        if op in ("delete", "replace"):
            parts.append(f"<del>{_e(''.join(a[i1:i2]))}</del>")
        if op in ("insert", "replace"):
            parts.append(f"<ins>{_e(''.join(b[j1:j2]))}</ins>")
    return "".join(parts)


def figure_size(chart: str, n_models: int, n_transforms: int) -> tuple[float, float]:
    """Figure size (inches) for a chart so labels and bars do not collide.

    Args:
        chart: ``overestimation``, ``drop``, ``heatmap``, ``severity`` or ``flips``.
        n_models: Number of models drawn.
        n_transforms: Number of transforms drawn.
    """
    m, t = max(n_models, 1), max(n_transforms, 1)
    if chart == "overestimation":
        return (8.0, 1.8 + 0.6 * m)
    if chart == "drop":
        return (min(24.0, max(7.0, 1.5 + 0.35 * m * t + 0.5 * t)), 5.0)
    if chart == "heatmap":
        return (min(24.0, max(6.0, 3.5 + 0.9 * t)), min(20.0, max(3.0, 1.8 + 0.45 * m)))
    cols = min(3, m)
    rows = math.ceil(m / cols)
    if chart == "severity":
        return (5.2 * cols, 4.0 * rows)
    if chart == "flips":
        return (min(24.0, max(5.5, 1.5 + 0.7 * t)) * min(cols, 2), 4.2 * math.ceil(m / 2))
    raise ValueError(f"unknown chart {chart!r}")


# ------------------------------------------------------------------------- results


def _jsonable(value: Any) -> Any:
    # Common scalar types first: this runs once per cell of the results frame.
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, int):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if np.isnan(value) else float(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if _missing(value):
        return None
    return str(value)


def _results_jsonl(results: pd.DataFrame) -> str:
    columns = [str(c) for c in results.columns]
    lines = []
    for values in results.itertuples(index=False, name=None):
        record = {c: _jsonable(v) for c, v in zip(columns, values)}
        lines.append(json.dumps(record, ensure_ascii=False, allow_nan=False))
    return "".join(line + "\n" for line in lines)


def write_results_jsonl(results: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write the per-row frame as JSONL (NaN -> null), atomically."""
    return write_text_atomic(path, _results_jsonl(results))


def load_results(run_dir: str | os.PathLike[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a saved run: ``results.jsonl`` (or ``results.parquet``) and ``manifest.json``.

    Returns:
        ``(results, manifest)``; the manifest is ``{}`` when the file is absent.

    Raises:
        DataError: no results file, or a line that is not JSON (the line is named).
    """
    run_dir = Path(run_dir)
    jsonl, parquet = run_dir / "results.jsonl", run_dir / "results.parquet"
    if jsonl.is_file():
        results = _read_jsonl(jsonl)
    elif parquet.is_file():
        results = pd.read_parquet(parquet)
    else:
        raise DataError(f"{run_dir}: no results.jsonl or results.parquet (is this a run folder?)",
                        path=str(run_dir))
    ordered = [c for c in RESULT_COLUMNS if c in results.columns]
    results = results[ordered + [c for c in results.columns if c not in ordered]]
    manifest_path = run_dir / "manifest.json"
    manifest: dict[str, Any] = {}
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"not JSON: {exc.msg}", path=str(manifest_path),
                            line=exc.lineno) from None
    return results, manifest


# ------------------------------------------------------------------ document model


@dataclass
class _Heading:
    level: int
    text: str
    anchor: str = ""


@dataclass
class _Para:
    text: str
    cls: str = ""


@dataclass
class _Table:
    headers: list[str]
    rows: list[list[str]]
    numeric: set[int] = field(default_factory=set)


@dataclass
class _Chart:
    name: str
    alt: str
    caption: str


@dataclass
class _Example:
    title: str
    fields: list[tuple[str, str, bool]]
    """(label, value, value_is_html) — html values were built from escaped parts."""


_Block = Any


def _table(frame: pd.DataFrame, spec: Sequence[tuple[str, str, Callable[[Mapping[str, Any]], str]]],
           numeric: Iterable[str] = ()) -> _Table:
    numeric = set(numeric)
    headers = [h for h, _, _ in spec]
    rows = [[fmt(r) for _, _, fmt in spec] for r in frame.to_dict("records")]
    return _Table(headers, rows, {i for i, (h, key, _) in enumerate(spec) if key in numeric})


def _render_html(blocks: Sequence[_Block], charts: Mapping[str, bytes]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, _Heading):
            anchor = f' id="{_e(block.anchor)}"' if block.anchor else ""
            out.append(f"<h{block.level}{anchor}>{_e(block.text)}</h{block.level}>")
        elif isinstance(block, _Para):
            cls = f' class="{_e(block.cls)}"' if block.cls else ""
            out.append(f"<p{cls}>{_e(block.text)}</p>")
        elif isinstance(block, _Table):
            head = "".join(f"<th>{_e(h)}</th>" for h in block.headers)
            body = "".join(
                "<tr>" + "".join(f'<td class="num">{_e(c)}</td>' if i in block.numeric
                                 else f"<td>{_e(c)}</td>" for i, c in enumerate(row)) + "</tr>"
                for row in block.rows)
            out.append(f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
                       f"<tbody>{body}</tbody></table></div>")
        elif isinstance(block, _Chart):
            data = charts.get(block.name)
            if data is None:
                continue
            src = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
            out.append(f'<figure><img src="{src}" alt="{_e(block.alt)}">'
                       f"<figcaption>{_e(block.caption)}</figcaption></figure>")
        elif isinstance(block, _Example):
            items = "".join(f"<dt>{_e(label)}</dt><dd>{value if is_html else _e(value)}</dd>"
                            for label, value, is_html in block.fields)
            out.append(f'<div class="example"><h4>{_e(block.title)}</h4><dl>{items}</dl></div>')
    return "\n".join(out)


def _render_md(blocks: Sequence[_Block], chart_files: Mapping[str, str]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, _Heading):
            out.append(f"{'#' * block.level} {_md(block.text)}")
        elif isinstance(block, _Para):
            text = _md(block.text)
            out.append(f"> {text}" if block.cls == "headline" else text)
        elif isinstance(block, _Table):
            lines = ["| " + " | ".join(_md(h) for h in block.headers) + " |",
                     "|" + "|".join("---:" if i in block.numeric else "---"
                                    for i in range(len(block.headers))) + "|"]
            lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in block.rows]
            out.append("\n".join(lines))
        elif isinstance(block, _Chart):
            path = chart_files.get(block.name)
            if path is None:
                continue
            out.append(f"![{_md(block.alt)}]({path})\n\n*{_md(block.caption)}*")
        elif isinstance(block, _Example):
            lines = [f"**{_md(block.title)}**", ""]
            for label, value, is_html in block.fields:
                # html values are escaped text with <del>/<ins>: safe and rendered as marks.
                shown = (value.replace("\n", "<br>") if is_html else _md(value))
                lines.append(f"- **{_md(label)}:** {shown}")
            out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


# --------------------------------------------------------------------------- charts


def _save_figure(fig: Any, name: str, out_dir: Path, formats: Sequence[str], dpi: int
                 ) -> tuple[bytes, dict[str, Path]]:
    import matplotlib

    files: dict[str, Path] = {}
    # Fixed hash salt and no date make the SVG bytes repeatable run to run.
    with matplotlib.rc_context({"svg.hashsalt": "robustify", "svg.fonttype": "path"}):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
        png = buf.getvalue()
        for fmt in formats:
            if fmt == "png":
                data = png
            else:
                buf = io.BytesIO()
                fig.savefig(buf, format=fmt, dpi=dpi, metadata={"Date": None}
                            if fmt == "svg" else None)
                data = buf.getvalue()
            files[fmt] = write_bytes_atomic(out_dir / "charts" / f"{name}.{fmt}", data)
    return png, files


def _new_figure(size: tuple[float, float]) -> Any:
    # A Figure not registered with pyplot: no global state, safe in threads, nothing
    # to close; savefig picks the Agg renderer for png by itself.
    from matplotlib.figure import Figure

    return Figure(figsize=size, layout="constrained")


def _grid(fig: Any, n: int, cols: int) -> list[Any]:
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False).ravel())
    for extra in axes[n:]:
        extra.set_visible(False)
    return list(axes[:n])


def _build_charts(ctx: "_Context", out_dir: Path, formats: Sequence[str], dpi: int
                  ) -> tuple[dict[str, bytes], dict[str, Path]]:
    pngs: dict[str, bytes] = {}
    files: dict[str, Path] = {}
    if ctx.summary.empty:
        return pngs, files
    models = list(pd.unique(ctx.summary["model"]))
    transforms = list(pd.unique(ctx.summary["transform"]))
    m, t = len(models), len(transforms)
    label = ctx.data_label
    drawers: list[tuple[str, tuple[float, float], Callable[[Any], None]]] = [
        ("overestimation", figure_size("overestimation", m, t),
         lambda fig: plots.plot_overestimation(ctx.overview, ax=fig.subplots(), data_label=label)),
        ("drop_by_transform", figure_size("drop", m, t),
         lambda fig: plots.plot_drop_by_transform(ctx.summary, ax=fig.subplots(),
                                                  data_label=label)),
        ("heatmap", figure_size("heatmap", m, t),
         lambda fig: plots.plot_heatmap(ctx.summary, ax=fig.subplots(), data_label=label)),
    ]
    if not ctx.curve.empty:
        def severity(fig: Any) -> None:
            curve_models = list(pd.unique(ctx.curve["model"]))
            for ax, model in zip(_grid(fig, len(curve_models), 3), curve_models):
                plots.plot_severity_curves(ctx.curve, model=model, ax=ax, data_label=label)
        drawers.append(("severity_curves", figure_size("severity", m, t), severity))

    def flips(fig: Any) -> None:
        for ax, model in zip(_grid(fig, m, 2), models):
            plots.plot_flips(ctx.summary, model=model, ax=ax, data_label=label)
    drawers.append(("flips", figure_size("flips", m, t), flips))
    for name, size, draw in drawers:
        fig = _new_figure(size)
        try:
            draw(fig)
            png, saved = _save_figure(fig, name, out_dir, formats, dpi)
        finally:
            fig.clear()
        pngs[name] = png
        for fmt, path in saved.items():
            files[f"chart_{name}_{fmt}"] = path
    return pngs, files


# -------------------------------------------------------------------------- content


@dataclass
class _Context:
    results: pd.DataFrame
    paired: pd.DataFrame
    summary: pd.DataFrame
    overview: pd.DataFrame
    curve: pd.DataFrame
    data_label: str
    ci: float


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


def _headlines(ctx: _Context, transforms: Sequence[str]) -> list[str]:
    level = f"{ctx.ci * 100:g}%"
    noise = ", ".join(map(str, transforms)) or "no label-preserving transform"
    out = []
    for row in ctx.overview.to_dict("records"):
        model, clean, over = row["model"], row["clean_score"], row["overestimation_pp"]
        if _missing(clean) or _missing(over):
            out.append(f"On {ctx.data_label}, {model} has no scored label-preserving variants, "
                       "so the effect of noise could not be measured.")
            continue
        verb = "overstates" if over >= 0 else "understates"
        ci = row["overestimation_ci_low_pp"], row["overestimation_ci_high_pp"]
        ci_text = ("" if _missing(ci[0]) else
                   f" ({level} CI {float(ci[0]):.1f} to {float(ci[1]):.1f} pp)")
        text = (f"On {ctx.data_label}, {model}'s clean score of {float(clean) * 100:.1f}% "
                f"{verb} its score under realistic noise by {abs(float(over)):.1f} pp{ci_text}.")
        if not _missing(row.get("worst_case_score")):
            text += (f" Its worst case (per item, the lowest score over the clean question and "
                     f"all its noisy versions) is {float(row['worst_case_score']) * 100:.1f}%.")
        out.append(text + f" Realistic noise here: {noise}.")
    return out


def _summary_table(summary: pd.DataFrame) -> _Table:
    spec = [
        ("model", "model", lambda r: str(r["model"])),
        ("transform", "transform", lambda r: str(r["transform"])),
        ("severity", "severity", _sev),
        ("items", "n_items", lambda r: _num(r["n_items"])),
        ("changed", "n_changed", lambda r: _num(r["n_changed"])),
        ("failed", "n_failed", lambda r: _num(r["n_failed"])),
        ("clean", "clean_score", lambda r: _pct(r["clean_score"])),
        ("noisy", "perturbed_score", lambda r: _pct(r["perturbed_score"])),
        ("drop (pp)", "drop_pp", lambda r: _pp(r["drop_pp"])),
        ("95% CI (pp)", "ci", lambda r: _ci(r["ci_low_pp"], r["ci_high_pp"])),
        ("relative drop", "relative_drop", lambda r: _pct(r["relative_drop"])),
        ("McNemar p", "p_value", lambda r: _p(r["p_value"])),
        ("right→wrong", "flips_right_to_wrong", lambda r: _num(r["flips_right_to_wrong"])),
        ("wrong→right", "flips_wrong_to_right", lambda r: _num(r["flips_wrong_to_right"])),
        ("consistency", "consistency", lambda r: _pct(r["consistency"])),
        ("unparseable", "unparseable_rate", lambda r: _pct(r["unparseable_rate"])),
        ("label policy", "label_policy", lambda r: str(r["label_policy"])),
    ]
    if "severity" not in summary.columns:
        spec = [s for s in spec if s[0] != "severity"]
    numeric = {"n_items", "n_changed", "n_failed", "clean_score", "perturbed_score", "drop_pp",
               "ci", "relative_drop", "p_value", "flips_right_to_wrong", "flips_wrong_to_right",
               "consistency", "unparseable_rate"}
    return _table(summary, spec, numeric)


def _overview_table(overview: pd.DataFrame) -> _Table:
    spec = [
        ("model", "model", lambda r: str(r["model"])),
        ("items", "n_items", lambda r: _num(r["n_items"])),
        ("variants", "n_variants", lambda r: _num(r["n_variants"])),
        ("failed", "n_failed", lambda r: _num(r["n_failed"])),
        ("clean", "clean_score", lambda r: _pct(r["clean_score"])),
        ("mean under noise", "perturbed_score", lambda r: _pct(r["perturbed_score"])),
        ("overestimation (pp)", "overestimation_pp", lambda r: _pp(r["overestimation_pp"])),
        ("95% CI (pp)", "oci", lambda r: _ci(r["overestimation_ci_low_pp"],
                                             r["overestimation_ci_high_pp"])),
        ("worst case", "worst_case_score", lambda r: _pct(r["worst_case_score"])),
        ("clean − worst (pp)", "worst_case_gap_pp", lambda r: _pp(r["worst_case_gap_pp"])),
        ("95% CI (pp)", "wci", lambda r: _ci(r["worst_case_ci_low_pp"],
                                             r["worst_case_ci_high_pp"])),
    ]
    return _table(overview, spec, {s[1] for s in spec[1:]})


def _examples(ctx: _Context, per_transform: int) -> list[_Block]:
    paired = ctx.paired
    flipped = paired.loc[paired["flip"].isin(["right->wrong", "wrong->right"])].copy()
    if flipped.empty:
        return [_Para("No answer changed between a clean question and its noisy version.")]
    models = {m: i for i, m in enumerate(pd.unique(ctx.results["model"]))}
    flipped["__kind"] = (flipped["flip"] != "right->wrong").astype(int)
    flipped["__model"] = flipped["model"].map(models)
    flipped["__sev"] = -flipped["severity"].astype(float)
    flipped = flipped.sort_values(["__kind", "__sev", "__model", "item_id", "replicate"],
                                  kind="mergesort")
    blocks: list[_Block] = []
    for transform in pd.unique(paired["transform"]):
        rows = flipped.loc[flipped["transform"] == transform]
        if rows.empty:
            continue
        # Prefer distinct items: several models failing on one item say less than
        # several items.
        rows = pd.concat([rows.drop_duplicates("item_id"), rows]).drop_duplicates(
            subset=["model", "variant_id"]).head(per_transform)
        blocks.append(_Heading(3, f"{transform}"))
        for r in rows.to_dict("records"):
            kind = "right → wrong" if r["flip"] == "right->wrong" else "wrong → right"
            fields = [
                ("model", str(r["model"]), False),
                ("item", str(r["item_id"]), False),
                ("variant", f"{r['spec']} (replicate {r['replicate']})", False),
                ("gold answer", _truncate(r.get("target")), False),
                ("original", _truncate(r.get("clean_input")), False),
                ("perturbed", word_diff(_truncate(r.get("clean_input")),
                                        _truncate(r.get("input"))), True),
                ("clean answer", f"{_truncate(r.get('clean_response'))}  [parsed: "
                                 f"{'none' if _missing(r.get('clean_parsed')) else r['clean_parsed']}"
                                 f", score {_num(r['clean_score'])}]", False),
                ("noisy answer", f"{_truncate(r.get('response'))}  [parsed: "
                                 f"{'none' if _missing(r.get('parsed')) else r['parsed']}"
                                 f", score {_num(r['score'])}]", False),
            ]
            blocks.append(_Example(f"{kind}: {r['model']} on {r['item_id']}", fields))
    return blocks


def _build_blocks(ctx: _Context, *, title: str, manifest: Mapping[str, Any] | None,
                  noise_floor: pd.DataFrame | None, n_boot: int, seed: int,
                  examples_per_transform: int, min_slice_items: int) -> list[_Block]:
    results, summary = ctx.results, ctx.summary
    preserving = [t for t in pd.unique(ctx.paired["transform"])
                  if (ctx.paired.loc[ctx.paired["transform"] == t, "label_policy"]
                      .isin(analysis.LABEL_PRESERVING).all())]
    blocks: list[_Block] = [_Heading(1, title)]
    if summary.empty:
        blocks.append(_Para("This run has no perturbed rows: there is no drop to report."))
    headlines = _headlines(ctx, preserving)
    for i, text in enumerate(headlines):
        blocks.append(_Para(text, "headline" if i == 0 else ""))
    blocks += [
        _Chart("overestimation", "Dumbbell chart of clean, mean-under-noise and worst-case "
               "score per model", "Clean score (circle), mean score over all label-preserving "
               "noisy variants (square, with the bootstrap interval of the gap) and the "
               "worst case (triangle) per model."),
        _Heading(2, "Per model", "models"),
        _overview_table(ctx.overview),
        _Para("Overestimation = clean score minus the mean score under label-preserving "
              "noise, paired item by item; intervals resample items.", "note"),
        _Heading(2, "Drop by transform", "drop"),
        _Chart("drop_by_transform", "Bar chart of the score drop per transform and model",
               "Paired drop (clean minus noisy score, percentage points) per transform at the "
               "medium severity (or the nearest measured one); whiskers: bootstrap interval."),
        _Chart("heatmap", "Heat map of the drop per model and transform",
               "The same drops as a model x transform grid (orange: the score fell; purple: "
               "it rose)."),
        _summary_table(summary),
        _Para("McNemar p: exact test that right→wrong and wrong→right flips are equally "
              "likely. Consistency: share of noisy answers equal to the model's own clean "
              "answer.", "note"),
    ]
    if not ctx.curve.empty:
        auc = analysis.severity_auc(ctx.curve)
        blocks += [
            _Heading(2, "Severity", "severity"),
            _Chart("severity_curves", "Line charts of score against severity per model",
                   "Score against severity, one line per transform; severity 0 is the clean "
                   "score on the same items."),
            _table(auc, [
                ("model", "model", lambda r: str(r["model"])),
                ("transform", "transform", lambda r: str(r["transform"])),
                ("clean", "clean_score", lambda r: _pct(r["clean_score"])),
                ("area under curve", "auc", lambda r: _pct(r["auc"])),
                ("area / clean", "auc_ratio", lambda r: _pct(r["auc_ratio"])),
                ("max severity", "max_severity", lambda r: _num(r["max_severity"])),
            ], {"clean_score", "auc", "auc_ratio", "max_severity"}),
            _Para("Area under the curve: the average score over severities 0 to the highest "
                  "measured (trapezoid rule, divided by that width). Area / clean = 100% means "
                  "noise had no effect.", "note"),
        ]
    blocks += [
        _Heading(2, "Answer flips", "flips"),
        _Chart("flips", "Stacked bar charts of answer flips per transform and model",
               "Share of scored variants whose answer went right → wrong (with an answer), "
               "became unparseable, or went wrong → right."),
    ]
    if noise_floor is not None and not noise_floor.empty:
        blocks += [
            _Heading(3, "Noise floor"),
            _Para("Clean questions simply asked again: flips here are not caused by "
                  "perturbation. A transform's flip rate means something only above this.",
                  "note"),
            _table(noise_floor, [
                ("model", "model", lambda r: str(r.get("model", ""))),
                ("items", "n_items", lambda r: _num(r["n_items"])),
                ("asks per item", "n_repeats", lambda r: _num(r["n_repeats"])),
                ("flip rate", "flip_rate", lambda r: _pct(r["flip_rate"])),
                ("95% CI", "ci", lambda r: "–" if _missing(r["ci_low"]) else
                 f"[{float(r['ci_low']) * 100:.1f}%, {float(r['ci_high']) * 100:.1f}%]"),
                ("answer changed", "answer_change_rate",
                 lambda r: _pct(r["answer_change_rate"])),
            ], {"n_items", "n_repeats", "flip_rate", "ci", "answer_change_rate"}),
        ]
    if results["model"].nunique() > 1 and not summary.empty:
        ranking = analysis.ranking_change(results)
        per_condition = ranking.drop_duplicates("transform")
        blocks += [
            _Heading(2, "Ranking under noise", "ranking"),
            _table(per_condition, [
                ("transform", "transform", lambda r: str(r["transform"])),
                ("Spearman ρ", "spearman", lambda r: _num(r["spearman"])),
                ("Kendall τ", "kendall", lambda r: _num(r["kendall"])),
                ("pairs that swap", "n_swaps", lambda r: _num(r["n_swaps"])),
                ("swapped (clean order)", "swaps", lambda r: str(r["swaps"]) or "none"),
            ], {"spearman", "kendall", "n_swaps"}),
            _Para("Rank correlation of the models' clean scores with their scores under each "
                  "transform (1 = same order). A swap 'a > b' means a beats b on clean "
                  "questions but b beats a under this noise.", "note"),
        ]
    blocks += [_Heading(2, "Examples of flipped answers", "examples"),
               _Para("Original question and its noisy version (removed words struck through, "
                     "added words underlined), with both answers.", "note")]
    blocks += _examples(ctx, examples_per_transform)
    may_break = analysis.may_break_summary(results, n_boot=n_boot, seed=seed, ci=ctx.ci)
    if not may_break.empty:
        blocks += [
            _Heading(2, "Transforms that may break the label", "may-break"),
            _Para("Under these transforms (ambiguity, heavy truncation) the gold answer may no "
                  "longer follow from the question, so asking for clarification can be the "
                  "best answer. They are left out of the headline numbers.", "note"),
            _table(may_break, [
                ("model", "model", lambda r: str(r["model"])),
                ("transform", "transform", lambda r: str(r["transform"])),
                ("items", "n_items", lambda r: _num(r["n_items"])),
                ("clean", "clean_score", lambda r: _pct(r["clean_score"])),
                ("noisy", "perturbed_score", lambda r: _pct(r["perturbed_score"])),
                ("drop (pp)", "drop_pp", lambda r: _pp(r["drop_pp"])),
                ("95% CI (pp)", "ci", lambda r: _ci(r["ci_low_pp"], r["ci_high_pp"])),
                ("asks to clarify (noisy)", "clarification_rate",
                 lambda r: _pct(r["clarification_rate"])),
                ("asks to clarify (clean)", "clean_clarification_rate",
                 lambda r: _pct(r["clean_clarification_rate"])),
            ], {"n_items", "clean_score", "perturbed_score", "drop_pp", "ci",
                "clarification_rate", "clean_clarification_rate"}),
        ]
    meta = analysis.slice_columns(results)
    if meta and not summary.empty:
        weakest = analysis.weakest_slices(results, meta, k=8, min_items=min_slice_items,
                                          n_boot=n_boot, seed=seed, ci=ctx.ci)
        blocks.append(_Heading(2, "Weakest slices", "slices"))
        if weakest.empty:
            blocks.append(_Para(f"No slice has {min_slice_items} or more items.", "note"))
        else:
            blocks += [
                _table(weakest, [
                    ("model", "model", lambda r: str(r["model"])),
                    ("column", "column", lambda r: str(r["column"]).removeprefix("meta.")),
                    ("value", "value", lambda r: str(r["value"])),
                    ("items", "n_items", lambda r: _num(r["n_items"])),
                    ("clean", "clean_score", lambda r: _pct(r["clean_score"])),
                    ("noisy", "perturbed_score", lambda r: _pct(r["perturbed_score"])),
                    ("drop (pp)", "drop_pp", lambda r: _pp(r["drop_pp"])),
                    ("95% CI (pp)", "ci", lambda r: _ci(r["ci_low_pp"], r["ci_high_pp"])),
                ], {"n_items", "clean_score", "perturbed_score", "drop_pp", "ci"}),
                _Para(f"Metadata values with the largest drop under label-preserving noise, "
                      f"among slices of at least {min_slice_items} items.", "note"),
            ]
    blocks.append(_Heading(2, "Run facts", "run"))
    facts = [("rows", str(len(results))), ("models", ", ".join(map(str, pd.unique(
        results["model"])))), ("bootstrap", f"{n_boot} draws, seed {seed}, {ctx.ci:.0%} "
                                            "intervals")]
    facts += _flatten(dict(manifest or {}))
    blocks.append(_Table(["fact", "value"], [[k, v] for k, v in facts]))
    blocks.append(_Para(f"Made by robustify {__version__}.", "muted"))
    return blocks


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
    paired = analysis.pair_with_clean(results)
    ctx = _Context(
        results=results, paired=paired,
        summary=analysis.summarize(results, n_boot=n_boot, seed=seed, ci=ci),
        overview=analysis.model_overview(results, n_boot=n_boot, seed=seed, ci=ci),
        curve=analysis.severity_curve(results), data_label=_data_label(manifest, data_label),
        ci=ci)
    blocks = _build_blocks(ctx, title=title, manifest=manifest, noise_floor=noise_floor,
                           n_boot=n_boot, seed=seed,
                           examples_per_transform=examples_per_transform,
                           min_slice_items=min_slice_items)
    pngs, files = _build_charts(ctx, out, formats, dpi)
    md_fmt = "png" if "png" in formats else (formats[0] if formats else None)
    chart_files = ({name: f"charts/{name}.{md_fmt}" for name in pngs} if md_fmt else {})
    page = Template(resources.files("robustify").joinpath("templates/report.html")
                    .read_text(encoding="utf-8"))
    html_text = page.substitute(csp=_e(CSP), version=_e(__version__), title=_e(title),
                                body=_render_html(blocks, pngs))
    files["html"] = write_text_atomic(out / "report.html", html_text)
    files["md"] = write_text_atomic(out / "report.md", _render_md(blocks, chart_files))
    files["summary_csv"] = write_text_atomic(out / "summary.csv",
                                             ctx.summary.to_csv(index=False))
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
    run_dir = Path(run_dir)
    results, manifest = load_results(run_dir)
    floor_path = run_dir / "noise_floor.jsonl"
    if "noise_floor" not in kwargs and floor_path.is_file():
        repeats = _read_jsonl(floor_path)
        clean = results.loc[results["spec"] == analysis.CLEAN].assign(repeat=0)
        kwargs["noise_floor"] = analysis.noise_floor(pd.concat([clean, repeats],
                                                               ignore_index=True))
    if title is None:
        title = str(manifest.get("title") or
                    f"robustify report: {_data_label(manifest, None)}")
    return write_report(results, out_dir if out_dir is not None else run_dir, title=title,
                        manifest=manifest, **kwargs)


def _read_jsonl(path: Path) -> pd.DataFrame:
    """Rows of a JSONL file as a frame; a bad line is named in the error."""
    rows = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"not JSON: {exc.msg}", path=str(path), line=number) from None
    return pd.DataFrame(rows)
