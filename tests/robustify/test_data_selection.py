"""JSON key selection, ``[text, label]`` rows and Hub names (``hf:``), loader and CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from perturbations.errors import DataError
from robustify.data import load_items

ROOT = Path(__file__).resolve().parents[2]

NESTED = """{"train": [["hi there", "greeting"]],
 "val": [
   ["hello", "greeting"],
   ["bye now", "farewell"],
   ["see you", 7]
 ]}
"""


def cli(*args: str, cwd: Path, env: dict | None = None, code: str | None = None
        ) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m",
                                                                  "robustify", *args]
    return subprocess.run(command, cwd=cwd, env=environ, capture_output=True, text=True,
                          timeout=300)


def test_items_key_and_positions_select_rows(tmp_path: Path) -> None:
    path = tmp_path / "nested.json"
    path.write_text(NESTED)
    items = load_items(path, mapping="items=val,input=0,target=1", task="classification")
    assert [(i.input, i.target) for i in items] == [("hello", "greeting"),
                                                   ("bye now", "farewell"), ("see you", "7")]
    assert items[0].metadata["labels"] == ["7", "farewell", "greeting"]
    # two-element rows need no positions; a dict mapping works as the string does
    assert load_items(path, mapping={"items": "val"}) == load_items(path, mapping="items=val")
    nested = tmp_path / "deep.json"
    nested.write_text('{"data": {"val": [{"q": "2+2?", "a": 4}]}}')
    (item,) = load_items(nested, mapping="items=data.val,input=q,target=a")
    assert (item.input, item.target, item.task) == ("2+2?", "4", "numeric")


def test_selection_errors_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "nested.json"
    path.write_text(NESTED)
    with pytest.raises(DataError) as err:
        load_items(path, mapping="items=vals")
    assert str(err.value) == (f"{path}, line 1, field 'items': no key 'vals' at the top level "
                              f"(keys: train, val)")
    with pytest.raises(DataError) as err:
        load_items(path, mapping="items=val,input=0,target=2")
    assert err.value.line == 3 and err.value.field == "target" and "columns are: 0, 1" in str(
        err.value)
    path.write_text('{"val": [{"q": "a", "a": "b"}]}')
    with pytest.raises(DataError) as err:
        load_items(path)
    assert str(err.value).endswith("select the list with --map items=KEY")


def test_text_label_rows_in_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('["good morning", "greeting"]\n\n["so long", "farewell"]\n')
    items = load_items(path, task="classification")
    assert [(i.input, i.target) for i in items] == [("good morning", "greeting"),
                                                   ("so long", "farewell")]
    path.write_text('["good morning", "greeting"]\n"just text"\n')
    with pytest.raises(DataError) as err:
        load_items(path)
    assert err.value.line == 2 and "got text" in str(err.value)


def test_cli_perturb_reads_a_selected_list(tmp_path: Path) -> None:
    (tmp_path / "nested.json").write_text(NESTED)
    proc = cli("perturb", "--data", "nested.json", "--map", "items=val,input=0,target=1",
               "--task", "classification", "--transforms", "typos", "--severity", "high",
               "--out", "v.jsonl", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "wrote 3 variants of 3 items" in proc.stderr


def test_a_hub_name_gets_a_hint(tmp_path: Path) -> None:
    proc = cli("perturb", "--data", "allenai/ai2_arc", "--out", "v.jsonl", cwd=tmp_path)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "looks like a Hugging Face Hub name" in line
    assert "--data hf:allenai/ai2_arc" in line and "load_dataset('allenai/ai2_arc'" in line


def test_a_missing_local_path_gets_no_hub_hint(tmp_path: Path) -> None:
    for name in ("data/test.csv", "org/x.jsonl"):
        with pytest.raises(DataError) as err:
            load_items(tmp_path / name)
        assert str(err.value) == f"{tmp_path / name}: file not found"
    with pytest.raises(DataError) as err:
        load_items("google/boolq")
    assert "looks like a Hugging Face Hub name" in str(err.value)


def test_hf_prefix_offline_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    # a closed port on the loopback: the Hub does not answer
    proc = cli("perturb", "--data", "hf:allenai/ai2_arc:ARC-Easy:test", "--out", "v.jsonl",
               cwd=tmp_path, env={"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path)})
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "offline: the Hub does not answer" in line
    assert "load_dataset('allenai/ai2_arc', 'ARC-Easy', split='test')" in line


def test_hf_prefix_without_datasets_says_how_to_convert(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['datasets'] = None\n"
            "from robustify.cli import main; raise SystemExit(main(sys.argv[1:]))")
    proc = cli("perturb", "--data", "hf:google/boolq::validation", "--out", "v.jsonl",
               cwd=tmp_path, code=code)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "needs the datasets package" in line
    assert "load_dataset('google/boolq', split='validation').to_json('boolq.jsonl')" in line


def test_hf_prefix_loads_through_datasets(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("datasets")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    folder = tmp_path / "org" / "intents"
    folder.mkdir(parents=True)
    (folder / "test.jsonl").write_text('{"text": "hi", "label": "greet"}\n'
                                       '{"text": "bye", "label": "farewell"}\n')
    items = load_items("hf:org/intents::test", format="intent")
    assert [(i.input, i.target, i.task) for i in items] == [
        ("hi", "greet", "classification"), ("bye", "farewell", "classification")]
    assert [i.id for i in items] == ["intents-000001", "intents-000002"]
    with pytest.raises(DataError) as err:
        load_items("hf:org/intents")
    assert "has splits test; name one: hf:org/intents::test" in str(err.value)


def test_a_job_file_keeps_an_hf_source_as_written(tmp_path: Path) -> None:
    from robustify.pipeline.jobfile import load_job

    (tmp_path / "job.yaml").write_text("data:\n  - path: hf:google/boolq::validation\n"
                                       "  - path: local.csv\n")
    job = load_job(tmp_path / "job.yaml")
    assert [d.path for d in job.data] == ["hf:google/boolq::validation",
                                          str(tmp_path / "local.csv")]


@pytest.mark.parametrize("body, needle", [
    ('{"val": [["hello", "greeting"], ["bye", NaN]]}', "NaN"),
    ('{"val": [["hello", "greeting"], ["bye", ' + "[" * 40 + "1" + "]" * 40 + "]]}",
     "deep"),
    ('{"val": [["hello", "greeting"], ["\\ud800", "farewell"]]}', "surrogate"),
])
def test_selected_lists_get_the_same_refusals_as_every_reader(tmp_path: Path, body: str,
                                                              needle: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text("\n" + body)
    with pytest.raises(DataError) as raised:
        load_items(path, mapping="items=val,input=0,target=1", task="classification")
    message = str(raised.value)
    assert str(path) in message and needle.lower() in message.lower()
    assert "line 2" in message  # the line of the row, not of the document


@pytest.mark.parametrize("line, needle", [
    ('["hello", NaN]', "NaN"),
    ('["hello", ' + "[" * 40 + "1" + "]" * 40 + "]", "deep"),
])
def test_jsonl_list_rows_get_the_same_refusals(tmp_path: Path, line: str, needle: str) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('["fine", "greeting"]\n' + line + "\n")
    with pytest.raises(DataError) as raised:
        load_items(path, task="classification")
    message = str(raised.value)
    assert str(path) in message and "line 2" in message
    assert needle.lower() in message.lower()


def test_a_frozen_variants_file_gets_the_same_refusals(tmp_path: Path) -> None:
    from robustify.data.variants_file import read_variants

    path = tmp_path / "variants.jsonl"
    path.write_text('{"item": {"id": "a", "input": "x"}, "spec": "typos@0.2", '
                    '"transform": "typos", "severity": NaN, "seed": 1}\n')
    with pytest.raises(DataError) as raised:
        read_variants(path)
    message = str(raised.value)
    assert str(path) in message and "line 1" in message and "NaN" in message


def test_a_selected_json_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes('{"val": [["caf\xe9", "greeting"]]}'.encode("latin-1"))
    with pytest.raises(DataError) as raised:
        load_items(path, mapping="items=val,input=0,target=1", task="classification")
    message = str(raised.value)
    assert str(path) in message and "not valid UTF-8" in message and "line 1" in message
