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
    not, so use the run verb's estimate, which loads the runner)."""
    names = imported_by("run", "--estimate", "--limit", "3", "--model", "python:json:dumps",
                        "--cache", "off", cwd=tmp_path)
    assert "pandas" in names
