"""fillers: the original words survive in order; only disfluencies are added."""

from __future__ import annotations

import random
import re

from perturbations import Item, perturb
from perturbations.transforms.fillers import Fillers, load_fillers_lexicon

TEXT = ("Sarah bought 3 packs of pencils with 12 pencils in each pack, and then she gave "
        "7 pencils to her brother on Monday. How many pencils does she have left?")


def _run(text: str, severity: float, seed: int = 0) -> str:
    return Fillers().apply(Item(id="f", input=text, target="x"), severity,
                           random.Random(seed)).input


def _words(text: str) -> list[str]:
    return re.findall(r"[\w'’]+", text.lower())


def _is_subsequence(small: list[str], big: list[str]) -> bool:
    it = iter(big)
    return all(any(w == b for b in it) for w in small)


def test_original_words_survive_in_order() -> None:
    for seed in range(10):
        out = _run(TEXT, 0.8, seed)
        assert _is_subsequence(_words(TEXT), _words(out))
        assert len(_words(out)) > len(_words(TEXT))


def test_protected_numbers_are_never_repeated_or_split() -> None:
    for seed in range(20):
        out = _run(TEXT, 1.0, seed)
        assert re.findall(r"\d+", out) == ["3", "12", "7"]


def test_severity_sets_share_of_gaps() -> None:
    lengths = {}
    for sev in (0.2, 0.5, 1.0):
        added = [len(_words(_run(TEXT, sev, s))) - len(_words(TEXT)) for s in range(10)]
        lengths[sev] = sum(added) / len(added)
    assert 0 < lengths[0.2] < lengths[0.5] < lengths[1.0]
    # 30 gaps here; each chosen one adds at least one word
    assert lengths[1.0] >= 28


def test_disfluency_kinds_all_occur() -> None:
    lex = load_fillers_lexicon()
    outs = " || ".join(_run(TEXT, 1.0, s) for s in range(10))
    assert re.search(r"\b(\w+) \1\b", outs)  # a repetition such as "the the"
    assert re.search(r"\b(\w{2,3})- \w+ \w+", outs)  # a self-correction such as "mon- on Monday"
    assert any(f" {f} " in outs or f" {f}, " in outs for f in lex["fillers"])
    starts = {o.split(",")[0].lower() for o in outs.split(" || ")}
    assert starts & set(lex["openers"])


def test_self_correction_restarts_the_word() -> None:
    for seed in range(40):
        out = _run("See you on Monday", 1.0, seed)
        m = re.search(r"on (\w+)- on Monday", out)
        if m:
            assert "monday".startswith(m.group(1))
            return
    raise AssertionError("no self-correction in 40 draws")


def test_opener_lowercases_question_word_but_not_names() -> None:
    for seed in range(30):
        out = _run("What is the time", 1.0, seed)
        if not out.startswith("What"):
            assert ", what" in out
        out = _run("Sarah left", 1.0, seed)
        assert "sarah" not in out


def test_preserves_label_and_choices() -> None:
    item = Item(id="m", input="Which is red?", target="A", choices=("Mars", "Venus"),
                task="multiple_choice")
    v = perturb(item, "fillers@high", seed=0)
    assert v.item.choices == item.choices and v.item.target == "A" and v.changed


# Golden cases for issue 15: a repeated negation reads as a double negation.
def test_negations_numbers_and_deciding_words_are_never_repeated() -> None:
    text = "We could not come, I cannot pay, no one knows, two or three EXCEPT the least."
    for seed in range(40):
        out = _run(text, 1.0, seed).lower()
        for word in ("not", "cannot", "no", "two", "three", "except", "least"):
            assert not re.search(rf"\b{word}\W+{word}\b", out), (word, out)


def test_a_self_correction_never_starts_with_a_negation_or_number() -> None:
    for seed in range(60):
        out = _run("It is on a normal day in a tenth of a second", 1.0, seed)
        assert not re.search(r"\b(no|not|ten|one|two)- ", out), out
