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
        "I desire to purchase a large automobile rapidly"


def test_every_replacement_is_a_wordnet_synonym(wn) -> None:
    text = ("Can you help me find a doctor for my child in a large city, "
            "because I want to begin treatment quickly and buy medicine")
    out = _run(text)
    before, after = text.split(), out.split()
    assert len(before) == len(after)
    changed = [(a.strip(","), b.strip(",")) for a, b in zip(before, after) if a != b]
    assert len(changed) >= 5
    for a, b in changed:
        assert _shares_synset(wn, a.lower(), b.lower()), (a, b)


def test_case_is_kept_and_names_are_skipped() -> None:
    assert _run("Buy it.") == "Purchase it."
    assert _run("BUY IT") == "BUY IT"  # shouted words are left alone, not re-cased
    out = _run("Where did Big Ben stand")
    assert "Big Ben" in out


def test_stop_words_inflections_and_short_words_are_skipped(wn) -> None:
    finder = SynonymFinder(wn)
    for word in ("like", "please", "eats", "charged", "left", "went", "big"[:2], "tell"):
        assert finder(word) is None, word
    assert finder("buy") == "purchase"


def test_protected_phrase_is_kept() -> None:
    assert _run("I want to buy a car", protect=["buy a car"]) == "I desire to buy a car"


def test_severity_is_share_of_eligible_words() -> None:
    # no two nouns side by side: a noun before a noun is a compound and stays
    text = "buy car quickly big doctor and child begin want large small"
    changed = {}
    for sev in (0.2, 0.5, 1.0):
        counts = [sum(a != b for a, b in zip(text.split(), _run(text, sev, s).split()))
                  for s in range(20)]
        changed[sev] = sum(counts) / len(counts)
    assert changed[1.0] == 10
    assert 1 <= changed[0.2] <= 3 and 4 <= changed[0.5] <= 6


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
