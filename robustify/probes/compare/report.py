"""The run comparison's chart and report (compare.html, compare.md, compare.csv).

The report is a :class:`~robustify.reporting.document.Document` (every text escaped, no
script); numbers go through :mod:`robustify.reporting.format`.

>>> table = compare_runs(["reports/v1", "reports/v2"])                 # doctest: +SKIP
>>> plot_comparison(table)                                             # doctest: +SKIP
>>> write_comparison_report(table, "reports/v1-vs-v2")                  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import pandas as pd

from perturbations.errors import ConfigError

from robustify.atomic import slug, write_text_atomic
from robustify.probes.compare.stats import ALL_PRESERVING, CLEAN_ROW
from robustify.reporting.charts import figure_bytes
from robustify.reporting.document import Document
from robustify.reporting.format import MISSING, is_missing, pct, pp, pvalue
from robustify.reporting.format import ci as fmt_ci
from robustify.reporting.plots import axes_or_new, series_style

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["comparison_label", "plot_comparison", "write_comparison_report"]


# ------------------------------------------------------------------------ chart

def comparison_label(row: Mapping[str, Any]) -> str:
    """How a comparison row names its group: ``typos@0.5``, ``all label-preserving``, ``clean``."""
    if row["transform"] == ALL_PRESERVING:
        return "all label-preserving"
    sev = row.get("severity")
    return str(row["transform"]) if is_missing(sev) else f"{row['transform']}@{float(sev):g}"


def plot_comparison(comparison: pd.DataFrame, ax: "Axes | None" = None, *,
                    title: str | None = None) -> "Axes":
    """Drop under each noise in run A (hollow) and run B (filled), per transform.

    One line per transform x severity (and the pooled label-preserving row on top): the
    hollow circle is the drop in A, the filled square the drop in B, and the text on the
    right is the change with its 95% interval. A square left of its circle means B lost
    less (more robust). With several run or model pairs each gets its own colour.

    Args:
        comparison: Output of :func:`compare_runs` (the ``clean`` rows are skipped).
        ax: Axes to draw on; a new figure when ``None``.
        title: Overrides the default title.

    Returns:
        The Axes.
    """
    for column in ("transform", "drop_a_pp", "drop_b_pp", "drop_change_pp", "run_a", "run_b"):
        if column not in comparison.columns:
            raise ConfigError(f"plot_comparison needs column {column!r}; pass the output of "
                              f"compare_runs")
    rows = comparison.loc[comparison["transform"] != CLEAN_ROW].to_dict("records")
    ax = axes_or_new(ax, (8.0, 1.2 + 0.42 * max(1, len(rows))))
    pairs = list(dict.fromkeys((r["run_a"], r["run_b"], r["model_a"], r["model_b"])
                               for r in rows))
    n = len(rows)
    labels = []
    xmax = 1.0
    xmin = 0.0
    for k, r in enumerate(rows):
        y = n - 1 - k
        style = series_style(pairs.index((r["run_a"], r["run_b"], r["model_a"], r["model_b"])))
        a, b = r["drop_a_pp"], r["drop_b_pp"]
        ax.plot([a, b], [y, y], color=style["color"], lw=1.5, alpha=0.6)
        ax.plot([a], [y], "o", mfc="white", mec=style["color"], ms=7)
        ax.plot([b], [y], "s", color=style["color"], ms=7)
        interval = fmt_ci(r["drop_change_ci_low_pp"], r["drop_change_ci_high_pp"])
        ci_text = "" if interval == MISSING else f" {interval}"
        ax.annotate(f"{pp(r['drop_change_pp'])} pp{ci_text}", xy=(1.0, y),
                    xycoords=("axes fraction", "data"), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=8)
        name = comparison_label(r)
        if len(pairs) > 1:
            name += "\n" + _who(r["model_a"], r["model_b"])
        labels.append(name)
        finite = [float(v) for v in (a, b) if not is_missing(v)]
        xmax, xmin = max([xmax, *finite]), min([xmin, *finite])
    ax.set_yticks(list(range(n)))
    ax.set_yticklabels(labels[::-1], fontsize=8)
    ax.set_ylim(-0.7, n - 0.3)
    span = xmax - xmin
    ax.set_xlim(xmin - 0.08 * span - 1, xmax + 0.08 * span + 1)
    ax.axvline(0, color="#888888", lw=0.8)
    ax.set_xlabel("score drop under noise (pp): ○ first run, ■ later run")
    if title is None:
        runs = sorted({f"{r['run_a']} → {r['run_b']}" for r in rows})
        title = "Change in robustness: " + "; ".join(runs) if runs else "Change in robustness"
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return ax


# ------------------------------------------------------------------------ report

def _change(row: Mapping[str, Any], name: str) -> str:
    """A change in pp with its interval: ``+2.5 [-1.0, +6.1]``."""
    return f"{pp(row[f'{name}_pp'])} {fmt_ci(row[f'{name}_ci_low_pp'], row[f'{name}_ci_high_pp'])}"


def _headline(who: str, group: pd.DataFrame) -> str:
    clean = group.loc[group["transform"] == CLEAN_ROW]
    pooled = group.loc[group["transform"] == ALL_PRESERVING]
    text = f"{who}:"
    if len(clean):
        c = clean.iloc[0]
        text += (f" clean score {pct(c['clean_a'])} → {pct(c['clean_b'])} "
                 f"({pp(c['clean_change_pp'])} pp, 95% CI "
                 f"{fmt_ci(c['clean_change_ci_low_pp'], c['clean_change_ci_high_pp'])});")
    if len(pooled):
        p = pooled.iloc[0]
        better = ("more robust" if p["drop_change_ci_high_pp"] < 0 else "less robust"
                  if p["drop_change_ci_low_pp"] > 0 else "no clear change in robustness")
        text += (f" drop under label-preserving noise {pp(p['drop_a_pp'])} → "
                 f"{pp(p['drop_b_pp'])} pp ({pp(p['drop_change_pp'])} pp, 95% CI "
                 f"{fmt_ci(p['drop_change_ci_low_pp'], p['drop_change_ci_high_pp'])}): "
                 f"{better}.")
    return text


def _name(model: Any) -> str:
    return MISSING if is_missing(model) else str(model)  # never "nan" for a missing model


def _who(model_a: Any, model_b: Any) -> str:
    a, b = _name(model_a), _name(model_b)
    return a if a == b else f"{a} → {b}"


def write_comparison_report(comparison: pd.DataFrame, out_dir: str | os.PathLike[str], *,
                            title: str | None = None) -> dict[str, Path]:
    """Write ``compare.html``, ``compare.md``, ``compare.csv`` and ``charts/compare*.png``.

    Every file is written atomically; text is escaped; the page runs no script.

    Args:
        comparison: Output of :func:`~robustify.probes.compare.compare_runs`.
        out_dir: The folder (created if needed).
        title: Page title (default from the run names).

    Returns:
        Paths by key: ``html``, ``md``, ``csv`` and ``chart_<name>_png``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pairs = list(dict.fromkeys(zip(comparison["run_a"], comparison["run_b"])))
    title = title or "Run comparison: " + "; ".join(f"{a} → {b}" for a, b in pairs)
    doc = Document(title)
    for (run_a, run_b) in pairs:
        part = comparison.loc[(comparison["run_a"] == run_a) & (comparison["run_b"] == run_b)]
        doc.heading(f"{run_a} → {run_b}")
        for (model_a, model_b), group in part.groupby(["model_a", "model_b"], sort=False):
            doc.para(_headline(_who(model_a, model_b), group), "headline")
        doc.table(["model", "transform", "paired", "items", "clean A → B", "Δ clean pp (CI)",
                   "noisy A → B", "Δ noisy pp (CI)", "drop A → B (pp)", "Δ drop pp (CI)",
                   "p"],
                  [[_who(r["model_a"], r["model_b"]), comparison_label(r),
                    "yes" if r["paired"] else "no", r["n_items"],
                    f"{pct(r['clean_a'])} → {pct(r['clean_b'])}", _change(r, "clean_change"),
                    f"{pct(r['perturbed_a'])} → {pct(r['perturbed_b'])}",
                    _change(r, "perturbed_change"),
                    f"{pp(r['drop_a_pp'])} → {pp(r['drop_b_pp'])}", _change(r, "drop_change"),
                    pvalue(r["p_value"])] for r in part.to_dict("records")],
                  numeric=range(3, 11))
        n_rows = int((part["transform"] != CLEAN_ROW).sum())
        if n_rows:
            doc.figure(slug(f"compare_{run_a}_{run_b}", limit=None, empty="compare"),
                       figure_bytes(lambda fig, part=part: plot_comparison(part, ax=fig.subplots()),
                                    (8.0, 1.4 + 0.42 * n_rows)),
                       f"Score drop per transform, {run_a} vs {run_b}",
                       "Hollow circle: drop in the first run; filled square: drop in the later "
                       "run; text: the change with its 95% bootstrap interval (items "
                       "resampled). Negative changes mean the later run lost less under "
                       "that noise.")
    doc.para("Method: every noisy row is paired with its own run's clean answer; rows of the "
             "two runs are matched on item, spec (transform and severity) and replicate, so "
             "each change is measured on the same items. Intervals resample items (all rows "
             "of an item together). p is an exact sign test over items of the change in the "
             "noisy outcome. Groups the runs share no row for are compared unpaired.", "note")
    for note in comparison.attrs.get("notes", []):
        doc.para(note, "note")
    files = doc.write(out, "compare")
    files["csv"] = write_text_atomic(out / "compare.csv", comparison.to_csv(index=False))
    return files
