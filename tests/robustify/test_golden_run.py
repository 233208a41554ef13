"""A committed golden run of the sample: refactors must not change what a run produces.

The run uses the deterministic ``golden`` python model (right, wrong and unparseable
answers, no randomness), six transforms at two severities and the whole pipeline of the
CLI. ``variants.jsonl`` must be byte-identical; ``results.jsonl`` identical except for
timing; ``summary.csv`` identical. A deliberate change of behaviour (a transform fixed, a
new column) regenerates the files with ``ROBUSTIFY_UPDATE_GOLDEN=1 pytest THIS_FILE``, and
the diff is reviewed in the same commit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "sample_run"
ARGS = ("run", "--data", "sample", "--limit", "40", "--seed", "0",
        "--model", "python:tests.robustify.e2e_models:golden",
        "--transforms", "typos,slang,truncation,ambiguity,choice_shuffle,mobile_typing",
        "--severity", "low,high", "--quiet")
TIMING = ("latency", "cached")


def _results_without_timing(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("golden")
    out = tmp / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "123"}
    proc = subprocess.run([sys.executable, "-m", "robustify", *ARGS, "--out", str(out),
                           "--cache", "off"], cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    if os.environ.get("ROBUSTIFY_UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for name in ("variants.jsonl", "summary.csv"):
            (GOLDEN / name).write_bytes((out / name).read_bytes())
        rows = _results_without_timing(out / "results.jsonl")
        (GOLDEN / "results.jsonl").write_text(
            "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows),
            encoding="utf-8")
    return out


def test_variants_are_byte_identical_to_the_golden_run(run_dir: Path) -> None:
    assert (run_dir / "variants.jsonl").read_bytes() == (GOLDEN / "variants.jsonl").read_bytes()


def test_results_are_identical_to_the_golden_run_timing_aside(run_dir: Path) -> None:
    got = _results_without_timing(run_dir / "results.jsonl")
    want = [json.loads(line) for line in
            (GOLDEN / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(got) == len(want) == 40 * 13
    for row_got, row_want in zip(got, want):
        assert row_got == row_want


def test_summary_is_identical_to_the_golden_run(run_dir: Path) -> None:
    assert (run_dir / "summary.csv").read_text() == (GOLDEN / "summary.csv").read_text()


def test_the_golden_run_is_not_trivial() -> None:
    """The golden model must exercise flips both ways and unparseable answers."""
    rows = [json.loads(line) for line in
            (GOLDEN / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    scores = [r["score"] for r in rows if r["spec"] != "clean"]
    assert 0.2 < sum(s == 1.0 for s in scores) / len(scores) < 0.9
    assert any(r["unparseable"] for r in rows)
    assert {r["label_policy"] for r in rows} >= {"preserves", "remaps", "may_break"}
