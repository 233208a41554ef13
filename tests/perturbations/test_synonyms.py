"""synonyms: real WordNet synonyms, conservative picks, and a clear error without WordNet."""

from __future__ import annotations

import random
import re

import pytest

from perturbations import Item, MissingDependencyError, perturb
from perturbations import wordnet
from perturbations.transforms.synonyms import SynonymFinder, Synonyms

pytestmark = pytest.mark.skipif(
    wordnet.find_nltk_wordnet() is None and wordnet.debian_wordnet_dir() is None
    and not (wordnet.cache_root() / "corpora" / "wordnet" / "lexnames").is_file(),
    reason="WordNet is not installed (apt-get install wordnet-base)")


@pytest.fixture(scope="module")
def wn():
    return wordnet.load_wordnet()


def _run(text: str, severity: float = 1.0, seed: int = 0, **meta) -> str:
    return Synonyms().apply(Item(id="s", input=text, target="x", metadata=meta), severity,
                            random.Random(seed)).input


def _shares_synset(wn, a: str, b: str) -> bool:
    return any(b in [l.name().lower() for l in s.lemmas()] for s in wn.synsets(a))


def test_known_pairs(wn) -> None:
    assert _run("I want to buy a big car quickly") == \
        "I want to purchase a large automobile quickly"


def test_every_replacement_is_a_wordnet_synonym(wn) -> None:
    text = ("Can you help me find a doctor for my child in a large city, "
            "because I want to begin treatment quickly and buy medicine")
    out = _run(text)
    before, after = text.split(), out.split()
    assert len(before) == len(after)
    changed = [(a.strip(","), b.strip(",")) for a, b in zip(before, after) if a != b]
    assert len(changed) >= 4
    for a, b in changed:
        assert _shares_synset(wn, a.lower(), b.lower()), (a, b)


def test_case_is_kept_and_names_are_skipped() -> None:
    assert _run("Buy it.") == "Purchase it."
    assert _run("BUY IT") == "BUY IT"  # shouted words are left alone, not re-cased
    out = _run("Where did Big Ben stand")
    assert "Big Ben" in out


def test_stop_words_inflections_and_short_words_are_skipped(wn) -> None:
    finder = SynonymFinder(wn)
    for word in ("like", "please", "eats", "charged", "left", "went", "big"[:2], "tell",
                 "found", "dozens", "several", "someone", "sunny"):
        assert finder(word) is None, word
    assert finder("buy") == "purchase"


def test_protected_phrase_is_kept() -> None:
    assert _run("I want to buy a big car", protect=["buy a"]) == "I want to buy a large automobile"
    assert _run("I want to buy a big car", protect=["big car"]) == "I want to purchase a big car"


def test_severity_is_share_of_eligible_words() -> None:
    # no two nouns side by side: a noun before a noun is a compound and stays
    text = "buy car now big doctor and child begin or large small"
    changed = {}
    for sev in (0.2, 0.5, 1.0):
        counts = [sum(a != b for a, b in zip(text.split(), _run(text, sev, s).split()))
                  for s in range(20)]
        changed[sev] = sum(counts) / len(counts)
    assert changed[1.0] == 8
    assert 1 <= changed[0.2] <= 2.5 and 3 <= changed[0.5] <= 5


def test_missing_wordnet_raises_with_install_hint(monkeypatch) -> None:
    monkeypatch.setattr(wordnet, "locate_wordnet", lambda: None)
    item = Item(id="m", input="I want to buy a car", target="x")
    with pytest.raises(MissingDependencyError) as info:
        perturb(item, "synonyms@0.5", seed=0)
    message = str(info.value)
    assert "\n" not in message
    assert "apt-get install wordnet-base" in message and "nltk.downloader wordnet" in message
    # severity 0 needs no WordNet, and the other transforms keep working
    assert perturb(item, "synonyms@0", seed=0).item == item
    assert perturb(item, "typos@high", seed=0).changed
    assert re.search(r"buy", perturb(item, "fillers@high", seed=0).item.input)


# Golden cases for issue 15: each was a wrong-sense swap before the fix.
@pytest.mark.parametrize("text,kept", [
    ("Mike plays ping pong with his friends.", "Mike"),                # a name, not a mike
    ("Bill wants to know the area under the ROC curve.", "area under the ROC curve"),
    ("How do I switch off auto top-up on my card?", "auto top-up"),    # a term, not a car
    ('What do we mean by "hearth" in this poem?', '"hearth"'),          # the asked term
    ("What do we mean by hearth in this poem?", "hearth"),
    ("What is a hearth?", "hearth"),
    ("There were dozens of guests at the party.", "dozens"),           # a quantity
    ("I just found it under the old sofa.", "found"),                  # find + -ed, not "establish"
    ("What color is the sky on a clear sunny day?", "sunny"),          # too little evidence
    ("Can penguins fly like most birds?", "fly"),                      # "wing" is a noun
    ("Does the credit card work abroad?", "credit card"),              # a WordNet collocation
])
def test_issue_15_wrong_sense_swaps_are_gone(text: str, kept: str) -> None:
    for seed in range(5):
        assert kept in _run(text, 1.0, seed), (text, _run(text, 1.0, seed))


def test_sentence_initial_verb_is_still_replaced_but_not_a_noun() -> None:
    assert _run("Buy it.") == "Purchase it."
    assert _run("Car trouble again.").startswith("Car ")
