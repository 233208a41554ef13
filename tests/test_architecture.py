"""The house rules of the code: imports go downward, no cycles, rooms of a readable size."""

from __future__ import annotations

from pathlib import Path

from robustify.dev import LAYERS, imports, module_cycles, module_sizes, room_of, violations

ROOT = Path(__file__).resolve().parents[1]


def test_imports_go_downward_only() -> None:
    problems = violations(imports(ROOT))
    assert not problems, "\n".join(problems)


def test_no_import_cycles() -> None:
    cycles = module_cycles(imports(ROOT))
    assert not cycles, "\n".join(" -> ".join(c + c[:1]) for c in cycles)


def test_every_module_has_a_room() -> None:
    for found in imports(ROOT):
        assert room_of(found.source), f"{found.source} belongs to no room of robustify.dev.LAYERS"


def test_no_module_is_too_big_to_read() -> None:
    """About 600 lines at most (issue 14): split by concept before a module grows past it."""
    big = [(path, n) for path, n in module_sizes(ROOT) if n > 620]
    assert not big, big


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for package in ("robustify", "perturbations"):
        for folder in [tmp_path / package, *(tmp_path / package).rglob("*")]:
            if folder.is_dir() and not (folder / "__init__.py").exists():
                (folder / "__init__.py").write_text("")
    return tmp_path


def test_the_rules_catch_an_upward_import_and_a_cycle(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "robustify/analysis/stats.py": "def f():\n    from robustify.pipeline.run import x\n",
        "robustify/scoring/rules.py": "import robustify.models.base\n",
        "robustify/runner/a.py": "from robustify.runner import b\n",
        "robustify/runner/b.py": "from robustify.runner.a import y\n",
        "perturbations/engine.py": "import pandas\n",
        "robustify/pipeline/run.py": "",
        "robustify/models/base.py": "",
    })
    found = imports(root)
    problems = violations(found)
    assert any(p.startswith("robustify.analysis.stats:2 imports robustify.pipeline.run") and
               "a higher layer" in p for p in problems), problems
    assert any(p.startswith("robustify.scoring.rules:1") and "its own layer" in p
               for p in problems), problems
    assert any("perturbations never imports pandas" in p for p in problems), problems
    cycles = module_cycles(found, root)
    assert [sorted(c) for c in cycles] == [["robustify.runner.a", "robustify.runner.b"]]
    assert LAYERS["robustify.analysis"] < LAYERS["robustify.pipeline"]


def test_cli_and_dev_views_end_quietly_on_a_closed_pipe() -> None:
    """``python -m robustify transforms | head``: exit 0, no BrokenPipeError traceback."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for args in (["-m", "robustify", "transforms"], ["-m", "robustify.dev", "sizes"]):
        proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
        assert proc.stdout is not None
        # closed before the first write (start-up takes far longer than this): every write
        # then fails with EPIPE, as after `head` has exited
        proc.stdout.close()
        err = proc.stderr.read().decode() if proc.stderr else ""
        assert proc.wait(timeout=60) == 0 and "Traceback" not in err, err
