"""Behaviour of the ``whitespace`` transform."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perturbations import ConfigError, Item
from perturbations.text import protected_spans
from perturbations.transforms.whitespace import GAP_RATE, Whitespace
from tests.perturbations.helpers import assert_edit_rate_rises


def corpus(n: int = 200) -> list[str]:
    """``n`` realistic questions (a local RNG)."""
    rng = random.Random("whitespace-corpus")
    starts = ["What is", "Can you tell me", "Do you know", "Please explain"]
    ends = ["the tallest mountain in South America?", "why bread goes stale so quickly?",
            "how many bones an adult human has?", "where the nearest post office is?",
            "what the weather will be like on Saturday afternoon?"]
    return [f"{rng.choice(starts)} {rng.choice(ends)}" for _ in range(n)]


def run(text: str, severity: float, seed: int = 0, phrases: tuple[str, ...] = (),
        **options: str) -> str:
    return Whitespace(**options).perturb_text(text, severity, random.Random(seed),
                                              protected_spans(text, phrases))


def squash(text: str) -> str:
    return "".join(text.split())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(min_size=1, max_size=120), severity=st.floats(0.0, 1.0),
       seed=st.integers(0, 2**32), mode=st.sampled_from(["extra", "merge", "mix"]))
def test_non_space_characters_are_preserved(text: str, severity: float, seed: int,
                                            mode: str) -> None:
    assert squash(run(text, severity, seed, mode=mode)) == squash(text)


@settings(max_examples=100, deadline=None)
@given(words=st.lists(st.from_regex(r"[A-Za-z]{1,8}", fullmatch=True), min_size=2, max_size=25),
       severity=st.floats(0.05, 1.0), seed=st.integers(0, 2**32))
def test_invariant_on_word_lists(words: list[str], severity: float, seed: int) -> None:
    text = " ".join(words)
    for mode in ("extra", "merge", "mix"):
        assert squash(run(text, severity, seed, mode=mode)) == squash(text)


def test_extra_only_adds_whitespace_between_words() -> None:
    text = corpus(1)[0]
    for seed in range(30):
        out = run(text, 1.0, seed, mode="extra")
        assert out.split() == text.split()
        assert len(out) > len(text)
        assert set(out) - set(text) <= {"\t", "\n"}
        assert not out[0].isspace() and not out[-1].isspace()


def test_merge_runs_two_words_together_never_three() -> None:
    text = "please tell me about the history of the old castle near the river bank today"
    for seed in range(30):
        out = run(text, 1.0, seed, mode="merge")
        assert squash(out) == squash(text)
        assert len(out.split()) < len(text.split())
        originals = text.split()
        for chunk in out.split():
            # each chunk is one word or two original words joined
            i = 0
            n = 0
            while i < len(chunk):
                word = next(w for w in originals if chunk.startswith(w, i))
                i += len(word)
                n += 1
            assert n <= 2, (chunk, out)


def test_merge_never_touches_protected_tokens() -> None:
    text = "Is the answer 3 apples or three pears or option (B) in New South Wales today?"
    for seed in range(30):
        for mode in ("merge", "mix", "extra"):
            out = run(text, 1.0, seed, phrases=("New South Wales",), mode=mode)
            assert re.search(r"\s3\s", out) and re.search(r"\sthree\s", out)
            assert "New South Wales" in out and re.search(r"\s\(B\)\s", out)


def test_share_of_gaps_matches_the_documented_rate() -> None:
    texts = corpus(200)
    for severity in (0.2, 0.8):
        gaps = changed = 0
        for i, t in enumerate(texts):
            out = run(t, severity, seed=i, mode="extra")
            gaps += t.count(" ")
            changed += len(re.findall(r"\s{2,}|\t|\n", out))
        assert changed / gaps == pytest.approx(GAP_RATE * severity, abs=0.03)


def test_mix_both_merges_and_widens() -> None:
    merged = widened = 0
    for i, t in enumerate(corpus(100)):
        out = run(t, 0.8, seed=i, mode="mix")
        merged += len(t.split()) - len(out.split())
        widened += len(re.findall(r"\s{2,}|\t|\n", out))
    assert merged > 30 and widened > 30


@pytest.mark.parametrize("mode", ["extra", "merge", "mix"])
def test_edit_rate_grows_with_severity(mode: str) -> None:
    texts = corpus(200)
    assert_edit_rate_rises(texts, lambda t, s, i: run(t, s, seed=i, mode=mode))


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match="mode"):
        Whitespace(mode="squeeze")


def test_identity_at_zero_and_single_word() -> None:
    item = Item(id="w", input="Hello", target="x")
    t = Whitespace()
    assert t.apply(item, 0.0, random.Random(0)) is item
    assert t.apply(item, 1.0, random.Random(0)).input == "Hello"


def test_double_only_doubles_spaces() -> None:
    for i, t in enumerate(corpus(50)):
        out = run(t, 1.0, seed=i, mode="double")
        assert "\t" not in out and "\n" not in out
        assert out.split() == t.split() and len(out) > len(t)
        assert "   " not in out
