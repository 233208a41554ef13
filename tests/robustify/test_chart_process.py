"""Tests of robustify.reporting.chart_process: charts drawn in a second process, same bytes.

The helper is a real ``python`` process; every test compares its files with the ones this
process draws, byte for byte, and the fallbacks (dead helper, silent helper, a chart
only this process knows, customised matplotlib settings) with the same.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import matplotlib
import pandas as pd
import pytest
from matplotlib.figure import Figure

from robustify.reporting import chart_process, charts, write_report
from robustify.reporting.chart_process import ChartProcess

from .results_factory import make_results

MODELS = ("local:smollm2", "openai:gpt-4o-mini")


@pytest.fixture(scope="module")
def data() -> charts.ChartData:
    data = charts.ChartData(make_results(MODELS, n_items=10, seed=4), data_label="sample",
                            n_boot=100, seed=3)
    for name in data.FRAMES:
        data.frame(name)
    return data


def _here(data: charts.ChartData, formats=("png", "svg")) -> dict[str, dict[str, bytes]]:
    return {name: charts.render(name, data, formats=formats, dpi=80) for name in charts.names()}


def _drawn(helper: ChartProcess, data: charts.ChartData, names=None, formats=("png", "svg")
           ) -> dict[str, dict[str, bytes]]:
    names = charts.names() if names is None else names
    return {name: dict(images) for name, images in
            helper.draw(names, data, formats=formats, dpi=80).items()}


def test_the_helper_draws_the_same_bytes_in_another_process(data):
    with ChartProcess() as helper:
        pid = helper._proc.pid
        drawn = _drawn(helper, data)
        assert helper.alive
        # the helper answered: a second request reuses the same process
        again = _drawn(helper, data, names=["heatmap"], formats=("png",))
        assert helper._proc.pid == pid
    assert not helper.alive and helper._proc is None
    here = _here(data)
    assert list(drawn) == charts.names() and len(drawn) == 5
    for name in here:
        assert set(drawn[name]) == {"png", "svg"}
        assert drawn[name]["png"] == here[name]["png"], name
        assert drawn[name]["svg"] == here[name]["svg"], name
        assert drawn[name]["png"].startswith(b"\x89PNG")
    assert again["heatmap"]["png"] == here["heatmap"]["png"]


def test_the_helper_answers_from_its_own_process(data, monkeypatch):
    # if the helper had not drawn, this process's render would be called
    calls = []
    original = charts.render
    monkeypatch.setattr(charts, "render", lambda *a, **k: calls.append(a[0]) or original(*a, **k))
    with ChartProcess() as helper:
        drawn = _drawn(helper, data, formats=("png",))
    assert calls == [] and len(drawn) == 5


def test_a_dead_helper_falls_back_to_this_process(data):
    helper = ChartProcess()
    helper._proc.kill()
    helper._proc.wait()
    try:
        drawn = _drawn(helper, data, formats=("png",))
    finally:
        helper.close()
    here = _here(data, formats=("png",))
    assert {n: d["png"] for n, d in drawn.items()} == {n: d["png"] for n, d in here.items()}


def test_a_silent_helper_is_killed_after_the_timeout(data, monkeypatch):
    # a helper that reads nothing and never answers
    monkeypatch.setattr(chart_process, "_BOOT", "import time; time.sleep(120)")
    helper = ChartProcess(timeout=1.0)
    try:
        started = time.monotonic()
        drawn = _drawn(helper, data, names=["heatmap"], formats=("png",))
        took = time.monotonic() - started
        assert not helper.alive  # killed
    finally:
        helper.close()
    assert 1.0 <= took < 30
    assert drawn["heatmap"]["png"] == _here(data, formats=("png",))["heatmap"]["png"]


def test_a_helper_that_cannot_start_draws_here(data, monkeypatch):
    monkeypatch.setattr(chart_process.sys, "executable", "/nonexistent/python")
    helper = ChartProcess()
    assert not helper.alive
    drawn = _drawn(helper, data, names=["flips"], formats=("png",))
    helper.close()
    assert drawn["flips"]["png"] == _here(data, formats=("png",))["flips"]["png"]


def test_a_chart_only_this_process_knows_is_drawn_here(data, monkeypatch):
    monkeypatch.setattr(charts.CHARTS, "_items", dict(charts.CHARTS._items))

    @charts.chart("row_count", title="Rows", order=45, alt="bars", caption="Rows per model.",
                  size=lambda m, t: (4.0, 3.0))
    def draw(ax, chart_data, **options):
        ax = ax if ax is not None else Figure().add_subplot()
        ax.bar([0, 1], [3, len(chart_data.summary)])
        return ax

    with ChartProcess() as helper:
        drawn = _drawn(helper, data, formats=("png",))
    here = _here(data, formats=("png",))
    assert set(drawn) == set(here) and "row_count" in drawn
    assert all(drawn[n]["png"] == here[n]["png"] for n in here)


def test_customised_matplotlib_settings_are_drawn_here(data):
    with matplotlib.rc_context({"figure.facecolor": "#ffeecc"}):
        with ChartProcess() as helper:
            drawn = _drawn(helper, data, names=["heatmap"], formats=("png",))
        here = _here(data, formats=("png",))["heatmap"]["png"]
    plain = _here(data, formats=("png",))["heatmap"]["png"]
    assert here != plain  # the setting shows in the image ...
    assert drawn["heatmap"]["png"] == here  # ... and the report keeps it


def test_write_report_with_a_helper_writes_the_same_folder(tmp_path):
    results = make_results(MODELS, n_items=12, seed=9)
    plain = write_report(results, tmp_path / "plain", title="t", n_boot=200)
    with ChartProcess() as helper:
        apart = write_report(results, tmp_path / "apart", title="t", n_boot=200,
                             chart_process=helper)
    assert sorted(plain) == sorted(apart)
    charts_files = [k for k in plain if k.startswith("chart_")]
    assert len(charts_files) == 10  # five charts, PNG and SVG
    for key in plain:
        assert Path(plain[key]).read_bytes() == Path(apart[key]).read_bytes(), key


def test_the_helper_process_is_gone_after_close():
    helper = ChartProcess()
    proc = helper._proc
    helper.close()
    # nobody waits for its shutdown (it is still importing matplotlib) ...
    assert proc.poll() is None
    proc.wait(timeout=30)  # ... but it ends (and is reaped)
    assert proc.returncode == 0 and not helper.alive
    helper.close()  # twice is fine


def test_the_frames_sent_are_small(data):
    # the helper gets the chart frames as JSON columns, never the results
    sent = {}
    helper = ChartProcess()
    original = helper._exchange
    helper._exchange = lambda request, reply: (sent.update(request), original(request, reply))
    try:
        _drawn(helper, data, names=["heatmap"], formats=("png",))
    finally:
        helper.close()
    assert set(sent["frames"]) == {"summary", "overview", "curve"}
    assert "results" not in sent
    for name, encoded in sent["frames"].items():
        assert chart_process.decode_frame(json.loads(json.dumps(encoded))).equals(data.frame(name))
    assert sent["frames"]["summary"]["rows"] < len(data.results) / 5


def test_frames_travel_exactly_or_not_at_all():
    exact = pd.DataFrame({"model": pd.Series(["a", None, "c"], dtype=object),
                          "x": [0.1 + 0.2, float("nan"), -0.0], "n": [1, 2, 3],
                          "ok": [True, False, True], "label": pd.Series(["p", "q", "r"])})
    encoded = chart_process.encode_frame(exact)
    back = chart_process.decode_frame(json.loads(json.dumps(encoded)))
    assert back.equals(exact) and list(back.dtypes) == list(exact.dtypes)
    assert back["x"][0] == 0.1 + 0.2 and str(back["x"][2]) == "-0.0"
    # what cannot travel exactly is drawn here
    assert chart_process.encode_frame(exact.astype({"model": "category"})) is None
    assert chart_process.encode_frame(exact.set_index("n")) is None
    tagged = exact.copy()
    tagged.attrs["note"] = 1
    assert chart_process.encode_frame(tagged) is None
    assert chart_process.encode_frame(pd.DataFrame({"t": [(1, 2), None]})) is None
    assert chart_process.encode_frame(pd.DataFrame({1: [1.0]})) is None


def test_a_frame_that_cannot_travel_is_drawn_here(data, monkeypatch):
    calls = []
    original = charts.render
    monkeypatch.setattr(charts, "render", lambda *a, **k: calls.append(a[0]) or original(*a, **k))
    odd = charts.ChartData(None, data_label="sample", summary=data.summary.assign(
        model=data.summary["model"].astype("category")), overview=data.overview,
        curve=data.curve)
    with ChartProcess() as helper:
        drawn = _drawn(helper, odd, names=["flips"], formats=("png",))
    assert calls == ["flips"] and drawn["flips"]["png"].startswith(b"\x89PNG")


def test_a_large_job_draws_its_charts_in_the_helper(tmp_path, monkeypatch):
    # a job planning at least CHART_PROCESS_MIN_CALLS calls uses the helper; the folder
    # is the same as a job drawing here
    import robustify
    import robustify.pipeline.run as pipeline_run

    used = []
    original = ChartProcess.draw
    monkeypatch.setattr(ChartProcess, "draw",
                        lambda self, *a, **k: used.append(self.alive) or original(self, *a, **k))
    drawn_here: dict[str, list[str]] = {"here": [], "apart": []}
    render = charts.render
    folders = {}
    for name, threshold in (("here", 10**9), ("apart", 0)):
        monkeypatch.setattr(charts, "render", lambda *a, _run=name, **k:
                            drawn_here[_run].append(a[0]) or render(*a, **k))
        monkeypatch.setattr(pipeline_run, "CHART_PROCESS_MIN_CALLS", threshold)
        result = robustify.evaluate("sample", "python:json:dumps", "typos@high,casing",
                                    limit=6, out=tmp_path / name, cache="off",
                                    progress=False)
        assert len(result.results) == 30  # 6 clean, 6 typos@high, 18 casing
        folders[name] = tmp_path / name
    assert used == [True]  # only the second job, and its helper was running ...
    assert len(drawn_here["here"]) == 5 and drawn_here["apart"] == []  # ... and drew
    chart_files = sorted(p.name for p in (folders["here"] / "charts").iterdir())
    assert len(chart_files) == 10
    assert chart_files == sorted(p.name for p in (folders["apart"] / "charts").iterdir())
    for name in chart_files + ["../summary.csv"]:
        here = (folders["here"] / "charts" / name).read_bytes()
        assert here == (folders["apart"] / "charts" / name).read_bytes(), name
