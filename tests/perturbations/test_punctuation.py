"""Behaviour of the ``punctuation`` transform."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perturbations import ConfigError, Item
from perturbations.text import protected_spans
from perturbations.transforms.punctuation import DROPPABLE, Punctuation
from tests.perturbations.helpers import assert_edit_rate_rises

_MARKS = ",.?!;"
TEXT = ("Hi, if a shirt costs $12.50, and you buy 1,200 of them, e.g. for a shop, how much "
        "is that? See example.com: choose (A) or (B)! Thanks.")


def corpus(n: int = 200) -> list[str]:
    """``n`` realistic punctuated questions (a local RNG)."""
    rng = random.Random("punctuation-corpus")
    parts = ["Hi there,", "Well,", "Honestly,", "Quick question:", "Hello!"]
    bodies = ["what is the capital of Peru, and is it far from the coast?",
              "how do I cancel my order, or is it too late?",
              "why is the sky blue; is it the same on Mars?",
              "can you explain compound interest, please? I need it for class.",
              "which is heavier, a kilogram of steel or a kilogram of feathers?"]
    return [f"{rng.choice(parts)} {rng.choice(bodies)}" for _ in range(n)]


def run(text: str, severity: float, seed: int = 0, **options: str) -> str:
    return Punctuation(**options).perturb_text(text, severity, random.Random(seed),
                                               protected_spans(text))


def strip_marks(text: str) -> str:
    return "".join(c for c in text if c not in _MARKS)


def test_drop_at_full_severity_removes_sentence_marks_only() -> None:
    out = run(TEXT, 1.0, mode="drop")
    assert out == ("Hi if a shirt costs $12.50 and you buy 1,200 of them e.g for a shop how "
                   "much is that See example.com: choose (A) or (B) Thanks")


def test_drop_only_deletes_droppable_marks() -> None:
    for seed in range(30):
        out = run(TEXT, 0.5, seed, mode="drop")
        assert strip_marks(out) == strip_marks(TEXT)
        assert len(out) < len(TEXT)
        # the output is the input with some characters deleted, each a droppable mark
        i = 0
        removed = []
        for c in TEXT:
            if i < len(out) and out[i] == c:
                i += 1
            else:
                removed.append(c)
        assert i == len(out) and removed and set(removed) <= DROPPABLE


def test_protected_numbers_and_tokens_keep_their_marks() -> None:
    for mode in ("drop", "add", "mix"):
        for seed in range(30):
            out = run(TEXT, 1.0, seed, mode=mode)
            for piece in ("$12.50", "1,200", "example.com", "(A)", "(B)", "e.g"):
                assert piece in out, (mode, piece, out)
            assert ":" in out  # colons carry structure and are kept


def test_add_only_inserts_marks_and_repeats_the_final_one() -> None:
    text = "Where is the nearest train station from the old city centre?"
    endings = set()
    for seed in range(40):
        out = run(text, 1.0, seed, mode="add")
        assert strip_marks(out) == strip_marks(text)
        assert len(out) > len(text)
        endings.add(re.search(r"[?!.]+$", out).group())
    assert endings <= {"??", "???", "?!", "?!?"} and len(endings) > 1


def test_add_rate_of_stray_marks() -> None:
    texts = corpus(200)
    slots = sum(len(re.findall(r"[A-Za-z](?= )", t)) for t in texts)  # word ends before a space
    stray = 0
    for i, t in enumerate(texts):
        out = run(t, 0.8, seed=i, mode="add")
        stray += len(re.findall(r"[A-Za-z](?:,|\.{1,3})(?= )", out)) - \
            len(re.findall(r"[A-Za-z](?:,|\.{1,3})(?= )", t))
    assert stray / slots == pytest.approx(0.25 * 0.8, abs=0.03)


def test_mix_both_drops_and_adds() -> None:
    dropped = added = 0
    for i, t in enumerate(corpus(100)):
        out = run(t, 0.8, seed=i, mode="mix")
        dropped += sum(1 for c in _MARKS if out.count(c) < t.count(c))
        added += sum(1 for c in _MARKS if out.count(c) > t.count(c))
    assert dropped > 20 and added > 20


def test_marks_inside_words_and_colons_never_dropped() -> None:
    text = "Note: visit www.example.org, e.g. at 10:30, ok?"
    out = run(text, 1.0, mode="drop")
    assert out == "Note: visit www.example.org e.g at 10:30 ok"


@pytest.mark.parametrize("mode", ["drop", "add", "mix"])
def test_edit_rate_grows_with_severity(mode: str) -> None:
    texts = corpus(200)
    assert_edit_rate_rises(texts, lambda t, s, i: run(t, s, seed=i, mode=mode))


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match="mode"):
        Punctuation(mode="shout")


def test_identity_at_zero_and_mark_only_text_stays_valid() -> None:
    item = Item(id="p", input="Why?", target="x")
    t = Punctuation()
    assert t.apply(item, 0.0, random.Random(0)) is item
    only = Item(id="q", input="?!", target="x")
    assert t.apply(only, 1.0, random.Random(0)).input == "?!"  # never an empty text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(min_size=1, max_size=80), severity=st.floats(0.05, 1.0),
       mode=st.sampled_from(["drop", "add", "mix"]))
def test_arbitrary_unicode_changes_marks_only(text: str, severity: float, mode: str) -> None:
    out = run(text, severity, mode=mode)
    assert strip_marks(out) == strip_marks(text)


# Golden cases for issue 15: numbers with a leading dot lost their point.
@pytest.mark.parametrize("text,number", [("You get $.20 cashback.", "$.20"),
                                          ("It takes .5 hours, not 5.", ".5"),
                                          ("It costs 1,000.50 dollars.", "1,000.50")])
def test_leading_dot_numbers_keep_their_point(text: str, number: str) -> None:
    for seed in range(10):
        for mode in ("drop", "mix"):
            assert number in run(text, 1.0, seed, mode=mode)
