"""choice_shuffle: a permutation of the options, the gold option text preserved."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perturbations import Item, perturb
from perturbations.transforms.choice_shuffle import ChoiceShuffle, displacement

ITEM = Item(id="mc", task="multiple_choice", input="Which planet is red?",
            choices=("Venus", "Mars", "Jupiter", "Saturn", "Mercury"), target="B")


def _gold(item: Item) -> str:
    return item.choices[ord(item.target) - ord("A")]


@pytest.mark.parametrize("severity", [0.2, 0.5, 0.8, 1.0])
def test_gold_text_preserved_and_all_options_kept(severity: float) -> None:
    for seed in range(30):
        out = ChoiceShuffle().apply(ITEM, severity, random.Random(seed))
        assert sorted(out.choices) == sorted(ITEM.choices)
        assert _gold(out) == "Mars"
        assert out.input == ITEM.input and out.task == ITEM.task


def test_full_severity_moves_every_option() -> None:
    for seed in range(20):
        out = ChoiceShuffle().apply(ITEM, 1.0, random.Random(seed))
        assert all(a != b for a, b in zip(out.choices, ITEM.choices))


def test_severity_is_share_of_displaced_options() -> None:
    def moved(sev: float) -> float:
        runs = [ChoiceShuffle().apply(ITEM, sev, random.Random(s)) for s in range(200)]
        return sum(sum(a != b for a, b in zip(r.choices, ITEM.choices)) for r in runs) / 200
    low, mid = moved(0.2), moved(0.5)
    assert low == 2.0  # 5 * 0.2 = 1 option, but a lone option cannot move: raised to 2
    assert 2.2 <= mid <= 2.8
    assert moved(1.0) == 5


@settings(max_examples=100, deadline=None)
@given(n=st.integers(2, 26), severity=st.floats(0, 1), seed=st.integers(0, 2 ** 32))
def test_displacement_is_a_permutation(n: int, severity: float, seed: int) -> None:
    perm = displacement(n, severity, random.Random(seed))
    assert sorted(perm) == list(range(n))
    moved = sum(i != p for i, p in enumerate(perm))
    assert moved == 0 or moved >= 2


def test_items_without_choices_and_severity_zero_are_untouched() -> None:
    plain = Item(id="q", input="What is two plus two?", target="4")
    assert ChoiceShuffle().apply(plain, 1.0, random.Random(0)) is plain
    assert ChoiceShuffle().apply(ITEM, 0.0, random.Random(0)) is ITEM


def test_text_target_is_left_alone() -> None:
    item = Item(id="c", input="Pick the label.", target="refund", task="classification",
                choices=("billing", "refund", "other"))
    out = ChoiceShuffle().apply(item, 1.0, random.Random(0))
    assert out.target == "refund" and sorted(out.choices) == sorted(item.choices)


def test_duplicate_option_texts_still_track_the_gold_position() -> None:
    item = Item(id="d", task="multiple_choice", input="?", choices=("x", "x", "y"), target="C")
    for seed in range(10):
        out = ChoiceShuffle().apply(item, 1.0, random.Random(seed))
        assert _gold(out) == "y"


def test_through_the_engine_policy_is_remaps() -> None:
    v = perturb(ITEM, "choice_shuffle@high", seed=4)
    assert v.label_policy == "remaps" and v.changed and _gold(v.item) == "Mars"
    assert ITEM.choices == ("Venus", "Mars", "Jupiter", "Saturn", "Mercury")


# Golden cases for issue 15: options that refer to other options.
def test_all_of_the_above_stays_last() -> None:
    item = Item(id="a", task="multiple_choice", input="Which are mammals?", target="D",
                choices=("Whale", "Bat", "Dolphin", "All of the above"))
    for seed in range(30):
        out = ChoiceShuffle().apply(item, 1.0, random.Random(seed))
        assert out.choices[-1] == "All of the above" and out.target == "D"
        assert out.choices != item.choices


def test_options_that_name_others_by_letter_keep_their_meaning() -> None:
    item = Item(id="b", task="multiple_choice", input="Which statement holds?", target="C",
                choices=("Prices rise", "Wages rise", "Both (a) and (b)", "Neither",
                         "Taxes fall"))
    for seed in range(30):
        out = ChoiceShuffle().apply(item, 1.0, random.Random(seed))
        assert out.choices[:3] == item.choices[:3] and out.target == "C"
    assert ChoiceShuffle().notes(item, 1.0) == ("pinned: options name other options by letter",)


def test_items_that_name_options_in_the_question_are_left_alone() -> None:
    item = Item(id="c", task="multiple_choice", input="Is option B the largest?", target="A",
                choices=("yes", "no", "unsure"))
    assert ChoiceShuffle().apply(item, 1.0, random.Random(0)) is item
    assert ChoiceShuffle().cannot_apply(item, 1.0) == \
        "kept in place: the question names options by letter"
    assert ChoiceShuffle().cannot_apply(Item(id="d", input="?", target="x"), 1.0) == \
        "item has no choices"
