"""truncation: every mode keeps a prefix (or a subset of sentences) of the original."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perturbations import Item, perturb
from perturbations.transforms.truncation import Truncation, clause_starts, split_sentences

TEXT = ("Sarah bought 3 packs of pencils with 12 pencils in each pack, and then she gave "
        "7 pencils to her brother. How many pencils does she have left?")
WORDS = re.findall(r"\w+", TEXT)
CONTEXT = ("The city library opens at 9 a.m. on weekdays. On Sundays it opens at noon. "
           "Students can borrow up to 5 books. Late returns cost a small fee.")


def _cut(text: str, mode: str, severity: float, seed: int = 0) -> str:
    item = Item(id="t", input=text, target="x")
    return Truncation(mode=mode).apply(item, severity, random.Random(seed)).input


@pytest.mark.parametrize("severity", [0.2, 0.5, 0.8, 1.0])
def test_tail_keeps_a_prefix_of_whole_words(severity: float) -> None:
    for seed in range(10):
        out = _cut(TEXT, "tail", severity, seed)
        assert TEXT.startswith(out)
        kept = re.findall(r"\w+", out)
        assert kept == WORDS[:len(kept)]
        assert out[-1].isalnum()  # cut right after a word, never mid-word
        assert len(kept) >= 2
        # severity is the share of words cut (stochastic rounding: within one word)
        assert abs((len(WORDS) - len(kept)) - severity * len(WORDS)) <= 1 or len(kept) == 2


def test_tail_at_full_severity_keeps_two_words_and_one_for_short_texts() -> None:
    assert _cut(TEXT, "tail", 1.0) == "Sarah bought"
    assert _cut("Capital of France?", "tail", 1.0) == "Capital"


def test_midword_ends_inside_a_word() -> None:
    hits = 0
    for seed in range(20):
        out = _cut(TEXT, "midword", 0.5, seed)
        assert TEXT.startswith(out) and out != TEXT
        last = re.findall(r"\w+", out)[-1]
        full = WORDS[len(re.findall(r"\w+", out)) - 1]
        assert full.startswith(last)
        hits += last != full
    assert hits >= 15  # one-letter words ("a") are the only ones cut whole


def test_clause_drops_trailing_clauses_and_keeps_question_mark() -> None:
    text = "What is the capital city of Australia, which is not Sydney as many people think?"
    assert _cut(text, "clause", 1.0) == "What is the capital city of Australia?"
    out = _cut(TEXT, "clause", 1.0)
    assert out == "Sarah bought 3 packs of pencils with 12 pencils in each pack"


def test_clause_starts_positions() -> None:
    text = "Tell me which one is bigger, and why, so that I know. Thanks a lot."
    cuts = clause_starts(text)
    # ", and" is a single boundary; "so that" starts at "so"; the next sentence is one too
    assert cuts == [text.index("which"), text.index(", and"), text.index(", so"),
                    text.index("Thanks")]


def test_clause_without_clauses_falls_back_to_tail() -> None:
    out = _cut("Where do penguins live", "clause", 1.0)
    assert out == "Where do"


def test_context_mode_drops_whole_sentences_and_keeps_input() -> None:
    item = Item(id="c", input="Is the library open on Sunday?", target="yes", context=CONTEXT)
    sentences = [s.strip() for s in split_sentences(CONTEXT)]
    assert len(sentences) == 4  # "9 a.m. on" is not a sentence break
    for seed in range(10):
        out = Truncation(mode="context").apply(item, 0.5, random.Random(seed))
        assert out.input == item.input
        kept = [s.strip() for s in split_sentences(out.context)]
        assert 1 <= len(kept) < 4
        assert kept == [s for s in sentences if s in kept]  # order kept, nothing rewritten
    out = Truncation(mode="context").apply(item, 1.0, random.Random(0))
    assert len(split_sentences(out.context)) == 1


def test_context_mode_without_context_is_a_no_op() -> None:
    item = Item(id="c", input="Is the library open?", target="yes")
    assert Truncation(mode="context").apply(item, 1.0, random.Random(0)) is item


def test_spec_and_policy() -> None:
    v = perturb(Item(id="q", input=TEXT, target="29"), "truncation:mode=clause@high", seed=3)
    assert v.label_policy == "may_break" and v.changed and v.item.target == "29"


@settings(max_examples=60, deadline=None)
@given(text=st.text(min_size=1, max_size=80).filter(lambda s: s.strip()),
       mode=st.sampled_from(["tail", "midword", "clause", "context"]),
       severity=st.floats(0, 1))
def test_never_empty_and_always_a_prefix(text: str, mode: str, severity: float) -> None:
    item = Item(id="h", input=text, target="x", context=text)
    out = Truncation(mode=mode).apply(item, severity, random.Random(1))
    assert out.input.strip() and (out.context or "").strip()
    if mode in ("tail", "midword"):
        assert text.startswith(out.input)
