"""Run many ``python -m robustify`` invocations cheaply: import once, fork per invocation.

Starting an interpreter and importing pandas, openai and every transform costs about a
second per CLI call; a corpus of 70 bad inputs would spend a minute on imports alone.
This driver imports the CLI's modules once and then, for each invocation, forks a child
that behaves like a fresh ``python -m robustify ARGS`` process: its own working
folder, environment, stdout and stderr files, ``sys.argv``; ``robustify/__main__.py``
executed as ``__main__`` through :mod:`runpy`; an uncaught exception printed as the
interpreter would (traceback, exit code 1); ``SystemExit`` codes honoured; ``atexit``
handlers run. A child that does not finish within its timeout is killed and reported.

Usage (from a test)::

    python -m tests.robustify.reliability_forkcli CASES.json RESULTS.json

``CASES.json`` is a list of ``{"id", "argv", "cwd", "env", "timeout"}`` (``env`` values of
``null`` unset a variable). ``RESULTS.json`` maps ids to ``{"returncode", "stdout",
"stderr", "timed_out"}``.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

PARALLEL = 3
"""Children running at once."""


def _preload() -> None:
    """Import what CLI calls need, so each child starts warm."""
    import pandas  # noqa: F401
    import yaml  # noqa: F401

    import perturbations  # noqa: F401
    import robustify.pipeline.run  # noqa: F401
    import robustify.cli  # noqa: F401
    import robustify.data  # noqa: F401
    import robustify.models.openai_compat  # noqa: F401
    import robustify.models.python_callable  # noqa: F401
    import robustify.prompts  # noqa: F401
    from perturbations import all_transforms

    all_transforms()


def _child(case: dict[str, Any], out_path: str, err_path: str) -> None:
    """Become ``python -m robustify ARGV``; never returns."""
    code: Any = 0
    try:
        os.chdir(case["cwd"])
        for key, value in (case.get("env") or {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for fd, path in ((1, out_path), (2, err_path)):
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(handle, fd)
            os.close(handle)
        stdin = os.open(os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        os.close(stdin)
        sys.argv = ["python -m robustify", *case["argv"]]
        try:
            runpy.run_module("robustify", run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            if exc.code is None:
                code = 0
            elif isinstance(exc.code, int):
                code = exc.code
            else:
                print(exc.code, file=sys.stderr)
                code = 1
        except BaseException:  # what the interpreter does with an uncaught exception
            traceback.print_exc()
            code = 1
        try:
            atexit._run_exitfuncs()
        except BaseException:
            traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code if isinstance(code, int) else 1)


def run_cases(cases: list[dict[str, Any]], parallel: int = PARALLEL) -> dict[str, Any]:
    """Fork one child per case (``parallel`` at a time) and collect the outcomes."""
    _preload()
    scratch = Path(tempfile.mkdtemp(prefix="robustify-forkcli-"))
    results: dict[str, Any] = {}
    queue = list(cases)
    running: dict[int, tuple[dict[str, Any], float, Path, Path]] = {}
    while queue or running:
        while queue and len(running) < parallel:
            case = queue.pop(0)
            out_path = scratch / f"{case['id']}.out"
            err_path = scratch / f"{case['id']}.err"
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(case, str(out_path), str(err_path))
            running[pid] = (case, time.monotonic() + float(case.get("timeout", 60)),
                            out_path, err_path)
        finished = False
        for pid, (case, deadline, out_path, err_path) in list(running.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            timed_out = False
            if done == 0:
                if time.monotonic() < deadline:
                    continue
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
                timed_out = True
            del running[pid]
            finished = True
            results[case["id"]] = {
                "returncode": os.waitstatus_to_exitcode(status),
                "stdout": out_path.read_text(encoding="utf-8", errors="replace"),
                "stderr": err_path.read_text(encoding="utf-8", errors="replace"),
                "timed_out": timed_out,
            }
        if not finished:
            time.sleep(0.005)
    for path in scratch.iterdir():
        path.unlink()
    scratch.rmdir()
    return results


def main(argv: list[str] | None = None) -> int:
    """``CASES.json RESULTS.json``."""
    cases_path, results_path = (argv if argv is not None else sys.argv[1:])[:2]
    cases = json.loads(Path(cases_path).read_text(encoding="utf-8"))
    results = run_cases(cases)
    Path(results_path).write_text(json.dumps(results), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
