"""The similarity scorers: close rewordings match, different meanings do not."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from perturbations.errors import ConfigError
from perturbations.records import Item
from robustify.scoring import SCORERS, get_scorer, score_answer
from robustify.scoring.similarity import (LEXICAL_THRESHOLD, answer_polarity, negation_count,
                                          numbers_stated, similarity_scorer)
from robustify.scoring.similarity_embed import EMBED_MODEL, EMBED_THRESHOLD, embed_similarity


def item(target: str, **metadata: object) -> Item:
    return Item(id="q", input="What happened to my refund?", target=target,
                metadata=metadata)


def lexical(target: str, answer: str, **metadata: object):
    return score_answer(item(target, **metadata), answer, scorer="similarity")


# (reference, answer) pairs that say the same thing in nearly the same words
SAME = [
    ("The refund was approved.", "Your refund was approved!"),
    ("The refund was approved.", "the refund was approved"),
    ("Your order ships in 3 days.", "Your order will ship in 3 days."),
    ("Paris is the capital of France.", "The capital of France is Paris."),
    ("You can reset your password from the login page.",
     "You can reset the password from the login page."),
    ("No, the refund was not approved.", "The refund was not approved."),
    ("It costs $1,000 per year.", "It costs 1000 dollars per year."),
]

# pairs that share most characters but not the meaning
DIFFERENT = [
    ("The refund was approved.", "The refund was not approved."),
    ("The refund was approved.", "The refund wasn't approved."),
    ("You can cancel at any time.", "You can never cancel."),
    ("Your order ships in 3 days.", "Your order ships in 5 days."),
    ("It costs $1,000 per year.", "It costs $1,500 per year."),
    ("Yes, the store opens on Sundays.", "No, the store opens on Sundays."),
    ("A refund was approved.", "No refund was approved."),
    ("The refund was approved.", "The package was delivered late."),
]


@pytest.mark.parametrize(("reference", "answer"), SAME)
def test_close_rewordings_match(reference: str, answer: str) -> None:
    score = lexical(reference, answer)
    assert score.value == 1.0, score
    assert score.detail["similarity"] >= LEXICAL_THRESHOLD
    assert "veto" not in score.detail


@pytest.mark.parametrize(("reference", "answer"), DIFFERENT)
def test_different_meanings_do_not_match(reference: str, answer: str) -> None:
    assert lexical(reference, answer).value == 0.0
    assert lexical(answer, reference).value == 0.0  # symmetric


def test_negation_is_vetoed_although_the_characters_agree() -> None:
    score = lexical("the refund was approved", "the refund was not approved")
    # rapidfuzz alone would call these the same answer
    assert score.detail["similarity"] > LEXICAL_THRESHOLD
    assert (score.value, score.detail["veto"]) == (0.0, "negation")
    contraction = lexical("You can log in.", "You can't log in.")
    assert (contraction.value, contraction.detail["veto"]) == (0.0, "negation")


def test_numbers_are_vetoed_although_the_characters_agree() -> None:
    score = lexical("Your order ships in 3 days.", "Your order ships in 5 days.")
    assert score.detail["similarity"] > LEXICAL_THRESHOLD
    assert (score.value, score.detail["veto"]) == (0.0, "numbers")
    # a number present on one side only is a difference too
    assert lexical("Your order ships soon.", "Your order ships in 2 days.").detail["veto"] \
        == "numbers"
    # the same number written differently is not
    assert lexical("The fee is 1,200 dollars.", "The fee is $1200.").detail.get("veto") is None


def test_opposite_yes_no_answer_words_are_vetoed() -> None:
    score = lexical("Yes, the store opens on Sundays.", "No, the store opens on Sundays.")
    assert (score.value, score.detail["veto"]) == (0.0, "polarity")
    assert lexical("Yes.", "No.").value == 0.0
    assert lexical("No.", "no").value == 1.0
    # a bare yes/no against the same word with its reason: the word is the answer
    bare = lexical("Yes, the store opens on Sundays.", "Yes.")
    assert (bare.value, bare.detail["similarity"]) == (1.0, 1.0)
    assert lexical("No, it does not.", "Yes.").value == 0.0
    assert lexical("Yes.", "Sure, the store opens on Sundays.").value == 0.0


def test_threshold_is_inclusive_and_configurable() -> None:
    it = item("the refund has been approved")
    raw = score_answer(it, "the refund was approved", scorer="similarity").detail["similarity"]
    assert 0.6 < raw < LEXICAL_THRESHOLD
    assert score_answer(it, "the refund was approved", scorer="similarity").value == 0.0
    assert similarity_scorer(raw)(it, "the refund was approved").value == 1.0
    assert similarity_scorer(raw + 0.01)(it, "the refund was approved").value == 0.0
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        similarity_scorer(0.0)


def test_detail_reports_raw_similarity_and_threshold() -> None:
    score = lexical("The refund was approved.", "Your refund was approved!")
    assert score.parsed == "your refund was approved"
    assert score.detail == {"similarity": 0.8837, "threshold": LEXICAL_THRESHOLD}


def test_identical_answer_scores_one_against_itself() -> None:
    # a consistency run's clean row is compared with its own answer
    text = "Sorry, I can't help with that. Please call 555-0100 before 5 pm."
    score = lexical(text, text)
    assert (score.value, score.detail["similarity"]) == (1.0, 1.0)


def test_empty_answer_is_unparseable_and_failed_call_unscored() -> None:
    score = lexical("The refund was approved.", "  ...  ")
    assert (score.value, score.unparseable, score.detail) == (0.0, True, {"reason": "empty"})
    assert math.isnan(score_answer(item("x"), None, scorer="similarity").value)


def test_aliases_count_and_the_matched_alias_is_named() -> None:
    score = lexical("Approved.", "The refund was approved",
                    aliases=["Your refund was approved."])
    assert score.value == 1.0
    assert score.detail["matched"] == "Your refund was approved."
    # an alias that would match only if its veto were ignored does not win
    vetoed = lexical("Approved.", "It was not approved", aliases=["It was approved"])
    assert (vetoed.value, vetoed.detail["veto"]) == (0.0, "negation")


def test_guard_helpers() -> None:
    assert answer_polarity("Nope - not today") == ("no", "not today")
    assert answer_polarity("Yes") == ("yes", "")
    assert answer_polarity("Yesterday, it shipped.") == (None, "Yesterday, it shipped.")
    assert negation_count("i dont know and cannot say") == 2
    assert negation_count("a notable note") == 0
    assert numbers_stated("3 items for $1,000.50") == (3.0, 1000.5)
    assert numbers_stated("three items") == (3.0,)
    assert numbers_stated("one more than 6") == (6.0,)


def test_registered_under_its_name() -> None:
    assert "similarity" in SCORERS.names()


# --- similarity_embed (the optional `embed` extra) -----------------------------------

HAS_EMBED = importlib.util.find_spec("wordllama") is not None
needs_embed = pytest.mark.skipif(not HAS_EMBED, reason="the 'embed' extra (wordllama) is not "
                                 "installed: pip install 'robustify[embed]'")


def embedded(target: str, answer: str):
    return score_answer(item(target), answer, scorer="similarity_embed")


@needs_embed
@pytest.mark.parametrize(("reference", "answer"), SAME + [
    ("The refund was approved.", "Your refund has been approved."),
    ("Sorry, the store is closed on Sundays.", "On Sundays the store is closed, sorry."),
])
def test_embed_matches_rewordings(reference: str, answer: str) -> None:
    score = embedded(reference, answer)
    assert score.value == 1.0, score
    assert score.detail["similarity"] >= EMBED_THRESHOLD
    assert score.detail["model"] == EMBED_MODEL


@needs_embed
@pytest.mark.parametrize(("reference", "answer"), DIFFERENT)
def test_embed_rejects_different_meanings(reference: str, answer: str) -> None:
    assert embedded(reference, answer).value == 0.0
    assert embedded(answer, reference).value == 0.0


@needs_embed
def test_embed_sees_a_rewording_the_lexical_mode_misses() -> None:
    pair = ("The refund was approved.", "Your refund has been approved.")
    assert lexical(*pair).value == 0.0
    assert embedded(*pair).value == 1.0
    assert embedded(*pair).detail["similarity"] > 0.9


@needs_embed
def test_embed_vetoes_negation_and_numbers_the_vectors_miss() -> None:
    negated = embedded("The refund was approved.", "The refund was not approved.")
    assert negated.detail["similarity"] > EMBED_THRESHOLD  # the vectors alone say "same"
    assert (negated.value, negated.detail["veto"]) == (0.0, "negation")
    numbers = embedded("Your order ships in 3 days.", "Your order ships in 5 days.")
    assert numbers.detail["similarity"] > EMBED_THRESHOLD
    assert (numbers.value, numbers.detail["veto"]) == (0.0, "numbers")


@needs_embed
def test_embed_unrelated_answers_score_low() -> None:
    assert embed_similarity("The refund was approved.", "The package arrived late.") < 0.3
    assert embed_similarity("same words here", "here same words") == pytest.approx(1.0)


@needs_embed
def test_embed_model_loads_from_the_wheel_without_writing_a_cache(tmp_path: Path) -> None:
    code = ("from perturbations import Item\n"
            "from robustify.scoring import score_answer\n"
            "it = Item(id='q', input='q?', target='It was approved.')\n"
            "print(score_answer(it, 'It has been approved.', scorer='similarity_embed').value)\n")
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1.0"
    assert list(tmp_path.iterdir()) == [], "the embedding model wrote files under HOME"


def test_missing_extra_fails_at_lookup_with_the_install_command(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "wordllama", None)  # import wordllama -> ImportError
    with pytest.raises(ConfigError) as caught:
        get_scorer("similarity_embed")
    message = str(caught.value)
    assert "\n" not in message
    assert "pip install 'robustify[embed]'" in message and "similarity_embed" in message
    assert get_scorer("similarity")  # the lexical mode needs nothing


def test_missing_extra_exits_2_before_any_model_call(monkeypatch, tmp_path: Path,
                                                     capsys) -> None:
    from robustify import cli
    from tests.robustify import e2e_models

    monkeypatch.setitem(sys.modules, "wordllama", None)
    e2e_models.CALLS.clear()
    code = cli.main(["run", "--data", "sample", "--model",
                     "python:tests.robustify.e2e_models:counting", "--transforms", "typos",
                     "--limit", "3", "--scorer", "similarity_embed",
                     "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "c.sqlite"),
                     "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "\n" not in err and "pip install 'robustify[embed]'" in err
    assert e2e_models.CALLS == []
    assert not (tmp_path / "run").exists()


def test_cli_run_grades_with_similarity(tmp_path: Path) -> None:
    import json

    import pandas as pd

    from robustify import cli

    out = tmp_path / "run"
    code = cli.main(["run", "--data", "sample", "--model",
                     "python:tests.robustify.e2e_models:brittle", "--transforms", "typos",
                     "--severity", "high", "--limit", "4", "--scorer", "similarity",
                     "--out", str(out), "--cache", "off", "--quiet"])
    assert code == 0
    assert json.loads((out / "manifest.json").read_text())["scorer"] == "similarity"
    rows = pd.read_csv(out / "results.csv")
    assert len(rows) == 8 and rows["score_detail"].notna().all()
    for detail, score in zip(rows["score_detail"].map(json.loads), rows["score"]):
        if detail.get("reason") == "empty":
            continue
        assert detail["threshold"] == LEXICAL_THRESHOLD
        assert score == float(detail["similarity"] >= LEXICAL_THRESHOLD
                              and "veto" not in detail)
