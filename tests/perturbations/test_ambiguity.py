"""ambiguity: each kind removes or blurs exactly what it claims to."""

from __future__ import annotations

import random
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from perturbations import Item, perturb
from perturbations.transforms.ambiguity import Ambiguity, load_vague_lexicon

MATH = ("Sarah bought 3 packs of pencils with 12 pencils in each pack, and then she gave "
        "7 pencils to her brother. How many pencils does she have left?")


def _run(text: str, kind: str, severity: float = 1.0, seed: int = 0) -> str:
    item = Item(id="a", input=text, target="x")
    return Ambiguity(kind=kind).apply(item, severity, random.Random(seed)).input


def _all_phrases(section: dict) -> set[str]:
    out: set[str] = set()
    for value in section.values():
        if isinstance(value, dict):
            out |= _all_phrases(value)
        else:
            out |= set(value)
    return out


def test_quantity_removes_every_digit_at_full_severity() -> None:
    for seed in range(5):
        out = _run(MATH, "quantity", seed=seed)
        assert not re.search(r"\d", out)
        assert out.endswith("How many pencils does she have left?")
        assert "packs of pencils" in out and "pencils to her brother" in out


def test_quantity_uses_vague_amounts_by_size_and_context() -> None:
    q = load_vague_lexicon()["quantities"]
    out = _run("I have 2 cats.", "quantity")
    assert out in {f"I have {p} cats." for p in q["small"]["before_noun"]}
    out = _run("She ran 25 miles.", "quantity")
    assert out in {f"She ran {p} miles." for p in q["large"]["before_noun"]}
    out = _run("It was published in 1813.", "quantity")
    assert out in {f"It was published {p}." for p in q["year_phrase"]}
    out = _run("The train leaves at 4 pm sharp.", "quantity")
    assert out in {f"The train leaves at {p} sharp." for p in q["clock"]}
    out = _run("Seven dwarfs and twenty-five elves.", "quantity")
    assert not re.search(r"\b(seven|twenty|five)\b", out, re.I)


def test_referent_replaces_entities_with_vague_phrases() -> None:
    refs = load_vague_lexicon()["referents"]
    out = _run("How far is it from the station to Paris?", "referent")
    assert "Paris" not in out and "station" not in out
    assert any(out.endswith(f"to {p}?") for p in refs["place"])
    out = _run("Which novel was written by Jane Austen in her youth?", "referent")
    assert "Jane" not in out and "Austen" not in out
    assert any(f"by {p}" in out for p in refs["person"])


def test_referent_keeps_protected_phrases_and_pronoun_i() -> None:
    item = Item(id="p", input="Is Canberra bigger than Sydney, I wonder?", target="no",
                metadata={"protect": ["Sydney"]})
    out = Ambiguity(kind="referent").apply(item, 1.0, random.Random(0)).input
    assert "Sydney" in out and "Canberra" not in out and ", I wonder?" in out
    assert out.startswith("Is ")  # a capitalised sentence opener is not a name


def test_qualifier_removes_constraints() -> None:
    text = ("According to the passage, how many students were enrolled in 2019, "
            "in kilometres, at least?")
    out = _run(text, "qualifier")
    for gone in ("According", "passage", "2019", "kilometres", "at least"):
        assert gone not in out
    assert out == "How many students were enrolled?"


def test_qualifier_only_and_exactly() -> None:
    assert _run("Name only the exactly three largest moons.", "qualifier") == \
        "Name the three largest moons."


def test_format_instructions_are_dropped_but_not_the_question() -> None:
    text = "Which planet is the largest? Answer with a single letter."
    assert _run(text, "format") == "Which planet is the largest?"
    assert _run("Is the sky blue (yes/no)?", "format") == "Is the sky blue?"
    assert _run("Who wrote Hamlet? Respond in one word.", "format") == "Who wrote Hamlet?"
    # the question itself is never removed, even when it mentions an answer
    assert _run("Can you answer in one word?", "format") == "Can you answer?"


def test_kind_without_candidates_is_unchanged() -> None:
    text = "why is it so cold here"
    for kind in ("quantity", "qualifier", "format"):
        assert _run(text, kind) == text


def test_severity_scales_the_number_of_edits() -> None:
    text = " and ".join(f"{n} apples" for n in range(2, 22))
    counts = {}
    for sev in (0.2, 0.5, 0.8):
        left = [len(re.findall(r"\d+", _run(text, "quantity", sev, seed))) for seed in range(10)]
        counts[sev] = 20 - sum(left) / len(left)
    assert counts[0.2] < counts[0.5] < counts[0.8]
    assert 2 <= counts[0.2] <= 6 and 14 <= counts[0.8] <= 18


def test_mix_pools_all_kinds() -> None:
    text = ("According to the passage, how many times did Napoleon visit Rome in 1805? "
            "Answer in one word.")
    out = _run(text, "mix")
    assert not re.search(r"\d", out)
    for gone in ("passage", "Napoleon", "Rome", "Answer"):
        assert gone not in out


def test_policy_is_may_break() -> None:
    v = perturb(Item(id="q", input=MATH, target="29"), "ambiguity@high", seed=0)
    assert v.label_policy == "may_break" and v.changed and v.item.target == "29"


def test_lexicon_sections_are_nonempty() -> None:
    lex = load_vague_lexicon()
    assert all(_all_phrases(lex["referents"]))
    assert all(lex[k] for k in ("qualifiers", "format_sentences", "format_inline"))


@settings(max_examples=60, deadline=None)
@given(text=st.text(min_size=1, max_size=80).filter(lambda s: s.strip()),
       kind=st.sampled_from(["referent", "quantity", "qualifier", "format", "mix"]))
def test_any_unicode_gives_nonempty_text(text: str, kind: str) -> None:
    item = Item(id="h", input=text, target="x")
    out = Ambiguity(kind=kind).apply(item, 1.0, random.Random(0))
    assert out.input.strip()
