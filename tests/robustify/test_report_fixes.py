"""Chart and report fixes of issue 19 (checked on the drawn artists, not pixels), the browse
section, run facts, choice_shuffle examples, and Markdown escaping of data (issue 18)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import robustify
import robustify.analysis as A
from robustify import reporting as R
from robustify.reporting import browse
from robustify.reporting import plots as P
from robustify.reporting.format import pp

from .html_check import assert_inert
from .results_factory import make_results

MODELS = ("local:smollm2", "openai:gpt-4o-mini")


def _ax():
    return Figure(figsize=(6, 4)).subplots()


def test_dumbbell_label_has_the_sign_and_rounding_of_the_table() -> None:
    overview = pd.DataFrame({
        "model": ["a", "b", "c"], "clean_score": [0.8, 0.5, 0.4],
        "perturbed_score": [0.7496, 0.5004, 0.43], "overestimation_pp": [5.04, -0.04, -3.0],
        "overestimation_ci_low_pp": [1.0, -2.0, -6.0], "overestimation_ci_high_pp": [9.0, 2.0, 0.5]})
    ax = P.plot_overestimation(overview, ax=_ax(), show_worst=False)
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["+5.0 pp", "+0.0 pp", "-3.0 pp"]
    assert texts == [f"{pp(v)} pp" for v in overview["overestimation_pp"]]  # the table's cells


def _summary(drops: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"model": ["m"] * len(drops),
                         "transform": [f"t{i}" for i in range(len(drops))],
                         "severity": [0.5] * len(drops), "drop_pp": drops})


def test_heatmap_scale_is_symmetric_with_a_minimum_span() -> None:
    ax = P.plot_heatmap(_summary([0.5, -0.3, -0.04]), ax=_ax(), colorbar=False)
    norm = ax.images[0].norm
    assert (norm.vmin, norm.vmax) == (-P.HEATMAP_MIN_SPAN_PP, P.HEATMAP_MIN_SPAN_PP)
    assert [t.get_text() for t in ax.texts] == ["0.5", "-0.3", "0.0"]  # no "-0.0"
    ax = P.plot_heatmap(_summary([12.0, -3.0]), ax=_ax(), colorbar=False)
    assert (ax.images[0].norm.vmin, ax.images[0].norm.vmax) == (-12.0, 12.0)
    ax = P.plot_heatmap(_summary([-20.0, 3.0]), ax=_ax(), colorbar=False)
    assert (ax.images[0].norm.vmin, ax.images[0].norm.vmax) == (-20.0, 20.0)


def test_no_nan_tick_labels() -> None:
    summary = _summary([3.0, 4.0])
    summary.loc[1, "transform"] = np.nan
    ax = P.plot_heatmap(summary, ax=_ax(), colorbar=False)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert "nan" not in labels and "–" in labels


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("fixes")
    df = make_results(MODELS, n_items=12, seed=4, clean_accuracy={MODELS[0]: 0.9, MODELS[1]: 0.8})
    manifest = {"seed": 0, "data": [{"path": "data/qa.jsonl", "format": "jsonl", "name": None}],
                "n_items": 12, "specs": ["typos@0.5", "slang@0.5"], "scorer": None,
                "robustify_version": "9.9.9", "python": "3.11.2", "platform": "Linux-x",
                "models": [{"label": m, "identity": {"path": "/very/long/path.gguf"}}
                           for m in MODELS]}
    files = R.write_report(df, out, title="Fixes", manifest=manifest, n_boot=200)
    return files, df


def test_every_models_headline_is_in_the_box(report) -> None:
    files, _ = report
    page = files["html"].read_text()
    box = re.search(r'<div class="headline">(.*?)</div>', page, flags=re.S).group(1)
    assert [m for m in MODELS if f"{m}&#x27;s clean score of" in box] == list(MODELS)
    md = files["md"].read_text()
    quote = md[md.index("\n> ") + 1:md.index("\n## ")].splitlines()
    assert all(line.startswith(">") for line in quote)
    assert sum("'s clean score of" in line for line in quote) == 2


def test_run_facts_are_a_short_table(report) -> None:
    files, _ = report
    md = files["md"].read_text()
    facts = md[md.index("## Run facts"):].splitlines()
    keys = [line.split(" | ")[0].removeprefix("| ") for line in facts if line.startswith("| ")]
    assert keys == ["fact", "models", "data", "items", "rows", "transforms", "seed", "scorer",
                    "bootstrap", "version", "full record"]
    text = "\n".join(facts)
    assert "| data | data/qa.jsonl (jsonl) |" in text and "robustify 9.9.9" in text
    assert "identity" not in text and "platform" not in text and "/very/long" not in text


def test_tables_wrap_and_scroll_within_the_page(report) -> None:
    page = report[0]["html"].read_text()
    assert ".table-wrap { overflow-x: auto; max-width: 100%; }" in page
    assert "overflow-wrap: anywhere" in page and "td { max-width: 28rem; }" in page


def test_flips_chart_caption_names_right_to_unparseable(report) -> None:
    page = report[0]["html"].read_text()
    assert "right → unparseable (right on the clean question" in page


def test_browse_section_lists_every_row_folded(report) -> None:
    files, df = report
    page = files["html"].read_text()
    parsed = assert_inert(page)
    section = page[page.index('<h2 id="browse">'):page.index('<h2 id="run">')]
    summaries = re.findall(r"<summary>(.*?)</summary>", section)
    clean = df[df["spec"] == "clean"]
    right = int((clean["score"] >= 0.5).sum())
    assert summaries[0] == f"clean items: {len(clean)} rows, {right} right, 0 not scored"
    paired = A.pair_with_clean(df)
    for transform in pd.unique(paired["transform"]):
        rows = paired[paired["transform"] == transform]
        line = next(s for s in summaries if s.startswith(f"{transform}: "))
        assert line.startswith(f"{transform}: {len(rows)} variants of {rows['item_id'].nunique()} items (")
        outcomes = [browse.outcome(r) for r in rows.to_dict("records")]
        for name in browse.OUTCOMES:
            if name in outcomes:
                assert f"{outcomes.count(name)} {name}" in line
    # every row is there: one table row per clean row and per variant
    body_rows = section.count("<tr>") - section.count("<thead>")
    assert body_rows == len(df)
    assert "<details>" in section and sum(t == "details" for t, _ in parsed.tags) > 3
    md = files["md"].read_text()
    assert "## Browse every item" in md
    assert "clean items:" not in md and "variants of 12 items" not in md  # page only


def test_browse_is_capped_with_a_note(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(browse, "BROWSE_MAX_ROWS", 20)
    df = make_results(MODELS[:1], n_items=12, seed=4)
    files = R.write_report(df, tmp_path, title="Cap", manifest={"seed": 0}, n_boot=0)
    page = files["html"].read_text()
    section = page[page.index('<h2 id="browse">'):page.index('<h2 id="run">')]
    assert f"{len(df)} rows: each group shows its share of the first 20; the rest are in " \
           "results.jsonl." in section
    shown = section.count("<tr>") - section.count("<thead>")
    assert 20 <= shown < 20 + 2 * 12  # each group rounds its share up


def test_choice_shuffle_example_shows_both_option_orders(tmp_path: Path) -> None:
    result = robustify.evaluate(data="sample", models=["python:tests.robustify.e2e_models:golden"],
                                transforms="choice_shuffle", severity=["high"], limit=40,
                                cache="off", out=tmp_path / "run", progress=False)
    md = (tmp_path / "run" / "report.md").read_text()
    section = md[md.index("### choice\\_shuffle"):]
    example = section.split("\n\n**")[1]  # the first example (after the heading)
    gold = re.search(r"- \*\*gold answer:\*\* ([A-Z]) in the original order, ([A-Z]) in the "
                     r"variant's", example)
    assert gold and gold.group(1) != gold.group(2)
    original = re.search(r"- \*\*original options:\*\* (.*)", example).group(1)
    variant = re.search(r"- \*\*variant options:\*\* (.*)", example).group(1)
    assert original.startswith("A) ") and variant.startswith("A) ") and original != variant
    # the same options, reordered: the gold option's text sits under both letters
    opts = lambda text: dict(re.findall(r"([A-Z])\) (.*?)(?=  [A-Z]\) |$)", text))
    assert opts(original)[gold.group(1)] == opts(variant)[gold.group(2)]
    assert sorted(opts(original).values()) == sorted(opts(variant).values())
    assert result.manifest["chance"]["multiple_choice"] == 0.25


HOSTILE_MD = ("See ![x](http://evil/x.png) and [a](javascript:alert(1)) or "
              "<https://evil.example/> and www.evil.example `code` a|b")


def test_markdown_report_escapes_everything_from_data(tmp_path: Path) -> None:
    df = make_results(MODELS, n_items=12, seed=2)
    df.loc[df["model"] == MODELS[1], "model"] = "evil|model`x`[a](javascript:alert(1))"
    df.loc[df["item_id"] == "item-001", "input"] = HOSTILE_MD
    df.loc[df["item_id"] == "item-001", ["response", "parsed"]] = [HOSTILE_MD, "B"]
    df.loc[df["meta.domain"] == "science", "meta.domain"] = "sci|ence ![i](http://evil/i.png)"
    df.loc[(df["item_id"] == "item-001") & (df["spec"] == "clean"), "score"] = 1.0
    df.loc[(df["item_id"] == "item-001") & (df["spec"] != "clean"), "score"] = 0.0
    files = R.write_report(df, tmp_path, title="Escapes", manifest={"seed": 0}, n_boot=0)
    md = files["md"].read_text()
    for live in ("![x](", "[a](javascript", "javascript:", "http://evil", "https://evil",
                 "www.evil", "<https", "![i](", "`code`"):
        assert live not in md, live
    assert "javascript\\:alert(1)" in md and "http\\://evil/x.png" in md and "www\\.evil" in md
    # the hostile text did reach the report (examples, slices), escaped
    assert md.count("!\\[x\\](http\\://evil/x.png)") >= 1
    # every table row has as many unescaped pipes as its header: no cell split by data
    tables = re.findall(r"(?:^\|.*\|$\n?)+", md, flags=re.M)
    assert len(tables) >= 3
    for table in tables:
        counts = {len(re.findall(r"(?<!\\)\|", line)) for line in table.strip().splitlines()}
        assert len(counts) == 1, table[:300]
    # only the report's own chart images are images
    assert re.findall(r"(?<!\\)!\[", md) == ["!["] * len(re.findall(r"\]\(charts/", md))


def test_a_rebuilt_report_is_the_runs_own(tmp_path: Path) -> None:
    """rebuild_report elsewhere reads the options from the run folder, and the realism
    columns keep the run's order although manifest.json sorts its keys."""
    robustify.evaluate(data="sample", models=["python:tests.robustify.e2e_models:golden"],
                       transforms=["typos", "choice_shuffle"], severity=["high"], limit=20,
                       cache="off", out=tmp_path / "run", progress=False)
    R.rebuild_report(tmp_path / "run", out_dir=tmp_path / "again")
    md = (tmp_path / "run" / "report.md").read_text()
    assert (tmp_path / "again" / "report.md").read_text() == md
    assert "| statistic | clean items | typos@0.8 | choice\\_shuffle@0.8 |" in md
    assert "- **original options:** A) " in md


def test_compare_shows_no_nan_label_for_groups_in_one_run(tmp_path: Path) -> None:
    from robustify.probes.compare import compare_runs, plot_comparison, write_comparison_report

    a = make_results(MODELS[:1], transforms=("typos", "slang"), n_items=12, seed=1)
    b = make_results(MODELS[:1], transforms=("typos",), n_items=12, seed=2)
    b = b[(b["spec"] == "clean") | (b["severity"] != 0.5)]  # typos@0.5 and slang only in A
    comparison = compare_runs([a, b], labels=["A", "B"], n_boot=100)
    assert comparison["drop_b_pp"].isna().any()  # groups measured in one run only
    ax = plot_comparison(comparison, ax=_ax())
    shown = [t.get_text() for t in ax.texts] + [t.get_text() for t in ax.get_yticklabels()]
    assert shown and not [s for s in shown if "nan" in s.lower()]
    files = write_comparison_report(comparison, tmp_path)
    assert "nan" not in files["md"].read_text().lower()
    assert "slang@0.5" in files["md"].read_text()  # the one-run group is listed, with dashes
