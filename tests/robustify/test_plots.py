"""Tests of robustify.reporting.plots: what is drawn, labelled and left behind."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.figure import Figure

from perturbations.errors import ConfigError
import robustify.analysis as A
from robustify.reporting import plots as P
from robustify.reporting.format import pp

from .results_factory import make_results

MODELS = ("local:smollm2", "openai:gpt-4o-mini", "python:pkg.mod:answer")
TRANSFORMS = ("typos", "slang", "truncation")


@pytest.fixture(scope="module")
def results() -> pd.DataFrame:
    return make_results(MODELS, transforms=TRANSFORMS, n_items=15, seed=2)


@pytest.fixture(scope="module")
def summary(results) -> pd.DataFrame:
    return A.summarize(results, n_boot=200)


@pytest.fixture
def ax():
    fig = Figure(figsize=(6, 4))
    return fig.add_subplot()


@pytest.fixture(autouse=True)
def _no_pyplot_leak():
    before = plt.get_fignums()
    rc = dict(matplotlib.rcParams)
    yield
    assert plt.get_fignums() == before, "a figure was left registered with pyplot"
    changed = {k for k in rc if k in matplotlib.rcParams and
               str(rc[k]) != str(matplotlib.rcParams[k])}
    assert not changed, f"rcParams changed: {sorted(changed)}"


def _bars(ax) -> list[BarContainer]:
    return [c for c in ax.containers if isinstance(c, BarContainer)]


def _errorbars(ax) -> list[ErrorbarContainer]:
    return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]


def _legend(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def _ticks(labels) -> list[str]:
    return [t.get_text().replace("\n", "") for t in labels]


def test_overestimation_dumbbell(results, ax):
    overview = A.model_overview(results, n_boot=200)
    out = P.plot_overestimation(overview, ax=ax, data_label="sample")
    assert out is ax
    assert _ticks(ax.get_yticklabels()) == list(MODELS)
    assert ax.get_xlabel() == "score (%)"
    assert ax.get_title() == "Clean vs noisy score per model — sample"
    assert _legend(ax) == ["clean", "mean under noise", "worst case"]
    # one clean dot, one noisy square (with a CI whisker) and one worst-case dot per model
    clean = ax.collections[1].get_offsets()
    assert np.allclose(np.asarray(clean)[:, 0], overview["clean_score"] * 100)
    errorbars = _errorbars(ax)
    assert len(errorbars) == 1 and len(errorbars[0].lines[0].get_xdata()) == len(MODELS)
    assert np.allclose(errorbars[0].lines[0].get_xdata(), overview["perturbed_score"] * 100)
    texts = [t.get_text() for t in ax.texts]
    # the label is the overestimation with the table's sign and rounding
    assert texts == [f"{pp(v)} pp" for v in overview["overestimation_pp"]]
    assert to_hex(ax.collections[1].get_facecolor()[0]) == P.OKABE_ITO[0].lower()


def test_overestimation_custom_title_and_no_worst(results, ax):
    overview = A.model_overview(results, n_boot=0).drop(columns=["worst_case_score"])
    P.plot_overestimation(overview, ax=ax, title="Headline")
    assert ax.get_title() == "Headline"
    assert _legend(ax) == ["clean", "mean under noise"]


def test_drop_by_transform_bars_and_error_bars(summary, ax):
    out = P.plot_drop_by_transform(summary, ax=ax, data_label="sample")
    assert out is ax
    bars = _bars(ax)
    assert len(bars) == len(MODELS)
    assert all(len(b.patches) == len(TRANSFORMS) for b in bars)
    assert len(_errorbars(ax)) == len(MODELS)
    assert _ticks(ax.get_xticklabels()) == list(TRANSFORMS)
    assert ax.get_ylabel() == "drop (percentage points)"
    assert ax.get_title() == "Score drop by transform at severity medium (0.5) —\nsample"
    assert _legend(ax) == list(MODELS)
    medium = summary[summary["severity"] == 0.5]
    first = medium[medium["model"] == MODELS[0]]["drop_pp"].to_numpy()
    assert np.allclose([p.get_height() for p in bars[0].patches], first)


def test_drop_by_transform_severity_choice(summary, ax):
    P.plot_drop_by_transform(summary, ax=ax, severity="high")
    high = summary[(summary["severity"] == 0.8) & (summary["model"] == MODELS[1])]
    assert np.allclose([p.get_height() for p in _bars(ax)[1].patches], high["drop_pp"])
    assert "severity high (0.8)" in ax.get_title()
    with pytest.raises(ConfigError, match="severity"):
        P.plot_drop_by_transform(summary, severity=None)
    with pytest.raises(ConfigError, match="unknown severity"):
        P.plot_drop_by_transform(summary, severity="extreme")


def test_select_severity_nearest():
    s = pd.DataFrame({"model": ["m"] * 3, "transform": ["t"] * 3, "severity": [0.3, 0.6, 0.9],
                      "drop_pp": [1.0, 2.0, 3.0]})
    assert P.select_severity(s, "medium")["severity"].tolist() == [0.6]
    assert P.select_severity(s, 0.75)["severity"].tolist() == [0.6]   # tie -> lower
    assert P.select_severity(s, 0.0)["severity"].tolist() == [0.3]


def test_heatmap_annotations(summary, ax):
    out = P.plot_heatmap(summary, ax=ax)
    assert out is ax
    medium = P.select_severity(summary, "medium")
    expected = [f"{v:.1f}" for m in MODELS for v in
                medium[medium["model"] == m].set_index("transform").reindex(
                    list(TRANSFORMS))["drop_pp"]]
    assert [t.get_text() for t in ax.texts] == expected
    assert _ticks(ax.get_xticklabels()) == list(TRANSFORMS)
    assert _ticks(ax.get_yticklabels()) == list(MODELS)
    assert ax.get_xlabel() == "transform" and ax.get_ylabel() == "model"
    assert len(ax.figure.axes) == 2  # the colour bar
    assert ax.figure.axes[1].get_ylabel() == "drop (percentage points)"


def test_heatmap_missing_cell_reads_na(ax):
    s = pd.DataFrame({"model": ["a", "a", "b"], "transform": ["t1", "t2", "t1"],
                      "severity": [0.5] * 3, "drop_pp": [10.0, -5.0, 0.0]})
    P.plot_heatmap(s, ax=ax, colorbar=False)
    assert [t.get_text() for t in ax.texts] == ["10.0", "-5.0", "0.0", "n/a"]
    assert ax.texts[0].get_color() == "white" and ax.texts[2].get_color() == "black"


def test_severity_curves_lines(results, ax):
    curve = A.severity_curve(results)
    out = P.plot_severity_curves(curve, model=MODELS[1], ax=ax)
    assert out is ax
    assert len(ax.lines) == len(TRANSFORMS)
    assert [line.get_label() for line in ax.lines] == list(TRANSFORMS)
    first = curve[(curve["model"] == MODELS[1]) & (curve["transform"] == "typos")]
    assert list(ax.lines[0].get_xdata()) == [0.0, 0.2, 0.5, 0.8]
    assert np.allclose(ax.lines[0].get_ydata(), first["score"] * 100)
    assert ax.get_ylabel() == "score (%)"
    assert ax.get_xlabel() == "severity (0 = clean, 1 = strongest)"
    assert ax.get_title() == f"Score vs severity: {MODELS[1]}"
    assert _legend(ax) == list(TRANSFORMS)
    with pytest.raises(ConfigError, match="no model"):
        P.plot_severity_curves(curve, model="nope", ax=ax)


def test_severity_curves_default_first_model(results, ax):
    P.plot_severity_curves(A.severity_curve(results), ax=ax)
    assert ax.get_title() == f"Score vs severity: {MODELS[0]}"


def test_flips_stacked_bars(summary, ax):
    out = P.plot_flips(summary, ax=ax, model=MODELS[2])
    assert out is ax
    bars = _bars(ax)
    assert len(bars) == 3 and all(len(b.patches) == len(TRANSFORMS) for b in bars)
    assert _legend(ax) == ["right → wrong", "right → unparseable", "wrong → right"]
    assert ax.get_ylabel() == "share of scored variants (%)"
    row = summary[(summary["model"] == MODELS[2]) & (summary["severity"] == 0.5)].iloc[0]
    r2u = row["flips_right_to_unparseable"] / row["n_scored"]
    r2w = row["flips_right_to_wrong"] / row["n_scored"] - r2u
    assert bars[0].patches[0].get_height() == pytest.approx(r2w * 100)
    # only right -> unparseable flips, not every unparseable answer
    assert bars[1].patches[0].get_height() == pytest.approx(r2u * 100)
    # segments stack: the third starts where the first two end
    assert bars[2].patches[0].get_y() == pytest.approx((r2w + r2u) * 100)


def test_many_series_stay_distinct():
    styles = [P.series_style(i) for i in range(12)]
    assert len({(s["color"], s["hatch"], s["linestyle"]) for s in styles}) == 12


def test_without_ax_uses_a_new_pyplot_figure(summary):
    before = len(plt.get_fignums())
    ax = P.plot_heatmap(summary)
    try:
        assert len(plt.get_fignums()) == before + 1
    finally:
        plt.close(ax.figure)


def test_wrong_frame_names_missing_columns(ax):
    with pytest.raises(ConfigError, match="drop_pp"):
        P.plot_drop_by_transform(pd.DataFrame({"model": [], "transform": []}), ax=ax)
