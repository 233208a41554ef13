"""Leakage probe: clause reordering, the suspect statistics, the completion probe, report, CLI.

The statistics are checked on constructed data with known answers: a hand-made results
frame whose counts and probabilities are worked out below, and fake models
(:mod:`tests.robustify.beyond_models`) that memorised half of the items or none.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from perturbations.errors import ConfigError
from robustify.probes import leakage
from robustify.probes.leakage import (completion_metrics, completion_variants, poisson_binomial_pmf,
                               probe_leakage, reorder_clauses, verbatim_item_stats,
                               verbatim_summary, verbatim_variants, wilson_interval)
from tests.robustify.beyond_models import ITEMS, MEMORISED
from tests.robustify.results_factory import HOSTILE_TEXTS, frame, row

REWRITES = ("choice_shuffle@1", "clause_reorder@1")
FAKE = "python:tests.robustify.beyond_models:"


# ------------------------------------------------------------------ clause reordering

@pytest.mark.parametrize("text, expected", [
    ("A pack has 6 bottles of water. How many bottles are in 5 packs in total?",
     "How many bottles are in 5 packs in total? A pack has 6 bottles of water."),
    ("I had 12 cookies in a jar and ate 4 of them, how many cookies are left in the jar?",
     "How many cookies are left in the jar? I had 12 cookies in a jar and ate 4 of them."),
    ("If a dozen eggs is 12 eggs, how many eggs are in 2 dozen eggs?",
     "How many eggs are in 2 dozen eggs, if a dozen eggs is 12 eggs?"),
    ("I want to cancel my subscription, I am not using the service anymore.",
     "I am not using the service anymore, I want to cancel my subscription."),
    ("What is the boiling point of water at sea level in degrees Celsius?",
     "In degrees Celsius, what is the boiling point of water at sea level?"),
    ("Is the store open until 8 pm on Saturdays?", "On Saturdays, is the store open until 8 pm?"),
    ("Anna read 20 pages on Monday and 30 pages on Tuesday, how many pages did she read?",
     "How many pages did she read? Anna read 20 pages on Monday and 30 pages on Tuesday."),
])
def test_reorder_clauses_moves_clauses(text: str, expected: str) -> None:
    assert reorder_clauses(text) == expected


@pytest.mark.parametrize("text", [
    "Which planet in our solar system is known as the red planet?",     # no movable phrase
    "What is the capital city of France, the one with the Eiffel Tower?",  # apposition
    "What does a thermometer measure when you put it in a room?",       # subordinate clause
    "Which language is mainly spoken in Mexico by most of the people?",  # passive agent
    "What is the largest planet in our solar system called?",           # phrase + participle
    "   ",
])
def test_reorder_clauses_leaves_what_it_cannot_move_safely(text: str) -> None:
    assert reorder_clauses(text) is None


def test_reorder_clauses_only_moves_words() -> None:
    from robustify.data import load_items

    moved = 0
    for item in load_items("sample"):
        new = reorder_clauses(item.input)
        if new is None:
            continue
        moved += 1
        # the same words (numbers and names included), only in another order
        assert sorted(w.lower().strip(",.?!") for w in new.split()) == \
            sorted(w.lower().strip(",.?!") for w in item.input.split())
    assert moved >= 30


# ------------------------------------------------------------------ statistics

def test_poisson_binomial_matches_brute_force() -> None:
    assert poisson_binomial_pmf([0.5, 0.5]).tolist() == [0.25, 0.5, 0.25]
    rng = random.Random(7)
    p = [rng.random() for _ in range(7)]
    brute = np.zeros(8)
    for outcome in itertools.product((0, 1), repeat=7):
        prob = math.prod(q if o else 1 - q for q, o in zip(p, outcome))
        brute[sum(outcome)] += prob
    assert np.allclose(poisson_binomial_pmf(p), brute)


def test_wilson_interval_known_values() -> None:
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.27753, abs=1e-4)
    low, high = wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.23659, abs=1e-4), pytest.approx(0.76341, abs=1e-4))
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def _handmade() -> pd.DataFrame:
    """Seven items of one model; outcomes chosen so every number is known (see test)."""
    nan = float("nan")
    plan = {  # item: (verbatim score, rewrite scores)
        "i1": (1.0, (0.0, 0.0, 0.0)),   # suspect; 1 right of 4 versions -> chance 1/4
        "i2": (1.0, (1.0, 0.0, 0.0)),   # not a suspect; 2 right -> chance 0
        "i3": (0.0, (1.0, 0.0, 0.0)),   # not a suspect; 1 right -> chance 1/4
        "i4": (0.0, (0.0, 0.0, 0.0)),   # never right -> chance 0
        "i5": (1.0, (0.0,)),            # suspect; 1 right of 2 versions -> chance 1/2
        "i6": (nan, (0.0, 0.0)),        # verbatim call failed: left out
        "i7": (1.0, (nan, nan)),        # no scored rewrite: left out
    }
    rows = []
    for item, (verbatim, rewrites) in plan.items():
        rows.append(row("m", item, "clean", verbatim))
        for k, score in enumerate(rewrites):
            rows.append(row("m", item, "choice_shuffle@1", score, replicate=k))
    return frame(rows)


def test_verbatim_statistics_on_handmade_data() -> None:
    items = verbatim_item_stats(_handmade())
    assert list(items["item_id"]) == ["i1", "i2", "i3", "i4", "i5"]
    assert list(items["suspect"]) == [True, False, False, False, True]
    assert list(items["chance_prob"]) == [0.25, 0.0, 0.25, 0.0, 0.5]
    assert list(items["n_rewrites"]) == [3, 3, 3, 3, 1]
    s = verbatim_summary(items, n_boot=500).iloc[0]
    assert s["n_items"] == 5 and s["n_suspects"] == 2 and s["n_verbatim_right"] == 3
    assert s["suspect_rate"] == pytest.approx(0.4)
    assert s["chance_rate"] == pytest.approx((0.25 + 0.25 + 0.5) / 5)
    # P(S >= 2) for S ~ PoissonBinomial(1/4, 1/4, 1/2) = 1 - P(0) - P(1) = 1 - 9/32 - 15/32
    assert s["p_value"] == pytest.approx(0.25)
    # cdf(1) = 0.75 < 0.95 <= cdf(2) = 31/32: the 95th percentile is 2 suspects of 5
    assert s["chance_high"] == pytest.approx(0.4)
    assert s["excess_pp"] == pytest.approx(20.0)
    assert s["excess_ci_low_pp"] <= 20.0 <= s["excess_ci_high_pp"]
    assert s["suspect_share_of_right"] == pytest.approx(2 / 3)
    assert not s["signal"]


def test_chance_probability_is_the_exact_permutation_expectation() -> None:
    """Relabelling 'verbatim' over every version of every item gives the same expectation."""
    items = verbatim_item_stats(_handmade())
    data = _handmade()
    data = data.loc[data["item_id"].isin(items["item_id"])]
    total = 0.0
    for _, g in data.groupby("item_id"):
        scores = [s for s in g["score"] if not math.isnan(s)]
        hits = 0
        for chosen in range(len(scores)):  # every version takes the verbatim role once
            others = scores[:chosen] + scores[chosen + 1:]
            hits += scores[chosen] >= 0.5 and all(o < 0.5 for o in others)
        total += hits / len(scores)
    assert total == pytest.approx(items["chance_prob"].sum())


# ------------------------------------------------------------------ fake models

def _expected_chance(memorised: frozenset[str]) -> float:
    counts: dict[str, int] = {}
    for v in verbatim_variants(ITEMS, REWRITES, replicates=2):
        if not v.is_clean:
            counts[v.item.id] = counts.get(v.item.id, 0) + 1
    return sum(1.0 / (counts[i] + 1) for i in memorised) / len(ITEMS)


@pytest.fixture(scope="module")
def half() -> leakage.LeakageResult:
    return probe_leakage(ITEMS, [FAKE + "memorised_half"], rewrites=REWRITES, cache=None,
                         n_boot=500)


def test_model_that_memorised_half_the_items_is_flagged(half: leakage.LeakageResult) -> None:
    items = half.verbatim_items
    assert set(items.loc[items["suspect"], "item_id"]) == MEMORISED
    s = half.verbatim_summary.iloc[0]
    assert s["n_items"] == len(ITEMS) and s["verbatim_accuracy"] == 1.0
    assert s["suspect_rate"] == pytest.approx(0.5)
    assert s["chance_rate"] == pytest.approx(_expected_chance(MEMORISED))
    assert s["p_value"] < 0.001 and s["signal"]
    assert s["ci_low"] > s["chance_rate"]          # the interval clears the chance level
    assert s["excess_ci_low_pp"] > 0
    suspects = half.suspects(k=20)
    assert set(suspects["item_id"]) == MEMORISED
    assert (suspects["completion_overlap"] == 1.0).all()   # both signals agree here


def test_completion_probe_sees_the_memorised_half(half: leakage.LeakageResult) -> None:
    cs = half.completion_summary.set_index("group")
    assert cs.loc["benchmark", "ngram_overlap"] == pytest.approx(0.5)
    assert cs.loc["benchmark", "reproduced_rate"] == pytest.approx(0.5)
    assert cs.loc["shuffled", "ngram_overlap"] == 0.0
    assert cs.loc["fresh", "ngram_overlap"] == 0.0
    assert cs.loc["benchmark", "excess_ngram_pp"] == pytest.approx(50.0)
    assert cs.loc["benchmark", "excess_ngram_ci_low_pp"] > 0
    ci = half.completion_items
    bench = ci.loc[ci["group"] == "benchmark"].set_index("item_id")
    for item_id in MEMORISED:
        # the fake echoes the prefix before the remainder: the echo must not count or hurt
        assert bench.loc[item_id, "ngram_overlap"] == 1.0
        assert bench.loc[item_id, "exact_prefix"] == 1.0


def test_model_that_memorised_nothing_is_not_flagged() -> None:
    result = probe_leakage(ITEMS, [FAKE + "memorised_none"], rewrites=REWRITES, cache=None,
                           n_boot=500)
    s = result.verbatim_summary.iloc[0]
    assert s["n_suspects"] == 0 and s["chance_rate"] == 0.0
    assert s["p_value"] == 1.0 and not s["signal"]
    assert s["rewrite_accuracy"] == 1.0
    assert result.suspects().empty
    cs = result.completion_summary.set_index("group")
    assert cs.loc["benchmark", "ngram_overlap"] == 0.0
    assert cs.loc["benchmark", "excess_ngram_pp"] == 0.0


def test_shaky_model_stays_within_chance() -> None:
    result = probe_leakage(ITEMS, [FAKE + "coin_flip"], probes=["verbatim"], rewrites=REWRITES,
                           cache=None, n_boot=500)
    s = result.verbatim_summary.iloc[0]
    assert 0 < s["verbatim_accuracy"] < 1 and 0 < s["rewrite_accuracy"] < 1
    assert s["p_value"] > 0.05 and not s["signal"]
    assert s["suspect_rate"] <= s["chance_high"]
    assert result.completion_items.empty


def test_two_models_in_one_probe_keep_their_own_numbers() -> None:
    result = probe_leakage(ITEMS, [FAKE + "memorised_half", FAKE + "memorised_none"],
                           rewrites=REWRITES, probes=["verbatim"], cache=None, n_boot=200)
    rates = dict(zip(result.verbatim_summary["model"], result.verbatim_summary["suspect_rate"]))
    assert rates == {FAKE + "memorised_half": 0.5, FAKE + "memorised_none": 0.0}


def test_model_written_paraphrases_join_the_rewrites() -> None:
    rewriter = "python:tests.robustify.beyond_rewriter:lowercase"
    result = probe_leakage(ITEMS, [FAKE + "memorised_half"], probes=["verbatim"],
                           rewrites=("choice_shuffle@1",), replicates=1, rewriter=rewriter,
                           cache=None, n_boot=100)
    specs = set(result.rows["spec"])
    assert "rewrite:persona=paraphrase:model=python-tests.robustify.beyond_rewriter-lowercase" \
        in specs
    assert any("16 used, 0 rejected" in note for note in result.notes)
    assert result.rewrite_rejections is not None and result.rewrite_rejections.empty
    items = result.verbatim_items
    assert set(items.loc[items["suspect"], "item_id"]) == MEMORISED
    assert (items["n_rewrites"] == 2).all()       # one shuffle + one paraphrase per item
    assert result.settings["rewriter"] == rewriter


# ------------------------------------------------------------------ rewrites and probes

def test_verbatim_variants_are_distinct_changed_rewrites() -> None:
    variants = verbatim_variants(ITEMS, REWRITES, seed=3, replicates=3)
    clean = [v for v in variants if v.is_clean]
    assert [v.item.id for v in clean] == [i.id for i in ITEMS]
    seen = set()
    for v in variants:
        key = (v.item.id, v.item.input, v.item.choices)
        assert key not in seen
        seen.add(key)
        if not v.is_clean:
            assert v.changed and v.label_policy in ("preserves", "remaps")
            # the gold option text is unchanged by every rewrite
            original = next(i for i in ITEMS if i.id == v.item.id)
            assert v.item.choices[ord(v.item.target) - 65] == \
                original.choices[ord(original.target) - 65]
    assert variants == verbatim_variants(ITEMS, REWRITES, seed=3, replicates=3)


def test_rewrites_that_may_change_the_answer_are_refused() -> None:
    with pytest.raises(ConfigError, match="may_break"):
        verbatim_variants(ITEMS, ["truncation@0.5"])
    with pytest.raises(ConfigError):
        probe_leakage(ITEMS, [FAKE + "memorised_none"], probes=["nonsense"], cache=None)
    with pytest.raises(ConfigError, match="cut"):
        probe_leakage(ITEMS, [FAKE + "memorised_none"], cut=(0.7, 0.2), cache=None)
    with pytest.raises(ConfigError, match="persona"):
        probe_leakage(ITEMS, [FAKE + "memorised_none"], rewriter="local:smollm2",
                      personas=["pirate"], cache=None)


def test_completion_metrics_known_values() -> None:
    m = completion_metrics("four score and seven", "years ago our fathers",
                           "Four score and seven years ago our fathers brought forth")
    assert m == {"ngram_overlap": 1.0, "exact_prefix": 1.0, "similarity": 1.0,
                 "n_remainder": 4.0}
    m = completion_metrics("a b c", "years ago our fathers", "years ago the mothers")
    assert m["exact_prefix"] == 0.5 and m["ngram_overlap"] == 0.0
    m = completion_metrics("x", "one two three four", "two three four five")
    assert m["ngram_overlap"] == 0.5 and m["exact_prefix"] == 0.0
    assert all(math.isnan(v) for k, v in completion_metrics("x", "a b c", None).items()
               if k != "n_remainder")
    # a framed, paraphrased echo is cut where the prefix's last words reappear
    m = completion_metrics("We the People of the United States, in Order to form a",
                           "more perfect Union, establish Justice",
                           "The United States of America, in order to form a more perfect "
                           "Union, do indeed")
    assert m["exact_prefix"] == 0.6 and m["ngram_overlap"] == pytest.approx(1 / 3)
    m = completion_metrics("one two three four five six", "seven eight nine",
                           'The text is: "one two three four five six."')
    assert m["ngram_overlap"] == 0.0 and m["similarity"] == 0.0


def test_completion_variants_are_seeded_and_cut_in_range() -> None:
    a = completion_variants(ITEMS, seed=1)
    assert a == completion_variants(ITEMS, seed=1)
    assert [v.item.input for v in a] != [v.item.input for v in completion_variants(ITEMS, seed=2)]
    groups = {v.item.metadata["group"] for v in a}
    assert groups == {"benchmark", "shuffled", "fresh", "known"}
    by_id = {v.item.id: v.item for v in a}
    for item in ITEMS:
        bench, mixed = by_id[item.id], by_id[f"shuffled:{item.id}"]
        n = bench.metadata["n_words"]
        assert 0.4 * n - 1 <= bench.metadata["cut_words"] <= 0.6 * n + 1
        assert bench.metadata["cut_words"] == mixed.metadata["cut_words"]
        words = f"{bench.input} {bench.target}".split()
        assert sorted(words) == sorted(f"{mixed.input} {mixed.target}".split())
        assert words != f"{mixed.input} {mixed.target}".split()


# ------------------------------------------------------------------ charts, report, CLI

def test_plots_return_axes(half: leakage.LeakageResult) -> None:
    import matplotlib.pyplot as plt

    ax = half.plot_suspects()
    assert ax.get_xlabel().startswith("items right verbatim")
    fig, given = plt.subplots()
    assert half.plot_completion(ax=given) is given
    with pytest.raises(ConfigError):
        leakage.plot_completion(half.completion_summary, metric="bleu")
    plt.close("all")


def hostile_model(messages: list[dict[str, str]]) -> str:
    return HOSTILE_TEXTS[len(messages[-1]["content"]) % len(HOSTILE_TEXTS)]


def test_report_is_escaped_and_complete(tmp_path: Path) -> None:
    from robustify.models.python_callable import PythonCallableBackend

    backend = PythonCallableBackend(hostile_model, label="<b>hostile</b>")
    result = probe_leakage(ITEMS[:6], [backend], rewrites=REWRITES, cache=None, n_boot=100)
    files = result.write_report(tmp_path)
    page = files["html"].read_text()
    assert "<script" not in page and "onerror=" not in page.replace("onerror=&quot;", "")
    assert "&lt;script&gt;" in page or "&lt;img" in page or "&lt;a href" in page
    assert "Content-Security-Policy" in page and "signals, not proof" in page
    assert "<b>hostile</b>" not in page and "&lt;b&gt;hostile&lt;/b&gt;" in page
    md = files["md"].read_text()
    assert "charts/leakage_suspects.png" in md and "<script" not in md
    for key in ("items_csv", "completion_csv", "summary_json", "rows_jsonl",
                "chart_leakage_suspects_png", "chart_leakage_completion_png"):
        assert files[key].is_file()
    assert not [p for p in tmp_path.rglob(".*.tmp")]


def test_cli_verb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps(i.to_dict()) + "\n" for i in ITEMS))
    from robustify.cli import leakage as leakage_verb
    from robustify.cli.leakage import DEFAULT_REWRITES_HELP

    assert DEFAULT_REWRITES_HELP == ",".join(leakage.DEFAULT_REWRITES)
    parser = argparse.ArgumentParser()
    leakage_verb.add_parser(parser.add_subparsers(dest="verb"))
    out = tmp_path / "out"
    args = parser.parse_args(["leakage", "--data", str(data), "--model", FAKE + "memorised_half",
                              "--rewrites", ",".join(REWRITES), "--cache", "off",
                              "--out", str(out), "--no-controls", "--top", "3"])
    assert args.handler(args) == 0
    printed = capsys.readouterr().out
    assert "suspects 8/16" in printed and "leakage report:" in printed
    assert (out / "leakage.html").is_file() and (out / "leakage.md").is_file()
    bad = parser.parse_args(["leakage", "--data", str(data), "--model", FAKE + "memorised_half",
                             "--probes", "verbatim,guessing", "--cache", "off",
                             "--out", str(out)])
    with pytest.raises(ConfigError, match="guessing"):
        bad.handler(bad)


# ------------------------------------------------------------------ the real local model

@pytest.mark.slow
def test_local_model_end_to_end(tmp_path: Path, local_model_path: Path) -> None:
    from robustify.data import load_items

    chosen = {"mc-004", "math-002"}
    items = [i for i in load_items("sample") if i.id in chosen]
    result = probe_leakage(items, ["local:smollm2"], rewrites=("choice_shuffle@1",
                                                               "clause_reorder@1"),
                           replicates=1, cache=tmp_path / "cache.sqlite", fresh_controls=False,
                           known_texts=False, completion_max_tokens=24, n_boot=200)
    assert result.rows["error"].isna().all()
    assert set(result.verbatim_items["item_id"]) == chosen
    s = result.verbatim_summary.iloc[0]
    assert 0.0 <= s["suspect_rate"] <= 1.0 and 0.0 <= s["p_value"] <= 1.0
    assert set(result.completion_items["group"]) == {"benchmark", "shuffled"}
    assert result.completion_items["similarity"].between(0, 1).all()
    files = result.write_report(tmp_path / "report")
    assert "signals, not proof" in files["md"].read_text()
