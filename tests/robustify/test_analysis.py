"""Tests of robustify.analysis.paired on hand-built frames with known answers."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perturbations.errors import ConfigError, DataError
import robustify.analysis as A

from .results_factory import frame, known_drop_frame, make_results, row


@pytest.fixture(autouse=True)
def _warnings_are_errors():
    # Division by zero, empty means and pandas downcasting must not leak warnings.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _one(summary: pd.DataFrame) -> dict:
    assert len(summary) == 1, summary
    return summary.iloc[0].to_dict()


# ------------------------------------------------------------------------- pairing


def test_pair_with_clean_joins_each_variant_to_its_own_clean_row():
    df = frame([
        row("m", "q1", "clean", 1.0, input="What is 2+2?", parsed="A", response="A"),
        row("m", "q2", "clean", 0.0, input="Capital?", parsed="B", response="B"),
        row("m", "q1", "typos@0.5", 0.0, input="Waht is 2+2?", parsed="C"),
        row("m", "q2", "typos@0.5", 1.0, input="Captial?", parsed="A"),
        row("other", "q1", "clean", 0.0),
    ])
    paired = A.pair_with_clean(df)
    assert list(paired["item_id"]) == ["q1", "q2"]
    assert list(paired["clean_score"]) == [1.0, 0.0]
    assert list(paired["clean_input"]) == ["What is 2+2?", "Capital?"]
    assert list(paired["flip"]) == ["right->wrong", "wrong->right"]
    assert list(paired["drop"]) == [1.0, -1.0]
    assert list(paired["consistent"]) == [0.0, 0.0]


def test_paired_drop_not_against_overall_accuracy():
    # Clean accuracy 50%, noisy accuracy 50%: a pooled comparison sees no change, the
    # paired one sees two flips that cancel in the drop but not in the flip counts.
    df = frame([row("m", "q1", "clean", 1.0), row("m", "q2", "clean", 0.0),
                row("m", "q1", "typos@0.5", 0.0), row("m", "q2", "typos@0.5", 1.0)])
    s = _one(A.summarize(df, n_boot=200))
    assert s["drop"] == 0.0
    assert s["flips_right_to_wrong"] == 1 and s["flips_wrong_to_right"] == 1
    assert s["flip_rate"] == 1.0
    assert s["consistency"] == 0.0


# ------------------------------------------------------------------------- summary


def test_known_drop_30_pp():
    s = _one(A.summarize(known_drop_frame(10, 3), n_boot=500, seed=1))
    assert s["model"] == "m" and s["transform"] == "typos" and s["severity"] == 0.5
    assert (s["n_rows"], s["n_items"], s["n_changed"], s["n_failed"], s["n_scored"]) == \
        (10, 10, 10, 0, 10)
    assert s["clean_score"] == 1.0
    assert s["perturbed_score"] == pytest.approx(0.7)
    assert s["drop"] == pytest.approx(0.3)
    assert s["drop_pp"] == pytest.approx(30.0)
    assert s["relative_drop"] == pytest.approx(0.3)
    assert s["flips_right_to_wrong"] == 3 and s["flips_wrong_to_right"] == 0
    assert s["p_value"] == pytest.approx(0.25)  # 2 * 0.5**3
    assert s["consistency"] == pytest.approx(0.7)
    assert s["unparseable_rate"] == 0.0
    assert s["label_policy"] == "preserves" and s["spec"] == "typos@0.5"
    assert s["severity_label"] == "medium"
    assert 0.0 <= s["ci_low"] <= 0.3 <= s["ci_high"] <= 0.7
    assert s["ci_low_pp"] == pytest.approx(s["ci_low"] * 100)


def test_mcnemar_exact_known_values():
    assert A.mcnemar_exact(8, 1) == pytest.approx(0.0390625, rel=1e-12)
    assert A.mcnemar_exact(1, 8) == pytest.approx(0.0390625, rel=1e-12)
    assert A.mcnemar_exact(0, 0) == 1.0
    assert A.mcnemar_exact(5, 5) == 1.0
    # reference values from scipy.stats.binom (no longer a dependency)
    assert A.mcnemar_exact(100, 140) == pytest.approx(0.01166409231767769, rel=1e-12)
    assert A.mcnemar_exact(5000, 5400) == pytest.approx(9.116949314541157e-05, rel=1e-9)
    assert A.mcnemar_exact(0, 30) == pytest.approx(1.862645149230957e-09, rel=1e-12)


def test_rank_correlations_match_scipy_with_ties():
    # reference values from scipy.stats.spearmanr / kendalltau (tau-b) on the same input
    x = np.array([0.9, 0.7, 0.7, 0.5, 0.2, 0.1])
    y = np.array([0.8, 0.75, 0.6, 0.6, 0.3, 0.35])
    assert A.spearman_rho(x, y) == pytest.approx(0.8970588235294118, rel=1e-12)
    assert A.kendall_tau_b(x, y) == pytest.approx(0.7857142857142858, rel=1e-12)
    assert A.kendall_tau_b(x, -x) == pytest.approx(-1.0)
    assert A.mcnemar_exact(3, 0) == pytest.approx(0.25)


def test_summary_p_value_b8_c1():
    rows = []
    for i in range(20):
        item = f"q{i}"
        clean = 1.0 if i < 15 else 0.0          # 15 right, 5 wrong on clean
        noisy = clean
        if i < 8:
            noisy = 0.0                          # b = 8 right -> wrong
        elif i == 15:
            noisy = 1.0                          # c = 1 wrong -> right
        rows += [row("m", item, "clean", clean), row("m", item, "slang@0.8", noisy)]
    s = _one(A.summarize(frame(rows), n_boot=100))
    assert (s["flips_right_to_wrong"], s["flips_wrong_to_right"]) == (8, 1)
    assert s["p_value"] == pytest.approx(0.0390625, rel=1e-12)
    assert s["drop"] == pytest.approx((15 - 8) / 20 * 0 + 7 / 20)  # 15/20 - 8/20


def test_zero_clean_score_relative_drop_is_nan_without_warning():
    rows = []
    for i in range(4):
        rows += [row("m", f"q{i}", "clean", 0.0), row("m", f"q{i}", "typos@0.2", float(i == 0))]
    s = _one(A.summarize(frame(rows), n_boot=200))
    assert s["clean_score"] == 0.0
    assert s["drop"] == pytest.approx(-0.25)
    assert math.isnan(s["relative_drop"])


def test_all_unparseable_variants():
    rows = []
    for i in range(5):
        rows.append(row("m", f"q{i}", "clean", 1.0))
        rows.append(row("m", f"q{i}", "truncation@0.8", 0.0, response="???", parsed=None,
                        unparseable=True, label_policy="may_break"))
    s = _one(A.summarize(frame(rows), n_boot=200))
    assert s["unparseable_rate"] == 1.0
    assert s["clean_unparseable_rate"] == 0.0
    assert s["flips_right_to_wrong"] == 5 and s["flips_right_to_unparseable"] == 5
    assert s["consistency"] == 0.0
    assert s["drop"] == 1.0
    assert s["label_policy"] == "may_break"


def test_all_failed_rows_are_counted_not_scored():
    rows = []
    for i in range(3):
        rows.append(row("m", f"q{i}", "clean", 1.0))
        rows.append(row("m", f"q{i}", "typos@0.5", float("nan"), response=None, parsed=None,
                        error="TimeoutError"))
    s = _one(A.summarize(frame(rows), n_boot=200))
    assert (s["n_rows"], s["n_failed"], s["n_scored"]) == (3, 3, 0)
    for key in ("clean_score", "perturbed_score", "drop", "ci_low", "ci_high", "p_value",
                "relative_drop", "consistency", "unparseable_rate", "flip_rate"):
        assert math.isnan(s[key]), key


def test_failed_clean_row_excludes_its_pairs():
    df = frame([row("m", "q1", "clean", float("nan"), error="boom", response=None),
                row("m", "q2", "clean", 1.0),
                row("m", "q1", "typos@0.5", 1.0), row("m", "q2", "typos@0.5", 0.0),
                row("m", "q3", "typos@0.5", 0.0)])  # q3 has no clean row at all
    s = _one(A.summarize(df, n_boot=100))
    assert (s["n_rows"], s["n_failed"], s["n_scored"]) == (3, 2, 1)
    assert s["drop"] == 1.0


def test_single_item_group_has_degenerate_interval():
    df = frame([row("m", "q1", "clean", 1.0), row("m", "q1", "typos@0.5", 0.0)])
    s = _one(A.summarize(df))
    assert s["ci_low"] == s["ci_high"] == s["drop"] == 1.0
    assert s["p_value"] == 1.0


def test_replicates_are_clustered_by_item():
    # 20 items x 5 replicates whose outcomes agree within an item: the information is
    # 20 items, not 100 rows, so the clustered interval must be much wider.
    rows = []
    for i in range(20):
        rows.append(row("m", f"q{i}", "clean", 1.0))
        for rep in range(5):
            rows.append(row("m", f"q{i}", "typos@0.5", 0.0 if i < 8 else 1.0, replicate=rep))
    df = frame(rows)
    s = _one(A.summarize(df, n_boot=4000, seed=3))
    assert s["n_replicates"] == 5 and s["n_rows"] == 100 and s["n_items"] == 20
    assert s["drop"] == pytest.approx(0.4)
    paired = A.pair_with_clean(df)
    values = (paired["clean_score"] - paired["score"]).to_numpy()
    low_i, high_i = A.bootstrap_ci(values, n_boot=4000, seed=3)
    low_c, high_c = A.bootstrap_ci(values, clusters=paired["item_id"], n_boot=4000, seed=3)
    assert (s["ci_high"] - s["ci_low"]) == pytest.approx(high_c - low_c, rel=0.15)
    assert (high_c - low_c) > 1.8 * (high_i - low_i)   # sqrt(5) in theory
    # McNemar counts each item once: 8 discordant items, not 40 rows.
    assert s["p_value"] == pytest.approx(A.mcnemar_exact(8, 0))


def test_bootstrap_is_seeded_and_group_independent():
    df = make_results(("a", "b"), transforms=("typos",), n_items=12, seed=4)
    s1 = A.summarize(df, n_boot=300, seed=7)
    s2 = A.summarize(df, n_boot=300, seed=7)
    pd.testing.assert_frame_equal(s1, s2)
    only_a = A.summarize(df[df["model"] == "a"], n_boot=300, seed=7)
    pd.testing.assert_frame_equal(only_a, s1[s1["model"] == "a"].reset_index(drop=True))
    values = np.linspace(0, 1, 40) ** 2
    assert A.bootstrap_ci(values, seed=7) == A.bootstrap_ci(values, seed=7)
    assert A.bootstrap_ci(values, seed=7) != A.bootstrap_ci(values, seed=8)


def test_summarize_by_metadata_and_task_slices():
    rows = []
    for i in range(6):
        domain = "math" if i < 3 else "law"
        rows.append({**row("m", f"q{i}", "clean", 1.0), "meta.domain": domain})
        rows.append({**row("m", f"q{i}", "typos@0.5", 0.0 if i in (0, 1) else 1.0),
                     "meta.domain": domain})
    df = frame(rows)
    s = A.summarize(df, by=("model", "meta.domain"), n_boot=100)
    assert list(s["meta.domain"]) == ["math", "law"]
    assert list(s["drop_pp"].round(6)) == [pytest.approx(66.666667), 0.0]
    assert list(A.summarize(df, by=("task",), n_boot=0)["task"]) == ["multiple_choice"]
    with pytest.raises(ConfigError, match="meta.subject"):
        A.summarize(df, by=("model", "meta.subject"))


def test_summary_order_and_clean_rows_excluded():
    df = make_results(("zeta", "alpha"), transforms=("slang", "typos"), n_items=6)
    s = A.summarize(df, n_boot=0)
    assert "clean" not in set(s["transform"])
    assert list(pd.unique(s["model"])) == ["zeta", "alpha"]          # as given, not sorted
    assert list(pd.unique(s["transform"])) == ["slang", "typos"]
    assert list(s["severity"][:3]) == [0.2, 0.5, 0.8]
    assert s[["ci_low", "ci_high"]].isna().all().all()                # n_boot=0 skips CIs
    assert list(s.columns[:3]) == ["model", "transform", "severity"]
    assert set(A.SUMMARY_COLUMNS) - {"severity_label"} <= set(s.columns)


def test_only_changed_drops_noop_variants():
    df = frame([row("m", "q1", "clean", 1.0), row("m", "q2", "clean", 1.0),
                row("m", "q1", "typos@0.2", 1.0, changed=False),
                row("m", "q2", "typos@0.2", 0.0)])
    assert _one(A.summarize(df, n_boot=0))["drop"] == 0.5
    s = _one(A.summarize(df, n_boot=0, only_changed=True))
    assert s["drop"] == 1.0 and s["n_rows"] == 1


def test_missing_columns_raise_data_error():
    with pytest.raises(DataError, match="score"):
        A.summarize(pd.DataFrame({"model": ["m"], "item_id": ["q"], "spec": ["clean"]}))


# ----------------------------------------------------------------- model overview


def test_worst_case_and_overestimation():
    df = frame([
        row("m", "q1", "clean", 1.0), row("m", "q2", "clean", 1.0), row("m", "q3", "clean", 0.0),
        row("m", "q1", "typos@0.5", 1.0), row("m", "q1", "slang@0.5", 0.0),
        row("m", "q2", "typos@0.5", 1.0), row("m", "q2", "slang@0.5", 1.0),
        row("m", "q3", "typos@0.5", 0.0), row("m", "q3", "slang@0.5", 1.0),
        # may_break variants do not count toward the worst case or the headline
        row("m", "q2", "truncation@0.8", 0.0, label_policy="may_break"),
    ])
    o = _one(A.model_overview(df, n_boot=300))
    assert o["n_items"] == 3 and o["n_variants"] == 6 and o["n_transforms"] == 2
    assert o["clean_score"] == pytest.approx(2 / 3)
    # drops: q1 0,1  q2 0,0  q3 0,-1 -> mean 0
    assert o["overestimation_pp"] == pytest.approx(0.0)
    assert o["perturbed_score"] == pytest.approx(2 / 3)
    assert o["worst_case_score"] == pytest.approx(1 / 3)     # min per item: 0, 1, 0
    assert o["worst_case_gap_pp"] == pytest.approx(100 / 3)
    assert o["worst_case_ci_low_pp"] <= o["worst_case_gap_pp"] <= o["worst_case_ci_high_pp"]


def test_overview_with_failures_keeps_headline_consistent():
    df = frame([row("m", f"q{i}", "clean", 1.0) for i in range(4)]
               + [row("m", "q0", "typos@0.5", float("nan"), error="x", response=None)]
               + [row("m", f"q{i}", "typos@0.5", float(i != 1)) for i in (1, 2, 3)])
    o = _one(A.model_overview(df, n_boot=0))
    assert o["n_failed"] == 1
    assert o["overestimation_pp"] == pytest.approx(100 / 3)
    assert o["clean_score"] - o["perturbed_score"] == pytest.approx(o["overestimation"])


def test_overview_without_any_scored_variant_has_no_worst_case():
    # every variant unscored (failed, or an unparseable judge verdict): the worst case is
    # unknown, not the clean score
    df = frame([row("m", "q0", "clean", 1.0), row("m", "q1", "clean", 0.0),
                row("m", "q0", "typos@0.5", float("nan"), error="x", response=None),
                row("m", "q1", "typos@0.5", float("nan"), error="x", response=None)])
    o = _one(A.model_overview(df, n_boot=0))
    assert o["clean_score"] == pytest.approx(0.5)
    assert math.isnan(o["worst_case_score"]) and math.isnan(o["worst_case_gap_pp"])
    assert math.isnan(o["overestimation_pp"])


# ------------------------------------------------------------------------ ranking


def _model_rows(model: str, clean_right: int, noisy_right: int, n: int = 10,
                spec: str = "typos@0.5") -> list[dict]:
    rows = []
    for i in range(n):
        rows.append(row(model, f"q{i}", "clean", float(i < clean_right)))
        rows.append(row(model, f"q{i}", spec, float(i < noisy_right)))
    return rows


def test_ranking_swap_and_correlations():
    df = frame(_model_rows("A", 9, 5) + _model_rows("B", 7, 6) + _model_rows("C", 5, 4))
    r = A.ranking_change(df)
    assert list(r["model"]) == ["A", "B", "C"]
    assert list(r["clean_rank"]) == [1.0, 2.0, 3.0]
    assert list(r["rank"]) == [2.0, 1.0, 3.0]
    assert list(r["rank_change"]) == [-1.0, 1.0, 0.0]
    assert r["spearman"].iloc[0] == pytest.approx(0.5)
    assert r["kendall"].iloc[0] == pytest.approx(1 / 3)
    assert r["n_swaps"].iloc[0] == 1 and r["swaps"].iloc[0] == "A > B"


def test_ranking_single_model_has_nan_correlation():
    r = A.ranking_change(frame(_model_rows("A", 9, 5)))
    assert math.isnan(r["spearman"].iloc[0]) and r["n_swaps"].iloc[0] == 0


# ----------------------------------------------------------------------- severity


def test_severity_curve_and_auc_from_results():
    rows = [row("m", f"q{i}", "clean", 1.0) for i in range(10)]
    for severity, right in ((0.2, 9), (0.5, 6), (0.8, 2)):
        rows += [row("m", f"q{i}", f"typos@{severity}", float(i < right)) for i in range(10)]
    df = frame(rows)
    curve = A.severity_curve(df)
    assert list(curve["severity"]) == [0.0, 0.2, 0.5, 0.8]
    assert list(curve["score"]) == pytest.approx([1.0, 0.9, 0.6, 0.2])
    assert list(curve["severity_label"]) == ["clean", "low", "medium", "high"]
    assert list(curve["drop_pp"]) == pytest.approx([0, 10, 40, 80])
    auc = _one(A.severity_auc(df))
    # (0.2*1.9/2 + 0.3*1.5/2 + 0.3*0.8/2) / 0.8
    assert auc["auc"] == pytest.approx(0.66875)
    assert auc["auc_ratio"] == pytest.approx(0.66875)
    assert auc["max_severity"] == 0.8 and auc["n_points"] == 4


def test_auc_of_known_curve_frame():
    curve = pd.DataFrame({"model": ["m"] * 3, "transform": ["t"] * 3,
                          "severity": [0.0, 0.5, 1.0], "score": [1.0, 0.8, 0.4]})
    auc = _one(A.severity_auc(curve))
    assert auc["auc"] == pytest.approx(0.75)
    assert auc["clean_score"] == 1.0
    flat = _one(A.severity_auc(curve.assign(score=[0.0, 0.0, 0.0])))
    assert flat["auc"] == 0.0 and math.isnan(flat["auc_ratio"])
    single = _one(A.severity_auc(curve.iloc[:1]))
    assert math.isnan(single["auc"])


# ------------------------------------------------------------------------- slices


def _domain_frame() -> pd.DataFrame:
    rows = []
    spec = {"math": 6, "law": 2, "art": 1}   # items per domain
    wrong = {"math": 3, "law": 2, "art": 1}  # turned wrong by noise
    n = 0
    for domain, count in spec.items():
        for j in range(count):
            item = f"q{n}"
            n += 1
            rows.append({**row("m", item, "clean", 1.0), "meta.domain": domain,
                         "meta.level": "x"})
            rows.append({**row("m", item, "typos@0.5", 0.0 if j < wrong[domain] else 1.0),
                         "meta.domain": domain, "meta.level": "x"})
            rows.append({**row("m", item, "truncation@0.8", 0.0, label_policy="may_break"),
                         "meta.domain": domain, "meta.level": "x"})
    return frame(rows)


def test_slice_columns_keep_categorical_scalar_columns_only():
    df = _domain_frame()
    df["meta.labels"] = [["a", "b"]] * len(df)            # lists cannot be grouped
    df["meta.solution"] = [f"text {i}" for i in range(len(df))]  # one value per row
    df["task"] = ["numeric" if i % 2 else "yes_no" for i in range(len(df))]
    assert A.slice_columns(df) == ["task", "meta.domain"]


def test_slices_pool_label_preserving_rows():
    s = A.slices(_domain_frame(), "domain", n_boot=0)   # "domain" -> meta.domain
    assert list(s["meta.domain"]) == ["math", "law", "art"]
    assert list(s["drop_pp"]) == pytest.approx([50.0, 100.0, 100.0])
    assert list(s["n_rows"]) == [6, 2, 1]               # may_break rows left out
    with pytest.raises(ConfigError, match="meta.domain"):
        A.slices(_domain_frame(), "nope")


def test_weakest_slices_respects_min_items():
    w = A.weakest_slices(_domain_frame(), k=5, min_items=2, n_boot=0)
    # "art" has 1 item < min_items; meta.level has a single value, so it is no slice
    assert list(w["value"]) == ["law", "math"]
    assert list(w["column"]) == ["meta.domain", "meta.domain"]
    assert list(w["drop_pp"]) == pytest.approx([100.0, 50.0])
    forced = A.weakest_slices(_domain_frame(), ["meta.level"], k=5, min_items=2, n_boot=0)
    assert list(forced["value"]) == ["x"] and forced["drop_pp"].iloc[0] == pytest.approx(6 / 9 * 100)
    top = A.weakest_slices(_domain_frame(), ["meta.domain"], k=1, min_items=1, n_boot=0)
    assert list(top["value"]) == ["law"]  # tie with art (1 item): first appearance wins


# ---------------------------------------------------------------------- may_break


def test_may_break_clarification_rate_with_detector():
    rows = []
    for i in range(4):
        rows.append(row("m", f"q{i}", "clean", 1.0, response="The answer is A."))
        rows.append(row("m", f"q{i}", "ambiguity@0.5", 0.0, label_policy="may_break",
                        response="What do you mean?" if i < 2 else "B", parsed=None,
                        unparseable=i < 2))
    rows.append(row("m", "q0", "typos@0.5", 1.0))   # not may_break: ignored
    df = frame(rows)
    out = _one(A.may_break_summary(df, detector=lambda t: bool(t) and t.endswith("?"),
                                   n_boot=100))
    assert out["transform"] == "ambiguity"
    assert out["drop_pp"] == pytest.approx(100.0)
    assert out["clarification_rate"] == 0.5
    assert out["clean_clarification_rate"] == 0.0
    assert out["clarification_delta_pp"] == pytest.approx(50.0)


def test_may_break_uses_clarify_module_by_default():
    pytest.importorskip("robustify.scoring.clarify")
    df = frame([row("m", "q0", "clean", 1.0, response="The answer is A."),
                row("m", "q0", "truncation@0.8", 0.0, label_policy="may_break",
                    response="Your question seems to be cut off. Could you clarify?")])
    out = _one(A.may_break_summary(df, n_boot=0))
    assert out["clarification_rate"] == 1.0 and out["clean_clarification_rate"] == 0.0


def test_may_break_empty_when_no_such_rows():
    out = A.may_break_summary(known_drop_frame())
    assert out.empty and "clarification_rate" in out.columns


# --------------------------------------------------------------------- noise floor


def test_noise_floor_known_flip_rate():
    rows = []
    for i in range(4):
        for rep in range(3):
            score = 1.0
            if i == 0 and rep == 1:
                score = 0.0
            parsed = "A" if score else "B"
            if i == 3 and rep == 2:
                parsed = "a "  # same answer after normalisation
            rows.append({**row("m", f"q{i}", "clean", score, parsed=parsed), "repeat": rep})
    out = _one(A.noise_floor(pd.DataFrame(rows), n_boot=500))
    assert (out["n_items"], out["n_repeats"], out["n_pairs"]) == (4, 3, 8)
    assert out["flip_rate"] == pytest.approx(1 / 8)
    assert out["flip_rate_pp"] == pytest.approx(12.5)
    assert out["answer_change_rate"] == pytest.approx(1 / 8)
    assert 0.0 <= out["ci_low"] <= 1 / 8 <= out["ci_high"] <= 0.5
    with pytest.raises(DataError, match="repeat"):
        A.noise_floor(pd.DataFrame([row("m", "q", "clean", 1.0)]))


# ----------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_edge_cases():
    assert all(math.isnan(v) for v in A.bootstrap_ci([]))
    assert A.bootstrap_ci([0.5]) == (0.5, 0.5)
    assert A.bootstrap_ci([1, 1, 1, 1]) == (1.0, 1.0)
    assert all(math.isnan(v) for v in A.bootstrap_ci([1.0, 0.0], n_boot=0))
    with pytest.raises(DataError):
        A.bootstrap_ci([1.0, float("nan")])
    with pytest.raises(ConfigError):
        A.bootstrap_ci([1.0, 0.0], ci=1.0)
    rng_before = np.random.get_state()[1].copy()
    A.bootstrap_ci(np.arange(50) % 2, n_boot=100, seed=0)
    assert np.array_equal(rng_before, np.random.get_state()[1])  # global RNG untouched


# ------------------------------------------------------------------- properties


@st.composite
def _results_frames(draw):
    n_items = draw(st.integers(1, 8))
    n_models = draw(st.integers(1, 2))
    rows = []
    for m in range(n_models):
        for i in range(n_items):
            clean = draw(st.sampled_from([0.0, 1.0, 0.5, float("nan")]))
            rows.append(row(f"m{m}", f"q{i}", "clean", clean))
            for spec in draw(st.lists(st.sampled_from(["typos@0.2", "typos@0.8", "slang@0.5"]),
                                      unique=True, max_size=3)):
                for rep in range(draw(st.integers(1, 2))):
                    score = draw(st.sampled_from([0.0, 1.0, 0.25, float("nan")]))
                    rows.append(row(f"m{m}", f"q{i}", spec, score, replicate=rep,
                                    unparseable=draw(st.booleans())))
    return frame(rows)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_results_frames(), st.randoms(use_true_random=False))
def test_summary_invariants(df, rnd):
    s = A.summarize(df, n_boot=50, seed=0)
    perturbed = int((df["spec"] != "clean").sum())
    assert int(s["n_rows"].sum()) == perturbed
    assert (s["n_failed"] + s["n_scored"] == s["n_rows"]).all()
    assert (s["flips_right_to_wrong"] + s["flips_wrong_to_right"] <= s["n_scored"]).all()
    for column in ("consistency", "unparseable_rate", "flip_rate", "p_value"):
        values = s[column].dropna()
        assert ((values >= 0) & (values <= 1)).all(), column
    scored = s[s["n_scored"] > 0]
    assert np.allclose(scored["drop"], scored["clean_score"] - scored["perturbed_score"])
    assert (scored["ci_low"] <= scored["ci_high"] + 1e-12).all()
    # Row order does not change any number.
    order = list(range(len(df)))
    rnd.shuffle(order)
    shuffled = A.summarize(df.iloc[order], n_boot=50, seed=0)
    key = ["model", "transform", "severity"]
    a = s.sort_values(key).reset_index(drop=True)
    b = shuffled.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a.drop(columns=["spec"]), b.drop(columns=["spec"]),
                                  check_exact=False, atol=1e-9)


def test_label_slice_and_token_limit_rate() -> None:
    rows = []
    for i in range(8):
        label = "yes" if i < 6 else "no"
        rows.append(row("m", f"y{i}", task="yes_no", target=label))
        # the "no" items break under noise; two "yes" answers are cut at max_tokens
        rows.append(row("m", f"y{i}", "typos@0.5", 0.0 if label == "no" else 1.0,
                        task="yes_no", target=label, hit_token_limit=i < 2))
        rows.append(row("m", f"n{i}", task="numeric", target=str(i)))
        rows.append(row("m", f"n{i}", "typos@0.5", task="numeric", target=str(i)))
    df = frame(rows)
    assert A.slice_columns(df) == ["task", "label"]     # numeric targets are no label
    s = A.slices(df, "label", n_boot=0)
    assert list(s["label"]) == ["yes", "no"] and list(s["drop_pp"]) == [0.0, 100.0]
    w = A.weakest_slices(df, k=1, min_items=2, n_boot=0)
    assert (w["column"].iloc[0], w["value"].iloc[0]) == ("label", "no")
    summary = A.summarize(df, n_boot=0)
    assert summary["token_limit_rate"].iloc[0] == pytest.approx(2 / 16)
    # results without the column (older runs) count nothing as cut
    assert A.summarize(df.drop(columns="hit_token_limit"), n_boot=0)["token_limit_rate"].iloc[0] == 0
