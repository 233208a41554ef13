"""The quick verbs import no heavy library: ``transforms`` and ``perturb`` start fast.

Checked by what is imported (``python -X importtime`` names every module a process
imports), not by timing, so the test holds on a busy machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

HEAVY = ("pandas", "numpy", "matplotlib", "openai", "httpx", "httpx2", "httpcore",
         "httpcore2", "pydantic", "pyarrow", "llama_cpp", "scipy", "yaml", "jinja2",
         "datasets")
"""Libraries that cost tenths of a second or more to import."""


def imported_by(*args: str, cwd: Path) -> set[str]:
    """Top-level names of every module ``python -m robustify ARGS`` imports."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "robustify", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    names = {line.rpartition("|")[2].strip().split(".")[0]
             for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "robustify" in names and "perturbations" in names  # the parse saw the imports
    return names


@pytest.mark.parametrize("args", [
    ("transforms",),
    ("perturb", "--data", "sample", "--limit", "6", "--transforms", "typos,slang@high",
     "--out", "variants.jsonl"),
    ("perturb", "--data", "intents.csv", "--format", "intent", "--transforms", "typos@high",
     "--out", "variants.jsonl"),
], ids=["transforms", "perturb-sample", "perturb-csv"])
def test_quick_verbs_import_no_heavy_library(args: tuple[str, ...], tmp_path: Path) -> None:
    (tmp_path / "intents.csv").write_text("text,label\nwhere is my parcel,shipping\n"
                                          "refund me please,refund\n", encoding="utf-8")
    names = imported_by(*args, cwd=tmp_path)
    assert sorted(names & set(HEAVY)) == []
    if args[0] == "perturb":
        assert (tmp_path / "variants.jsonl").stat().st_size > 0


def test_the_check_sees_a_heavy_import(tmp_path: Path) -> None:
    """The same parse does report pandas where a verb needs it (``report --help`` does
    not, so use a run, whose report needs it)."""
    names = imported_by("run", "--limit", "3", "--model", "python:json:dumps",
                        "--transforms", "typos", "--cache", "off", "--out", "out", cwd=tmp_path)
    assert "pandas" in names


FIRST_CALL = """
import sys

HEAVY = {heavy!r}
seen = []


def answer(prompt):
    if not seen:
        seen.append(sorted(name for name in HEAVY if name in sys.modules))
    return "Paris"
"""


def test_the_first_model_call_goes_out_before_pandas_is_imported(tmp_path: Path) -> None:
    """A run asks the model before it imports pandas or matplotlib (they are for the
    results frame and the report: 0.3 s and more here; numpy is needed, the prompt table
    grows with it): ``write=False`` starts no report warming thread, so only the run's
    own imports are seen."""
    (tmp_path / "first_call_probe.py").write_text(FIRST_CALL.format(heavy=HEAVY),
                                                  encoding="utf-8")
    script = ("import robustify, first_call_probe as probe\n"
              "result = robustify.evaluate('sample', 'python:first_call_probe:answer', "
              "'typos@high', limit=4, cache='off', write=False, progress=False)\n"
              "assert len(result.results) == 8, len(result.results)\n"
              "print(probe.seen[0])\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = done.stdout.strip().splitlines()[-1]
    assert seen.startswith("[")  # the probe answered
    for name in ("pandas", "matplotlib", "pyarrow", "scipy"):
        assert f"'{name}'" not in seen, seen
