"""Severity anchors: published rates, the realistic level, the reference profile, and the
pattern fixes of issue 16 in the typed profiles."""

from __future__ import annotations

import json
import re

import pytest

from perturbations import Item, get_transform, parse_spec, perturb
from perturbations.realism import (PUBLISHED_RATES, build_reference_profile,
                                   errors_per_100_words, load_profile, measure, preset_table,
                                   realistic_severity, reference_corpora, stats_of_spec)
from perturbations.realism.anchors import CHARS_PER_WORD
from perturbations.realism.fit import clean_questions
from perturbations.spec import SEVERITY_PRESETS
from perturbations.transforms.profile_file import REFERENCE_PROFILE
from perturbations.transforms.profiles import TYPED_PROFILES


def test_published_rates_in_errors_per_100_words() -> None:
    for study in PUBLISHED_RATES:
        per_100 = study["uncorrected_char_rate"] * CHARS_PER_WORD * 100
        assert per_100 == pytest.approx(study["errors_per_100_words"], abs=0.1)
    assert {s["people"] for s in PUBLISHED_RATES} == {168_000, 37_370}


def test_stress_levels_keep_their_numbers() -> None:
    assert dict(SEVERITY_PRESETS) == {"low": 0.2, "medium": 0.5, "high": 0.8}


def test_low_typos_sit_at_the_typing_test_rate_and_realistic_far_below() -> None:
    clean = list(clean_questions())
    low = stats_of_spec("typos@low", clean, replicates=3).typos_per_100
    dhakal, palin = (s["errors_per_100_words"] for s in PUBLISHED_RATES)
    assert dhakal * 0.8 <= low <= palin                      # low = a typing test, not a chat
    realistic = stats_of_spec("typos@realistic", clean, replicates=3).typos_per_100
    real = measure([m for t in reference_corpora().values() for m in t]).typos_per_100
    assert realistic <= 2 * real and realistic < low / 3


def test_realistic_is_per_transform_and_composes() -> None:
    spec = parse_spec("slang+typos@realistic")
    assert spec.severity_label == "realistic"
    assert [p.severity for p in spec.parts] == [realistic_severity("slang"),
                                                realistic_severity("typos")]
    assert realistic_severity("synonyms") == SEVERITY_PRESETS["low"]    # no anchor
    v = perturb(Item(id="a", input="Hello, how are you doing today?", target="x"), "typos",
                severity="realistic", seed=0)
    assert v.severity == realistic_severity("typos") and v.severity_label == "realistic"


def test_reference_profile_is_up_to_date() -> None:
    shipped = json.loads(REFERENCE_PROFILE.read_text(encoding="utf-8"))
    assert build_reference_profile().to_dict() == shipped
    assert load_profile(REFERENCE_PROFILE).label_policy == "preserves"


def test_preset_table_rows() -> None:
    rows = preset_table(["typos", "profile"], replicates=1)
    typos = rows[0]
    assert typos["realistic_per_100"] < typos["low_per_100"] < typos["medium_per_100"] \
        < typos["high_per_100"]
    assert rows[1]["realistic"] == 0.1 and "fitted" in rows[1]["source"]
    assert errors_per_100_words("typos@0") == 0.0


@pytest.mark.parametrize("name", TYPED_PROFILES)
def test_typed_profiles_have_no_spoken_parts_or_tabs(name: str) -> None:
    cls = get_transform(name)
    assert not {p.transform for p in cls.PARTS} & {"fillers", "homophones"}
    for part in cls.PARTS:
        assert not (part.transform == "whitespace" and part.options.get("mode") != "double")
    for i, text in enumerate(clean_questions()):
        out = perturb(Item(id=f"q{i}", input=text, target="x"), f"{name}@high", seed=0).item.input
        assert "\t" not in out and "\n" not in out
        assert not re.search(r"\b(um|uh)\b", out)


def test_customer_chat_asides_on_a_share_only() -> None:
    clean = list(clean_questions())
    longer = sum(len(perturb(Item(id=f"q{i}", input=t, target="x"), "customer_chat@high",
                             seed=0).item.input.split()) > len(t.split()) + 3
                 for i, t in enumerate(clean))
    assert 0.1 * len(clean) <= longer <= 0.45 * len(clean)


def test_non_native_whitespace_on_a_few_items() -> None:
    clean = list(clean_questions())
    outs = [perturb(Item(id=f"q{i}", input=t, target="x"), "non_native@high", seed=0).item.input
            for i, t in enumerate(clean)]
    odd = measure(outs).whitespace_share
    assert 0 < odd <= 0.3
