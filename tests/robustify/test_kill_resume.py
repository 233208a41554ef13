"""Nothing lost: a run killed with SIGKILL at any moment and started again ends with the
same results as a run that was never interrupted, repeating only calls in flight.

Five moments, each detected by polling the run folder and the loopback server's
counters (no hook in the tool):

1. **perturbing** - the run holds its folder lock, the preflight reached the server,
   no variants file and no chat request yet (a job with ``synonyms``, whose WordNet
   warm-up makes this phase last seconds);
2. **querying, early** - 15% of the chat requests answered;
3. **querying, late** - 70% answered;
4. **answers all in, report not started** - every chat request answered, no chart yet
   (the answers of the last 20 ms are still in the cache's write queue);
5. **writing the report** - the first chart file exists, the manifest does not.

After each kill the same command runs again to the end. The results (``results.jsonl``
without ``latency``/``cached``) must equal the uninterrupted run's. A call is *in flight*
from the moment it is sent until its answer is committed to the response cache (the
runner counts an answer done only then). The calls in flight at the kill are therefore
the requests the killed process sent minus the answers in its cache file, and the test
checks that they never exceed ``--concurrency`` and that the resumed run asks again
exactly those of them the server had answered, nothing that was stored.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.robustify.fake_openai_server import FakeOpenAIServer
from tests.robustify.reliability_helpers import popen_cli, read_results, run_cli, temp_files

CONCURRENCY = 4
LATENCY = 0.04
FIGURES: list[dict[str, object]] = []
"""Kill/resume figures, printed at the end of the module (run pytest with -s to see)."""


@dataclass
class Kill:
    """What was observed when the process was killed."""

    moment: str
    requests_before: int
    """Chat requests the server had received at the kill."""
    in_flight: int
    """Chat requests the server was still answering at the kill (server side)."""
    at: float
    """``time.monotonic()`` of the kill (the server records the same clock)."""


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    """One server for the whole module, so every run has the same model label (port)."""
    with FakeOpenAIServer(latency=LATENCY) as srv:
        yield srv
    if FIGURES:
        print("\nkill/resume figures:")
        for row in FIGURES:
            print("  ", row)


def _args(server: FakeOpenAIServer, tmp: Path, name: str, transforms: str, limit: int
          ) -> list[str]:
    return ["run", "--data", "sample", "--limit", str(limit), "--transforms", transforms,
            "--model", f"openai:fake-model@{server.base_url}",
            "--concurrency", str(CONCURRENCY), "--out", str(tmp / name / "out"),
            "--cache", str(tmp / name / "cache.sqlite"), "--quiet"]


JOBS = {
    # typos + slang: ~50 prompts, about a second of querying
    "main": ("typos@low,slang@high", 18),
    # WordNet synonyms: perturbing takes seconds, long enough to be caught
    "slow-perturb": ("synonyms@low", 4),
}


@pytest.fixture(scope="module")
def baselines(server: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory
              ) -> dict[str, dict[str, object]]:
    """An uninterrupted run of each job."""
    tmp = tmp_path_factory.mktemp("kill-baseline")
    out: dict[str, dict[str, object]] = {}
    for job, (transforms, limit) in JOBS.items():
        server.reset()
        proc = run_cli(*_args(server, tmp, job, transforms, limit))
        assert proc.returncode == 0, proc.stderr
        out[job] = {"rows": read_results(tmp / job / "out"),
                    "calls": server.completion_count}
    return out


def _stored_answers(cache: Path) -> int:
    """Answers committed to a (killed) run's cache file; 0 if it was never created."""
    if not cache.exists():
        return 0
    conn = sqlite3.connect(cache)  # read-write: replays the killed process's WAL
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'responses'").fetchone() is None:
            return 0  # killed while the cache file was being created
        return int(conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
    finally:
        conn.close()


def _kill_when(proc, server: FakeOpenAIServer, moment: str, ready: Callable[[], bool],
               timeout: float = 60.0) -> Kill:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before the moment {moment!r}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"moment {moment!r} never came")
        time.sleep(0.002)
    stats = server.stats()
    at = time.monotonic()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return Kill(moment, stats["completions"], stats["in_flight"], at)


MOMENTS = ("perturbing", "querying-early", "querying-late", "answers-in-no-report",
           "writing-report")


@pytest.mark.parametrize("moment", MOMENTS)
def test_kill_and_resume(server, baselines, tmp_path, moment):
    job = "slow-perturb" if moment == "perturbing" else "main"
    transforms, limit = JOBS[job]
    total = int(baselines[job]["calls"])
    args = _args(server, tmp_path, job, transforms, limit)
    out = tmp_path / job / "out"
    server.reset()

    def ready() -> bool:
        done = server.completion_count
        if moment == "perturbing":
            return ((out / ".robustify.lock").exists() and server.request_count >= 1
                    and done == 0 and not (out / "variants.jsonl").exists())
        if moment == "querying-early":
            return done >= 0.15 * total
        if moment == "querying-late":
            return done >= 0.7 * total
        # the report is written into a staging folder, then renamed into place
        started = any(p.is_file() for p in out.glob(".robustify-tmp.staging.*/**/*"))
        if moment == "answers-in-no-report":
            return server.stats()["completions"] >= total and server.stats()["in_flight"] == 0 \
                and not started
        return started and not (out / "manifest.json").exists()

    proc = popen_cli(*args, log=tmp_path / "killed.log")
    kill = _kill_when(proc, server, moment, ready)
    if moment == "perturbing":
        assert not (out / "variants.jsonl").exists() and kill.requests_before == 0
    if moment == "writing-report":
        assert not (out / "manifest.json").exists()
        # killed while staging: nothing of the report was published, no report.html
        # without its results.jsonl
        assert not (out / "report.html").exists() and not (out / "results.jsonl").exists()

    left_by_kill = set(temp_files(out))
    # let the server finish what was in flight, so those calls count as answered
    time.sleep(LATENCY * 5)
    first = server.completion_requests
    answered_before = {r.prompt for r in first if r.status == 200}
    stored = _stored_answers(tmp_path / job / "cache.sqlite")
    in_flight = len(first) - stored  # sent by the killed run, not in its cache
    first_run = len(first)
    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    second = server.completion_requests[first_run:]
    repeated = sum(1 for r in second if r.prompt in answered_before)

    assert read_results(out) == baselines[job]["rows"]
    # an answer counts as done only once stored: never more unstored calls than workers
    assert 0 <= in_flight <= CONCURRENCY, (in_flight, kill)
    # the resumed run asks again exactly the answered calls that were not yet stored
    assert repeated == len(answered_before) - stored <= in_flight, (repeated, stored, kill)
    # and every prompt is answered exactly once overall, apart from those
    assert len(answered_before) + len(second) - repeated == total
    # the resumed run leaves no temporary file of its own (what the kill left behind is
    # test_a_rerun_sweeps_temp_files_left_by_a_killed_write)
    assert set(temp_files(out)) <= left_by_kill, temp_files(out)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["failed"] == 0
    FIGURES.append({"moment": moment, "calls before kill": kill.requests_before,
                    "in flight at kill (server)": kill.in_flight,
                    "in flight at kill (sent, not stored)": in_flight,
                    "calls after resume": len(second),
                    "temp files left by the kill": len(left_by_kill),
                    "repeated": repeated, "total calls": total})


def test_a_rerun_sweeps_temp_files_left_by_a_killed_write(tmp_path):
    """What a kill in the middle of an atomic write leaves behind is cleaned by the next run."""
    out = tmp_path / "out"
    (out / "charts").mkdir(parents=True)
    # exactly the names robustify.atomic gives its temporary files
    leftovers = [out / ".robustify-tmp.report.html.k2j3h4xy.tmp",
                 out / ".robustify-tmp.results.jsonl.a8d7f6gh.tmp",
                 out / "charts" / ".robustify-tmp.heatmap.png.q1w2e3r4.tmp",
                 out / ".robustify-tmp.staging.z9y8x7w6.tmp" / "charts" / "heatmap.png"]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("half a file")
    # a user's own dot-files that merely look temporary are not ours to delete
    mine = [out / ".notes.draft.tmp", out / ".report.html.k2j3h4xy.tmp"]
    for path in mine:
        path.write_text("the user's file")
    (out / ".robustify.lock").write_text("")  # a killed run leaves its (unlocked) lock file
    proc = run_cli("run", "--limit", "3", "--transforms", "typos@low", "--model",
                   "python:tests.robustify.reliability_models:echo", "--out", str(out),
                   "--cache", str(tmp_path / "c.sqlite"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert sorted(temp_files(out)) == sorted(mine), temp_files(out)
    assert all(p.read_text() == "the user's file" for p in mine)
