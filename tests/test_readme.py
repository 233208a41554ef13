"""The README stays true: its generated catalogue, its examples and its two commands."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

import perturbations
from scripts.update_readme import render

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_transform_catalogue_matches_the_registry() -> None:
    assert render(README) == README, "run: python scripts/update_readme.py"


def test_every_registered_transform_is_in_the_catalogue() -> None:
    for name in perturbations.transform_names():
        assert f"| `{name}` |" in README


def test_the_two_fresh_machine_commands_are_documented_and_match_ci() -> None:
    assert "bash scripts/setup.sh && .venv/bin/python -m robustify run" in README
    assert "bash scripts/setup.sh && .venv/bin/python -m pytest" in README
    ci = (ROOT / ".ci" / "run").read_text()
    # CI builds the venv from scratch with the README's set-up, then runs its test command
    assert "rm -rf .venv" in ci and "bash scripts/setup.sh" in ci
    assert ".venv/bin/python -m pytest" in ci
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert '-m venv "$VENV"' in setup and "system-site-packages" not in setup


def test_headline_chart_and_example_report_are_committed() -> None:
    image = re.search(r"!\[[^\]]*\]\(([^)]+\.png)\)", README).group(1)
    assert (ROOT / image).is_file()
    assert (ROOT / "reports" / "example" / "report.html").is_file()


def test_package_docstring_examples_run() -> None:
    failures, tried = doctest.testmod(perturbations, verbose=False)
    assert tried >= 3 and failures == 0


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, re.S)


@pytest.mark.slow
def test_readme_python_api_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        local_model_path: Path) -> None:
    """The notebook examples, run as written (smaller limit) with the real local model."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROBUSTIFY_CACHE", str(tmp_path / "cache.sqlite"))
    blocks = _python_blocks()
    evaluate_block = next(b for b in blocks if "robustify.evaluate(" in b)
    step_block = next(b for b in blocks if "run_queries(" in b)
    namespace: dict = {}
    exec(compile(evaluate_block.replace("limit=40", "limit=6"), "README-evaluate", "exec"), namespace)
    result = namespace["result"]
    assert (tmp_path / "reports" / "my-run" / "report.html").is_file()
    assert len(result.summary()) == 3 * 2  # 3 transforms x 2 severities
    namespace = {}
    exec(compile(step_block, "README-steps", "exec"), namespace)
    assert len(namespace["frame"]) == 10 * 2
