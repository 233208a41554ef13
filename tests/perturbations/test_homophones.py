"""homophones: sound-alike swaps, never number words; transcript style at high severity."""

from __future__ import annotations

import random
import re

import pytest

from perturbations import Item, perturb
from perturbations.text import NUMBER_WORDS
from perturbations.transforms.homophones import Homophones, homophone_table, transcript_rate

TEXT = "I think their dog is over there, and it's too late to know whether it's right."


def _run(text: str, severity: float, seed: int = 0, **meta) -> str:
    return Homophones().apply(Item(id="h", input=text, target="x", metadata=meta), severity,
                              random.Random(seed)).input


def test_table_is_symmetric_and_free_of_number_words() -> None:
    table = homophone_table()
    assert set(table["their"]) == {"there", "they're"}
    assert table["to"] == ("too",)
    for word, others in table.items():
        assert word not in NUMBER_WORDS and not set(others) & NUMBER_WORDS
        for other in others:
            assert word in table[other]


def test_swaps_at_half_severity_keep_punctuation_and_stay_in_group() -> None:
    table = homophone_table()
    for seed in range(10):
        out = _run(TEXT, 0.5, seed)
        a, b = TEXT.split(), out.split()
        assert len(a) == len(b)
        swaps = [(x, y) for x, y in zip(a, b) if x != y]
        assert swaps
        for x, y in swaps:
            x, y = x.strip(",."), y.strip(",.")
            assert y.lower() in table[x.lower()]
        assert re.sub(r"[\w'’]", "", out) == re.sub(r"[\w'’]", "", TEXT)


def test_two_is_never_produced_and_number_words_never_swapped() -> None:
    text = "I want to go too, and two of us won one prize."
    for seed in range(20):
        out = _run(text, 1.0, seed)
        assert out.count("two") == 1 and " one " in out and " won " in out


def test_case_and_curly_apostrophe_kept() -> None:
    outs = {_run("Their car. It’s red", 0.5, s) for s in range(20)}
    assert any(o.startswith(("There ", "They're ")) for o in outs)
    assert any("Its red" in o for o in outs)
    assert all("It's" not in o for o in outs)  # a curly apostrophe stays curly


def test_transcript_rate_ramp() -> None:
    assert transcript_rate(0.2) == transcript_rate(0.5) == 0
    assert abs(transcript_rate(0.8) - 0.6) < 1e-9 and transcript_rate(1.0) == 1


def test_full_severity_is_a_raw_transcript() -> None:
    out = _run("Hello, Mr. Smith! Is the price $4.50? I'm sure, it is fine.", 1.0)
    assert out == "hello mr smith is the price $4.50 I'm sure it is fine"
    # protected spans keep their punctuation and case: the option letter "B)" survives
    out = _run("Is it (B)? Or maybe C.", 1.0)
    assert "(B)" in out and out.endswith("or maybe c")


def test_policy_preserves() -> None:
    v = perturb(Item(id="q", input=TEXT, target="x"), "homophones@high", seed=0)
    assert v.label_policy == "preserves" and v.changed


# Golden cases for issue 15.
def test_negations_and_deciding_words_are_never_swapped() -> None:
    table = homophone_table()
    for word in ("not", "knot", "no", "know", "except", "accept", "than", "then", "cents",
                 "sense", "hour", "our"):
        assert word not in table, word
    text = "Which of these does NOT grow, and why not? All EXCEPT one, or more than that?"
    for seed in range(30):
        out = _run(text, 1.0, seed)
        for kept in ("NOT", "not", "EXCEPT", "than", "one"):
            assert re.search(rf"\b{kept}\b", out), (kept, out)
        assert "knot" not in out.lower() and "accept" not in out.lower()


def test_names_inside_a_sentence_are_not_swapped() -> None:
    for seed in range(20):
        out = _run("Is the Great Wall near the Sun Palace?", 1.0, seed).lower()
        assert "great wall" in out and "sun palace" in out, out


@pytest.mark.parametrize("text,number", [("It takes .5 hours, right?", ".5"),
                                          ("You get $.20 cashback.", "$.20"),
                                          ("It fell to -3 degrees.", "-3"),
                                          ("I have twenty-five cards.", "twenty-five")])
def test_leading_dot_and_signed_numbers_survive_the_transcript(text: str, number: str) -> None:
    for seed in range(10):
        assert number in _run(text, 1.0, seed)
