"""A run folder is written as a whole or not at all, and only where the user meant.

* Disk full (ENOSPC) and permission errors while the report is written, or while the
  variants file is written, give one line and exit 2, publish nothing half-written, and
  keep the response cache consistent (the rerun asks nothing twice).
* ``report`` waits for no one: it refuses a folder another process holds.
* A failed start leaves no folder and no lock; ``--force`` writes into a foreign folder.
* Large jobs need ``--max-calls`` to confirm.

The disk is filled by patching ``os.fsync`` / ``os.replace`` in a real
``python -m robustify`` process (a tiny tmpfs needs root).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.robustify.hostile_files_models import COUNTED_MODEL
from tests.robustify.reliability_helpers import (ROOT, assert_one_line_error, cli_env,
                                                 temp_files, write_jsonl)

ITEMS = [{"id": f"q{i}", "input": f"What is the name of test city number {i}?",
          "target": f"city {i}"} for i in range(4)]

_FAULTY = """\
import errno, os, runpy, sys
where, what = os.environ["FAULT_ON"], os.environ["FAULT_KIND"]
def _path(fd):
    return os.readlink(f"/proc/self/fd/{fd}")
real_fsync, real_replace = os.fsync, os.replace
def fsync(fd):
    if what == "ENOSPC" and where in _path(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    return real_fsync(fd)
def replace(src, dst, *a, **k):
    if what == "EACCES" and where in os.fspath(dst):
        raise PermissionError(errno.EACCES, "Permission denied", os.fspath(dst))
    return real_replace(src, dst, *a, **k)
os.fsync, os.replace = fsync, replace
sys.argv = ["robustify", *sys.argv[1:]]
runpy.run_module("robustify", run_name="__main__", alter_sys=True)
"""


def _run(tmp_path: Path, *extra: str, fault: tuple[str, str] | None = None,
         out: Path | None = None) -> subprocess.CompletedProcess[str]:
    data = tmp_path / "items.jsonl"
    if not data.exists():
        write_jsonl(data, ITEMS)
    env = {"ROBUSTIFY_TEST_CALLS": str(tmp_path / "calls")}
    if fault:
        env.update(FAULT_ON=fault[0], FAULT_KIND=fault[1])
    args = ["run", "--data", str(data), "--model", COUNTED_MODEL, "--transforms", "typos@high",
            "--out", str(out or tmp_path / "out"), "--cache", str(tmp_path / "c.sqlite"),
            "--quiet", *extra]
    cmd = [sys.executable, "-c", _FAULTY, *args] if fault else \
        [sys.executable, "-m", "robustify", *args]
    return subprocess.run(cmd, cwd=str(ROOT), env=cli_env(env), capture_output=True, text=True,
                          timeout=180)


def _calls(tmp_path: Path) -> int:
    path = tmp_path / "calls"
    return path.read_text().count("call\n") if path.exists() else 0


def _published(out: Path) -> set[str]:
    return {p.name for p in out.iterdir()} - {".robustify.lock"} if out.exists() else set()


@pytest.mark.parametrize("fault,words", [
    (("report.html", "ENOSPC"), ("No space left on device", "nothing half-written",
                                 "answers are kept in the response cache")),
    (("results.jsonl", "ENOSPC"), ("No space left on device", "nothing half-written")),
    (("manifest.json", "EACCES"), ("Permission denied", "nothing half-written")),
    (("/out/report.html", "EACCES"), ("Permission denied", "nothing half-written")),
], ids=["disk-full-at-report", "disk-full-at-results", "permission-denied-at-manifest",
        "permission-denied-while-publishing"])
def test_a_failed_write_publishes_nothing_and_the_rerun_is_free(tmp_path, fault, words):
    out = tmp_path / "out"
    proc = _run(tmp_path, fault=fault)
    assert_one_line_error(proc, str(out), *words)
    assert _calls(tmp_path) == 8  # 4 clean + 4 variants, all answered and cached
    # only the variants file (written before the calls) is there: no report, no results,
    # no manifest, no staging folder
    assert _published(out) == {"variants.jsonl"}, sorted(out.rglob("*"))
    assert not temp_files(out)
    rerun = _run(tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert _calls(tmp_path) == 8  # the cache kept every answer: no new call
    assert {"report.html", "results.jsonl", "manifest.json"} <= _published(out)


def test_a_full_disk_while_writing_variants_leaves_no_folder_and_loses_no_answer(tmp_path):
    """The variants are drawn while the first calls are out, so some answers may be in
    when the file fails: they are kept in the cache, and the rerun asks only the rest."""
    out = tmp_path / "out"
    proc = _run(tmp_path, fault=("variants.jsonl", "ENOSPC"))
    assert_one_line_error(proc, "variants.jsonl", "No space left on device",
                          "received so far are in the response cache")
    assert not out.exists()
    before = _calls(tmp_path)
    assert before <= 8
    rerun = _run(tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert _calls(tmp_path) == 8  # 4 clean + 4 variants: none asked twice
    assert {"report.html", "results.jsonl", "variants.jsonl"} <= _published(out)


def test_report_refuses_a_folder_another_process_holds(tmp_path):
    from filelock import FileLock

    out = tmp_path / "out"
    assert _run(tmp_path).returncode == 0
    before = (out / "report.html").read_bytes()
    with FileLock(str(out / ".robustify.lock")):
        proc = subprocess.run([sys.executable, "-m", "robustify", "report", str(out)],
                              cwd=str(ROOT), env=cli_env(), capture_output=True, text=True,
                              timeout=120)
    assert_one_line_error(proc, str(out), "another robustify run is writing")
    assert (out / "report.html").read_bytes() == before
    again = subprocess.run([sys.executable, "-m", "robustify", "report", str(out)],
                           cwd=str(ROOT), env=cli_env(), capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0, again.stderr
    assert not temp_files(out)


def test_force_writes_into_a_foreign_folder_and_keeps_its_other_files(tmp_path):
    out = tmp_path / "public"
    out.mkdir()
    (out / "index.html").write_text("<p>mine</p>")
    (out / ".draft.x.tmp").write_text("mine too")
    refused = _run(tmp_path, out=out)
    assert_one_line_error(refused, "not a robustify run", "--force")
    assert _calls(tmp_path) == 0
    forced = _run(tmp_path, "--force", out=out)
    assert forced.returncode == 0, forced.stderr
    assert (out / "index.html").read_text() == "<p>mine</p>"
    assert (out / ".draft.x.tmp").read_text() == "mine too"  # not swept: not our name
    assert json.loads((out / "manifest.json").read_text())["robustify_version"]
    # now it is a run folder: a second run needs no --force
    assert _run(tmp_path, out=out).returncode == 0


def test_a_failed_start_leaves_no_folder_and_no_lock(tmp_path, monkeypatch):
    """A failure after the lock was taken (here: the cache cannot open) removes the folder
    the run made."""
    import robustify.pipeline.run as run
    from robustify.pipeline.jobfile import DataSource, JobConfig, ModelConfig

    def broken(path):
        raise RuntimeError("cache unavailable")

    monkeypatch.setattr(run, "open_cache", broken)
    write_jsonl(tmp_path / "items.jsonl", ITEMS)
    out = tmp_path / "new" / "out"
    job = JobConfig(data=(DataSource(path=str(tmp_path / "items.jsonl")),),
                    models=(ModelConfig(spec=COUNTED_MODEL),), transforms=("typos",),
                    out=str(out), cache=str(tmp_path / "c.sqlite"))
    with pytest.raises(RuntimeError, match="cache unavailable"):
        run.run_job(job, progress=False)
    assert not out.exists()


def test_a_large_job_runs_once_confirmed_with_max_calls(tmp_path, monkeypatch):
    import robustify.pipeline.prepare as prepare
    from perturbations.errors import ConfigError
    from robustify.pipeline.jobfile import DataSource, JobConfig, ModelConfig
    from robustify.pipeline.run import run_job

    monkeypatch.setattr(prepare, "CONFIRM_CALLS", 10)
    write_jsonl(tmp_path / "items.jsonl", ITEMS)
    job = JobConfig(data=(DataSource(path=str(tmp_path / "items.jsonl")),),
                    models=(ModelConfig(spec=COUNTED_MODEL),), transforms=("typos@high",),
                    replicates=3, out=str(tmp_path / "out"), cache="off")
    with pytest.raises(ConfigError, match=r"plans 16 model calls .*--max-calls"):
        run_job(job, progress=False)
    assert not (tmp_path / "out").exists()
    result = run_job(job.override(max_calls=100), progress=False)
    assert len(result.results) == 16


def test_a_notebook_write_report_is_whole_or_nothing(tmp_path, monkeypatch):
    """``RunResult.write_report`` from Python stages too: a full disk while the report is
    written publishes nothing into the folder and leaves no staging folder behind."""
    import errno

    import robustify
    import robustify.reporting.run_report as run_report
    from robustify.errors import OutputError

    result = robustify.evaluate(data="sample", models=["python:tests.robustify.e2e_models:golden"],
                                transforms="typos", severity="low", limit=10, cache="off",
                                write=False, progress=False)
    out = tmp_path / "notebook"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    real = run_report.write_text_atomic

    def full_disk(path, text):
        if Path(path).name == "results.csv":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, text)

    monkeypatch.setattr(run_report, "write_text_atomic", full_disk)
    with pytest.raises(OutputError, match="nothing half-written"):
        result.write_report(out)
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]  # no report, no staging
    monkeypatch.setattr(run_report, "write_text_atomic", real)
    files = result.write_report(out)
    assert files["html"] == out / "report.html" and files["html"].is_file()
    assert (out / "manifest.json").is_file() and (out / "results.jsonl").is_file()
    assert all(Path(p).parent in (out, out / "charts") for p in files.values())
