"""The chart list: every chart of a run once, under one name, in one registry.

A chart's name is its file name (``charts/<name>.png``), the anchor of its section in
the run report and its key here; the report and ``RunResult`` both iterate this list, so
adding a chart is one registration::

    from robustify.reporting.charts import chart

    @chart("answer_length", title="Answer length", order=60, alt="...", caption="...",
           size=lambda n_models, n_transforms: (6.0, 4.0))
    def draw_answer_length(ax, data, **options):
        ...                        # draw data.results / data.summary on ax
        return ax

Other packages register charts the same way from a module named in the entry-point
group ``robustify.charts``. Use the list with :func:`names`, :func:`get` and
:func:`plot_chart`::

    >>> names()                                                   # doctest: +SKIP
    ['overestimation', 'drop_by_transform', 'heatmap', 'severity_curves', 'flips']
    >>> plot_chart("heatmap", results)                            # doctest: +SKIP

Figures are drawn on a fresh ``matplotlib.figure.Figure`` that pyplot never sees (no
global state, no ``rcParams`` change) by :func:`render` and :func:`figure_bytes`.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from perturbations.errors import ConfigError
from perturbations.plugins import Registry

from robustify.reporting import plots

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["Chart", "ChartData", "CHARTS", "chart", "names", "get", "plot_chart", "render",
           "figure_bytes"]

DrawFn = Callable[..., "Axes"]
"""``draw(ax, data, **options) -> Axes``: ``ax`` None means a new pyplot figure."""


class ChartData:
    """The frames charts draw, each computed from the results on first use (or given).

    Args:
        results: The per-row results frame.
        summary: :func:`robustify.analysis.summarize` of it, if already computed.
        overview: :func:`robustify.analysis.model_overview`, if already computed.
        curve: :func:`robustify.analysis.severity_curve`, if already computed.
        data_label: Name of the data, shown in chart titles.
        n_boot, seed, ci: Bootstrap of the frames computed here.
    """

    FRAMES = ("summary", "overview", "curve")
    """The frames a chart can draw (its :attr:`Chart.frame`)."""

    def __init__(self, results: pd.DataFrame | None = None, *,
                 summary: pd.DataFrame | None = None, overview: pd.DataFrame | None = None,
                 curve: pd.DataFrame | None = None, data_label: str | None = None,
                 n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> None:
        self.results = results
        self.data_label = data_label
        self.n_boot, self.seed, self.ci = n_boot, seed, ci
        self._frames: dict[str, pd.DataFrame | None] = {
            "summary": summary, "overview": overview, "curve": curve}

    @classmethod
    def of(cls, data: "ChartData | pd.DataFrame | Mapping[str, Any]") -> "ChartData":
        """``data`` as ChartData: a results frame, or a mapping of frames and options.

        Raises:
            ConfigError: a frame that is not a results frame.
        """
        if isinstance(data, ChartData):
            return data
        if isinstance(data, pd.DataFrame):
            if not {"spec", "score", "model"} <= set(data.columns):
                raise ConfigError("plot_chart needs the results frame (or ChartData, or "
                                  "{'summary': ..., 'overview': ..., 'curve': ...}); this "
                                  "frame has no spec/score/model columns")
            return cls(data)
        return cls(**dict(data))

    def frame(self, name: str) -> pd.DataFrame:
        """The frame called ``name`` (one of :data:`FRAMES`), computed if not given.

        Raises:
            ConfigError: neither the frame nor results to compute it from.
        """
        if name not in self._frames:
            raise ConfigError(f"unknown chart frame {name!r}: use one of {', '.join(self.FRAMES)}")
        value = self._frames[name]
        if value is None:
            if self.results is None:
                raise ConfigError(f"this chart needs the {name} frame, or the results to "
                                  f"compute it from")
            value = self._frames[name] = self._compute(name)
        return value

    def _compute(self, name: str) -> pd.DataFrame:
        import robustify.analysis as analysis

        if name == "summary":
            return analysis.summarize(self.results, n_boot=self.n_boot, seed=self.seed,
                                      ci=self.ci)
        if name == "overview":
            return analysis.model_overview(self.results, n_boot=self.n_boot, seed=self.seed,
                                           ci=self.ci)
        return analysis.severity_curve(self.results)

    @property
    def summary(self) -> pd.DataFrame:
        """Per model x transform x severity (:func:`robustify.analysis.summarize`)."""
        return self.frame("summary")

    @property
    def overview(self) -> pd.DataFrame:
        """Per model (:func:`robustify.analysis.model_overview`)."""
        return self.frame("overview")

    @property
    def curve(self) -> pd.DataFrame:
        """Score against severity (:func:`robustify.analysis.severity_curve`)."""
        return self.frame("curve")

    def models(self, frame: str = "summary") -> list[Any]:
        """Models of a frame, in the order they appear."""
        data = self.frame(frame)
        return list(pd.unique(data["model"])) if "model" in data.columns else []

    def transforms(self) -> list[Any]:
        """Transforms of the summary, in the order they appear."""
        summary = self.summary
        return list(pd.unique(summary["transform"])) if "transform" in summary.columns else []


@dataclass(frozen=True)
class Chart:
    """One chart: how it is named, placed, sized and drawn."""

    name: str
    """File name, report section anchor and registry key (lower_snake_case)."""
    title: str
    """Heading of its section in the run report."""
    alt: str
    """Alternative text of the image."""
    caption: str
    """What the reader sees under the chart."""
    draw: DrawFn
    """``draw(ax, data, **options) -> Axes`` for one panel (``data`` is a ChartData)."""
    size: Callable[[int, int], tuple[float, float]]
    """Figure size in inches from (models, transforms), each at least 1."""
    frame: str = "summary"
    """The ChartData frame it draws; the chart is left out when that frame is empty."""
    order: int = 100
    """Place in the list and in the report (lower first)."""
    panels: Callable[[ChartData], list[dict[str, Any]]] | None = None
    """Options of each panel of a report figure (default one panel, no options)."""
    columns: int = 1
    """Panels per row of a report figure."""

    def available(self, data: ChartData) -> bool:
        """True when the run has perturbed rows and this chart's frame is not empty."""
        return not data.summary.empty and not data.frame(self.frame).empty

    def plot(self, data: "ChartData | pd.DataFrame | Mapping[str, Any]",
             ax: "Axes | None" = None, **options: Any) -> "Axes":
        """Draw one panel on ``ax`` (None: a new pyplot figure); see :func:`plot_chart`."""
        return self.draw(ax, ChartData.of(data), **options)


def _check(obj: Any) -> None:
    if not isinstance(obj, Chart):
        raise TypeError(f"a chart must be a robustify.reporting.charts.Chart, got "
                        f"{type(obj).__name__}")


CHARTS: Registry[Chart] = Registry("chart", entry_point_group="robustify.charts", check=_check,
                                   hint=" (charts: robustify.reporting.charts.names())")
"""The registry of charts (built-ins below, plugins from the ``robustify.charts`` group)."""


def chart(name: str, *, title: str, alt: str, caption: str,
          size: Callable[[int, int], tuple[float, float]], frame: str = "summary",
          order: int = 100, panels: Callable[[ChartData], list[dict[str, Any]]] | None = None,
          columns: int = 1) -> Callable[[DrawFn], DrawFn]:
    """Decorator registering ``draw(ax, data, **options) -> Axes`` as the chart ``name``.

    Args: the fields of :class:`Chart`.

    Raises:
        ConfigError: a malformed name, a name taken, an unknown frame.
    """
    if frame not in ChartData.FRAMES:
        raise ConfigError(f"chart {name!r}: unknown frame {frame!r} (use one of "
                          f"{', '.join(ChartData.FRAMES)})")

    register = CHARTS.register(name)  # a malformed name fails here, not at first use

    def decorate(draw: DrawFn) -> DrawFn:
        register(Chart(name=name, title=title, alt=alt, caption=caption, draw=draw,
                                    size=size, frame=frame, order=order, panels=panels,
                                    columns=columns))
        return draw

    return decorate


def names() -> list[str]:
    """Every chart name, in report order."""
    return sorted(CHARTS.names(), key=lambda n: (CHARTS.get(n).order, n))


def get(name: str) -> Chart:
    """The chart called ``name``.

    Raises:
        UnknownNameError: with the close matches (``heatmapp`` -> did you mean 'heatmap'?).
    """
    return CHARTS.get(name)


def plot_chart(name: str, data: "ChartData | pd.DataFrame | Mapping[str, Any]",
               ax: "Axes | None" = None, **options: Any) -> "Axes":
    """Draw the chart ``name`` on ``ax`` and return the Axes.

    Args:
        name: A chart name (:func:`names`).
        data: The results frame, a :class:`ChartData`, or a mapping of its arguments
            (``{"summary": frame}``; ``{"results": frame, "seed": 3}``).
        ax: Axes to draw on; None makes a new pyplot figure (shown by a notebook).
        **options: Passed to the plot function (``model=``, ``severity=``, ``title=`` ...).

    Raises:
        UnknownNameError: an unknown chart, with close matches.
    """
    return get(name).plot(data, ax=ax, **options)


def figure_bytes(draw: Callable[["Figure"], Any], size: tuple[float, float], *,
                 formats: Sequence[str] = ("png",), dpi: int = 110) -> dict[str, bytes]:
    """Draw on a fresh Figure pyplot never sees and return its bytes by format.

    PNG is always included (pages embed it); SVG bytes are repeatable run to run (fixed
    hash salt, no date), PNG carries no software stamp.
    """
    import matplotlib
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    try:
        draw(fig)
        out: dict[str, bytes] = {}
        with matplotlib.rc_context({"svg.hashsalt": "robustify", "svg.fonttype": "path"}):
            for fmt in dict.fromkeys(["png", *formats]):
                buf = io.BytesIO()
                metadata = ({"Software": None} if fmt == "png" else
                            {"Date": None} if fmt == "svg" else None)
                fig.savefig(buf, format=fmt, dpi=dpi, metadata=metadata)
                out[fmt] = buf.getvalue()
        return out
    finally:
        fig.clear()


def _grid(fig: "Figure", n: int, cols: int) -> list["Axes"]:
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False).ravel())
    for extra in axes[n:]:
        extra.set_visible(False)
    return list(axes[:n])


def render(name: str, data: ChartData, *, formats: Sequence[str] = ("png",),
           dpi: int = 110) -> dict[str, bytes]:
    """The report figure of chart ``name``: every panel, sized to the data, as bytes by format."""
    spec = get(name)
    panels = spec.panels(data) if spec.panels is not None else [{}]
    size = spec.size(max(len(data.models()), 1), max(len(data.transforms()), 1))

    def draw(fig: "Figure") -> None:
        for ax, options in zip(_grid(fig, len(panels), spec.columns), panels):
            spec.draw(ax, data, **options)

    return figure_bytes(draw, size, formats=formats, dpi=dpi)


# ------------------------------------------------------------------ built-in charts


def _labelled(options: dict[str, Any], data: ChartData) -> dict[str, Any]:
    options.setdefault("data_label", data.data_label)
    return options


@chart("overestimation", title="Per model", order=10, frame="overview",
       size=lambda m, t: (8.0, 1.8 + 0.6 * m),
       alt="Dumbbell chart of clean, mean-under-noise and worst-case score per model",
       caption="Clean score (circle), mean score over all label-preserving noisy variants "
               "(square, with the bootstrap interval of the gap) and the worst case "
               "(triangle) per model; the label is the overestimation in pp, as in the "
               "table below.")
def draw_overestimation(ax: "Axes | None", data: ChartData, **options: Any) -> "Axes":
    """:func:`~robustify.reporting.plots.plot_overestimation` of the overview."""
    return plots.plot_overestimation(data.overview, ax=ax, **_labelled(options, data))


@chart("drop_by_transform", title="Drop by transform", order=20,
       size=lambda m, t: (min(24.0, max(7.0, 1.5 + 0.35 * m * t + 0.5 * t)), 5.0),
       alt="Bar chart of the score drop per transform and model",
       caption="Paired drop (clean minus noisy score, percentage points) per transform at the "
               "medium severity (or the nearest measured one); whiskers: bootstrap interval.")
def draw_drop_by_transform(ax: "Axes | None", data: ChartData, **options: Any) -> "Axes":
    """:func:`~robustify.reporting.plots.plot_drop_by_transform` of the summary."""
    return plots.plot_drop_by_transform(data.summary, ax=ax, **_labelled(options, data))


@chart("heatmap", title="Drop by model and transform", order=30,
       size=lambda m, t: (min(24.0, max(6.0, 3.5 + 0.9 * t)), min(20.0, max(3.0, 1.8 + 0.45 * m))),
       alt="Heat map of the drop per model and transform",
       caption="The same drops as a model x transform grid (orange: the score fell; purple: "
               "it rose); the colour scale is symmetric around 0 and spans at least ±5 pp.")
def draw_heatmap(ax: "Axes | None", data: ChartData, **options: Any) -> "Axes":
    """:func:`~robustify.reporting.plots.plot_heatmap` of the summary."""
    return plots.plot_heatmap(data.summary, ax=ax, **_labelled(options, data))


def _panel_grid(m: int, cols: int) -> tuple[int, int]:
    cols = min(cols, m)
    return cols, math.ceil(m / cols)


@chart("severity_curves", title="Severity", order=40, frame="curve", columns=3,
       size=lambda m, t: (5.2 * _panel_grid(m, 3)[0], 4.0 * _panel_grid(m, 3)[1]),
       panels=lambda data: [{"model": m} for m in data.models("curve")],
       alt="Line charts of score against severity per model",
       caption="Score against severity, one line per transform; severity 0 is the clean "
               "score on the same items.")
def draw_severity_curves(ax: "Axes | None", data: ChartData, **options: Any) -> "Axes":
    """:func:`~robustify.reporting.plots.plot_severity_curves` of one model (``model=``)."""
    return plots.plot_severity_curves(data.curve, ax=ax, **_labelled(options, data))


@chart("flips", title="Answer flips", order=50, columns=2,
       size=lambda m, t: (min(24.0, max(5.5, 1.5 + 0.7 * t)) * min(m, 2), 4.2 * math.ceil(m / 2)),
       panels=lambda data: [{"model": m} for m in data.models()],
       alt="Stacked bar charts of answer flips per transform and model",
       caption="Share of scored variants whose answer went right → wrong (with an answer), "
               "right → unparseable (right on the clean question, no answer extracted from "
               "the noisy one), or wrong → right.")
def draw_flips(ax: "Axes | None", data: ChartData, **options: Any) -> "Axes":
    """:func:`~robustify.reporting.plots.plot_flips` of one model (``model=``)."""
    return plots.plot_flips(data.summary, ax=ax, **_labelled(options, data))
