"""Behaviour of the ``slang`` transform and its lexicon."""

from __future__ import annotations

import json
import random
import re
import statistics

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perturbations import ConfigError, Item
from perturbations.text import edit_rate, protected_spans
from perturbations.transforms.slang import LEXICON_PATH, Slang, lexicon

_OPENERS = ["To be honest,", "By the way,", "Hi,", "Okay so", "Please,", "Sorry,"]
_BODIES = ["I don't know what you are going to eat tomorrow",
           "are you going to help me with your homework right now",
           "thank you for the information about the appointment",
           "I want to know why people think it is probably fine",
           "could you tell me what your favorite picture is",
           "I am trying to understand something about the schedule",
           "do you know anything about the difference between them",
           "I have to explain the problem to my brother tonight"]
_CLOSERS = ["?", ".", "!", "? Thanks!", ", please."]


def corpus(n: int = 200) -> list[str]:
    """``n`` realistic messages, the same on every call (a local RNG)."""
    rng = random.Random("slang-corpus")
    return [f"{rng.choice(_OPENERS)} {rng.choice(_BODIES)}{rng.choice(_CLOSERS)}"
            for _ in range(n)]


def run(text: str, severity: float, seed: int = 0, phrases: tuple[str, ...] = (),
        **options: str) -> str:
    return Slang(**options).perturb_text(text, severity, random.Random(seed),
                                         protected_spans(text, phrases))


def test_lexicon_has_150_entries_and_every_entry_loads() -> None:
    lex = lexicon()
    raw = json.loads(LEXICON_PATH.read_text(encoding="utf-8"))["substitutions"]
    assert len(lex.substitutions) >= 150
    assert len(lex.substitutions) == len(raw)
    for key, values in lex.substitutions.items():
        assert key == key.lower().strip() and values
        assert all(v and v.lower() != key for v in values)
        # every key is found by the matcher, as a whole match
        m = lex.matcher.search(f"well, {key} ok")
        assert m is not None and lex.key_of(m.group()) == key, key
    multi = [k for k in lex.substitutions if " " in k]
    assert len(multi) >= 60
    assert lex.suffix_tags and lex.prefix_tags


def test_lexicon_never_adds_digits() -> None:
    for key, values in lexicon().substitutions.items():
        assert not any(re.search(r"\d", v) for v in values), key


@pytest.mark.parametrize("phrase,expected", [
    ("you", {"u", "ya"}), ("your", {"ur", "yr"}), ("please", {"pls", "plz"}),
    ("thanks", {"thx", "thnx", "ty"}), ("i don't know", {"idk", "dunno"}),
    ("going to", {"gonna"}), ("want to", {"wanna"}), ("right now", {"rn", "rite now"}),
    ("to be honest", {"tbh"}), ("by the way", {"btw"}), ("because", {"bc", "cuz", "coz", "bcuz"}),
])
def test_core_entries(phrase: str, expected: set[str]) -> None:
    assert set(lexicon().substitutions[phrase]) == expected


def test_lexicon_style_substitutes_everything_at_full_severity() -> None:
    text = "To be honest, I don't know what your plan is right now. Thanks!"
    out = run(text, 1.0, style="lexicon")
    assert out.startswith("Tbh, ")                    # sentence start: capitalised
    assert re.search(r" (idk|dunno) ", out)           # mid-sentence "I ..." -> lower case
    assert re.search(r" (ur|yr) plan is (rn|rite now)\. ", out)
    assert re.search(r"(Thx|Thnx|Ty)!$", out)


def test_word_boundaries_are_respected() -> None:
    text = "Youth and yours truly enjoyed the Thanksgiving bayou trip."
    for seed in range(10):
        out = run(text, 1.0, seed, style="lexicon")
        assert "Youth" in out and "yours" in out and "Thanksgiving" in out and "bayou" in out


def test_case_follows_the_replaced_text() -> None:
    text = "YOU ARE right. You are right. you are right."
    out = run(text, 1.0, style="lexicon")
    first, second, third = [s.strip() for s in out.split(".") if s.strip()]
    assert first.split()[0] in {"UR", "U"} and first.split()[0].isupper()
    assert second[0].isupper() and third[0].islower()


def test_curly_apostrophes_match() -> None:
    out = run("So I don’t know, you’re sure?", 1.0, style="lexicon")
    assert re.fullmatch(r"So (idk|dunno), (ur|youre) sure\?", out), out


def test_going_to_only_before_a_verb() -> None:
    text = "I am going to the shop, going to Paris and going to eat."
    out = run(text, 1.0, style="lexicon")
    assert "going to the shop" in out and "going to Paris" in out
    assert "gonna eat" in out


def test_mix_at_full_severity_is_full_texting_style() -> None:
    text = "To be honest, I don't know what the Eiffel Tower is (B). Can't you explain?"
    for seed in range(20):
        out = run(text, 1.0, seed, phrases=("Eiffel Tower",))
        assert "'" not in out and "’" not in out
        assert "Eiffel Tower" in out and "(B)" in out     # protected: case and letters kept
        rest = out.replace("Eiffel Tower", "").replace("(B)", "")
        assert rest == rest.lower()
        tags = lexicon().prefix_tags + lexicon().suffix_tags
        assert any(out.startswith(t + " ") or out.endswith(" " + t) for t in tags), out
        if not out.endswith(("??", "anyone?")):
            assert not out.endswith("?")


def test_lexicon_style_keeps_everything_else() -> None:
    text = "Could you Describe why it's raining? I'm sure it isn't simple."
    out = run(text, 1.0, style="lexicon")
    assert "Describe" in out and "it's" in out and "I'm" in out and out.endswith("simple.")


def test_protected_spans_are_never_rewritten() -> None:
    text = "Are you sure the answer is 3 or three, not option (B) for you?"
    for seed in range(20):
        out = run(text, 1.0, seed, phrases=("for you",))
        assert "3" in out and "three" in out and "(B)" in out and "for you" in out


def test_share_of_phrases_replaced_equals_severity() -> None:
    words = ["please", "thanks", "because", "people", "probably", "tomorrow", "something",
             "really", "seriously", "information"]
    text = " ".join(words)
    for severity in (0.2, 0.5, 0.8):
        replaced = [sum(w not in run(text, severity, seed, style="lexicon").split()
                        for w in words) for seed in range(200)]
        assert statistics.fmean(replaced) / len(words) == pytest.approx(severity, abs=0.03)


@pytest.mark.parametrize("style", ["mix", "lexicon"])
def test_edit_rate_grows_with_severity(style: str) -> None:
    texts = corpus(200)
    means = [statistics.fmean(edit_rate(t, run(t, s, seed=i, style=style))
                              for i, t in enumerate(texts))
             for s in (0.1, 0.2, 0.5, 0.8, 1.0)]
    assert all(a < b for a, b in zip(means, means[1:])), means


def test_unknown_style_is_refused() -> None:
    with pytest.raises(ConfigError, match="style"):
        Slang(style="gen-z")


def test_identity_at_zero_and_determinism() -> None:
    item = Item(id="s", input=corpus(1)[0], target="x")
    t = Slang()
    assert t.apply(item, 0.0, random.Random(0)) is item
    assert t.apply(item, 0.7, random.Random(5)) == t.apply(item, 0.7, random.Random(5))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(min_size=1, max_size=80), severity=st.floats(0.05, 1.0),
       style=st.sampled_from(["mix", "lexicon"]))
def test_arbitrary_unicode_never_raises(text: str, severity: float, style: str) -> None:
    spans = protected_spans(text)
    out = run(text, severity, style=style)
    assert isinstance(out, str)
    pos = 0
    for s, e in spans:  # protected pieces survive, in order
        j = out.find(text[s:e], pos)
        assert j >= 0
        pos = j + (e - s)
