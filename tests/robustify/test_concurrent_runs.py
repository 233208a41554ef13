"""Two runs at once never corrupt each other.

* Same job, same cache, same output folder, started together: one run writes the
  folder, the other refuses with one clear line and exit code 2 (the folder lock
``OUT/.robustify.lock``), making no model call and touching none of the winner's files.
* A folder locked by another process is refused the same way (deterministic version).
* Same cache, different output folders, started together: both finish with identical
  results and the shared SQLite cache stays sound.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

from filelock import FileLock

from tests.robustify.fake_openai_server import FakeOpenAIServer
from tests.robustify.reliability_helpers import (ROOT, assert_one_line_error, cli_cmd,
                                                 cli_env, read_results, run_cli, short_items,
                                                 temp_files, write_jsonl)

LOCK_MESSAGE = "another robustify run is writing to this folder"


def _args(server: FakeOpenAIServer, data: Path, out: Path, cache: Path) -> list[str]:
    return ["run", "--data", str(data), "--transforms", "typos@high",
            "--model", f"openai:fake-model@{server.base_url}", "--concurrency", "4",
            "--out", str(out), "--cache", str(cache), "--quiet"]


def _start_together(*argvs: list[str]) -> list[subprocess.CompletedProcess[str]]:
    procs = [subprocess.Popen(cli_cmd(*argv), cwd=str(ROOT), env=cli_env(), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL) for argv in argvs]
    done = []
    for proc, argv in zip(procs, argvs):
        stdout, stderr = proc.communicate(timeout=180)
        done.append(subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr))
    return done


def _cache_is_sound(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return int(conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
    finally:
        conn.close()


def test_a_locked_folder_is_refused_without_touching_it(tmp_path):
    data = write_jsonl(tmp_path / "items.jsonl", short_items(5))
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.jsonl").write_text("the other run's file\n")
    with FakeOpenAIServer() as server, FileLock(str(out / ".robustify.lock"), timeout=0):
        proc = run_cli(*_args(server, data, out, tmp_path / "c.sqlite"))
        completions = server.completion_count
    assert_one_line_error(proc, str(out), LOCK_MESSAGE, "--out")
    assert completions == 0
    assert sorted(p.name for p in out.iterdir()) == [".robustify.lock", "results.jsonl"]
    assert (out / "results.jsonl").read_text() == "the other run's file\n"
    assert not (tmp_path / "c.sqlite").exists()


def test_same_job_same_folder_at_once(tmp_path):
    data = write_jsonl(tmp_path / "items.jsonl", short_items(40))
    out, cache = tmp_path / "out", tmp_path / "cache.sqlite"
    # 80 prompts at 4 in flight and 50 ms each: the winner holds the folder for 1 s or more
    with FakeOpenAIServer(latency=0.05) as server:
        argv = _args(server, data, out, cache)
        first, second = _start_together(argv, argv)
        completions = server.completion_count
        prompts = server.prompts
    codes = sorted((first.returncode, second.returncode))
    assert codes == [0, 2], (first.stderr, second.stderr)
    loser = first if first.returncode == 2 else second
    assert_one_line_error(loser, LOCK_MESSAGE)
    # the loser made no model call: every prompt was asked once, by the winner
    assert completions == len(set(prompts)) == len(prompts)
    rows = read_results(out)
    assert len(rows) == 80 and all(r["error"] is None for r in rows)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {**manifest["counts"], "rows": 80, "failed": 0}
    assert _cache_is_sound(cache) == completions
    assert not temp_files(out)


def test_two_runs_share_one_cache(tmp_path):
    data = write_jsonl(tmp_path / "items.jsonl", short_items(30))
    cache = tmp_path / "shared.sqlite"
    with FakeOpenAIServer(latency=0.02) as server:
        one, two = _start_together(_args(server, data, tmp_path / "one", cache),
                                   _args(server, data, tmp_path / "two", cache))
        completions = server.completion_count
        unique = len(set(server.prompts))
        assert one.returncode == 0, one.stderr
        assert two.returncode == 0, two.stderr
        assert read_results(tmp_path / "one") == read_results(tmp_path / "two")
        assert _cache_is_sound(cache) == unique
        # each prompt asked at most once per process
        assert unique <= completions <= 2 * unique
    assert not temp_files(tmp_path / "one") and not temp_files(tmp_path / "two")
