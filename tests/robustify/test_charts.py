"""Tests of robustify.reporting.charts: one chart list, one name per chart, used everywhere."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.figure import Figure

from perturbations.errors import ConfigError, UnknownNameError

from robustify.reporting import charts, write_report

from .results_factory import make_results

MODELS = ("local:smollm2", "openai:gpt-4o-mini")


@pytest.fixture(scope="module")
def results() -> pd.DataFrame:
    return make_results(MODELS, n_items=10, seed=4)


@pytest.fixture(scope="module")
def written(results, tmp_path_factory):
    out = tmp_path_factory.mktemp("charts")
    return out, write_report(results, out, title="t", n_boot=100)


def test_the_list_is_in_report_order():
    assert charts.names() == ["overestimation", "drop_by_transform", "heatmap",
                              "severity_curves", "flips"]
    for name in charts.names():
        chart = charts.get(name)
        assert chart.name == name and chart.title and chart.alt and chart.caption


def test_every_chart_has_a_file_and_a_section(written):
    out, files = written
    page = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    sections = re.findall(r'<h2 id="([^"]+)">', page)
    for name in charts.names():
        assert files[f"chart_{name}_png"] == out / "charts" / f"{name}.png"
        assert files[f"chart_{name}_svg"].is_file()
        assert name in sections, f"no section for {name}"
        assert f"](charts/{name}.png)" in md
    # the sections follow the list's order, and each figure sits in its own section
    order = [s for s in sections if s in charts.names()]
    assert order == charts.names()
    assert page.count("<figure>") == len(charts.names())


def test_unknown_chart_names_close_matches(results):
    with pytest.raises(UnknownNameError, match="did you mean 'heatmap'"):
        charts.get("heatmapp")
    with pytest.raises(UnknownNameError, match="did you mean 'flips'"):
        charts.plot_chart("flip", results)


@pytest.mark.parametrize("name", charts.names())
def test_plot_chart_draws_on_the_given_axes(results, name):
    ax = Figure().add_subplot()
    assert charts.plot_chart(name, results, ax=ax) is ax
    assert ax.get_title()


def test_plot_chart_takes_frames_and_options(results):
    data = charts.ChartData(results, data_label="sample", n_boot=50)
    ax = charts.plot_chart("flips", data, ax=Figure().add_subplot(), model=MODELS[1])
    assert MODELS[1] in ax.get_title() and "sample" in ax.get_title()
    summary = data.summary
    ax = charts.plot_chart("heatmap", {"summary": summary}, ax=Figure().add_subplot())
    assert ax.images
    with pytest.raises(ConfigError, match="results frame"):
        charts.plot_chart("heatmap", summary)
    with pytest.raises(ConfigError, match="overview"):
        charts.plot_chart("overestimation", {"summary": summary}, ax=Figure().add_subplot())


def test_plot_chart_without_axes_makes_a_pyplot_figure(results):
    before = plt.get_fignums()
    ax = charts.plot_chart("drop_by_transform", results)
    try:
        assert ax.figure.number not in before
    finally:
        plt.close(ax.figure)


def test_a_registered_chart_joins_the_report(results, tmp_path, monkeypatch):
    # register into a copy of the list, so the chart is gone after the test
    monkeypatch.setattr(charts.CHARTS, "_items", dict(charts.CHARTS._items))

    @charts.chart("answer_count", title="Answers per model", order=45, alt="bars",
                  caption="How many rows each model has.", size=lambda m, t: (4.0, 3.0))
    def draw(ax, data, **options):
        ax = ax if ax is not None else Figure().add_subplot()
        counts = data.results["model"].value_counts()
        ax.bar(range(len(counts)), counts.to_numpy())
        ax.set_title("answers")
        return ax

    assert charts.names().index("answer_count") == charts.names().index("severity_curves") + 1
    files = write_report(results, tmp_path, title="t", n_boot=0, formats=("png",))
    assert files["chart_answer_count_png"].is_file()
    page = files["html"].read_text()
    assert '<h2 id="answer_count">Answers per model</h2>' in page
    with pytest.raises(ConfigError, match="already registered"):
        charts.chart("answer_count", title="x", alt="x", caption="x",
                     size=lambda m, t: (1.0, 1.0))(lambda ax, data: ax)
    with pytest.raises(ConfigError, match="lower_snake_case"):
        charts.chart("Bad Name", title="x", alt="x", caption="x", size=lambda m, t: (1.0, 1.0))


def test_charts_leave_no_pyplot_state(results, tmp_path):
    before = plt.get_fignums()
    write_report(results, tmp_path, title="t", n_boot=0, formats=())
    assert plt.get_fignums() == before
