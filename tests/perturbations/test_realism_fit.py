"""realism.fit: a profile fitted on one half of real typed traffic reproduces the other.

The corpora are real typed messages shipped with robustify (``perturbations/data/
corpus_*.json``; sources, commits and licences in ``CORPORA_SOURCE.txt``): assistant
requests (HWU64) and chat turns (Taskmaster-3). Each is split into alternate halves;
the profile is fitted to half A only and its variants of the clean questions are
checked against half B. Tolerances are sampling noise between two halves of ~110
messages: 0.10 for shares (3 standard errors of a share of 0.3 at n = 110 is 0.13; the
halves agree much better in practice), 1.0 non-word per 100 words for typo density
(a handful of typos per half). Length is not fitted: the fit only adds noise and the
clean questions are longer than these messages.
"""

from __future__ import annotations

import pytest

from perturbations.realism import (fit_profile, measure, realism_table, reference_corpora,
                                   simulate)
from perturbations.realism.compare import distance, out_of_range
from perturbations.realism.fit import clean_questions, replicates_for

SHARE_TOL = 0.10
TYPO_TOL = 1.0
CHECKED = ("lower_share", "upper_share", "no_final_punct", "contraction_share",
           "texting_share", "whitespace_share", "filler_share")


@pytest.fixture(scope="module", params=sorted(reference_corpora()))
def fitted(request):
    messages = reference_corpora()[request.param]
    half_a, half_b = messages[0::2], messages[1::2]
    profile = fit_profile(measure(half_a), seed=0, name=request.param)
    return request.param, profile, measure(half_b)


def test_fitted_variants_match_the_held_out_half(fitted) -> None:
    name, profile, held_out = fitted
    got = profile.fitted
    for field in CHECKED:
        assert abs(getattr(got, field) - getattr(held_out, field)) <= SHARE_TOL, (name, field)
    assert abs(got.typos_per_100 - held_out.typos_per_100) <= TYPO_TOL, name
    assert out_of_range(got, held_out, fields=CHECKED + ("typos_per_100",)) == []


def test_fitted_is_far_closer_than_any_stress_level(fitted) -> None:
    from perturbations.realism import stats_of_spec

    name, profile, held_out = fitted
    clean = list(clean_questions())
    fields = CHECKED + ("typos_per_100",)
    fit_d = distance(profile.fitted, held_out, fields)
    for spec in ("typos@low", "mobile_typing@low", "customer_chat@low", "non_native@low"):
        assert distance(stats_of_spec(spec, clean), held_out, fields) > 2 * fit_d, (name, spec)


def test_fit_is_deterministic_and_matches_its_own_simulation(fitted) -> None:
    name, profile, _ = fitted
    again = fit_profile(profile.target, seed=0, name=name)
    assert again.dumps() == profile.dumps()
    variants = simulate(profile.parts, clean_questions(), seed=0,
                        replicates=replicates_for(clean_questions()))
    assert measure(variants, names_from=clean_questions()) == profile.fitted


def test_only_typed_parts_and_notes_on_length(fitted) -> None:
    _, profile, _ = fitted
    names = {p.transform for p in profile.parts}
    assert not names & {"fillers", "homophones", "truncation", "ambiguity"}
    for part in profile.parts:
        if part.transform == "whitespace":
            assert part.options == {"mode": "double"}
    assert any(n.startswith("words:") for n in profile.notes)


def test_fit_adds_nothing_to_clean_traffic() -> None:
    clean = list(clean_questions())
    profile = fit_profile(measure(clean), clean, seed=1)
    assert profile.parts == ()  or all(p.share * p.severity < 0.05 for p in profile.parts)


def test_realism_table_rows() -> None:
    corpora = reference_corpora()
    cols = {name: measure(texts) for name, texts in corpora.items()}
    rows = realism_table(cols, reference=sorted(cols)[0])
    assert rows[0]["statistic"] == "messages"
    assert rows[-1]["statistic"] == "outside real range"
    assert rows[-2][sorted(cols)[0]] == 0.0
