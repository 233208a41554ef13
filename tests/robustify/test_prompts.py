"""Prompt construction: exact messages, clean few-shot examples, user overrides."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from perturbations.errors import ConfigError
from perturbations.records import TASK_KINDS, Item
from robustify.prompts import (DEFAULT_TEMPLATES, INTENT_LABELS, PromptTemplate,
                               build_messages, load_templates, render_user)

YN = Item(id="yn-x", task="yes_no", input="Is the pool open on Sundays?", target="no",
          context="The pool is open Monday to Saturday.")
MC = Item(id="mc-x", task="multiple_choice", input="Which one is a fruit?",
          choices=("Carrot", "Apple", "Potato"), target="B")


def test_every_task_kind_has_a_default_template() -> None:
    assert set(DEFAULT_TEMPLATES) == set(TASK_KINDS)
    for template in DEFAULT_TEMPLATES.values():
        assert template.few_shot, "the small default model needs worked examples"


def test_exact_messages_for_a_yes_no_item() -> None:
    template = PromptTemplate(system="Answer about the passage.",
                              user="{context_block}Question: {input}",
                              answer_instruction="Reply Yes or No.")
    assert build_messages(YN, {"yes_no": template}) == [
        {"role": "system", "content": "Answer about the passage."},
        {"role": "user", "content": "Passage: The pool is open Monday to Saturday.\n\n"
                                    "Question: Is the pool open on Sundays?\n\nReply Yes or No."},
    ]


def test_exact_messages_with_default_multiple_choice_template() -> None:
    messages = build_messages(MC)
    assert messages[0] == {"role": "system", "content": "Answer with one of the given options."}
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant",
                                             "user"]
    assert messages[1]["content"] == ("Choose from: Dolphin, Blue whale, Shark or Seal.\n"
                                      "Which animal is the largest mammal living in the ocean "
                                      "today?")
    assert messages[2]["content"] == "Blue whale"
    assert messages[-1] == {"role": "user", "content": "Choose from: Carrot, Apple or Potato.\n"
                                                       "Which one is a fruit?"}


def test_choice_placeholders() -> None:
    template = PromptTemplate(system="", user="{input}{choices_block}\n[{choices_inline}]",
                              answer_instruction="Letter:")
    messages = build_messages(MC, {"multiple_choice": template})
    assert messages == [{"role": "user", "content": "Which one is a fruit?\nA. Carrot\nB. Apple\n"
                                                    "C. Potato\n[Carrot, Apple or Potato]\n\n"
                                                    "Letter:"}]
    comma = dataclasses.replace(MC, choices=("Paris, Texas", "Rome"), target="A")
    assert '"Paris, Texas" or "Rome"' in render_user(comma, template)


def test_answer_instruction_can_be_placed_by_the_user_template() -> None:
    template = PromptTemplate(system="", user="{answer_instruction}\n{input}",
                              answer_instruction="One word:")
    item = Item(id="f", input="Capital of Peru?", target="Lima")
    last = build_messages(item, {"short_answer": template})[-1]
    assert last["content"] == "One word:\nCapital of Peru?"


def test_few_shot_examples_stay_clean_when_the_item_is_perturbed() -> None:
    clean = build_messages(YN)
    noisy = build_messages(dataclasses.replace(YN, input="is teh pool opn on sundys??"))
    assert clean[:-1] == noisy[:-1]
    assert "is teh pool opn on sundys??" in noisy[-1]["content"]
    assert "Answer with Yes or No." in noisy[-1]["content"]  # the template keeps its instruction
    shots = DEFAULT_TEMPLATES["yes_no"].few_shot
    assert [m["content"] for m in clean if m["role"] == "assistant"] == [s.target for s in shots]


def test_numeric_examples_show_the_worked_solution() -> None:
    item = Item(id="n", task="numeric", input="What is 2 plus 2 apples?", target="4")
    answers = [m["content"] for m in build_messages(item) if m["role"] == "assistant"]
    assert answers == [s.metadata["solution"] for s in DEFAULT_TEMPLATES["numeric"].few_shot]
    assert answers[0] == "6 x 3 = 18"


def test_classification_labels_and_matching_examples() -> None:
    item = Item(id="i", task="classification", input="Where is my parcel?",
                target="shipping_status", metadata={"labels": list(INTENT_LABELS)})
    messages = build_messages(item)
    assert ", ".join(INTENT_LABELS) in messages[0]["content"]
    assert len(messages) == 2 + 2 * len(INTENT_LABELS)


def test_classification_examples_with_another_label_set_are_skipped() -> None:
    item = Item(id="s", task="classification", input="Loved this film!", target="positive",
                metadata={"labels": ["positive", "negative"]})
    messages = build_messages(item)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "positive, negative" in messages[0]["content"]
    unlabelled = Item(id="u", task="classification", input="Meh.", target="neutral")
    assert len(build_messages(unlabelled)) == 2  # the intent examples need the intent labels
    own = dataclasses.replace(DEFAULT_TEMPLATES["classification"],
                              few_shot=(Item(id="s1", task="classification", input="Awful film.",
                                             target="negative"),))
    assert [m["content"] for m in build_messages(item, {"classification": own})][1:3] == [
        "Message: Awful film.\n\nCategory:", "negative"]  # undeclared labels: always shown


def test_empty_system_is_left_out_and_missing_kinds_fall_back() -> None:
    bare = PromptTemplate(system="", user="{input}", answer_instruction="")
    item = Item(id="f", input="Capital of Peru?", target="Lima")
    assert build_messages(item, {"short_answer": bare}) == [
        {"role": "user", "content": "Capital of Peru?"}]
    assert build_messages(YN, {"short_answer": bare}) == build_messages(YN)


def test_unknown_placeholder_is_refused() -> None:
    with pytest.raises(ConfigError, match="question"):
        PromptTemplate(system="", user="{question}", answer_instruction="")
    with pytest.raises(ConfigError, match="not a valid format"):
        PromptTemplate(system="", user="{input", answer_instruction="")


def test_missing_solution_in_example_metadata_names_the_example() -> None:
    template = dataclasses.replace(DEFAULT_TEMPLATES["numeric"],
                                   few_shot=(Item(id="bad-shot", task="numeric", input="1+1?",
                                                  target="2"),))
    item = Item(id="n", task="numeric", input="2+2?", target="4")
    with pytest.raises(ConfigError, match="bad-shot"):
        build_messages(item, {"numeric": template})


# --- override files --------------------------------------------------------------------------

def test_load_templates_from_yaml_overrides_only_named_fields(tmp_path: Path) -> None:
    path = tmp_path / "prompts.yaml"
    path.write_text(
        "yes_no:\n"
        "  system: Be brief.\n"
        "  few_shot:\n"
        "    - {context: Water is wet., input: 'Is water wet?', target: 'Yes'}\n"
        "short_answer:\n"
        "  answer_instruction: One or two words.\n",
        encoding="utf-8")
    templates = load_templates(path)
    assert set(templates) == set(TASK_KINDS)
    assert templates["yes_no"].system == "Be brief."
    assert templates["yes_no"].user == DEFAULT_TEMPLATES["yes_no"].user
    assert templates["multiple_choice"] == DEFAULT_TEMPLATES["multiple_choice"]
    messages = build_messages(YN, templates)
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Passage: Water is wet.\n\nQuestion: Is water wet?\n\n"
                                    "Answer with Yes or No."},
        {"role": "assistant", "content": "Yes"},
        {"role": "user", "content": "Passage: The pool is open Monday to Saturday.\n\n"
                                    "Question: Is the pool open on Sundays?\n\n"
                                    "Answer with Yes or No."},
    ]
    fact = Item(id="f", input="Capital of Peru?", target="Lima")
    assert build_messages(fact, templates)[-1]["content"] == "Capital of Peru?\n\nOne or two words."


def test_load_templates_from_json(tmp_path: Path) -> None:
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps({"numeric": {"few_shot": [], "system": None}}), encoding="utf-8")
    templates = load_templates(path)
    item = Item(id="n", task="numeric", input="2+2?", target="4")
    assert build_messages(item, templates) == [{"role": "user", "content": "2+2?"}]


@pytest.mark.parametrize("text, message", [
    ("yes_no:\n  sytem: hi\n", "unknown key yes_no.sytem"),
    ("essay:\n  system: hi\n", "unknown key 'essay'"),
    ("yes_no:\n  user: '{passage}'\n", "passage"),
    ("yes_no:\n  few_shot:\n    - {input: hi, target: 'yes', answer: x}\n", "unknown key 'answer'"),
    ("yes_no:\n  few_shot:\n    - {input: hi}\n", "needs 'input' and 'target'"),
    ("yes_no: [1, 2]\n", "expected a mapping"),
    ("- 1\n", "expected a mapping"),
    ("yes_no: {system: [unclosed\n", "not valid YAML"),
])
def test_bad_override_files_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_templates(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_missing_override_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_templates(tmp_path / "nope.yaml")


def test_task_params_table_model_and_job_precedence() -> None:
    from robustify.prompts import TASK_GENERATION, task_params

    assert TASK_GENERATION["numeric"] == {"max_tokens": 256}
    assert task_params("numeric", {}) == {"max_tokens": 256}
    assert task_params("yes_no", {}) == {}
    assert task_params("numeric", {"max_tokens": 32}) == {}        # the user's value stays
    assert task_params("numeric", {"max_tokens": 32},
                       {"numeric": {"max_tokens": 512}}) == {"max_tokens": 512}


def test_user_shots_replace_the_builtin_examples() -> None:
    from robustify.prompts import with_user_shots

    mc = Item(id="u1", task="multiple_choice", input="Pick the fruit.",
              choices=("Stone", "Apple"), target="B")
    num = Item(id="u2", task="numeric", input="2 + 3?", target="5")
    templates = with_user_shots(None, {"multiple_choice": [mc], "numeric": [num]})
    item = Item(id="q", task="numeric", input="4 + 4?", target="8")
    messages = build_messages(item, templates)
    # no worked solution in the user's row: the example answers with its target
    assert messages[1:3] == [{"role": "user", "content": "2 + 3?"},
                             {"role": "assistant", "content": "5"}]
    assert len(messages) == 4
    question = Item(id="m", task="multiple_choice", input="Pick.", choices=("x", "y"), target="A")
    assert build_messages(question, templates)[2] == {"role": "assistant", "content": "Apple"}
    assert templates["yes_no"] == DEFAULT_TEMPLATES["yes_no"]
