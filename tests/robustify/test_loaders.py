"""Tests of robustify.data: formats, presets, mapping, detection, sampling and errors.

Every error test asserts the file, the line and the field the message names, because
that is what a user needs to fix a 100,000-row file.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from perturbations import ConfigError, DataError, Item, MissingDependencyError, UnknownNameError
from robustify.data import FORMATS, FormatInfo, detect_format, load_items, parse_mapping
from robustify.data import loaders, readers

ROOT = Path(__file__).resolve().parents[2]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[list], delimiter: str = ",") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, delimiter=delimiter).writerows(rows)
    return path


def error_of(exc_type: type[Exception], *args, **kwargs) -> Exception:
    with pytest.raises(exc_type) as info:
        load_items(*args, **kwargs)
    return info.value


# --------------------------------------------------------------------------- presets

def test_mmlu_headerless_csv_with_subject_from_file_name(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "astronomy_test.csv", [
        ["What is the closest star to Earth?", "Sirius", "The Sun", "Vega", "Proxima", "B"],
        ["Which planet has rings, visible, bright?", "Saturn", "Mars", "Venus", "Mercury", "A"],
    ])
    assert detect_format(path) == "mmlu"
    items = load_items(path)
    assert [i.id for i in items] == ["astronomy_test-000001", "astronomy_test-000002"]
    first = items[0]
    assert first.input == "What is the closest star to Earth?"
    assert first.choices == ("Sirius", "The Sun", "Vega", "Proxima")
    assert first.target == "B"
    assert first.task == "multiple_choice"
    assert first.metadata == {"subject": "astronomy"}
    assert items[1].input == "Which planet has rings, visible, bright?"  # quoted commas


def test_mmlu_preset_skips_a_header_row(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "high_school_biology_dev.csv", [
        ["question", "A", "B", "C", "D", "answer"],
        ["Cells are made of?", "cells", "atoms", "rocks", "air", "b"],
    ])
    items = load_items(path, format="mmlu")
    assert len(items) == 1
    assert items[0].target == "B"
    assert items[0].metadata["subject"] == "high_school_biology"


def test_gsm8k_target_is_the_final_number_and_solution_is_kept(tmp_path: Path) -> None:
    answer = "She sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\nShe makes 9 * 2 = $18.\n#### 1,018"
    path = write_jsonl(tmp_path / "gsm8k_test.jsonl", [
        {"question": "Janet's ducks lay 16 eggs per day...", "answer": answer}])
    assert detect_format(path) == "gsm8k"
    (item,) = load_items(path)
    assert item.target == "1018"
    assert item.task == "numeric"
    assert item.metadata["solution"] == answer
    assert item.id == "gsm8k_test-000001"


def test_gsm8k_answer_without_final_line_is_refused(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "g.jsonl", [
        {"question": "q1", "answer": "a\n#### 3"}, {"question": "q2", "answer": "no number"}])
    err = error_of(DataError, path, format="gsm8k")
    assert (err.path, err.line, err.field) == (str(path), 2, "target")
    assert "#### <number>" in str(err)


def test_boolq_is_yes_no_with_passage_as_context(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "boolq.jsonl", [
        {"question": "is the sky blue", "title": "Sky", "answer": True,
         "passage": "The sky appears blue because of Rayleigh scattering."},
        {"question": "do fish fly", "title": "Fish", "answer": False, "passage": "Fish swim."},
    ])
    assert detect_format(path) == "boolq"
    items = load_items(path)
    assert [(i.target, i.task) for i in items] == [("yes", "yes_no"), ("no", "yes_no")]
    assert items[0].context == "The sky appears blue because of Rayleigh scattering."
    assert items[0].metadata == {"title": "Sky"}


def test_arc_numeric_and_letter_labels(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "ARC-Challenge-Test.jsonl", [
        {"id": "Mercury_7175875", "answerKey": "3",
         "question": {"stem": "An astronomer observes a planet rotating faster. Why?",
                      "choices": [{"label": "1", "text": "gravity decreased"},
                                  {"label": "2", "text": "mass increased"},
                                  {"label": "3", "text": "impact"},
                                  {"label": "4", "text": "orbit"}]}},
        {"id": "NYSEDREGENTS_2015_4_8", "answerKey": "E",
         "question": {"stem": "Which is a gas?",
                      "choices": [{"label": c, "text": t} for c, t in
                                  zip("ABCDE", ["ice", "rock", "wood", "water", "steam"])]}},
    ])
    assert detect_format(path) == "arc"
    first, second = load_items(path)
    assert first.id == "Mercury_7175875"
    assert first.input == "An astronomer observes a planet rotating faster. Why?"
    assert first.choices == ("gravity decreased", "mass increased", "impact", "orbit")
    assert first.target == "C"
    assert first.metadata == {}
    assert second.target == "E" and len(second.choices) == 5


def test_hugging_face_style_choices_object(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "arc_hf.jsonl", [
        {"id": "a1", "question": "Which is a metal?", "answerKey": "2",
         "choices": {"text": ["wood", "iron", "glass"], "label": ["1", "2", "3"]}}])
    (item,) = load_items(path)
    assert item.choices == ("wood", "iron", "glass")
    assert item.target == "B"


@pytest.mark.parametrize("name,delimiter,fmt", [("intents.csv", ",", "csv"),
                                                 ("intents.tsv", "\t", "tsv")])
def test_intent_preset_reads_label_set_from_data(tmp_path: Path, name: str, delimiter: str,
                                                 fmt: str) -> None:
    path = write_csv(tmp_path / name, [
        ["text", "label"],
        ["I want my money back", "refund"],
        ["where is my parcel", "shipping"],
        ["charged twice, why?", "billing"],
    ], delimiter=delimiter)
    assert detect_format(path) == "intent"
    items = load_items(path)
    assert [i.task for i in items] == ["classification"] * 3
    assert [i.target for i in items] == ["refund", "shipping", "billing"]
    assert items[0].metadata["labels"] == ["billing", "refund", "shipping"]
    assert items[2].input == "charged twice, why?"
    # the plain format with task= gives the same items
    assert load_items(path, format=fmt, task="classification") == items


def test_intent_preset_jsonl_with_intent_column(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "banking.jsonl", [
        {"utterance": "reset my password", "intent": "reset_password", "channel": "chat"},
        {"utterance": "cancel please", "intent": "cancel"}])
    items = load_items(path, format="intent")
    assert items[0].input == "reset my password"
    assert items[0].target == "reset_password"
    assert items[0].metadata == {"channel": "chat", "labels": ["cancel", "reset_password"]}
    assert items[1].metadata == {"labels": ["cancel", "reset_password"]}


# --------------------------------------------------------------------------- plain formats

def test_canonical_jsonl_round_trips_items(tmp_path: Path) -> None:
    originals = [
        Item(id="q1", input="Pick", target="A", choices=("x", "y"), task="multiple_choice",
             metadata={"subject": "s"}),
        Item(id="q2", input="Is it?", target="no", task="yes_no", context="ctx"),
        Item(id="q3", input="Label?", target="b", task="classification",
             metadata={"labels": ["b", "a"]}),
        Item(id="q4", input="Year?", target="0", task="short_answer"),
    ]
    path = write_jsonl(tmp_path / "items.jsonl", [i.to_dict() for i in originals])
    assert detect_format(path) == "jsonl"
    assert load_items(path) == originals


def test_json_list_and_items_object(tmp_path: Path) -> None:
    rows = [{"id": "a", "question": "2+2?", "answer": 4},
            {"id": "b", "question": "Capital of Peru?", "answer": "Lima"}]
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"name": "demo", "items": rows}, indent=2), encoding="utf-8")
    for path in (listed, wrapped):
        assert detect_format(path) == "json"
        items = load_items(path)
        assert [(i.id, i.target, i.task) for i in items] == [
            ("a", "4", "numeric"), ("b", "Lima", "short_answer")]


def test_json_errors_name_the_line_of_the_item(tmp_path: Path) -> None:
    rows = [{"id": "a", "question": "ok?", "answer": "yes"},
            {"id": "b", "question": "", "answer": "no"}]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"items": rows}, indent=2), encoding="utf-8")
    err = error_of(DataError, path)
    # {"items": [ {..5 lines..}, {  <- the second item starts on line 8
    assert (err.line, err.field) == (8, "input")
    assert "empty" in str(err)


def test_csv_with_mapping_meta_and_choice_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "quiz.csv", [
        ["qid", "q", "opt1", "opt2", "opt3", "gold", "topic", "difficulty"],
        ["k1", "Largest ocean?", "Atlantic", "Pacific", "Indian", "Pacific", "geo", "easy"],
        ["k2", "Smallest prime?", "1", "2", "", "1", "math", ""],
    ])
    items = load_items(path, mapping="id=qid,input=q,target=gold,choices=opt1|opt2|opt3,"
                                     "meta.subject=topic")
    first, second = items
    assert first.id == "k1"
    assert first.choices == ("Atlantic", "Pacific", "Indian")
    assert first.target == "B"  # the option text, normalised to its letter
    assert first.metadata == {"difficulty": "easy", "subject": "geo"}  # topic renamed
    assert second.choices == ("1", "2")  # trailing empty option cell dropped
    assert second.target == "A"  # "1" is option text before it is an index
    assert second.metadata["difficulty"] is None


def test_csv_json_encoded_choices_cell_and_letter_columns(tmp_path: Path) -> None:
    encoded = write_csv(tmp_path / "enc.csv", [
        ["id", "question", "choices", "answer"],
        ["e1", "Colour of grass?", json.dumps(["red", "green", "blue"]), "(B)"]])
    (item,) = load_items(encoded)
    assert item.choices == ("red", "green", "blue") and item.target == "B"
    lettered = write_csv(tmp_path / "letters.csv", [
        ["question", "A", "B", "C", "D", "answer"],
        ["Colour of snow?", "white", "black", "red", "blue", "a"]])
    (item,) = load_items(lettered)
    assert item.choices == ("white", "black", "red", "blue") and item.target == "A"
    assert item.id == "letters-000001"


def test_nested_json_column_mapping(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "nested.jsonl", [
        {"key": 7, "q": {"body": "What is H2O?"}, "gold": {"text": "water"}, "src": "x"}])
    (item,) = load_items(path, mapping={"id": "key", "input": "q.body", "target": "gold.text"})
    assert (item.id, item.input, item.target) == ("7", "What is H2O?", "water")
    assert item.metadata == {"src": "x"}


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({"id": ["p1", "p2"], "question": ["Pick", "How many?"],
                      "choices": [["a", "b", "c"], None], "answer": ["c", "12"],
                      "score": [0.5, float("nan")]})
    path = tmp_path / "bench.parquet"
    pq.write_table(table, path)
    assert detect_format(path) == "parquet"
    first, second = load_items(path)
    assert (first.task, first.target, first.choices) == ("multiple_choice", "C", ("a", "b", "c"))
    assert (second.task, second.target) == ("numeric", "12")
    assert first.metadata == {"score": 0.5}
    assert second.metadata == {"score": None}  # NaN is not JSON


def test_parquet_errors_name_the_row(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"question": ["a", "b", "c"], "answer": ["x", None, "z"]}), path)
    err = error_of(DataError, path)
    assert (err.line, err.field) == (2, "target")


def test_hf_dataset_folder(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({
        "text": datasets.Value("string"),
        "label": datasets.ClassLabel(names=["negative", "positive"])})
    ds = datasets.Dataset.from_dict(
        {"text": ["great film", "dull plot", "loved it"], "label": [1, 0, 1]}, features=features)
    folder = tmp_path / "sst2"
    ds.save_to_disk(str(folder))
    assert detect_format(folder) == "hf"
    items = load_items(folder, task="classification")
    assert [i.target for i in items] == ["positive", "negative", "positive"]  # ClassLabel names
    assert items[0].id == "sst2-000001"
    assert items[0].metadata["labels"] == ["negative", "positive"]


def test_hf_dataset_dict_needs_one_split(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    part = {"question": ["q"], "answer": ["a"]}
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict(part),
                               "test": datasets.Dataset.from_dict(part)})
    folder = tmp_path / "dd"
    dd.save_to_disk(str(folder))
    err = error_of(DataError, folder)
    assert "splits train, test" in str(err) and err.path == str(folder)
    (item,) = load_items(folder / "test")
    assert item.target == "a"


def test_hf_without_datasets_names_the_extra(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "dataset_info.json").write_text("{}")
    (folder / "state.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "datasets", None)  # import now raises ImportError
    err = error_of(MissingDependencyError, folder)
    assert "pip install 'robustify[hf]'" in str(err)


def test_sample_benchmark_loads() -> None:
    from importlib import resources
    if not resources.files("robustify.data").joinpath("sample.jsonl").is_file():
        err = error_of(DataError, "sample")
        assert "sample.jsonl" in str(err)
        return
    items = load_items("sample")
    assert items and len({i.id for i in items}) == len(items)
    assert load_items("sample", limit=5) == load_items("sample", limit=5)


# --------------------------------------------------------------------------- mapping

def test_parse_mapping() -> None:
    assert parse_mapping("input=question, target=answer,meta.subject=topic,") == {
        "input": "question", "target": "answer", "meta.subject": "topic"}
    assert parse_mapping("choices= A | B |C") == {"choices": "A|B|C"}
    assert parse_mapping("") == {}


@pytest.mark.parametrize("text,needle", [
    ("input", "should look like FIELD=COLUMN"),
    ("input=", "should look like FIELD=COLUMN"),
    ("input=a,input=b", "names field 'input' twice"),
    ("meta.=x", "needs a metadata key"),
    ("choices=A||B", "empty column name"),
])
def test_parse_mapping_errors(text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace("|", r"\|")):
        parse_mapping(text)


def test_unknown_mapping_field_suggests() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'target'"):
        parse_mapping("traget=answer")


def test_mapping_dict_is_checked_too(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "x.jsonl", [{"q": "a", "a": "b"}])
    with pytest.raises(UnknownNameError, match="unknown mapping field 'question'"):
        load_items(path, mapping={"question": "q"})


# --------------------------------------------------------------------------- tasks and targets

def test_task_inference_and_target_normalisation(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mixed.jsonl", [
        {"id": "1", "input": "Is ice cold?", "target": "TRUE"},
        {"id": "2", "input": "Is fire cold?", "target": False},
        {"id": "3", "input": "Is it?", "target": " Yes "},
        {"id": "4", "input": "How many?", "target": "1,250"},
        {"id": "5", "input": "Half?", "target": 0.5},
        {"id": "6", "input": "Whole?", "target": 3.0},
        {"id": "7", "input": "Who?", "target": "Ada Lovelace"},
    ])
    got = [(i.target, i.task) for i in load_items(path)]
    assert got == [("yes", "yes_no"), ("no", "yes_no"), ("yes", "yes_no"),
                   ("1250", "numeric"), ("0.5", "numeric"), ("3", "numeric"),
                   ("Ada Lovelace", "short_answer")]


def test_task_column_and_task_argument(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [
        {"id": "1", "input": "Sentiment of 'meh'?", "target": "neutral", "task": "classification"},
        {"id": "2", "input": "Year?", "target": "1969", "task": "Short-Answer"},
        {"id": "3", "input": "Sentiment of 'yay'?", "target": "positive", "task": "classification"},
    ])
    items = load_items(path)
    assert [i.task for i in items] == ["classification", "short_answer", "classification"]
    assert items[0].metadata["labels"] == ["neutral", "positive"]
    assert "labels" not in items[1].metadata
    forced = load_items(path, task="short_answer")
    assert {i.task for i in forced} == {"short_answer"}
    with pytest.raises(UnknownNameError, match="did you mean 'numeric'"):
        load_items(path, task="numerik")


@pytest.mark.parametrize("target,letter", [
    ("b", "B"), ("(C)", "C"), ("D.", "D"), (0, "A"), (3, "D"), ("Blue", "D"),
    ("  yellow ", "C"), ("1", "B"),
])
def test_multiple_choice_target_forms(tmp_path: Path, target, letter: str) -> None:
    path = write_jsonl(tmp_path / "mc.jsonl", [
        {"id": "m", "input": "Colour?", "choices": ["Red", "Green", "Yellow", "Blue"],
         "target": target}])
    (item,) = load_items(path)
    assert item.target == letter and item.task == "multiple_choice"


def test_explicit_yes_no_and_numeric_targets_are_checked(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "yn.jsonl", [{"id": "1", "input": "q", "target": "maybe"}])
    err = error_of(DataError, path, task="yes_no")
    assert (err.line, err.field) == (1, "target") and "not yes/no" in str(err)
    err = error_of(DataError, path, task="numeric")
    assert "'maybe'" in str(err) and "not a number" in str(err)


def test_generated_ids_are_logged(tmp_path: Path, caplog) -> None:
    path = write_jsonl(tmp_path / "mmlu.jsonl",
                       [{"question": f"q{n}", "answer": "a"} for n in range(17)])
    with caplog.at_level(logging.INFO, logger="robustify.data"):
        items = load_items(path)
    assert items[16].id == "mmlu-000017"
    assert "no id column" in caplog.text and "mmlu-000001..mmlu-000017" in caplog.text


# --------------------------------------------------------------------------- detection

@pytest.mark.parametrize("name,content,expected", [
    ("a.jsonl", '{"input": "x", "target": "y"}\n', "jsonl"),
    ("a.ndjson", '{"input": "x", "target": "y"}\n', "jsonl"),
    ("a.json", '[{"input": "x", "target": "y"}]', "json"),
    ("a.csv", "question,answer\nx,y\n", "csv"),
    ("a.tsv", "question\tanswer\nx\ty\n", "tsv"),
    ("a.csv", "question,A,B,C,D,answer\nq,1,2,3,4,A\n", "csv"),  # header: not mmlu
    ("a.txt", '{"input": "x", "target": "y"}\n{"input": "z", "target": "w"}\n', "jsonl"),
    ("a.data", '{\n  "items": []\n}\n', "json"),
    ("a.data", "question\tanswer\nx\ty\n", "tsv"),
    ("a.data", "question,answer\nx,y\n", "csv"),
    ("a.json", '[{"id": "1", "question": {"stem": "s", "choices": []}, "answerKey": "A"}]',
     "arc"),
])
def test_detect_format(tmp_path: Path, name: str, content: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert detect_format(path) == expected


def test_formats_table() -> None:
    from robustify.data import format_names

    assert format_names()[:6] == ["jsonl", "json", "csv", "tsv", "parquet", "hf"]
    assert {"mmlu", "gsm8k", "boolq", "arc", "intent"} <= set(FORMATS)
    for name, info in FORMATS.items():
        assert isinstance(info, FormatInfo) and info.name == name and info.description
    assert FORMATS["mmlu"].preset and not FORMATS["csv"].preset


# --------------------------------------------------------------------------- limit

def _many(tmp_path: Path, n: int = 200) -> Path:
    return write_jsonl(tmp_path / "many.jsonl",
                       [{"id": f"i{k:03d}", "input": f"question {k}", "target": "x"}
                        for k in range(n)])


def test_limit_is_seeded_and_keeps_file_order(tmp_path: Path) -> None:
    path = _many(tmp_path)
    a = [i.id for i in load_items(path, limit=20, seed=1)]
    assert a == [i.id for i in load_items(path, limit=20, seed=1)]
    assert len(a) == 20 and a == sorted(a)
    assert a != [i.id for i in load_items(path, limit=20, seed=2)]
    assert a != [f"i{k:03d}" for k in range(20)]  # a sample, not the head
    assert set(a) <= {i.id for i in load_items(path, limit=40, seed=1)}  # nested
    assert len(load_items(path, limit=10_000)) == 200


def test_limit_ignores_pythonhashseed(tmp_path: Path) -> None:
    path = _many(tmp_path)
    expected = [i.id for i in load_items(path, limit=15, seed=7)]
    code = ("import json, sys; from robustify.data import load_items; "
            "print(json.dumps([i.id for i in load_items(sys.argv[1], limit=15, seed=7)]))")
    for hash_seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
        out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, env=env,
                             capture_output=True, text=True, check=True).stdout
        assert json.loads(out) == expected


@pytest.mark.parametrize("limit", [0, -3, True, 2.5])
def test_bad_limit(tmp_path: Path, limit) -> None:
    with pytest.raises(ConfigError, match="limit must be a positive integer"):
        load_items(_many(tmp_path, 3), limit=limit)


# --------------------------------------------------------------------------- errors

def test_malformed_json_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"input": "a", "target": "b"}\n{"input": "c", "target": }\n')
    err = error_of(DataError, path)
    assert (err.path, err.line) == (str(path), 2)
    assert str(err).startswith(f"{path}, line 2: malformed JSON")


def test_json_array_in_jsonl_says_so(tmp_path: Path) -> None:
    path = tmp_path / "arr.jsonl"
    path.write_text('[{"input": "a", "target": "b"}]\n')
    err = error_of(DataError, path)
    assert err.line == 1 and "format 'json'" in str(err)


def test_missing_mapped_column_lists_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "qa.csv", [["q", "a", "src"], ["x", "y", "z"]])
    err = error_of(DataError, path, mapping="input=question,target=a")
    assert (err.path, err.line, err.field) == (str(path), 1, "input")
    assert "no column 'question'; columns are: q, a, src" in str(err)


def test_missing_default_column_suggests_a_mapping(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "qa.jsonl", [{"q": "x", "a": "y"}])
    err = error_of(DataError, path)
    assert (err.line, err.field) == (1, "input")
    assert "columns are: q, a" in str(err) and "--map input=q" in str(err)


def test_missing_field_in_one_jsonl_row(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "qa.jsonl", [
        {"id": "1", "question": "x", "answer": "y"},
        {"id": "2", "question": "x2", "answer": "y2"},
        {"id": "3", "prompt": "x3", "answer": "y3"}])
    err = error_of(DataError, path)
    assert (err.line, err.field) == (3, "input")
    assert "no 'question' column" in str(err) and "id, prompt, answer" in str(err)


def test_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "dup.csv", [
        ["id", "question", "answer"], ["a", "q1", "x"], ["b", "q2", "x"], ["a", "q3", "x"]])
    err = error_of(DataError, path)
    assert (err.line, err.field) == (4, "id")
    assert "duplicate id 'a' (first on line 2)" in str(err)


@pytest.mark.parametrize("row,field,needle", [
    ({"id": "", "input": "q", "target": "t"}, "id", "id is empty"),
    ({"id": "  ", "input": "q", "target": "t"}, "id", "id is empty"),
    ({"id": "x", "input": "   ", "target": "t"}, "input", "question is empty"),
    ({"id": "x", "input": None, "target": "t"}, "input", "question is empty"),
    ({"id": "x", "input": ["q"], "target": "t"}, "input", "must be text, got a list"),
    ({"id": "x", "input": "q", "target": ""}, "target", "target is empty"),
    ({"id": "x", "input": "q", "target": {"a": 1}}, "target", "got an object"),
    ({"id": "x", "input": "q", "target": "A", "choices": "abc"}, "choices",
     "must be a list"),
    ({"id": "x", "input": "q", "target": "A", "choices": 4}, "choices", "must be a list"),
    ({"id": "x", "input": "q", "target": "A", "choices": ["a", {"b": 1}]}, "choices",
     "option 2 must be text"),
    ({"id": "x", "input": "q", "target": "A", "choices": ["only"]}, "choices",
     "needs 2-26 choices"),
    ({"id": "x", "input": "q", "target": "t", "task": "essay"}, "task", "unknown task kind"),
    ({"id": "x", "input": "q", "target": "t", "task": "multiple_choice"}, "choices",
     "needs choices"),
    ({"id": "x", "input": "q", "target": "t", "metadata": [1]}, "metadata",
     "metadata must be an object"),
    ({"id": True, "input": "q", "target": "t"}, "id", "must be text or a number"),
])
def test_bad_row_names_line_and_field(tmp_path: Path, row: dict, field: str,
                                      needle: str) -> None:
    good = {"id": "ok", "input": "fine", "target": "t"}
    path = write_jsonl(tmp_path / "rows.jsonl", [good, row])
    err = error_of(DataError, path)
    assert (err.path, err.line, err.field) == (str(path), 2, field)
    assert needle in str(err)
    assert str(err).startswith(f"{path}, line 2, field {field!r}: ")
    assert "\n" not in str(err)


def test_target_not_among_choices(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "mc.csv", [
        ["id", "question", "A", "B", "C", "answer"],
        ["1", "Pick", "x", "y", "z", "B"],
        ["2", "Pick", "x", "y", "z", "F"]])
    err = error_of(DataError, path)
    assert (err.line, err.field) == (3, "target")
    assert "target 'F' (column 'answer') is not among the choices" in str(err)


def test_non_utf8_bytes_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"input": "a", "target": "b"}\n{"input": "caf\xe9", "target": "b"}\n')
    err = error_of(DataError, path)
    assert err.line == 2 and "not valid UTF-8 (byte 0xe9" in str(err)
    csv_path = tmp_path / "latin1.csv"
    csv_path.write_bytes(b"question,answer\nok,1\ncaf\xe9,2\n")
    err = error_of(DataError, csv_path)
    assert err.line == 3 and "UTF-8" in str(err)


def test_utf16_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "u16.csv"
    path.write_bytes("question,answer\nq,a\n".encode("utf-16"))
    err = error_of(DataError, path, format="csv")
    assert err.line == 1 and "UTF-16" in str(err)


def test_bom_is_accepted(tmp_path: Path) -> None:
    jsonl = tmp_path / "bom.jsonl"
    jsonl.write_bytes(b'\xef\xbb\xbf{"id": "a", "input": "q", "target": "t"}\n')
    assert load_items(jsonl)[0].id == "a"
    csv_path = tmp_path / "bom.csv"
    csv_path.write_bytes("id,question,answer\nb,q,t\n".encode("utf-8-sig"))
    assert load_items(csv_path)[0].id == "b"
    json_path = tmp_path / "bom.json"
    json_path.write_bytes(b'\xef\xbb\xbf[{"id": "c", "input": "q", "target": "t"}]')
    assert load_items(json_path)[0].id == "c"


def test_overlong_line_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    big = "x" * (10 * 1024 * 1024 - len('{"input": "", "target": "t"}'))
    with open(path, "w", encoding="utf-8") as handle:
        handle.write('{"input": "a", "target": "t"}\n{"input": "b", "target": "t"}\n')
        handle.write('{"input": "' + big + '", "target": "t"}\n')
        handle.write('{"input": "c", "target": "t"}\n')
    err = error_of(DataError, path)
    assert err.line == 3
    assert "line 3 is 10,485,760 bytes; the limit is 1 MiB" in str(err)


def test_line_of_exactly_one_mib_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "edge.jsonl"
    frame = '{"input": "", "target": "t"}'
    line = '{"input": "' + "y" * (loaders.MAX_LINE_BYTES - len(frame)) + '", "target": "t"}'
    assert len(line.encode()) == loaders.MAX_LINE_BYTES
    path.write_text(line + "\r\n", encoding="utf-8")
    assert len(load_items(path)[0].input) == loaders.MAX_LINE_BYTES - len(frame)


@pytest.mark.parametrize("name,content,needle", [
    ("empty.jsonl", b"", "the file is empty"),
    ("blank.jsonl", b"\n  \n", "the file has no items"),
    ("empty.csv", b"", "the file is empty"),
    ("header.csv", b"question,answer\n", "has a header but no rows"),
    ("empty.json", b"[]", "the file has no items"),
    ("ws.json", b"  \n", "the file is empty"),
])
def test_empty_files(tmp_path: Path, name: str, content: bytes, needle: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    err = error_of(DataError, path)
    assert err.path == str(path) and needle in str(err)


def test_ragged_csv_row(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("id,question,answer\n1,q,a\n2,q,a,extra\n", encoding="utf-8")
    err = error_of(DataError, path)
    assert err.line == 3 and "line 3 has 4 cells but the header has 3" in str(err)


def test_multiline_csv_cell_keeps_start_line(tmp_path: Path) -> None:
    path = tmp_path / "multi.csv"
    path.write_text('id,question,answer\n1,"two\nlines",a\n1,q,b\n', encoding="utf-8")
    items_err = error_of(DataError, path)
    assert items_err.line == 4 and "first on line 2" in str(items_err)


def test_unknown_format_suggests(tmp_path: Path) -> None:
    path = _many(tmp_path, 2)
    err = error_of(UnknownNameError, path, format="mmmlu")
    assert "unknown format 'mmmlu'; did you mean 'mmlu'" in str(err)
    assert isinstance(err, ConfigError)


def test_directory_missing_and_unreadable(tmp_path: Path, monkeypatch) -> None:
    err = error_of(DataError, tmp_path)
    assert err.path == str(tmp_path) and "is a directory" in str(err)
    err = error_of(DataError, tmp_path, format="jsonl")
    assert "is a directory, expected a file" in str(err)
    missing = tmp_path / "nope.jsonl"
    err = error_of(DataError, missing)
    assert str(err) == f"{missing}: file not found"
    assert "did you mean 'sample'" in str(error_of(DataError, "sampel"))

    locked = _many(tmp_path, 2)
    locked.chmod(0)
    try:
        if os.geteuid() == 0:  # root reads anything: simulate the refusal
            def refuse(*args, **kwargs):
                raise PermissionError(13, "Permission denied", str(locked))
            monkeypatch.setattr(readers, "open", refuse, raising=False)
        err = error_of(DataError, locked, format="jsonl")
        assert str(err) == f"{locked}: cannot read the file: permission denied"
    finally:
        locked.chmod(0o644)


def test_nothing_half_loaded(tmp_path: Path) -> None:
    rows = [{"id": f"{k}", "input": "q", "target": "t"} for k in range(500)]
    rows.append({"id": "last", "input": "q", "target": {"bad": 1}})
    path = write_jsonl(tmp_path / "late.jsonl", rows)
    with pytest.raises(DataError) as info:
        load_items(path, limit=5)  # the bad row is validated even if not sampled
    assert info.value.line == 501


def test_overlong_csv_cell_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text("question,answer\nshort,a\n" + "w" * 200_000 + ",b\n", encoding="utf-8")
    err = error_of(DataError, path)
    assert err.line == 3 and "a cell is longer than 131,072 characters" in str(err)


def test_format_auto_means_detect(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "g.jsonl", [{"question": "q", "answer": "w\n#### 5"}])
    assert load_items(path, format="auto") == load_items(path, format="gsm8k")
    assert load_items(path, format="auto")[0].target == "5"


def test_parquet_without_pyarrow_names_the_extra(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "t.parquet"
    path.write_bytes(b"PAR1....PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    err = error_of(MissingDependencyError, path)
    assert "pip install 'robustify[parquet]'" in str(err)


def test_hf_format_on_a_file_and_a_broken_parquet(tmp_path: Path) -> None:
    path = _many(tmp_path, 2)
    err = error_of(DataError, path, format="hf")
    assert err.path == str(path) and "reads a folder written by save_to_disk" in str(err)
    pytest.importorskip("pyarrow.parquet")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    err = error_of(DataError, broken)
    assert err.path == str(broken) and "not a readable Parquet file" in str(err)
