"""Scorers against the kind of text models really send back."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perturbations.errors import ConfigError, UnknownNameError
from perturbations.records import Item
from robustify.records import Score
from robustify.scoring import (DEFAULT_SCORERS, SCORERS, normalize_text, parse_number,
                               score_answer)

MC = Item(id="mc", task="multiple_choice",
          input="Which planet is known as the red planet?",
          choices=("Venus", "Mars", "Jupiter", "Neptune"), target="B")


def right(parsed: str) -> tuple[float, str, bool]:
    return (1.0, parsed, False)


def wrong(parsed: str) -> tuple[float, str, bool]:
    return (0.0, parsed, False)


UNPARSEABLE = (0.0, None, True)


def outcome(score: Score) -> tuple[float, str | None, bool]:
    return (score.value, score.parsed, score.unparseable)


# --- multiple choice ---------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("B", right("B")),
    ("B.", right("B")),
    ("(B)", right("B")),
    ("[B]", right("B")),
    ("b", right("B")),
    ("Answer: B", right("B")),
    ("answer: B", right("B")),
    ("B. Mars", right("B")),
    ("B) Mars", right("B")),
    ("**B.** Mars", right("B")),
    ("The answer is B", right("B")),
    ("The correct answer is (B) Mars.", right("B")),
    ("I would pick option B here.", right("B")),
    ("Mars", right("B")),
    ("mars.", right("B")),
    ("The red planet is Mars.", right("B")),
    ("Mars is called the red planet, unlike Venus.", right("B")),
    ("C. Jupiter", wrong("C")),
    ("Jupiter", wrong("C")),
    ("A", wrong("A")),
    ("I think it is B.", right("B")),
    ("A is wrong; the answer is B", UNPARSEABLE),  # two letters named
    ("A or B", UNPARSEABLE),
    ("(A) or (C)", UNPARSEABLE),
    ("B. Jupiter", UNPARSEABLE),                    # letter contradicts the option text
    ("Venus or Mars, I am not sure.", UNPARSEABLE),
    ("A planet is a large body that orbits a star.", UNPARSEABLE),  # "A" is an article
    ("I don't know.", UNPARSEABLE),                 # "I" is a pronoun
    ("the answer is a bit unclear to me", UNPARSEABLE),
    ("", UNPARSEABLE),
    ("   ", UNPARSEABLE),
])
def test_multiple_choice(text: str, expected: tuple) -> None:
    assert outcome(score_answer(MC, text)) == expected


def test_multiple_choice_nested_option_text_prefers_longest() -> None:
    item = Item(id="n", task="multiple_choice", input="Which city?",
                choices=("Paris", "Paris, Texas", "Rome"), target="B")
    assert outcome(score_answer(item, "It is Paris, Texas.")) == right("B")
    assert outcome(score_answer(item, "Paris")) == wrong("A")


def test_multiple_choice_letter_outside_choices_is_not_a_letter() -> None:
    item = Item(id="two", task="multiple_choice", input="Is it hot?",
                choices=("Yes", "No"), target="A")
    assert outcome(score_answer(item, "D")) == UNPARSEABLE
    assert outcome(score_answer(item, "Yes")) == right("A")


def test_multiple_choice_detail_says_how_it_was_read() -> None:
    assert score_answer(MC, "B").detail["source"] == "letter"
    assert score_answer(MC, "Mars").detail["source"] == "text"
    assert score_answer(MC, "A or B").detail["reason"] == "several letters"


# --- yes / no ---------------------------------------------------------------------------

YES = Item(id="yn", task="yes_no", input="Can penguins swim?", target="yes",
           context="Penguins are strong swimmers.")
NO = Item(id="yn2", task="yes_no", input="Can penguins fly?", target="No")


@pytest.mark.parametrize("text, expected", [
    ("Yes", right("yes")),
    ("Yes.", right("yes")),
    ("yes", right("yes")),
    ("YES!", right("yes")),
    ("Yes, because the passage says they are strong swimmers.", right("yes")),
    ("**Yes**", right("yes")),
    ("Answer: Yes", right("yes")),
    ("The answer is yes.", right("yes")),
    ("True", right("yes")),
    ("Correct.", right("yes")),
    ("That's right.", right("yes")),
    ("Yep", right("yes")),
    ("No.", wrong("no")),
    ("no", wrong("no")),
    ("No, penguins cannot fly.", wrong("no")),
    ("False", wrong("no")),
    ("Definitely not.", wrong("no")),
    ("Not really.", wrong("no")),
    ("That is not true.", wrong("no")),
    ("Based on the passage, the answer would be: no", wrong("no")),
    ("I don't know.", UNPARSEABLE),
    ("I'm not sure, the passage does not say.", UNPARSEABLE),
    ("Yes and no.", UNPARSEABLE),
    ("There is no evidence either way.", UNPARSEABLE),  # "no" inside a sentence
    ("Penguins are birds.", UNPARSEABLE),
    ("Sure! Here is what the passage says about penguins", UNPARSEABLE),
    ("", UNPARSEABLE),
])
def test_yes_no(text: str, expected: tuple) -> None:
    assert outcome(score_answer(YES, text)) == expected


def test_yes_no_gold_is_case_insensitive_and_accepts_true_false() -> None:
    assert score_answer(NO, "no").value == 1.0
    assert score_answer(NO, "NO.").value == 1.0
    truth = Item(id="t", task="yes_no", input="Is it?", target="True")
    assert score_answer(truth, "Yes").value == 1.0


def test_yes_no_bad_gold_is_a_config_error() -> None:
    bad = Item(id="b", task="yes_no", input="Is it?", target="maybe")
    with pytest.raises(ConfigError, match="maybe"):
        score_answer(bad, "yes")


# --- numeric ----------------------------------------------------------------------------

def num(target: str) -> Item:
    return Item(id="n", task="numeric", input="How many?", target=target)


@pytest.mark.parametrize("target, text, expected", [
    ("12", "12", right("12")),
    ("12", "12.0", right("12")),
    ("12", "The answer is 12.", right("12")),
    ("12", "She has 7 + 5 = 12 apples now.", right("12")),
    ("1200", "1,200", right("1200")),
    ("1200", "It costs $1,200 in total.", right("1200")),
    ("4.5", "$4.50", right("4.5")),
    ("-3", "-3", right("-3")),
    ("-3", "The temperature is -3 degrees.", right("-3")),
    ("2", "5 - 3 = 2", right("2")),
    ("0.75", "3/4", right("0.75")),
    ("42", "First 40 + 2.\n#### 42", right("42")),
    ("42", "#### 42\nThat is 6 times 7, plus 0.", right("42")),
    ("42", "Answer: 42 apples, from 6 bags of 7", right("42")),
    ("42", "The final answer is \\boxed{42}.", right("42")),
    ("12", "twelve", right("12")),
    ("205", "two hundred and five", right("205")),
    ("12", "a dozen", right("12")),
    ("15", "15%", right("15")),
    ("8", "12 - 4 = 6 cookies are left in the jar.", wrong("6")),
    ("4", "The answer is 7, one more than six.", wrong("7")),   # words ignored when digits exist
    ("4", "3-4", right("4")),                                   # a range, not minus four
    ("10", "There are 8 boxes of pencils.", wrong("8")),
    ("10", "I cannot tell from the question.", UNPARSEABLE),
    ("10", "", UNPARSEABLE),
])
def test_numeric(target: str, text: str, expected: tuple) -> None:
    assert outcome(score_answer(num(target), text)) == expected


def test_numeric_bad_target_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a number"):
        score_answer(num("lots"), "12")


@pytest.mark.parametrize("text, value", [
    ("1,200", 1200.0), ("$4.50", 4.5), ("-3", -3.0), ("3/4", 0.75), ("twelve", 12.0),
    ("forty-two", 42.0), ("one thousand two hundred", 1200.0), ("nothing here", None),
    ("−7", -7.0), (".5", 0.5),
])
def test_parse_number(text: str, value: float | None) -> None:
    assert parse_number(text) == value


@given(st.integers(min_value=-10**9, max_value=10**9))
def test_numeric_reads_back_any_integer_with_thousands_separators(n: int) -> None:
    assert score_answer(num(str(n)), f"So the total is {n:,}.").value == 1.0


# --- classification ---------------------------------------------------------------------

LABELS = ["billing", "cancel_subscription", "reset_password", "shipping_status", "refund",
          "technical_issue", "billing_issue"]
CLS = Item(id="c", task="classification", input="I was charged twice.", target="billing_issue",
           metadata={"labels": LABELS,
                     "aliases": {"billing_issue": ["double charge", "charged twice"],
                                 "refund": ["money back"]}})


@pytest.mark.parametrize("text, expected", [
    ("billing_issue", right("billing_issue")),
    ("Billing Issue", right("billing_issue")),
    ("billing issue", right("billing_issue")),
    ("billing-issue.", right("billing_issue")),
    ("`billing_issue`", right("billing_issue")),
    ("Category: billing_issue", right("billing_issue")),
    ("double charge", right("billing_issue")),
    ("This looks like a double charge to me.", right("billing_issue")),
    ("billing", wrong("billing")),   # a different label, not a prefix match of billing_issue
    ("refund", wrong("refund")),
    ("They want their money back.", wrong("refund")),
    ("refund_request", wrong("refund")),
    ("Either refund or billing_issue.", UNPARSEABLE),
    ("complaint", UNPARSEABLE),
    ("", UNPARSEABLE),
])
def test_classification(text: str, expected: tuple) -> None:
    assert outcome(score_answer(CLS, text)) == expected


def test_classification_without_labels_uses_target_and_alias_keys() -> None:
    item = Item(id="s", task="classification", input="Great film!", target="positive",
                metadata={"aliases": {"positive": ["pos"], "negative": ["neg"]}})
    assert outcome(score_answer(item, "POS")) == right("positive")
    assert outcome(score_answer(item, "negative")) == wrong("negative")


# --- short answer, exact, normalized, contains, token F1, regex --------------------------------

FACT = Item(id="f", input="Who painted the Mona Lisa?", target="Leonardo da Vinci",
            metadata={"aliases": ["da Vinci", "Leonardo"]})


@pytest.mark.parametrize("text, expected_value", [
    ("Leonardo da Vinci", 1.0),
    ("leonardo da vinci.", 1.0),
    ("The Mona Lisa was painted by Leonardo da Vinci.", 1.0),
    ("Da Vinci", 1.0),
    ("Michelangelo", 0.0),
    ("Vinci", 0.0),  # part of a name is not the name
])
def test_short_answer(text: str, expected_value: float) -> None:
    assert score_answer(FACT, text).value == expected_value


def test_short_answer_strips_articles_and_reads_numbers() -> None:
    moon = Item(id="m", input="What orbits the Earth?", target="the Moon")
    assert outcome(score_answer(moon, "Moon")) == right("moon")
    legs = Item(id="l", input="How many legs does a spider have?", target="8")
    assert score_answer(legs, "Spiders have eight legs.").value == 1.0
    assert score_answer(legs, "Spiders have 8 legs.").value == 1.0
    big = Item(id="b", input="How many?", target="1000")
    assert score_answer(big, "About 1,000 of them.").value == 1.0


def test_exact_is_case_sensitive_after_stripping() -> None:
    item = Item(id="e", input="Symbol for water?", target="H2O")
    assert outcome(score_answer(item, " H2O\n", scorer="exact")) == right("H2O")
    assert outcome(score_answer(item, "h2o", scorer="exact")) == wrong("h2o")


def test_normalized_and_contains() -> None:
    assert score_answer(FACT, "  LEONARDO   da Vinci!! ", scorer="normalized").value == 1.0
    assert score_answer(FACT, "It was Leonardo da Vinci", scorer="normalized").value == 0.0
    assert score_answer(FACT, "It was Leonardo da Vinci", scorer="contains").value == 1.0


def test_token_f1_gives_partial_credit() -> None:
    item = Item(id="t", input="Where?", target="the north side of the river")
    score = score_answer(item, "north side", scorer="token_f1")
    # gold tokens (articles dropped): north side of river -> P=1, R=2/4 -> F1=2/3
    assert score.value == pytest.approx(2 / 3)
    assert score_answer(item, "north side of the river", scorer="token_f1").value == 1.0
    assert score_answer(item, "somewhere else", scorer="token_f1").value == 0.0


def test_regex_extracts_or_accepts() -> None:
    extract = Item(id="r", input="Code?", target="AB-12",
                   metadata={"answer_regex": r"code is ([A-Z]{2}-\d+)"})
    assert outcome(score_answer(extract, "Your code is AB-12.", scorer="regex")) == right("AB-12")
    assert outcome(score_answer(extract, "Your code is CD-99.", scorer="regex")) == wrong("CD-99")
    assert outcome(score_answer(extract, "No idea.", scorer="regex")) == UNPARSEABLE
    accept = Item(id="r2", input="Greeting?", target="hello",
                  metadata={"answer_regex": r"\bhel+o\b"})
    assert score_answer(accept, "Hellllo there", scorer="regex").value == 1.0
    assert outcome(score_answer(accept, "Goodbye", scorer="regex")) == wrong("Goodbye")
    with pytest.raises(ConfigError, match="answer_regex"):
        score_answer(FACT, "x", scorer="regex")


# --- dispatch ---------------------------------------------------------------------------------

def test_failed_call_is_unscored() -> None:
    for item in (MC, YES, num("3"), CLS, FACT):
        score = score_answer(item, None)
        assert math.isnan(score.value) and not score.scored and not score.unparseable


def test_default_scorer_follows_the_task_kind() -> None:
    assert set(DEFAULT_SCORERS) == {"multiple_choice", "yes_no", "numeric", "classification",
                                    "short_answer", "open"}
    assert all(name in SCORERS for name in DEFAULT_SCORERS.values())
    assert {"exact", "normalized", "contains", "token_f1", "regex"} <= set(SCORERS.names())


def test_custom_callable_scorers() -> None:
    assert score_answer(FACT, "anything", scorer=lambda item, text: True).value == 1.0
    assert score_answer(FACT, "anything", scorer=lambda item, text: 0.25).value == 0.25
    assert score_answer(FACT, "x", scorer=lambda i, t: Score(0.0, parsed="x")).parsed == "x"
    with pytest.raises(TypeError):
        score_answer(FACT, "x", scorer=lambda i, t: "yes")


def test_unknown_scorer_names_close_matches() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'numeric'"):
        score_answer(FACT, "x", scorer="numerc")


def test_normalize_text() -> None:
    assert normalize_text("The  Billing_Issue!") == "billing issue"
    assert normalize_text("Don't") == "dont"
    assert normalize_text("An apple", drop_articles=False) == "an apple"


def test_loglik_options_and_exact_grading() -> None:
    from robustify.scoring.loglik import choice_options, score_choice

    mc = Item(id="m", task="multiple_choice", input="?", choices=("Sun", "The Sun"), target="B")
    assert choice_options(mc) == ("Sun", "The Sun")
    graded = score_choice(mc, "The Sun")        # exact option, no text matching
    assert (graded.value, graded.parsed, graded.detail) == (1.0, "B", {"source": "loglik"})
    assert score_choice(mc, "Sun").value == 0.0
    intent = Item(id="c", task="classification", input="?", target="refund",
                  metadata={"labels": ["billing", "refund"]})
    assert choice_options(intent) == ("billing", "refund")
    assert score_choice(intent, "refund").value == 1.0
    assert choice_options(Item(id="c2", task="classification", input="?", target="x")) is None
    yn = Item(id="y", task="yes_no", input="?", target="No")
    assert choice_options(yn) == ("Yes", "No") and score_choice(yn, "No").value == 1.0
    numeric = Item(id="n", task="numeric", input="?", target="4")
    assert choice_options(numeric) is None
    assert score_choice(numeric, "2 + 2 = 4").value == 1.0     # generated: its own scorer
    assert math.isnan(score_choice(numeric, None).value)


def test_loglik_letters_when_the_template_answers_with_letters() -> None:
    from robustify.prompts import PromptTemplate
    from robustify.models.requests import split_request
    from robustify.runner.requests import RequestBuilder
    from robustify.scoring.loglik import score_choice

    mc = Item(id="m", task="multiple_choice", input="Red planet?", choices=("Venus", "Mars"),
              target="B")
    lettered = PromptTemplate(system="", user="{input}{choices_block}", answer_instruction="",
                              shot_answer="{letter}")
    _, request = split_request(RequestBuilder({"multiple_choice": lettered},
                                              scoring_mode="loglik")(mc))
    assert request == {"options": ["A", "B"]}
    _, request = split_request(RequestBuilder(scoring_mode="loglik_norm")(mc))
    assert request == {"options": ["Venus", "Mars"], "normalize": True}
    assert score_choice(mc, "B").value == 1.0 and score_choice(mc, "A").parsed == "A"
