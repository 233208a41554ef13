"""Shared helpers of the reliability tests (faults, bad input, kills, locking, secrets).

Nothing here is a test. The helpers run the real command line in a subprocess
(``python -m robustify ...``), write benchmark files, inject a seeded mix of faults into
:class:`~tests.robustify.fake_openai_server.FakeOpenAIServer`, and compare run folders.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from tests.robustify.fake_openai_server import FakeOpenAIServer, Fault

ROOT = Path(__file__).resolve().parents[2]
"""The repository root (the CLI runs with it on ``PYTHONPATH``)."""

ECHO_MODEL = "python:tests.robustify.reliability_models:echo"
"""A fast, deterministic python model for runs that need no server."""

VOLATILE_COLUMNS = ("latency", "cached")
"""Result columns that legitimately differ between an interrupted and a clean run."""

TEMP_MARKERS = (".tmp",)
"""Suffixes of the atomic writer's temporary files."""


def cli_env(extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """Environment for a CLI subprocess: the repo importable, no real key, no user cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("ROBUSTIFY_CACHE", None)
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def cli_cmd(*args: str) -> list[str]:
    """``python -m robustify ARGS`` with this interpreter."""
    return [sys.executable, "-m", "robustify", *args]


def run_cli(*args: str, cwd: Path | str = ROOT, env: Mapping[str, str | None] | None = None,
            timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion and capture its output as text."""
    return subprocess.run(cli_cmd(*args), cwd=str(cwd), env=cli_env(env), text=True,
                          capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)


def popen_cli(*args: str, cwd: Path | str = ROOT, env: Mapping[str, str | None] | None = None,
              log: Path | None = None) -> subprocess.Popen[bytes]:
    """Start the CLI in the background; stdout and stderr go to ``log`` (or are dropped)."""
    out: Any = open(log, "wb") if log is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(cli_cmd(*args), cwd=str(cwd), env=cli_env(env),
                                stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    finally:
        if log is not None:
            out.close()


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str,
                          code: int = 2) -> str:
    """The process failed with ``code``, printed exactly one ``error:`` line and no traceback.

    Returns the error line. Every needle must occur in it (case-insensitive).
    """
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    context = f"exit {proc.returncode}\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-4000:]}"
    assert proc.returncode == code, context
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, context
    assert len(lines) == 1, context
    line = lines[0]
    assert line.startswith("error: "), context
    for needle in needles:
        assert needle.lower() in line.lower(), f"{needle!r} not in {line!r}"
    return line


# ------------------------------------------------------------------------ benchmark files

def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write rows as JSONL (UTF-8, one object per line)."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def short_items(n: int, prefix: str = "q") -> list[dict[str, Any]]:
    """``n`` short-answer items with distinct questions (distinct prompts)."""
    return [{"id": f"{prefix}{i:04d}", "input": f"What is the name of test city number {i}?",
             "target": f"city {i}"} for i in range(n)]


def write_job(path: Path, job: Mapping[str, Any]) -> Path:
    """Write a job file (JSON is valid YAML, and quoting stays exact)."""
    path.write_text(json.dumps(job, indent=2), encoding="utf-8")
    return path


# ---------------------------------------------------------------------- run folders

def read_results(run_dir: Path, drop: Sequence[str] = VOLATILE_COLUMNS) -> list[dict[str, Any]]:
    """Rows of ``results.jsonl`` without the columns that depend on timing/caching."""
    rows = []
    with (run_dir / "results.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            for column in drop:
                row.pop(column, None)
            rows.append(row)
    return rows


def temp_files(folder: Path) -> list[Path]:
    """Leftover temporary files of the atomic writer below ``folder``."""
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and (p.name.endswith(TEMP_MARKERS) or p.name.startswith(".") and ".tmp" in p.name
                       or any(part.startswith(".robustify-tmp.")  # inside a staging folder
                              for part in p.relative_to(folder).parts)))


def digest(path: Path) -> str:
    """sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------- fault mixing

@dataclass(frozen=True)
class FaultKind:
    """One named entry of a :class:`FaultMix`."""

    name: str
    """Label used in the counts (``429+retry-after``, ``503``, ``hang`` ...)."""
    fault: Fault
    """What the server does."""
    weight: float
    """Probability per chat request."""


@dataclass
class FaultMix:
    """A seeded mix of faults, installed on a server as content rules.

    The fault of a request depends only on its prompt and how many times that prompt was
    asked before, never on arrival order, so a run under concurrency is reproducible.
    Each request draws once (the first rule's predicate draws, the others read the draw,
    which is safe because the server evaluates a request's rules under one lock).
    """

    kinds: Sequence[FaultKind]
    seed: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    """Faults injected, by name (``ok`` for normal answers)."""
    history: dict[str, list[str]] = field(default_factory=dict)
    """What each prompt (last user message) got, one entry per request, in order."""
    _current: str = "ok"
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        total = sum(k.weight for k in self.kinds)
        if total > 1:
            raise ValueError(f"fault weights add up to {total} > 1")

    def _draw(self, messages: list[dict[str, Any]]) -> str:
        prompt = ""
        for message in reversed(messages):
            if message.get("role") == "user":
                prompt = str(message.get("content"))
                break
        with self._lock:
            seen = self.history.setdefault(prompt, [])
            attempt = len(seen) + 1
        raw = hashlib.sha256(f"{self.seed}\x1f{attempt}\x1f{prompt}".encode()).digest()
        u = int.from_bytes(raw[:8], "big") / 2 ** 64
        edge = 0.0
        chosen = "ok"
        for kind in self.kinds:
            edge += kind.weight
            if u < edge:
                chosen = kind.name
                break
        with self._lock:
            self.counts[chosen] += 1
            seen.append(chosen)
        return chosen

    def install(self, server: FakeOpenAIServer) -> "FaultMix":
        """Add one rule per kind to ``server``."""
        for index, kind in enumerate(self.kinds):
            if index == 0:
                def first(messages: list[dict[str, Any]], name: str = kind.name) -> bool:
                    self._current = self._draw(messages)
                    return self._current == name
                server.add_rule(kind.fault, when=first)
            else:
                server.add_rule(kind.fault,
                                when=lambda messages, name=kind.name: self._current == name)
        return self

    @property
    def injected(self) -> dict[str, int]:
        """Faults injected by kind (without ``ok``)."""
        return {k: v for k, v in sorted(self.counts.items()) if k != "ok"}
