"""Behaviour of the ``typos`` transform, kind by kind."""

from __future__ import annotations

import random
import re
import statistics

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perturbations import ConfigError, Item, MissingDependencyError
from perturbations.text import NUMBER_WORDS, edit_rate, protected_spans, tokenize
from perturbations.transforms import typos as typos_module
from perturbations.transforms.typos import (
    KEYBOARD_NEIGHBOURS,
    OCR_CONFUSIONS,
    WORD_RATE,
    Typos,
    misspellings,
)

_SUBJECTS = ["my sister", "the teacher", "our neighbour", "a friend of mine", "the doctor",
             "my landlord", "the new manager", "your brother"]
_VERBS = ["explain", "understand", "remember", "recommend", "describe", "calculate"]
_OBJECTS = ["the difference between weather and climate", "how vaccines protect people",
            "why the ocean tastes salty", "what happened during the French Revolution",
            "which programming language beginners should learn", "where the longest river flows",
            "how interest on a savings account works", "what photosynthesis produces"]


def corpus(n: int = 200) -> list[str]:
    """``n`` realistic questions, the same on every call (a local RNG)."""
    rng = random.Random("typos-corpus")
    out = []
    for i in range(n):
        subject, verb, obj = rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS)
        if i % 3 == 0:
            out.append(f"Could {subject} {verb} {obj}? I would really appreciate a clear answer.")
        elif i % 3 == 1:
            out.append(f"Why does {subject} never {verb} {obj}, even after reading about it twice?")
        else:
            out.append(f"Please help me {verb} {obj} before tomorrow morning, thanks!")
    return out


def run(text: str, severity: float, seed: int = 0, **options: str) -> str:
    return Typos(**options).perturb_text(text, severity, random.Random(seed),
                                         protected_spans(text))


def changed_words(before: str, after: str) -> list[tuple[str, str]]:
    """Pairs of (old, new) word tokens; the token structure must be unchanged."""
    a, b = tokenize(before), tokenize(after)
    assert [t.is_word for t in a] == [t.is_word for t in b], (before, after)
    assert [t.text for t in a if not t.is_word] == [t.text for t in b if not t.is_word]
    return [(x.text, y.text) for x, y in zip(a, b) if x.text != y.text]


TEXT = ("Could the Teacher EXPLAIN which programming language beginners should learn "
        "before their first interview next Monday?")


def test_keyboard_neighbours_are_adjacent_letters_only() -> None:
    assert set(KEYBOARD_NEIGHBOURS) == set("abcdefghijklmnopqrstuvwxyz")
    for key, near in KEYBOARD_NEIGHBOURS.items():
        assert near and key not in near
        assert all(len(c) == 1 and "a" <= c <= "z" for c in near)
        for other in near:  # adjacency is symmetric
            assert key in KEYBOARD_NEIGHBOURS[other]
    assert set(KEYBOARD_NEIGHBOURS["s"]) == set("awedxz")
    assert set(KEYBOARD_NEIGHBOURS["p"]) == set("ol")
    assert set(KEYBOARD_NEIGHBOURS["g"]) == set("tyfhvb")


def test_keyboard_substitutes_a_neighbour_of_the_same_case() -> None:
    seen = 0
    for seed in range(60):
        out = run(TEXT, 1.0, seed, kind="keyboard")
        for old, new in changed_words(TEXT, out):
            assert len(old) == len(new)
            diffs = [(a, b) for a, b in zip(old, new) if a != b]
            assert len(diffs) == 1, (old, new)
            a, b = diffs[0]
            assert b.lower() in KEYBOARD_NEIGHBOURS[a.lower()], (old, new)
            assert a.isupper() == b.isupper(), (old, new)
            seen += 1
    assert seen > 200


def test_swap_transposes_two_adjacent_letters_and_keeps_the_capital() -> None:
    for seed in range(60):
        out = run(TEXT, 1.0, seed, kind="swap")
        pairs = changed_words(TEXT, out)
        assert pairs
        for old, new in pairs:
            assert sorted(old) == sorted(new)
            diffs = [i for i, (a, b) in enumerate(zip(old, new)) if a != b]
            assert len(diffs) == 2 and diffs[1] == diffs[0] + 1, (old, new)
            assert old[diffs[0]] == new[diffs[1]] and old[diffs[1]] == new[diffs[0]]
            if len(old) > 3:  # words of 4+ letters keep their first letter
                assert old[0] == new[0], (old, new)


def test_omit_drops_one_letter_but_not_the_first() -> None:
    for seed in range(60):
        out = run(TEXT, 1.0, seed, kind="omit")
        for old, new in changed_words(TEXT, out):
            assert len(new) == len(old) - 1
            assert new[0] == old[0]
            assert any(old[:i] + old[i + 1:] == new for i in range(1, len(old)))


def test_double_types_one_letter_twice() -> None:
    for seed in range(60):
        out = run(TEXT, 1.0, seed, kind="double")
        for old, new in changed_words(TEXT, out):
            assert len(new) == len(old) + 1
            assert any(new[:i + 1] + new[i + 2:] == old and new[i] == new[i + 1]
                       for i in range(len(new) - 1))


def test_ocr_applies_one_table_confusion_and_never_adds_digits() -> None:
    table = set(OCR_CONFUSIONS)
    for seed in range(60):
        out = run(TEXT, 1.0, seed, kind="ocr")
        assert not re.search(r"\d", out)
        for old, new in changed_words(TEXT, out):
            assert any(old[:i] + read + old[i + len(seen):] == new
                       for seen, read in table for i in range(len(old))
                       if old.startswith(seen, i)), (old, new)


def test_misspell_draws_from_the_cleaned_list_and_keeps_case() -> None:
    text = "Which people would BELIEVE that because of the weather nobody came?"
    found = 0
    for seed in range(40):
        out = run(text, 1.0, seed, kind="misspell")
        for old, new in changed_words(text, out):
            assert new.lower() in misspellings()[old.lower()]
            if old.isupper():
                assert new.isupper()
            elif old[0].isupper():
                assert new[0].isupper() and new[1:].islower()
            found += 1
    assert found > 40


def test_misspelling_list_is_cleaned() -> None:
    table = misspellings()
    assert len(table) > 5000
    assert "she" not in table["the"]          # a real word: would change the meaning
    assert "goes" not in table.get("does", ())
    assert "becuase" in table["because"]       # a real misspelling stays
    for key, values in table.items():
        assert key.isalpha() and key.islower() and len(key) >= 3
        for v in values:
            assert v.isalpha() and v != key and v not in table and v not in NUMBER_WORDS
    assert misspellings() is table  # loaded once


def test_missing_nlpaug_data_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(typos_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match="pip install nlpaug"):
        typos_module._spelling_path()


def test_mix_makes_several_kinds_of_typo() -> None:
    kinds = set()
    for text in corpus(120):
        out = run(text, 0.8, kind="mix")
        for old, new in changed_words(text, out):
            if new.lower() in misspellings().get(old.lower(), ()):
                kinds.add("misspell")
            if len(new) == len(old) - 1:
                kinds.add("omit")
            elif len(new) == len(old) + 1:
                kinds.add("double")
            elif sorted(new) == sorted(old):
                kinds.add("swap")
            elif sum(a != b for a, b in zip(old, new)) == 1:
                kinds.add("keyboard")
    assert {"keyboard", "swap", "omit", "misspell"} <= kinds


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ConfigError, match="kind"):
        Typos(kind="fat-finger")


@pytest.mark.parametrize("kind", ["keyboard", "swap", "omit", "double"])
def test_share_of_words_matches_the_documented_rate(kind: str) -> None:
    texts = corpus(200)
    for severity in (0.2, 0.8):
        eligible = changed = 0
        for i, text in enumerate(texts):
            out = run(text, severity, seed=i, kind=kind)
            eligible += sum(1 for t in tokenize(text) if t.is_word and len(t.text) >= 3)
            changed += len(changed_words(text, out))
        assert changed / eligible == pytest.approx(WORD_RATE * severity, abs=0.03)


def test_short_words_are_left_alone() -> None:
    text = "Is it ok to go in or up if we do so?"
    for seed in range(20):
        assert run(text, 1.0, seed) == text


def test_protected_numbers_and_options_survive() -> None:
    text = ("If twelve students pay $4.50 each for 3 tickets, is the total (B) or 1,200 "
            "according to option C) Seventeen?")
    spans = protected_spans(text)
    for kind in ("keyboard", "swap", "omit", "double", "ocr", "misspell", "mix"):
        for seed in range(15):
            out = run(text, 1.0, seed, kind=kind)
            for s, e in spans:
                assert text[s:e] in out, (kind, text[s:e], out)
            for word in ("twelve", "Seventeen", "$4.50", "(B)", "1,200", "C)"):
                assert word in out


def test_a_typo_never_creates_a_number_word() -> None:
    text = "tent " * 30 + "fiver sixth nines"
    for seed in range(30):
        out = run(text, 1.0, seed, kind="mix")
        created = [w for w in re.findall(r"\w+", out) if w.lower() in NUMBER_WORDS]
        assert not created, out


@pytest.mark.parametrize("kind", ["keyboard", "swap", "omit", "double", "ocr", "misspell", "mix"])
def test_edit_rate_grows_with_severity(kind: str) -> None:
    texts = corpus(200)
    means = []
    for severity in (0.1, 0.2, 0.5, 0.8, 1.0):
        means.append(statistics.fmean(edit_rate(t, run(t, severity, seed=i, kind=kind))
                                      for i, t in enumerate(texts)))
    assert all(a < b for a, b in zip(means, means[1:])), means


def test_severity_zero_is_identity_and_seed_matters() -> None:
    item = Item(id="q", input=TEXT, target="x")
    t = Typos()
    assert t.apply(item, 0.0, random.Random(1)) is item
    outs = {t.apply(item, 0.8, random.Random(s)).input for s in range(5)}
    assert len(outs) > 1
    assert t.apply(item, 0.8, random.Random(3)) == t.apply(item, 0.8, random.Random(3))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(min_size=1, max_size=80), severity=st.floats(0.05, 1.0),
       kind=st.sampled_from(["keyboard", "swap", "omit", "double", "ocr", "misspell", "mix"]))
def test_arbitrary_unicode_never_raises(text: str, severity: float, kind: str) -> None:
    out = run(text, severity, kind=kind)
    assert isinstance(out, str)
    # typos edit letters inside words: whitespace and digits are never touched
    assert re.findall(r"\s+", out) == re.findall(r"\s+", text)
    assert re.findall(r"\d", out) == re.findall(r"\d", text)


def test_emoji_cjk_rtl_and_combining_marks() -> None:
    text = "Please explain 東京タワー, مرحبا بالعالم, café\u0301 and 👍🏽 emoji reactions today"
    for kind in ("keyboard", "swap", "omit", "double", "ocr", "misspell", "mix"):
        for seed in range(5):
            out = run(text, 1.0, seed, kind=kind)
            assert out.strip() and "👍🏽" in out
