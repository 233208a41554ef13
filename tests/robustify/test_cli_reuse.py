"""Reuse and export: ``run --variants FILE`` and ``perturb --export``, through the real CLI."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from perturbations import Variant

ROOT = Path(__file__).resolve().parents[2]
ORACLE = "python:tests.robustify.e2e_models:oracle"


def cli(*args: str, cwd: Path, env: dict | None = None, code: str | None = None,
        timeout: int = 300) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m",
                                                                  "robustify", *args]
    return subprocess.run(command, cwd=cwd, env=environ, capture_output=True, text=True,
                          timeout=timeout)


def read_variants(path: Path) -> list[Variant]:
    return [Variant.from_dict(json.loads(line)) for line in path.read_text().splitlines()]


def perturb(tmp_path: Path, *flags: str) -> Path:
    out = tmp_path / "frozen.jsonl"
    proc = cli("perturb", "--limit", "4", "--transforms", "typos,slang", "--severity", "high",
               "--out", str(out), *flags, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return out


def test_run_variants_asks_exactly_the_frozen_file_paired_with_data(tmp_path: Path) -> None:
    frozen = read_variants(perturb(tmp_path))
    proc = cli("run", "--variants", "frozen.jsonl", "--model", ORACLE, "--out", "r",
               "--cache", "off", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = pd.read_json(tmp_path / "r" / "results.jsonl", lines=True)
    noisy = rows[rows["spec"] != "clean"]
    assert sorted(noisy["variant_id"]) == sorted(v.variant_id for v in frozen)
    by_id = {v.variant_id: v.item.input for v in frozen}
    assert all(by_id[r.variant_id] == r.input for r in noisy.itertuples())
    assert sorted(rows.loc[rows["spec"] == "clean", "item_id"]) == sorted(
        {v.item.id for v in frozen})
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["variants_file"].endswith("frozen.jsonl")
    assert manifest["transforms"] == ["typos@0.8", "slang@0.8"]
    written = read_variants(tmp_path / "r" / "variants.jsonl")
    assert [v.variant_id for v in written if v.spec != "clean"] == [v.variant_id for v in frozen]


def test_run_variants_of_a_run_folder_uses_its_clean_rows_and_limit(tmp_path: Path) -> None:
    proc = cli("run", "--limit", "5", "--transforms", "typos", "--severity", "high",
               "--model", ORACLE, "--out", "first", "--cache", "off", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    first = read_variants(tmp_path / "first" / "variants.jsonl")
    # --data names a file without those items: the file's own clean rows are used
    (tmp_path / "other.csv").write_text("question,answer\nWhat is 2+2?,4\n")
    proc = cli("run", "--variants", "first/variants.jsonl", "--data", "other.csv",
               "--limit", "2", "--model", ORACLE, "--out", "again", "--cache", "off",
               "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    again = read_variants(tmp_path / "again" / "variants.jsonl")
    assert len({v.item.id for v in again}) == 2 and len(again) == 4
    old = {v.variant_id: v for v in first}
    assert all(old[v.variant_id].item == v.item for v in again)
    manifest = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert manifest["data"][0]["path"].endswith("first/variants.jsonl")


def test_run_variants_with_a_missing_item_is_one_line_before_any_call(tmp_path: Path) -> None:
    perturb(tmp_path)
    (tmp_path / "other.csv").write_text("question,answer\nWhat is 2+2?,4\n")
    proc = cli("run", "--variants", "frozen.jsonl", "--data", "other.csv", "--model",
               "python:tests.robustify.e2e_models:counting", "--out", "r", "--cache", "off",
               cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "frozen.jsonl, line 1, field 'item_id'" in lines[0]
    assert "has no clean item in other.csv" in lines[0]
    assert not (tmp_path / "r" / "results.jsonl").exists()
    proc = cli("run", "--variants", "frozen.jsonl", "--transforms", "typos", "--model", ORACLE,
               "--cache", "off", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "error: --variants asks the variants of a frozen file: --transforms, --severity and "
        "--replicates do not apply")


def test_run_variants_from_a_job_file_key(tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    perturb(tmp_path)
    (tmp_path / "jobs" / "job.yaml").write_text(
        f"variants: ../frozen.jsonl\nmodels: [{ORACLE}]\nout: byjob\ncache: off\n")
    proc = cli("run", "--config", "jobs/job.yaml", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "byjob" / "manifest.json").read_text())
    assert Path(manifest["variants_file"]).resolve() == (tmp_path / "frozen.jsonl").resolve()
    assert manifest["n_variants"] == len(read_variants(tmp_path / "frozen.jsonl"))


def test_evaluate_takes_comma_strings_task_and_variants(tmp_path: Path) -> None:
    import robustify

    data = tmp_path / "intent.csv"
    data.write_text("message,kind\nhi there friend,greeting\nbye for now,farewell\n"
                    "see you later today,farewell\n")
    result = robustify.evaluate(data=str(data), mapping="input=message,target=kind",
                                models="python:tests.robustify.cli_models:constant",
                                transforms="typos,slang", severity="high",
                                task="classification", cache="off", write=False,
                                progress=False)
    assert set(result.results["spec"]) == {"clean", "typos@0.8", "slang@0.8"}
    assert set(result.results["task"]) == {"classification"}
    frozen = perturb(tmp_path)
    again = robustify.evaluate(variants=frozen, models=ORACLE, cache="off", write=False,
                               progress=False)
    assert sorted(again.results.loc[again.results["spec"] != "clean", "variant_id"]) == sorted(
        v.variant_id for v in read_variants(frozen))


# ---------------------------------------------------------------------- export

def _export(tmp_path: Path, fmt: str, out: str, data: str = "sample") -> subprocess.CompletedProcess:
    proc = cli("perturb", "--data", data, "--limit", "4", "--transforms", "typos,slang",
               "--severity", "high", "--export", fmt, "--out", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return proc


def _expected(tmp_path: Path, data: str = "sample") -> list[Variant]:
    return read_variants(perturb(tmp_path, "--data", data))


def _check_rows(rows: list[dict], variants: list[Variant]) -> None:
    clean = [r for r in rows if r["spec"] == "clean"]
    noisy = [r for r in rows if r["spec"] != "clean"]
    assert len(clean) == len({v.item.id for v in variants})
    assert [r["id"] for r in noisy] == [v.variant_id for v in variants]
    for row, variant in zip(noisy, variants):
        assert row["item_id"] == variant.item.id and row["target"] == variant.item.target
        assert row["question"] == variant.item.input
        assert row["input"].startswith(variant.item.context or variant.item.input)
        assert float(row["severity"]) == variant.severity
        for index, option in enumerate(variant.item.choices or ()):
            assert f"\n{'ABCDEFGH'[index]}. {option}" in row["input"]
    assert all("labels" not in r for r in rows)


def test_export_csv_and_jsonl_flat_round_trip(tmp_path: Path) -> None:
    variants = _expected(tmp_path)
    _export(tmp_path, "csv", "flat")
    with open(tmp_path / "flat.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["id", "item_id", "spec", "transform", "severity", "severity_label",
                             "replicate", "changed", "task", "input", "question", "context",
                             "choices", "target"]
    _check_rows(rows, variants)
    first = (tmp_path / "flat.csv").read_bytes()
    _export(tmp_path, "csv", "flat.csv")  # the same seed: byte-identical
    assert (tmp_path / "flat.csv").read_bytes() == first
    _export(tmp_path, "jsonl-flat", "flat")
    rows = [json.loads(x) for x in (tmp_path / "flat.jsonl").read_text().splitlines()]
    _check_rows(rows, variants)
    # a flat export is not a variants file: run --variants says so in one line
    proc = cli("run", "--variants", "flat.jsonl", "--model", ORACLE, "--cache", "off",
               cwd=tmp_path)
    assert proc.returncode == 2 and "a flat export is not a variants file" in proc.stderr


def test_export_labels_go_to_a_separate_file(tmp_path: Path) -> None:
    (tmp_path / "intent.csv").write_text("text,label\nhi there friend,greeting\n"
                                         "bye for now,farewell\nsee you later today,farewell\n"
                                         "good morning to you,greeting\n")
    _export(tmp_path, "csv", "intent_flat.csv", data="intent.csv")
    labels = json.loads((tmp_path / "intent_flat.labels.json").read_text())
    assert labels == {"classification": ["farewell", "greeting"]}
    text = (tmp_path / "intent_flat.csv").read_text()
    assert "farewell, greeting" not in text and '["farewell"' not in text


def test_export_hf_loads_with_datasets(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    variants = _expected(tmp_path)
    _export(tmp_path, "hf", "hfdir")
    loaded = datasets.load_from_disk(str(tmp_path / "hfdir"))
    _check_rows(list(loaded), variants)
    card = (tmp_path / "hfdir" / "README.md").read_text()
    assert "load_from_disk" in card and "typos@0.8" in card


def test_export_hf_without_datasets_writes_json_it_can_read(tmp_path: Path) -> None:
    variants = _expected(tmp_path)
    code = ("import sys; sys.modules['datasets'] = None\n"
            "from robustify.cli import main; raise SystemExit(main(sys.argv[1:]))")
    proc = cli("perturb", "--limit", "4", "--transforms", "typos,slang", "--severity", "high",
               "--export", "hf", "--out", "hfjson", cwd=tmp_path, code=code)
    assert proc.returncode == 0, proc.stderr
    assert "datasets is not installed" in proc.stderr and "load_dataset('json'" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "hfjson").iterdir()) == ["README.md", "data.jsonl"]
    rows = [json.loads(x) for x in (tmp_path / "hfjson" / "data.jsonl").read_text().splitlines()]
    _check_rows(rows, variants)
    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset("json", data_files=str(tmp_path / "hfjson" / "data.jsonl"),
                                   split="train", cache_dir=str(tmp_path / "hfcache"))
    assert list(loaded["id"]) == [r["id"] for r in rows]
