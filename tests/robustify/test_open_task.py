"""Task kind ``open``: real traffic without gold, consistency runs, production answers.

The python callables below are models (``python:tests.robustify.test_open_task:NAME``):
their answers are fixed functions of the message, so the expected consistency is exact.
One run uses the real local SmolLM2 model.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

import robustify
from perturbations import Item
from perturbations.guard import check_variant
from perturbations.records import answer_strings
from robustify.cli import main
from robustify.data import load_items
from robustify.prompts import build_messages

HERE = "python:tests.robustify.test_open_task:"
ASKED: list[str] = []
_LOCK = threading.Lock()

# two messages with capitals (lower-casing changes them), two without (left as they are)
MESSAGES = ["Where is my parcel right now?", "Please cancel my order today.",
            "how do i change my password", "is the shop open on sunday"]


def _user(messages: list[dict[str, str]]) -> str:
    text = messages[-1]["content"]
    with _LOCK:
        ASKED.append(text)
    return text


def by_case(messages: list[dict[str, str]]) -> str:
    """One answer to a message with a capital letter, another to an all-lower one."""
    text = _user(messages)
    if any(c.isupper() for c in text):
        return "Your request has been passed to our support team."
    return "Sorry, I cannot help with that right now."


def steady(messages: list[dict[str, str]]) -> str:
    """The same answer to everything (trivially consistent)."""
    _user(messages)
    return "Thank you for your message, we will reply soon."


def echo(messages: list[dict[str, str]]) -> str:
    """The message itself: any change to the message changes the answer."""
    return _user(messages)


@pytest.fixture(autouse=True)
def _clear() -> None:
    ASKED.clear()


def _lines(tmp_path: Path, messages: list[str] = MESSAGES, name: str = "messages.txt") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(messages) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------ data

def test_text_file_gives_open_items_with_stable_ids(tmp_path: Path) -> None:
    path = _lines(tmp_path, ["first message", "", "  ", "second message"])
    items = load_items(path, task="open")
    assert [(i.id, i.input, i.target, i.task) for i in items] == [
        ("messages-000001", "first message", "", "open"),
        ("messages-000002", "second message", "", "open")]
    assert load_items(path, task="open") == items


def test_table_with_production_answers_and_gold(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("id,text,reply,gold\na1,Where is my parcel?,It ships on Monday.,\n"
                    "a2,Can I pay by card?,,Yes you can.\n", encoding="utf-8")
    # "gold" is one of the usual target columns: a row with one is scored against it
    items = load_items(path, task="open", mapping="input=text,answer=reply")
    assert [(i.id, i.target, dict(i.metadata)) for i in items] == [
        ("a1", "", {"production_answer": "It ships on Monday."}),
        ("a2", "Yes you can.", {})]


def test_open_guard_keeps_numbers_negations_and_names() -> None:
    clean = Item(id="m", input="I did not get order 5512 from Sydney", target="", task="open")
    assert answer_strings(clean) == ()
    kinds = {v.kind for v in check_variant(
        clean, Item(id="m", input="I did get order 5513 from Paris", target="", task="open"),
        "preserves")}
    assert {"negation_lost", "number_lost", "number_added", "entity_lost"} <= kinds
    assert check_variant(clean, Item(id="m", input="i did not get ordr 5512 from sydney",
                                     target="", task="open"), "preserves") == ()
    with_gold = Item(id="g", input="Is Paris the capital?", target="Paris is the capital.",
                     task="open")
    assert answer_strings(with_gold) == ("Paris is the capital.",)


def test_open_prompt_is_the_message_as_typed() -> None:
    messages = build_messages(Item(id="m", input="hi, my app crashes", target="", task="open"))
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user",
                                             "assistant", "user"]
    assert messages[-1]["content"] == "hi, my app crashes"
    assert messages[2]["content"].startswith("Open Settings, choose Account")


# ------------------------------------------------------------------ consistency runs

def test_consistency_drop_is_the_share_of_changed_answers(tmp_path: Path) -> None:
    result = robustify.evaluate(data=str(_lines(tmp_path)), task="open",
                                models=[HERE + "by_case"], transforms=["casing:mode=lower@1"],
                                cache="off", write=False, progress=False)
    frame = result.results
    clean = frame[frame["spec"] == "clean"].set_index("item_id")
    noisy = frame[frame["spec"] != "clean"].set_index("item_id")
    assert (clean["target"] == clean["response"]).all()
    assert clean["score"].tolist() == [1.0] * 4
    assert set(frame["meta.reference"]) == {"clean_answer"}
    assert (noisy["target"] == clean.loc[noisy.index, "response"]).all()
    assert noisy["score"].tolist() == [0.0, 0.0, 1.0, 1.0]  # the two capitalised messages
    row = result.overview().iloc[0]
    assert row["clean_score"] == 1.0
    assert row["perturbed_score"] == pytest.approx(0.5)
    assert row["overestimation_pp"] == pytest.approx(50.0)
    assert result.manifest["consistency"] == {
        "reference": "clean_answer", "gold_used": False, "items_without_gold": 4,
        "items_with_gold": 0, "clean_answers": {"asked": 4, "production": 0},
        "scorer": "similarity"}
    assert len(ASKED) == 8  # 4 clean + 4 variants
    assert "consistency: clean 100.0%" in repr(result)
    kinds = {f.kind for f in result.validity()}
    assert "at_chance" not in kinds and "constant" not in kinds


def test_cli_consistency_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code = main(["run", "--data", str(_lines(tmp_path)), "--task", "open", "--model",
                 HERE + "by_case", "--transforms", "casing:mode=lower@1", "--cache", "off",
                 "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Consistency run: no gold answer was used for 4 items" in printed
    assert "consistency: clean 100.0%  stress 50.0%" in printed
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "Consistency run: no gold answer was used" in report
    assert "clean consistency of 100.0%" in report
    assert "no gold answer used" in report
    assert "Consistency run: no gold answer was used" in (out / "report.html").read_text(
        encoding="utf-8")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["consistency"]["items_without_gold"] == 4
    assert "open" not in manifest["chance"]


def test_constant_answers_are_warned_without_chance(tmp_path: Path) -> None:
    messages = [f"Message number {w} about my account" for w in
                ("one", "two", "three", "four", "five", "six")]
    result = robustify.evaluate(data=str(_lines(tmp_path, messages)), task="open",
                                models=[HERE + "steady"], transforms=["typos@0.5"],
                                cache="off", write=False, progress=False)
    (message,) = result.warnings()[HERE + "steady"]
    assert message.startswith("100.0% of its clean answers are the same answer")
    assert "agrees with itself whatever the noise" in message
    assert result.overview().iloc[0]["overestimation_pp"] == 0.0


def test_production_answers_are_not_asked(tmp_path: Path) -> None:
    path = tmp_path / "traffic.jsonl"
    rows = [{"query": MESSAGES[0], "bot": "Your request has been passed to our support team."},
            {"query": MESSAGES[1], "bot": "Something else entirely was said here."},
            {"query": MESSAGES[2]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = robustify.evaluate(data=str(path), task="open", mapping="input=query,answer=bot",
                                models=[HERE + "by_case"], transforms=["casing:mode=lower@1"],
                                cache="off", write=False, progress=False)
    # only the row without a production answer is asked clean; every variant is asked
    assert sorted(ASKED) == sorted([MESSAGES[2], MESSAGES[0].lower(), MESSAGES[1].lower(),
                                    MESSAGES[2]])
    frame = result.results.set_index(["spec", "item_id"])
    assert frame.loc[("clean", "traffic-000001"), "response"] == rows[0]["bot"]
    assert frame.loc[("clean", "traffic-000001"), "latency"] == 0.0
    noisy = result.results[result.results["spec"] != "clean"]
    assert noisy["target"].tolist()[:2] == [rows[0]["bot"], rows[1]["bot"]]
    assert noisy["score"].tolist() == [0.0, 0.0, 1.0]
    assert result.manifest["consistency"]["clean_answers"] == {"asked": 1, "production": 2}


def test_job_file_maps_production_answers(tmp_path: Path) -> None:
    data = tmp_path / "chats.csv"
    data.write_text("question,reply\nWhere is my parcel right now?,It ships on Monday.\n"
                    "how do i change my password,\n", encoding="utf-8")
    job = tmp_path / "job.yaml"
    job.write_text(f"data:\n  - path: {data}\n    task: open\n    map: {{input: question, "
                   f"answer: reply}}\nmodels: ['{HERE}by_case']\ntransforms: "
                   f"['casing:mode=lower@1']\ncache: 'off'\n", encoding="utf-8")
    out = tmp_path / "run"
    assert main(["run", "--config", str(job), "--out", str(out), "--quiet"]) == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["consistency"]["clean_answers"] == {"asked": 1, "production": 1}
    # cache off (the job file's "off" is not a path): the unchanged variant is asked again
    assert ASKED[0] == "how do i change my password"  # the clean phase: one call
    assert sorted(ASKED[1:]) == ["how do i change my password",
                                 "where is my parcel right now?"]


def test_gold_targets_are_used_when_present(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_text("input,target\nWhere is my parcel right now?,Your request has been "
                    "passed to our support team.\nhow do i change my password,"
                    "Use the reset link.\n", encoding="utf-8")
    result = robustify.evaluate(data=str(path), task="open", models=[HERE + "by_case"],
                                transforms=["casing:mode=lower@1"], cache="off", write=False,
                                progress=False)
    assert "consistency" not in result.manifest
    clean = result.results[result.results["spec"] == "clean"]
    assert clean["score"].tolist() == [1.0, 0.0]
    assert result.manifest["chance"] == {"open": 0.0}


def test_failed_clean_answer_leaves_its_variants_unscored(tmp_path: Path) -> None:
    result = robustify.evaluate(data=str(_lines(tmp_path)), task="open",
                                models=[HERE + "fails_on_parcel"],
                                transforms=["casing:mode=lower@1"], cache="off", write=False,
                                progress=False)
    frame = result.results
    failed = frame[(frame["item_id"] == "messages-000001")]
    assert failed["error"].notna().tolist() == [True, False]
    assert math.isnan(failed["score"].iloc[1])
    assert json.loads(failed["score_detail"].iloc[1]) == {
        "reason": "no clean answer (its call failed)"}
    assert frame[frame["item_id"] != "messages-000001"]["score"].notna().all()


def fails_on_parcel(messages: list[dict[str, str]]) -> str:
    """Fails the clean parcel message (capital W); answers everything else."""
    text = _user(messages)
    if text.startswith("Where"):
        raise ValueError("backend exploded")
    return "ok then"


# ------------------------------------------------------------------ bad input

@pytest.mark.parametrize("files, args, expected", [
    ({"empty.txt": ""}, [], "empty.txt: no message found"),
    ({"log.csv": "text,reply\nhello there,hi\n"}, ["--map", "input=text,answer=nope"],
     "log.csv, line 1, field 'answer': no column 'nope'"),
    ({"log.csv": "body\nhello there\n"}, [], "log.csv, line 1, field 'input': no input column"),
    ({"m.txt": "hello there\n"}, ["--map", "answer=reply"],
     "m.txt, field 'answer': a text file has one message per line"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, files: dict[str, str],
                                          args: list[str], expected: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "robustify", "run", "--data",
                           str(tmp_path / next(iter(files))), "--task", "open", "--model",
                           HERE + "echo", "--cache", "off", "--out", str(out), *args],
                          capture_output=True, text=True, cwd=Path(__file__).parents[2],
                          timeout=300)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], done.stderr
    assert not out.exists()


def test_noise_floor_refused_before_any_call(tmp_path: Path) -> None:
    with pytest.raises(robustify.ConfigError, match="--noise-floor needs gold answers"):
        robustify.evaluate(data=str(_lines(tmp_path)), task="open", models=[HERE + "echo"],
                           transforms=["typos"], noise_floor=1, cache="off", write=False,
                           progress=False)
    assert ASKED == []


# ------------------------------------------------------------------ the real local model

def test_smollm2_consistency_run(tmp_path: Path, local_model_path: Path) -> None:
    path = _lines(tmp_path, ["What is the capital city of France?",
                             "How many days are there in a week?"])
    result = robustify.evaluate(data=str(path), task="open", models=["local:smollm2"],
                                transforms=["casing:mode=lower@1"], cache="off",
                                params={"max_tokens": 24}, write=False, progress=False)
    frame = result.results
    assert frame["error"].isna().all()
    clean = frame[frame["spec"] == "clean"].set_index("item_id")
    noisy = frame[frame["spec"] != "clean"].set_index("item_id")
    assert clean["score"].tolist() == [1.0, 1.0]
    assert (noisy["target"] == clean.loc[noisy.index, "response"]).all()
    assert set(noisy["meta.reference"]) == {"clean_answer"}
    assert noisy["score"].isin([0.0, 1.0]).all()
    row = result.overview().iloc[0]
    assert row["overestimation_pp"] == pytest.approx(100.0 * (1 - noisy["score"].mean()))
    assert isinstance(pd.Series(clean["response"]).iloc[0], str)
