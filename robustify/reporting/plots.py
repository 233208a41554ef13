"""Charts of the paired analysis (matplotlib).

Every function takes the frame produced by :mod:`robustify.analysis`, draws on ``ax``
(or on a new pyplot figure when ``ax`` is None, so a notebook shows it) and returns the
Axes. Nothing here calls ``plt.show()``, changes ``rcParams`` or keeps global state;
:mod:`robustify.reporting.charts` lists them (one name each) and owns the figures it saves.

Shared conventions:

* Colours come from the Okabe-Ito palette (distinguishable with the common colour-vision
  deficiencies); past eight series, hatches (bars) or dash patterns (lines) keep series apart.
* Models and transforms are drawn in the order they appear in the frame, so charts of
  the same run always look the same.
* Scores are shown in percent, drops in percentage points (pp).
* Charts that show one value per model x transform (:func:`plot_drop_by_transform`,
  :func:`plot_heatmap`, :func:`plot_flips`) pick one severity per transform, by default
  ``"medium"``: the measured severity closest to 0.5 (see :func:`select_severity`).
"""

from __future__ import annotations

import logging
import math
import textwrap
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from perturbations.errors import ConfigError
from perturbations.spec import SEVERITY_PRESETS

from robustify.reporting.format import MISSING, is_missing, pp

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "OKABE_ITO",
    "HEATMAP_MIN_SPAN_PP",
    "plot_overestimation",
    "plot_drop_by_transform",
    "plot_heatmap",
    "plot_severity_curves",
    "plot_flips",
    "select_severity",
    "series_style",
    "axes_or_new",
]

log = logging.getLogger(__name__)

OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#000000",  # black
    "#F0E442",  # yellow: last, it is faint on white
)
"""Okabe & Ito (2008) colour-blind-safe palette, ordered for contrast on white."""

HEATMAP_MIN_SPAN_PP = 5.0
"""Smallest half-width of the heatmap's colour scale (pp): drops under it stay pale."""

_HATCHES = ("", "//", "..", "xx", "\\\\", "++")
_DASHES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def series_style(index: int) -> dict[str, Any]:
    """Colour, hatch, line style and marker of the ``index``-th series (stable, cyclic)."""
    cycle = index // len(OKABE_ITO)
    return {"color": OKABE_ITO[index % len(OKABE_ITO)],
            "hatch": _HATCHES[cycle % len(_HATCHES)],
            "linestyle": _DASHES[cycle % len(_DASHES)],
            "marker": _MARKERS[index % len(_MARKERS)]}


def axes_or_new(ax: "Axes | None", figsize: tuple[float, float]) -> "Axes":
    """``ax`` itself, or the Axes of a new pyplot figure of ``figsize`` (for notebooks)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt  # only when the caller asked for a new figure

    _, new_ax = plt.subplots(figsize=figsize, layout="constrained")
    return new_ax


def _title(default: str, title: str | None, data_label: str | None, width: int = 50) -> str:
    if title is not None:
        return title
    text = f"{default} — {data_label}" if data_label else default
    # Wrapped so a long model or data name does not run past a subplot's edge.
    return textwrap.fill(text, width=width, break_long_words=False)


def _wrap(label: Any, width: int = 16) -> str:
    text = MISSING if is_missing(label) else str(label)  # never a "nan" tick label
    return textwrap.fill(text, width=width, break_long_words=True) or text


def _unique(values: pd.Series) -> list[Any]:
    return list(pd.unique(values))


def _need(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(f"{what} needs column(s) {', '.join(missing)}; pass the output of "
                          f"the matching robustify.analysis function")


def _tick_labels(ax: "Axes", positions: Sequence[float], labels: Sequence[Any], *,
                 axis: str = "x") -> None:
    wrapped = [_wrap(v) for v in labels]
    if axis == "x":
        ax.set_xticks(list(positions))
        many = len(labels) > 4 or max((len(str(v)) for v in labels), default=0) > 12
        ax.set_xticklabels(wrapped, rotation=30 if many else 0, ha="right" if many else "center",
                           rotation_mode="anchor" if many else "default")
    else:
        ax.set_yticks(list(positions))
        ax.set_yticklabels(wrapped)


def select_severity(summary: pd.DataFrame, severity: float | str | None = "medium",
                    *, keys: Sequence[str] = ("model", "transform")) -> pd.DataFrame:
    """One row per ``keys`` group of a summary: the one at (or closest to) ``severity``.

    Args:
        summary: Output of :func:`robustify.analysis.summarize`.
        severity: A preset name (``low``/``medium``/``high``), a number in [0, 1], or
            None to use the rows as they are (then each group must have one row).
        keys: The columns that must be unique afterwards.

    Returns:
        The selected rows, in input order. Per group the measured severity nearest to the
        requested one is taken (ties: the lower), so a transform measured only at 0.6
        still shows up under ``"medium"``.

    Raises:
        ConfigError: unknown preset, or several rows per group with ``severity=None``.
    """
    keys = [k for k in keys if k in summary.columns]
    if summary.empty:
        return summary
    if severity is None or "severity" not in summary.columns:
        if keys and summary.duplicated(keys).any():
            raise ConfigError("the summary has several rows per "
                              f"{' x '.join(keys)}; pass severity= or summarize with a "
                              "coarser by=")
        return summary
    if isinstance(severity, str):
        if severity not in SEVERITY_PRESETS:
            raise ConfigError(f"unknown severity {severity!r}: use one of "
                              f"{', '.join(SEVERITY_PRESETS)} or a number in [0, 1]")
        target = SEVERITY_PRESETS[severity]
    else:
        target = float(severity)
    distance = (summary["severity"].astype(float) - target).abs().fillna(np.inf)
    tmp = summary.assign(__d=distance, __s=summary["severity"].astype(float),
                         __i=np.arange(len(summary)))
    picked = (tmp.sort_values(["__d", "__s"], kind="mergesort")
              .drop_duplicates(keys, keep="first").sort_values("__i", kind="mergesort"))
    return picked.drop(columns=["__d", "__s", "__i"])


def _severity_note(selected: pd.DataFrame) -> str:
    if "severity" not in selected.columns or selected.empty:
        return ""
    values = sorted({float(v) for v in selected["severity"].dropna()})
    if len(values) == 1:
        label = next((k for k, v in SEVERITY_PRESETS.items() if math.isclose(v, values[0])), None)
        return f" at severity {label} ({values[0]:g})" if label else f" at severity {values[0]:g}"
    return " at severity " + "/".join(f"{v:g}" for v in values)


# ------------------------------------------------------------------------ charts


def plot_overestimation(overview: pd.DataFrame, ax: "Axes | None" = None, *,
                        title: str | None = None, data_label: str | None = None,
                        show_worst: bool = True) -> "Axes":
    """Dumbbell per model: clean score -> mean score under noise (-> worst case).

    The headline chart: the distance between the dots is how much the clean benchmark
    score overstates the score on noisy input. The error bar on the "under noise" dot is
    the paired bootstrap interval of that gap.

    Args:
        overview: Output of :func:`robustify.analysis.model_overview`.
        ax: Axes to draw on; None makes a new figure.
        title: Full title; default "Clean vs noisy score per model" plus ``data_label``.
        data_label: Name of the data set, appended to the default title.
        show_worst: Also draw the worst-case score (HELM).

    Returns:
        The Axes.
    """
    _need(overview, ["model", "clean_score", "perturbed_score"], "plot_overestimation")
    n = len(overview)
    ax = axes_or_new(ax, (7.5, 1.6 + 0.55 * max(n, 1)))
    y = np.arange(n)
    clean = overview["clean_score"].to_numpy(float) * 100
    noisy = overview["perturbed_score"].to_numpy(float) * 100
    worst = (overview["worst_case_score"].to_numpy(float) * 100
             if show_worst and "worst_case_score" in overview.columns else None)
    ends = noisy if worst is None else np.fmin(noisy, worst)
    ax.hlines(y, np.fmin(clean, ends), np.fmax(clean, ends), color="#999999", linewidth=2,
              zorder=1)
    handles = [ax.scatter(clean, y, s=70, color=OKABE_ITO[0], marker="o", zorder=3,
                          label="clean")]
    xerr = None
    gap = clean - noisy
    if "overestimation_pp" in overview.columns:
        gap = overview["overestimation_pp"].to_numpy(float)
        if {"overestimation_ci_low_pp", "overestimation_ci_high_pp"} <= set(overview.columns):
            low = np.clip(overview["overestimation_ci_high_pp"].to_numpy(float) - gap, 0, None)
            high = np.clip(gap - overview["overestimation_ci_low_pp"].to_numpy(float), 0, None)
            xerr = np.nan_to_num(np.vstack([low, high]))
    handles.append(ax.errorbar(noisy, y, xerr=xerr, fmt="s", markersize=8, color=OKABE_ITO[1],
                               capsize=3, zorder=3, label="mean under noise"))
    if worst is not None:
        handles.append(ax.scatter(worst, y, s=70, color=OKABE_ITO[3], marker="v", zorder=3,
                                  label="worst case"))
    for yi, c, p, g in zip(y, clean, noisy, gap):
        if not (math.isnan(c) or math.isnan(p) or math.isnan(g)):
            # the overestimation, signed and rounded as in the report's table (never -0.0)
            ax.annotate(f"{pp(g)} pp", (max(c, p), yi), xytext=(8, 6),
                        textcoords="offset points", fontsize=9, color="#333333")
    _tick_labels(ax, y, overview["model"].tolist(), axis="y")
    ax.set_ylim(n - 0.5, -0.7)  # first model on top, room above it for the labels
    ax.set_xlim(-2, 108)
    ax.set_xlabel("score (%)")
    ax.set_ylabel("model")
    ax.set_title(_title("Clean vs noisy score per model", title, data_label))
    ax.grid(axis="x", alpha=0.3)
    ax.legend(handles=handles, loc="best", fontsize=8)
    return ax


def plot_drop_by_transform(summary: pd.DataFrame, ax: "Axes | None" = None, *,
                           severity: float | str | None = "medium", title: str | None = None,
                           data_label: str | None = None) -> "Axes":
    """Grouped bars: drop per transform, one bar per model, with the bootstrap interval.

    Args:
        summary: Output of :func:`robustify.analysis.summarize`.
        ax: Axes to draw on; None makes a new figure.
        severity: Which severity per transform (see :func:`select_severity`).
        title: Full title (default "Score drop by transform" + severity + ``data_label``).
        data_label: Name of the data set.

    Returns:
        The Axes: one bar container per model (bars in transform order) and one error
        bar container per model.
    """
    _need(summary, ["model", "transform", "drop_pp"], "plot_drop_by_transform")
    data = select_severity(summary, severity)
    models, transforms = _unique(data["model"]), _unique(data["transform"])
    ax = axes_or_new(ax, (max(6.0, 1.0 + 0.45 * len(models) * len(transforms)
                              + 0.6 * len(transforms)), 4.5))
    x = np.arange(len(transforms))
    width = 0.8 / max(len(models), 1)
    for m, model in enumerate(models):
        rows = data.loc[data["model"] == model].set_index("transform").reindex(transforms)
        drop = rows["drop_pp"].to_numpy(float)
        yerr = None
        if {"ci_low_pp", "ci_high_pp"} <= set(rows.columns):
            low = np.clip(drop - rows["ci_low_pp"].to_numpy(float), 0, None)
            high = np.clip(rows["ci_high_pp"].to_numpy(float) - drop, 0, None)
            yerr = np.nan_to_num(np.vstack([low, high]))
        style = series_style(m)
        ax.bar(x - 0.4 + width * (m + 0.5), np.nan_to_num(drop), width, yerr=yerr, capsize=3,
               color=style["color"], hatch=style["hatch"], edgecolor="white", linewidth=0.5,
               label=str(model), error_kw={"elinewidth": 1, "ecolor": "#333333"})
    ax.axhline(0, color="#333333", linewidth=0.8)
    _tick_labels(ax, x, transforms)
    ax.set_xlabel("transform")
    ax.set_ylabel("drop (percentage points)")
    ax.set_title(_title("Score drop by transform" + _severity_note(data), title, data_label))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="model", fontsize=8, title_fontsize=8)
    return ax


def plot_heatmap(summary: pd.DataFrame, ax: "Axes | None" = None, *, value: str = "drop_pp",
                 severity: float | str | None = "medium", title: str | None = None,
                 data_label: str | None = None, colorbar: bool = True,
                 fmt: str = "{:.1f}", min_span: float = HEATMAP_MIN_SPAN_PP) -> "Axes":
    """Model x transform grid coloured and annotated by the drop (or another column).

    A diverging colour map centred at 0 (purple: the score rose, orange: it fell), with a
    symmetric scale from -v to +v where v is the largest absolute value but at least
    ``min_span`` (for ``_pp`` columns), so small drops are not painted as large ones;
    cells with no value are grey and read "n/a"; ``-0.0`` reads ``0.0``.

    Args:
        summary: Output of :func:`robustify.analysis.summarize`.
        ax: Axes to draw on; None makes a new figure.
        value: Column to show (default ``drop_pp``).
        severity: Which severity per transform (see :func:`select_severity`).
        title: Full title.
        data_label: Name of the data set.
        colorbar: Add a colour bar beside the Axes.
        fmt: Format of the cell annotations.
        min_span: Smallest half-width of the colour scale, in pp.

    Returns:
        The Axes; its texts are the cell annotations, row by row.
    """
    _need(summary, ["model", "transform", value], "plot_heatmap")
    import matplotlib.colors as mcolors
    from matplotlib import colormaps

    data = select_severity(summary, severity)
    models, transforms = _unique(data["model"]), _unique(data["transform"])
    ax = axes_or_new(ax, (max(5.0, 2.5 + 1.0 * len(transforms)),
                          max(2.5, 1.5 + 0.5 * len(models))))
    grid = (data.pivot_table(index="model", columns="transform", values=value, aggfunc="first",
                             dropna=False)
            .reindex(index=models, columns=transforms).to_numpy(float))
    finite = grid[np.isfinite(grid)]
    # symmetric around 0, never narrower than min_span: a 0.5 pp wobble stays pale
    vmax = max(float(np.max(np.abs(finite))) if finite.size else 0.0,
               min_span if value.endswith("_pp") else 0.0)
    vmax = vmax if vmax > 0 else 1.0
    cmap = colormaps["PuOr_r"].with_extremes(bad="#dddddd")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto",
                      norm=mcolors.Normalize(vmin=-vmax, vmax=vmax))
    for i in range(len(models)):
        for j in range(len(transforms)):
            v = grid[i, j]
            text = "n/a" if math.isnan(v) else fmt.format(v + 0.0)
            if text.startswith("-") and not any(ch in "123456789" for ch in text):
                text = text[1:]  # "-0.0" is "0.0", as in the tables
            dark = not math.isnan(v) and abs(v) > 0.6 * vmax
            ax.text(j, i, text, ha="center", va="center", fontsize=9,
                    color="white" if dark else "black")
    _tick_labels(ax, range(len(transforms)), transforms)
    _tick_labels(ax, range(len(models)), models, axis="y")
    ax.set_xlabel("transform")
    ax.set_ylabel("model")
    unit = "drop (percentage points)" if value.endswith("_pp") else value
    ax.set_title(_title(f"{'Drop' if value == 'drop_pp' else value} by model and transform"
                        + _severity_note(data), title, data_label))
    if colorbar:
        ax.figure.colorbar(image, ax=ax, label=unit, shrink=0.9)
    return ax


def plot_severity_curves(curve: pd.DataFrame, model: str | None = None,
                         ax: "Axes | None" = None, *, title: str | None = None,
                         data_label: str | None = None) -> "Axes":
    """Score against severity for one model, one line per transform (0 = clean score).

    Args:
        curve: Output of :func:`robustify.analysis.severity_curve`.
        model: Which model; default the first in the frame.
        ax: Axes to draw on; None makes a new figure.
        title: Full title (default "Score vs severity: <model>" + ``data_label``).
        data_label: Name of the data set.

    Returns:
        The Axes, one line per transform.
    """
    _need(curve, ["model", "transform", "severity", "score"], "plot_severity_curves")
    models = _unique(curve["model"])
    if model is None:
        model = models[0] if models else ""
        if len(models) > 1:
            log.info("plot_severity_curves: %d models, drawing %s (pass model=)",
                     len(models), model)
    elif model not in models:
        raise ConfigError(f"no model {model!r} in the curve (models: "
                          f"{', '.join(map(str, models))})")
    data = curve.loc[curve["model"] == model]
    ax = axes_or_new(ax, (6.5, 4.5))
    for t, transform in enumerate(_unique(data["transform"])):
        rows = data.loc[data["transform"] == transform].sort_values("severity", kind="mergesort")
        style = series_style(t)
        ax.plot(rows["severity"].to_numpy(float), rows["score"].to_numpy(float) * 100,
                color=style["color"], linestyle=style["linestyle"], marker=style["marker"],
                label=str(transform))
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-3, 103)
    ax.set_xlabel("severity (0 = clean, 1 = strongest)")
    ax.set_ylabel("score (%)")
    ax.set_title(_title(f"Score vs severity: {model}", title, data_label))
    ax.grid(alpha=0.3)
    if len(data):
        ax.legend(title="transform", fontsize=8, title_fontsize=8)
    return ax


def plot_flips(summary: pd.DataFrame, ax: "Axes | None" = None, *, model: str | None = None,
               severity: float | str | None = "medium", title: str | None = None,
               data_label: str | None = None) -> "Axes":
    """Stacked bars per transform: how answers changed, as a share of scored variants.

    Three disjoint segments of the flips: right -> wrong with an answer given, right ->
    unparseable (right on the clean question, no answer could be extracted from the noisy
    one), wrong -> right. Unparseable answers that were already wrong are not flips and
    are not drawn.

    Args:
        summary: Output of :func:`robustify.analysis.summarize`.
        ax: Axes to draw on; None makes a new figure.
        model: Which model; default the first in the frame.
        severity: Which severity per transform (see :func:`select_severity`).
        title: Full title (default "Answer flips: <model>" + severity + ``data_label``).
        data_label: Name of the data set.

    Returns:
        The Axes: three bar containers (one per segment), each with one bar per transform.
    """
    _need(summary, ["model", "transform", "flips_right_to_wrong", "flips_wrong_to_right",
                    "n_scored"], "plot_flips")
    models = _unique(summary["model"])
    if model is None:
        model = models[0] if models else ""
    elif model not in models:
        raise ConfigError(f"no model {model!r} in the summary (models: "
                          f"{', '.join(map(str, models))})")
    data = select_severity(summary.loc[summary["model"] == model], severity)
    transforms = _unique(data["transform"])
    ax = axes_or_new(ax, (max(5.5, 1.5 + 0.8 * len(transforms)), 4.5))
    rows = data.set_index("transform").reindex(transforms)
    scored = rows["n_scored"].to_numpy(float)
    share = np.divide(100.0, scored, out=np.zeros_like(scored), where=scored > 0)
    r2u = (rows["flips_right_to_unparseable"].to_numpy(float)
           if "flips_right_to_unparseable" in rows.columns else np.zeros(len(rows)))
    r2u = np.nan_to_num(r2u)
    segments = [
        ("right → wrong", (rows["flips_right_to_wrong"].to_numpy(float) - r2u) * share,
         OKABE_ITO[1], ""),
        ("right → unparseable", r2u * share, "#999999", "//"),
        ("wrong → right", rows["flips_wrong_to_right"].to_numpy(float) * share,
         OKABE_ITO[2], ""),
    ]
    x = np.arange(len(transforms))
    bottom = np.zeros(len(transforms))
    for label, values, color, hatch in segments:
        values = np.nan_to_num(values)
        ax.bar(x, values, 0.6, bottom=bottom, color=color, hatch=hatch, edgecolor="white",
               linewidth=0.5, label=label)
        bottom = bottom + values
    # Stacked segments put sticky edges at their bases, which stops autoscaling from
    # adding head room above the tallest stack; set it explicitly (and room for the legend).
    top = float(bottom.max()) if len(bottom) else 0.0
    ax.set_ylim(0, top * 1.25 if top > 0 else 1.0)
    _tick_labels(ax, x, transforms)
    ax.set_xlabel("transform")
    ax.set_ylabel("share of scored variants (%)")
    ax.set_title(_title(f"Answer flips: {model}" + _severity_note(data), title, data_label))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return ax
