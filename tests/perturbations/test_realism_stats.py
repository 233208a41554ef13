"""realism.stats: what counts as a typo, a name, a contraction, a chat form ..."""

from __future__ import annotations

import pytest

from perturbations.realism import STAT_FIELDS, TrafficStats, measure
from perturbations.realism.stats import message_facts
from perturbations.realism.wordlist import british_variants, is_known


def facts(text: str, names=frozenset()) -> dict:
    return message_facts(text, names)


@pytest.mark.parametrize("text,typos", [
    ("Please reset my password.", 0),
    ("Plese reset my pasword.", 2),
    ("I paid at Chipotle with my iPhone on Tuesday.", 0),   # name, mixed case, capitalised
    ("Shakira is great.", 1),                                # sentence start is checked ...
    ("my card from AMC was declined", 0),                    # acronym
    ("PLEAE TELL ME ABOUT INDAI", 2),                        # shouting: every word checked
    ("email me at jo.smith@example.com or see www.examp1e.com", 0),
    ("the 2nd payment at 5pm, ref 12ab", 0),
    ("my favourite colour is grey and I realise it", 0),     # British spellings
    ("idk why u charged me, pls fix, dont ignore", 0),       # chat forms are not typos
    ("call xxxx now", 0),                                    # placeholders
])
def test_typo_count(text: str, typos: int) -> None:
    assert facts(text)["typos"] == typos


def test_names_learnt_from_the_traffic_itself() -> None:
    texts = ["I want to see Mulan tonight.", "is mulan still playing", "Shakira tickets?"]
    assert measure(texts).typos_per_100 == 0 or measure(texts).typo_share < 1 / 3 + 1e-9
    assert measure(["is mulan still playing"]).typo_share == 1.0
    assert measure(["is mulan still playing"], names_from=["Tickets for Mulan"]).typo_share == 0


def test_message_level_flags() -> None:
    f = facts("i can't log in  to the app??")
    assert f["lower"] == 1 and f["no_final"] == 0 and f["repeated"] == 1
    assert f["contraction"] == 1 and f["whitespace"] == 1 and f["texting"] == 0
    g = facts("WHY IS MY CARD BLOCKED")
    assert g["upper"] == 1 and g["lower"] == 0 and g["no_final"] == 1
    h = facts("so um the the card is gone")
    assert h["filler"] == 1
    assert facts("Is it open? I think so.")["inner"] == 1
    assert facts("It's fine (really).")["no_final"] == 0  # closing bracket after the mark


def test_measure_aggregates() -> None:
    stats = measure(["Hello there.", "hi", "   ", "Why is my card blocked?"])
    assert stats.n == 3
    assert stats.lower_share == pytest.approx(1 / 3)
    assert stats.no_final_punct == pytest.approx(1 / 3)
    assert stats.words == pytest.approx((2 + 1 + 5) / 3)
    d = stats.to_dict()
    assert TrafficStats.from_dict(d) == TrafficStats.from_dict(d)
    assert set(STAT_FIELDS) < set(d)


def test_measure_refuses_empty() -> None:
    with pytest.raises(ValueError):
        measure(["", "  "])


def test_word_list_helpers() -> None:
    assert "color" in british_variants("colour")
    assert is_known("Don’t") and is_known("kate's") and is_known("app")
    assert not is_known("pasword")
