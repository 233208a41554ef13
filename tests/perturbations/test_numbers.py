"""numbers: digits spelled out exactly, everything else left alone."""

from __future__ import annotations

import random

import pytest

from perturbations import Item, perturb
from perturbations.transforms.numbers import (Numbers, int_to_words, number_to_words,
                                              ordinal_words, year_words)

CARDINALS = {
    0: "zero", 1: "one", 3: "three", 11: "eleven", 15: "fifteen", 20: "twenty",
    25: "twenty-five", 40: "forty", 99: "ninety-nine", 100: "one hundred",
    101: "one hundred one", 110: "one hundred ten", 342: "three hundred forty-two",
    1000: "one thousand", 1001: "one thousand one", 1200: "one thousand two hundred",
    20000: "twenty thousand", 65536: "sixty-five thousand five hundred thirty-six",
    100000: "one hundred thousand",
    999999: "nine hundred ninety-nine thousand nine hundred ninety-nine",
    1000000: "one million", 2500000: "two million five hundred thousand",
    3000000000: "three billion",
}


@pytest.mark.parametrize("value,words", sorted(CARDINALS.items()))
def test_int_to_words_table(value: int, words: str) -> None:
    assert int_to_words(value) == words


def test_int_to_words_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        int_to_words(-1)
    with pytest.raises(ValueError):
        int_to_words(10 ** 15)


@pytest.mark.parametrize("value,words", [
    (1, "first"), (2, "second"), (3, "third"), (4, "fourth"), (5, "fifth"), (8, "eighth"),
    (9, "ninth"), (12, "twelfth"), (20, "twentieth"), (21, "twenty-first"),
    (33, "thirty-third"), (100, "one hundredth"), (112, "one hundred twelfth"),
])
def test_ordinals(value: int, words: str) -> None:
    assert ordinal_words(value) == words


@pytest.mark.parametrize("value,words", [
    (1813, "eighteen thirteen"), (1999, "nineteen ninety-nine"), (1905, "nineteen oh five"),
    (1900, "nineteen hundred"), (2000, "two thousand"), (2007, "two thousand seven"),
    (2019, "twenty nineteen"),
])
def test_years(value: int, words: str) -> None:
    assert year_words(value) == words


@pytest.mark.parametrize("text,words", [
    ("3", "three"), ("1,200", "one thousand two hundred"), ("3.5", "three point five"),
    ("0.25", "zero point two five"), ("15%", "fifteen percent"),
    ("2.5%", "two point five percent"), ("$4.50", "four dollars and fifty cents"),
    ("$1", "one dollar"), ("$0.99", "ninety-nine cents"), ("£2.01", "two pounds and one penny"),
    ("€3", "three euros"), ("-5", "minus five"), ("22nd", "twenty-second"), ("3rd", "third"),
])
def test_number_expressions(text: str, words: str) -> None:
    assert number_to_words(text) == words


@pytest.mark.parametrize("text", ["3:30", "1/2", "007", "1,2,3", "2019-05-01", "3th", "1,00",
                                  "$4.5"])
def test_shapes_left_alone(text: str) -> None:
    assert number_to_words(text) is None


def _apply(text: str, severity: float = 1.0, seed: int = 0, **meta) -> str:
    item = Item(id="n", input=text, target="x", metadata=meta)
    return Numbers().apply(item, severity, random.Random(seed)).input


def test_sentence_converted_in_place() -> None:
    text = "Sarah bought 3 packs with 12 pencils each and paid $4.50, a 15% discount on 1,200."
    assert _apply(text) == ("Sarah bought three packs with twelve pencils each and paid four "
                            "dollars and fifty cents, a fifteen percent discount on one "
                            "thousand two hundred.")


def test_year_after_cue_and_sentence_start_capitalised() -> None:
    assert _apply("Published in 1813. 7 copies survive.") == \
        "Published in eighteen thirteen. Seven copies survive."


def test_times_dates_codes_and_words_with_digits_unchanged() -> None:
    text = "Meet at 3:30 on 2019-05-01 with agent 007, bring the B12 and COVID19 files."
    assert _apply(text) == text


def test_number_inside_declared_phrase_is_kept() -> None:
    out = _apply("Drive Route 66 for 5 miles.", protect=["Route 66"])
    assert out == "Drive Route 66 for five miles."


def test_severity_is_share_of_numbers_converted() -> None:
    text = " ".join(str(n) for n in range(10, 30)) + " apples"
    converted = []
    for seed in range(20):
        out = _apply(text, severity=0.5, seed=seed)
        converted.append(sum(1 for tok in out.split() if not tok.isdigit()) - 1)
    mean = sum(converted) / len(converted)
    assert 8 <= mean <= 12  # 20 numbers at 0.5
    assert _apply(text, severity=0.0) == text


def test_registered_policy_and_flag() -> None:
    v = perturb(Item(id="q", input="Add 2 and 2.", target="4"), "numbers@high", seed=1)
    assert v.label_policy == "preserves" and v.item.target == "4"
    assert Numbers.touches_protected is True
