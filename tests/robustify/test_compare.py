"""Run-to-run comparison: known changes, pairing, model matching, run folders, report, CLI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest

from perturbations.errors import ConfigError
from robustify.probes import compare
from robustify.probes.compare import ALL_PRESERVING, CLEAN_ROW, compare_runs, plot_comparison
from robustify.reporting import write_results_jsonl
from tests.robustify.results_factory import HOSTILE_TEXTS, frame, make_results, row


def run(n_wrong: dict[str, int], *, model: str = "m", n_items: int = 10,
        clean_wrong: int = 0) -> pd.DataFrame:
    """Clean right except the last ``clean_wrong`` items; under each spec the first k wrong."""
    rows = []
    for i in range(n_items):
        item = f"q{i:02d}"
        rows.append(row(model, item, "clean", 0.0 if i >= n_items - clean_wrong else 1.0))
        for spec, k in n_wrong.items():
            rows.append(row(model, item, spec, 0.0 if i < k else 1.0))
    return frame(rows)


def test_known_change_in_drop() -> None:
    a = run({"typos@0.5": 4, "slang@0.5": 2})
    b = run({"typos@0.5": 1, "slang@0.5": 2})
    table = compare_runs([a, b], ["v1", "v2"], n_boot=1000)
    rows = table.set_index("transform")
    typos = rows.loc["typos"]
    assert typos["paired"] and typos["n_items"] == 10 and typos["same_text"] == 1.0
    assert typos["drop_a_pp"] == pytest.approx(40.0) and typos["drop_b_pp"] == pytest.approx(10.0)
    assert typos["drop_change_pp"] == pytest.approx(-30.0)
    assert typos["perturbed_change_pp"] == pytest.approx(30.0)
    assert typos["clean_change_pp"] == 0.0
    # 3 of 10 items improve: P(a resample has none) = 0.7**10 = 2.8%, so the upper bound sits at 0
    assert typos["drop_change_ci_high_pp"] <= 0 and -60 <= typos["drop_change_ci_low_pp"] < -10
    assert typos["p_value"] == pytest.approx(0.25)   # 3 items better, 0 worse: 2 * 1/8
    slang = rows.loc["slang"]
    assert slang["drop_change_pp"] == 0.0 and slang["p_value"] == 1.0
    assert slang["drop_change_ci_low_pp"] == 0.0 == slang["drop_change_ci_high_pp"]
    pooled = rows.loc[ALL_PRESERVING]
    assert pooled["drop_a_pp"] == pytest.approx(30.0) and pooled["drop_b_pp"] == pytest.approx(15.0)
    assert list(table["transform"]) == [CLEAN_ROW, ALL_PRESERVING, "typos", "slang"]


def test_clean_change_is_measured_item_by_item() -> None:
    a = run({"typos@0.5": 0}, clean_wrong=10, n_items=20)
    b = run({"typos@0.5": 0}, clean_wrong=4, n_items=20)
    clean = compare_runs([a, b], n_boot=500).set_index("transform").loc[CLEAN_ROW]
    assert clean["clean_a"] == 0.5 and clean["clean_b"] == 0.8 and clean["n_items"] == 20
    assert clean["clean_change_pp"] == pytest.approx(30.0)
    assert clean["clean_change_ci_low_pp"] > 0
    assert pd.isna(clean["drop_change_pp"])


def test_single_models_with_different_labels_are_matched() -> None:
    a = run({"typos@0.5": 4}, model="openai:model-v1")
    b = run({"typos@0.5": 2}, model="openai:model-v2")
    table = compare_runs([a, b], n_boot=200)
    assert set(table["model_a"]) == {"openai:model-v1"}
    assert set(table["model_b"]) == {"openai:model-v2"}
    two = pd.concat([run({"typos@0.5": 1}, model="x"), run({"typos@0.5": 1}, model="y")])
    other = pd.concat([run({"typos@0.5": 1}, model="z"), run({"typos@0.5": 1}, model="w")])
    with pytest.raises(ConfigError, match="share no model"):
        compare_runs([two, other])
    table = compare_runs([two, other], models={"x": "w"}, n_boot=100)
    assert set(zip(table["model_a"], table["model_b"])) == {("x", "w")}
    with pytest.raises(ConfigError, match="--models"):
        compare_runs([two, other], models={"x": "nope"})


def test_groups_without_shared_rows_are_compared_unpaired() -> None:
    a = run({"typos@0.5": 4})
    b = run({"typos@0.8": 6})
    table = compare_runs([a, b], n_boot=300)
    by = {(r["transform"], r["severity"]): r for r in table.to_dict("records")}
    half, high = by[("typos", 0.5)], by[("typos", 0.8)]
    assert not half["paired"] and not high["paired"]
    assert half["drop_a_pp"] == pytest.approx(40.0) and pd.isna(half["drop_b_pp"])
    assert high["drop_b_pp"] == pytest.approx(60.0)
    pooled = by[(ALL_PRESERVING, None)] if (ALL_PRESERVING, None) in by else \
        table.loc[table["transform"] == ALL_PRESERVING].iloc[0]
    assert not pooled["paired"]
    assert pooled["drop_change_pp"] == pytest.approx(20.0)
    assert pooled["drop_change_ci_low_pp"] <= 20.0 <= pooled["drop_change_ci_high_pp"]
    assert any("unpaired" in note for note in table.attrs["notes"])


def test_may_break_transforms_are_compared_but_not_pooled() -> None:
    a = run({"typos@0.5": 2, "truncation@0.5": 8})
    b = run({"typos@0.5": 2, "truncation@0.5": 0})
    a.loc[a["transform"] == "truncation", "label_policy"] = "may_break"
    b.loc[b["transform"] == "truncation", "label_policy"] = "may_break"
    rows = compare_runs([a, b], n_boot=100).set_index("transform")
    assert rows.loc[ALL_PRESERVING, "drop_change_pp"] == 0.0
    assert rows.loc["truncation", "drop_change_pp"] == pytest.approx(-80.0)


def test_consecutive_and_baseline_modes() -> None:
    runs = [run({"typos@0.5": k}) for k in (6, 4, 1)]
    baseline = compare_runs(runs, ["r1", "r2", "r3"], n_boot=100)
    chain = compare_runs(runs, ["r1", "r2", "r3"], consecutive=True, n_boot=100)
    assert sorted(set(zip(baseline["run_a"], baseline["run_b"]))) == [("r1", "r2"), ("r1", "r3")]
    assert sorted(set(zip(chain["run_a"], chain["run_b"]))) == [("r1", "r2"), ("r2", "r3")]
    last = chain.loc[(chain["run_a"] == "r2") & (chain["transform"] == "typos")].iloc[0]
    assert last["drop_change_pp"] == pytest.approx(-30.0)
    with pytest.raises(ConfigError, match="at least two"):
        compare_runs(runs[:1])


def test_bootstrap_is_seeded() -> None:
    a, b = make_results(seed=1), make_results(seed=2)
    first = compare_runs([a, b], seed=3, n_boot=300)
    assert first.equals(compare_runs([a, b], seed=3, n_boot=300))
    assert not first.equals(compare_runs([a, b], seed=4, n_boot=300))


def _save(results: pd.DataFrame, folder: Path, **manifest: object) -> Path:
    folder.mkdir(parents=True)
    write_results_jsonl(results, folder / "results.jsonl")
    (folder / "manifest.json").write_text(json.dumps({"seed": 0, **manifest}))
    return folder


def test_run_folders_report_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = make_results(seed=1)
    b = make_results(seed=2, hostile=True, flip_prob={"typos": 0.1, "slang": 0.2,
                                                      "truncation": 0.5})
    dir_a = _save(a, tmp_path / "v1", seed=0, dataset_hash="x")
    dir_b = _save(b, tmp_path / "v2", seed=1, dataset_hash="y")
    table = compare_runs([dir_a, dir_b], n_boot=200)
    assert set(table["run_a"]) == {"v1"} and set(table["run_b"]) == {"v2"}
    notes = " ".join(table.attrs["notes"])
    assert "different data" in notes and "different noise" in notes

    from robustify.cli import compare as compare_verb

    parser = argparse.ArgumentParser()
    compare_verb.add_parser(parser.add_subparsers(dest="verb"))
    out = tmp_path / "cmp"
    args = parser.parse_args(["compare", str(dir_a), str(dir_b), "--out", str(out),
                              "--n-boot", "200"])
    assert args.handler(args) == 0
    printed = capsys.readouterr().out
    assert "comparison report:" in printed and "typos@0.5" in printed
    page = (out / "compare.html").read_text()
    assert "<script" not in page and "Content-Security-Policy" in page
    assert "v1 → v2" in page
    assert (out / "compare.md").read_text().count("charts/compare_v1_v2.png") == 1
    assert (out / "charts" / "compare_v1_v2.png").is_file()
    saved = pd.read_csv(out / "compare.csv")
    assert list(saved.columns) == list(compare.COMPARE_COLUMNS)
    for payload in HOSTILE_TEXTS:   # answers never reach the comparison page anyway
        assert payload not in page

    not_run = tmp_path / "empty"
    not_run.mkdir()
    bad = parser.parse_args(["compare", str(dir_a), str(not_run), "--out", str(out)])
    with pytest.raises(ConfigError, match="not a run folder"):
        bad.handler(bad)
    bad = parser.parse_args(["compare", str(dir_a), str(dir_b), "--models", "oops"])
    with pytest.raises(ConfigError, match="A=B"):
        bad.handler(bad)


def test_plot_returns_axes() -> None:
    import matplotlib.pyplot as plt

    table = compare_runs([run({"typos@0.5": 4}), run({"typos@0.5": 1})], n_boot=100)
    ax = plot_comparison(table)
    assert "drop" in ax.get_xlabel()
    assert len(ax.get_yticklabels()) == 2      # pooled row + typos; the clean row is skipped
    fig, given = plt.subplots()
    assert plot_comparison(table, ax=given) is given
    with pytest.raises(ConfigError):
        plot_comparison(pd.DataFrame({"x": [1]}))
    plt.close("all")
