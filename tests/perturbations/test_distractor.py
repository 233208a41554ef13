"""distractor: the question stays verbatim; added chatter is harmless."""

from __future__ import annotations

import random
import re

import pytest

from perturbations import Item, perturb
from perturbations.text import NUMBER_WORDS
from perturbations.transforms.distractor import (MAX_SENTENCES, Distractor, load_distractors,
                                                 long_share, sentence_count)

QUESTION = "If a train leaves at 4 pm and travels for 2 hours, when does it arrive?"
ALL = load_distractors()["short"] + load_distractors()["long"]


def _run(text: str, severity: float, seed: int = 0) -> str:
    return Distractor().apply(Item(id="d", input=text, target="6 pm"), severity,
                              random.Random(seed)).input


@pytest.mark.parametrize("sentence", ALL)
def test_lexicon_offers_no_quantity_or_answer(sentence: str) -> None:
    words = re.findall(r"[\w'’]+", sentence.lower())
    assert not re.search(r"\d", sentence)
    assert not set(words) & NUMBER_WORDS
    assert not set(words) & {"yes", "no", "true", "false"}
    assert not re.search(r"\b[A-HJ-Z]\b", sentence)  # no option letters ("I" is fine)
    assert sentence[-1] in ".!?"


def test_lexicon_has_short_and_long_entries() -> None:
    lex = load_distractors()
    assert len(lex["short"]) >= 20 and len(lex["long"]) >= 10
    assert max(map(len, lex["short"])) < min(map(len, lex["long"]))


@pytest.mark.parametrize("severity,count", [(0.1, 1), (0.2, 1), (0.25, 1), (0.3, 1),
                                            (0.5, 1), (0.51, 2), (0.8, 2), (1.0, 2)])
def test_sentence_count(severity: float, count: int) -> None:
    assert sentence_count(severity) == count
    assert sentence_count(0) == 0


@pytest.mark.parametrize("severity", [0.2, 0.5, 0.8])
def test_question_kept_verbatim_and_additions_from_lexicon(severity: float) -> None:
    for seed in range(10):
        out = _run(QUESTION, severity, seed)
        assert QUESTION in out
        before, after = out.split(QUESTION)
        added = [s for s in ALL if s in before or s in after]
        assert len(added) == sentence_count(severity)
        rest = before + after
        for s in added:
            rest = rest.replace(s, "")
        assert not rest.strip()


def test_long_sentences_grow_with_severity() -> None:
    long = set(load_distractors()["long"])
    def share(sev: float) -> float:
        outs = [_run(QUESTION, sev, s) for s in range(60)]
        picked = [s for o in outs for s in ALL if s in o]
        return sum(s in long for s in picked) / len(picked)
    assert share(0.2) == 0.0 and share(0.5) == 0.0
    assert 0.15 < share(0.8) < 0.45
    assert 0.3 < share(1.0) < 0.7
    assert long_share(0.8) == pytest.approx(0.3)


def test_messages_stay_within_real_chat_length() -> None:
    """Real chat messages run to a few dozen words (issue 16: distractor@high wrote 111)."""
    words = [len(_run(QUESTION, 1.0, s).split()) for s in range(60)]
    question = len(QUESTION.split())
    assert max(words) - question <= 45
    assert sum(words) / len(words) - question <= 30
    assert sentence_count(1.0) == MAX_SENTENCES == 2


def test_both_placements_occur() -> None:
    outs = [_run(QUESTION, 0.2, s) for s in range(20)]
    assert any(o.startswith(QUESTION) for o in outs)
    assert any(o.endswith(QUESTION) for o in outs)


def test_policy_preserves() -> None:
    v = perturb(Item(id="q", input=QUESTION, target="6 pm"), "distractor@high", seed=0)
    assert v.label_policy == "preserves" and v.item.target == "6 pm"
