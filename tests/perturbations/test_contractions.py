"""Behaviour of the ``contractions`` transform and its table."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perturbations import ConfigError, Item
from perturbations.text import protected_spans
from perturbations.transforms.contractions import Contractions, table
from tests.perturbations.helpers import assert_edit_rate_rises


def corpus(n: int = 200) -> list[str]:
    """``n`` realistic sentences with long forms to contract (a local RNG)."""
    rng = random.Random("contractions-corpus")
    first = ["I do not know", "It is not clear", "We are not sure", "They have not decided",
             "She does not remember", "You will not believe", "He is not certain"]
    second = ["what it is", "whether it is true", "why they are late",
              "if we would have been there", "where the station is", "how it will end"]
    return [f"{rng.choice(first)} {rng.choice(second)}, and I am asking what is going on."
            for _ in range(n)]


def run(text: str, severity: float, seed: int = 0, phrases: tuple[str, ...] = (),
        **options: str) -> str:
    return Contractions(**options).perturb_text(text, severity, random.Random(seed),
                                                protected_spans(text, phrases))


@pytest.mark.parametrize("text,expected", [
    ("I do not know.", "I don't know."),
    ("Do not go. DO NOT GO.", "Don't go. DON'T GO."),
    ("It is late and I am tired.", "It's late and I'm tired."),
    ("I know what it is.", "I know what it is."),                # no contraction at clause end
    ("I have a cat but I have been away.", "I have a cat but I've been away."),
    ("You should have asked. I have never seen it.", "You should've asked. I've never seen it."),
    ("We cannot say it will not work.", "We can't say it won't work."),
    ("Is it not what they are looking for?", "Is it not what they're looking for?"),
])
def test_contract_examples(text: str, expected: str) -> None:
    assert run(text, 1.0) == expected


@pytest.mark.parametrize("text,expected", [
    ("It's been raining and it's red.", "It has been raining and it is red."),
    ("He'd gone, he'd go, he'd better stop.", "He had gone, he would go, he had better stop."),
    ("I'd never seen it; I'd never do it.", "I had never seen it; I would never do it."),
    ("Can't you see? I won't.", "Cannot you see? I will not."),
    ("DON'T panic, it's fine.", "DO NOT panic, it is fine."),
    ("I'm sure you're right, let's go.", "I am sure you are right, let us go."),
    ("She's already had lunch.", "She has already had lunch."),
    ("That’s how it’s done.", "That is how it is done."),
])
def test_expand_examples(text: str, expected: str) -> None:
    assert run(text, 1.0, mode="expand") == expected


def test_round_trip_on_unambiguous_sentences() -> None:
    text = "I do not think it is ready, and they are not here, so we will wait."
    short = run(text, 1.0)
    assert short == "I don't think it's ready, and they aren't here, so we'll wait."
    assert run(short, 1.0, mode="expand") == text


def test_curly_apostrophes_are_kept_in_style() -> None:
    assert run("It’s sure that I do not know.", 1.0) == "It’s sure that I don’t know."
    assert run("I do not know.", 1.0) == "I don't know."


def test_table_is_consistent() -> None:
    tab = table()
    assert len(tab.contract) >= 50 and len(tab.expand) >= 50
    for long, short in tab.contract.items():
        assert short in tab.expand, short                 # every contraction can be expanded
        assert "'" in short and "'" not in long
    for key in tab.needs_next_word | tab.needs_participle:
        assert key in tab.contract
    assert tab.expand["it's"] == ("it is", "it has")
    assert tab.expand["can't"] == ("cannot", None)


def test_share_of_candidates_follows_severity() -> None:
    text = " ".join(["they do not care."] * 10)
    for severity in (0.2, 0.5, 0.8):
        changed = [run(text, severity, seed, mode="contract").count("don't")
                   for seed in range(200)]
        assert statistics.fmean(changed) / 10 == pytest.approx(severity, abs=0.03)


def test_protected_phrases_and_numbers_are_left_alone() -> None:
    text = "Do not disturb means what it is. Is one not enough? It is 3 or it is not."
    for seed in range(10):
        out = run(text, 1.0, seed, phrases=("Do not disturb",))
        assert out.startswith("Do not disturb") and "one not" in out and "3" in out


@pytest.mark.parametrize("mode", ["contract", "expand"])
def test_edit_rate_grows_with_severity(mode: str) -> None:
    texts = corpus(200)
    if mode == "expand":
        texts = [run(t, 1.0) for t in texts]
    assert_edit_rate_rises(texts, lambda t, s, i: run(t, s, seed=i, mode=mode))


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match="mode"):
        Contractions(mode="both")


def test_identity_at_zero_and_without_candidates() -> None:
    item = Item(id="c", input="I do not know.", target="x")
    t = Contractions()
    assert t.apply(item, 0.0, random.Random(0)) is item
    assert run("The sky is blue.", 1.0) == "The sky is blue."


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(min_size=1, max_size=80), severity=st.floats(0.05, 1.0),
       mode=st.sampled_from(["contract", "expand"]))
def test_arbitrary_unicode_never_raises(text: str, severity: float, mode: str) -> None:
    assert isinstance(run(text, severity, mode=mode), str)
