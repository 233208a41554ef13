"""Hostile models: every response is bounded in memory and time, and no key is stored.

The real command line runs in a subprocess against :class:`HostileServer` (a loopback
OpenAI-compatible server that sends a gzip bomb, a 100 MB body, one byte every 0.5 s, or
echoes the API key) and against python: models that never return. Each case must end
with the failure recorded on its rows, the child's peak memory under a stated bound,
deadlines honoured within 10%, and the key nowhere in the run folder, the cache, stdout
or stderr.

Peak memory is the child's own ``VmHWM`` (high-water resident set of its address space),
which it writes at exit. Not ``wait4``'s ``ru_maxrss``: on Linux that also counts the
parent's pages at fork/exec time, so it would report the size of the pytest process.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from robustify.models.openai_compat import OpenAICompatBackend
from robustify.models.retry import RetryPolicy
from tests.robustify.fake_openai_server import FakeOpenAIServer
from tests.robustify.hostile_server import HostileServer
from tests.robustify.reliability_helpers import (ROOT, cli_cmd, cli_env, read_results,
                                                 short_items, write_job, write_jsonl)

KEY_VAR = "ROBUSTIFY_HOSTILE_TEST_KEY"
MB = 1024 * 1024
PEAK_BOUND = 400 * MB
"""Peak RSS allowed for a whole CLI run against a hostile server (concurrency 4)."""
OVER_BASELINE = 100 * MB
"""Peak RSS allowed above the same run against a well-behaved server."""


_MEASURED_CLI = """
import atexit, os, runpy, sys

def _peak():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                with open(os.environ["HOSTILE_TEST_PEAK"], "w") as out:
                    out.write(line.split()[1])

atexit.register(_peak)
sys.argv[0] = "robustify"
runpy.run_module("robustify", run_name="__main__", alter_sys=True)
"""


def run_measured(args: list[str], env: dict[str, str] | None = None,
                 timeout: float = 240.0) -> tuple[int, str, str, int, float]:
    """Run the CLI; return (exit code, stdout, stderr, peak RSS in bytes, seconds)."""
    out_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"hostile-{uuid.uuid4().hex}"
    started = time.monotonic()
    env = {**(env or {}), "HOSTILE_TEST_PEAK": f"{out_path}.peak"}
    command = [cli_cmd()[0], "-c", _MEASURED_CLI, *args]
    with open(f"{out_path}.out", "wb") as out, open(f"{out_path}.err", "wb") as err:
        proc = subprocess.Popen(command, cwd=str(ROOT), env=cli_env(env), stdout=out,
                                stderr=err, stdin=subprocess.DEVNULL)
        deadline = started + timeout
        while True:
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise AssertionError(f"the CLI ran longer than {timeout}s")
            time.sleep(0.05)
    elapsed = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout = Path(f"{out_path}.out").read_text()
    stderr = Path(f"{out_path}.err").read_text()
    peak = int(Path(f"{out_path}.peak").read_text()) * 1024  # VmHWM is in kB
    for suffix in (".out", ".err", ".peak"):
        Path(f"{out_path}{suffix}").unlink()
    return proc.returncode, stdout, stderr, peak, elapsed


def _job(tmp: Path, url: str, n: int = 2, **model: Any) -> Path:
    data = write_jsonl(tmp / "items.jsonl", short_items(n))
    return write_job(tmp / "job.yaml", {
        "data": [{"path": str(data)}],
        "models": [{"spec": f"openai:hostile@{url}", "api_key_env": KEY_VAR,
                    "concurrency": 4, **model}],
        "transforms": ["typos@high"]})


def _run(tmp: Path, url: str, key: str = "sk-hostile-placeholder-000000000000", **model: Any
         ) -> tuple[int, str, str, int, float]:
    job = _job(tmp, url, **model)
    return run_measured(["run", "--config", str(job), "--out", str(tmp / "out"),
                         "--cache", str(tmp / "cache" / "c.sqlite"), "--quiet"],
                        env={KEY_VAR: key})


@pytest.fixture(scope="module")
def baseline_rss(tmp_path_factory: pytest.TempPathFactory) -> int:
    """Peak RSS of the same run against a well-behaved server."""
    tmp = tmp_path_factory.mktemp("baseline")
    with FakeOpenAIServer() as server:
        code, _, err, peak, _ = _run(tmp, server.base_url)
    assert code == 0, err
    return peak


@pytest.mark.parametrize("mode", ["gzip_bomb", "huge_body"])
def test_an_oversized_body_is_cut_retried_and_recorded_with_bounded_memory(
        tmp_path, mode, baseline_rss):
    with HostileServer(mode) as server:
        code, _, err, peak, _ = _run(tmp_path, server.base_url)
        served = server.served[mode]
    assert code == 0, err
    rows = read_results(tmp_path / "out")
    assert len(rows) == 4  # 2 items x (clean + typos@high)
    for row in rows:
        assert row["response"] is None and row["score"] is None
        assert row["error"].startswith("gave up after 5 attempts: response body larger than "
                                       "4,194,304 bytes"), row["error"]
    assert served == 4 * 5  # every prompt retried to the 5-attempt bound
    assert peak < PEAK_BOUND, f"peak RSS {peak / MB:.0f} MB"
    assert peak - baseline_rss < OVER_BASELINE, (
        f"peak {peak / MB:.0f} MB vs {baseline_rss / MB:.0f} MB against a normal server")


def test_a_dripping_server_is_cut_at_the_deadline(tmp_path, baseline_rss):
    with HostileServer("drip", drip_interval=0.5) as server:
        code, _, err, peak, elapsed = _run(tmp_path, server.base_url, timeout=1.0)
        served = server.served["drip"]
    assert code == 0, err
    rows = read_results(tmp_path / "out")
    assert len(rows) == 4
    for row in rows:
        assert row["error"].startswith("gave up after 5 attempts: request timed out after 1s"), row
    assert served == 4 * 5
    # 5 attempts of 1 s and 4 backoff waits of at most 0.5+1+2+4 s per prompt (concurrently)
    assert elapsed < 5 * 1.1 + 7.5 + 30, elapsed
    assert peak - baseline_rss < OVER_BASELINE


@pytest.mark.parametrize("deadline", [2.0, 5.0])
def test_the_deadline_of_one_attempt_holds_within_ten_percent(deadline):
    os.environ.setdefault(KEY_VAR, "sk-hostile-placeholder-000000000000")

    async def timed(backend: OpenAICompatBackend) -> float:
        # a first, normal call opens the client and its connection; then the drip
        await backend.agenerate([{"role": "user", "content": "warm up"}])
        started = time.monotonic()
        with pytest.raises(Exception, match=rf"request timed out after {deadline:g}s"):
            await backend.agenerate([{"role": "user", "content": "DRIP please"}])
        return time.monotonic() - started

    with HostileServer("drip", when="DRIP", drip_interval=0.5) as server:
        backend = OpenAICompatBackend("m", base_url=server.base_url, timeout=deadline,
                                      retry=RetryPolicy.none(), api_key_env=KEY_VAR)
        took = asyncio.run(timed(backend))
        assert server.served["drip"] == 1
    # the drip sends a byte every 0.5 s, so an idle timeout would never fire
    assert deadline <= took <= deadline * 1.1, took


def test_an_echoed_key_is_stored_nowhere(tmp_path):
    key = f"sk-hostile-{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}"
    with HostileServer("echo_key", require_key=key) as server:
        code, out, err, _, _ = _run(tmp_path, server.base_url, key=key)
        assert server.served["echo_key"] == 4
    assert code == 0, err
    rows = read_results(tmp_path / "out")
    assert all(r["response"] == "Sure. Your key is [redacted key] and again: [redacted key]."
               for r in rows), rows
    written = {str(p): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert any(name.endswith("c.sqlite") for name in written)
    written["stdout"], written["stderr"] = out.encode(), err.encode()
    core = key.removeprefix("sk-hostile-").encode()
    leaks = [name for name, data in written.items()
             if key.encode() in data or core[:16] in data or core[-16:] in data]
    assert leaks == []


HANGING = "tests.robustify.hostile_models"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_python_model_that_never_returns_times_out_per_row(tmp_path, kind):
    data = write_jsonl(tmp_path / "items.jsonl", short_items(1))
    job = write_job(tmp_path / "job.yaml", {
        "data": [{"path": str(data)}],
        "models": [{"spec": f"python:{HANGING}:never_{kind}", "timeout": 0.5}],
        "transforms": ["typos@high"]})
    code, _, err, _, elapsed = run_measured(
        ["run", "--config", str(job), "--out", str(tmp_path / "out"),
         "--cache", str(tmp_path / "c.sqlite"), "--quiet"], timeout=120)
    assert code == 0, err
    rows = read_results(tmp_path / "out")
    assert len(rows) == 2
    for row in rows:
        assert row["error"] == "gave up after 5 attempts: call timed out after 0.5s", row
    # 5 attempts of 0.5 s and at most 7.5 s of backoff, prompts side by side; the process
    # exits although the sync calls' threads still sleep
    assert elapsed < 5 * 0.55 + 7.5 + 30, elapsed


def test_huge_answers_are_capped_flagged_and_stored_once_per_row(tmp_path):
    data = write_jsonl(tmp_path / "items.jsonl", short_items(2))
    job = write_job(tmp_path / "job.yaml", {
        "data": [{"path": str(data)}],
        "models": [{"spec": f"python:{HANGING}:ten_megabytes"}],
        "transforms": ["typos@high"]})
    args = ["run", "--config", str(job), "--out", str(tmp_path / "out"),
            "--cache", str(tmp_path / "c.sqlite"), "--quiet"]
    for attempt in ("first", "from the cache"):
        code, _, err, _, _ = run_measured(args)
        assert code == 0, err
        rows = read_results(tmp_path / "out", drop=())
        assert len(rows) == 4
        for row in rows:
            assert row["answer_capped"] is True, attempt
            assert row["error"] is None
            # cut at 65,536 bytes, at a character boundary: "é" is 2 bytes
            assert row["response"] == "é" + "A" * (65536 - 2)
        if attempt != "first":
            assert all(row["cached"] for row in rows)
    sizes = {p.name: p.stat().st_size for p in (tmp_path / "out").iterdir() if p.is_file()}
    # 4 rows in each of results.jsonl and results.csv, each row with the capped answer
    # in `response` and the short-answer scorer's normalised copy in `parsed`: 8 x 64 KiB
    # per file, where the 10 MB answer took 4 x 10 MB before the cap
    assert max(sizes.values()) < 8 * 65536 * 1.05, sizes
    with sqlite3.connect(tmp_path / "c.sqlite") as db:
        stored = db.execute("SELECT length(CAST(text AS BLOB)), capped FROM responses").fetchall()
    assert stored and all(entry == (65536, 1) for entry in stored), stored


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/v1?key=KEY", "http://127.0.0.1:9/v1?api_key=KEY",
                                 "http://127.0.0.1:9/v1#token=KEY",
                                 "http://127.0.0.1:9/v1?x=KEY",
                                 "http://127.0.0.1:9/v1?api-version=1&sig=KEY"])
def test_a_key_in_the_base_url_query_or_fragment_is_refused(tmp_path, url):
    key = f"sk-url-{uuid.uuid4().hex}"
    url = url.replace("KEY", key)
    proc = subprocess.run(cli_cmd("run", "--model", f"openai:m@{url}", "--out",
                                  str(tmp_path / "out"), "--cache", str(tmp_path / "c.sqlite")),
                          cwd=str(ROOT), env=cli_env(), capture_output=True, text=True,
                          timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: model spec openai:m@...: the base URL carries a "
                               "credential ("), lines
    assert key not in proc.stderr and key not in proc.stdout
    assert not (tmp_path / "out").exists() and not (tmp_path / "c.sqlite").exists()


def test_the_python_api_refuses_a_key_in_the_base_url_too():
    from perturbations.errors import ConfigError

    with pytest.raises(ConfigError, match=r"query parameter 'api_key'") as info:
        OpenAICompatBackend("m", base_url="http://127.0.0.1:9/v1?api_key=sk-abcdefabcdef0123456789")
    assert "sk-abc" not in str(info.value)
    # a harmless query (Azure's api-version) is fine
    backend = OpenAICompatBackend("m", base_url="http://127.0.0.1:9/v1?api-version=2024-02-01")
    assert backend.base_url.endswith("api-version=2024-02-01")


# ------------------------------------------------------------------ in-process units

def _through_transport(body: bytes, headers: dict[str, str], limit: int = 1000) -> bytes:
    import httpx2

    from robustify.models.http_limits import BoundedTransport

    class Raw(httpx2.AsyncBaseTransport):
        """Hands the body over as sent, still encoded (as the network transport does)."""

        async def handle_async_request(self, request: "httpx2.Request") -> "httpx2.Response":
            assert request.headers["accept-encoding"] == "gzip, deflate"
            return httpx2.Response(200, headers={**headers, "Content-Length": str(len(body))},
                                   stream=httpx2.ByteStream(body))

    async def fetch() -> bytes:
        transport = BoundedTransport(Raw(), limit)
        async with httpx2.AsyncClient(transport=transport) as client:
            response = await client.get("http://127.0.0.1:9/v1/models")
            return response.content

    return asyncio.run(fetch())


def test_the_transport_decodes_gzip_zlib_and_raw_deflate_within_the_limit():
    import zlib

    text = b"x" * 1000
    gzip = zlib.compressobj(6, zlib.DEFLATED, 31)
    raw = zlib.compressobj(6, zlib.DEFLATED, -15)
    assert _through_transport(gzip.compress(text) + gzip.flush(),
                              {"Content-Encoding": "gzip"}) == text
    assert _through_transport(zlib.compress(text), {"Content-Encoding": "deflate"}) == text
    assert _through_transport(raw.compress(text) + raw.flush(),
                              {"Content-Encoding": "deflate"}) == text
    assert _through_transport(text, {}) == text


def test_the_transport_stops_a_bomb_at_the_limit_and_refuses_other_encodings():
    import zlib

    from robustify.models.http_limits import BadEncodingError, ResponseTooLargeError

    bomb = zlib.compress(b"\0" * (64 << 20), 9)  # 64 MiB inflated, about 64 KB sent
    with pytest.raises(ResponseTooLargeError, match="larger than 1,000 bytes"):
        _through_transport(bomb, {"Content-Encoding": "deflate"})
    with pytest.raises(ResponseTooLargeError, match="1,001 bytes is larger than 1,000 bytes"):
        _through_transport(b"y" * 1001, {})
    for encoding in ("br", "gzip, gzip", "zstd"):
        with pytest.raises(BadEncodingError, match="is not gzip or deflate"):
            _through_transport(b"whatever", {"Content-Encoding": encoding})
    with pytest.raises(BadEncodingError, match="corrupt gzip"):
        _through_transport(b"not gzip at all", {"Content-Encoding": "gzip"})


def test_a_python_model_that_keeps_hanging_is_stopped_after_bounded_abandoned_threads():
    from robustify.models.base import FatalModelError, ModelCallError
    from robustify.models.python_callable import PythonCallableBackend
    from tests.robustify.hostile_models import never_sync

    backend = PythonCallableBackend(never_sync, concurrency=1, timeout=0.1,
                                    retry=RetryPolicy.none())

    async def calls() -> list[str]:
        outcomes = []
        for _ in range(5):
            try:
                await backend.agenerate([{"role": "user", "content": "hi"}])
            except FatalModelError as exc:
                outcomes.append(f"fatal: {exc}")
                break
            except ModelCallError as exc:
                outcomes.append(str(exc))
        return outcomes

    outcomes = asyncio.run(calls())
    # MAX_ABANDONED x concurrency = 2 stuck threads are tolerated, the 4th call is refused
    assert outcomes[:3] == ["call timed out after 0.1s (no retries allowed)"] * 3
    assert len(outcomes) == 4 and outcomes[3].startswith("fatal: python:")
    assert "3 calls passed the 0.1s timeout and never returned" in outcomes[3]
    assert backend.abandoned == 3 and backend._threads is not None
    assert backend._threads.started == 3  # one fresh daemon thread per stuck call
    backend.close()


@pytest.mark.parametrize("mode", ["drip", "gzip_bomb"])
def test_the_preflight_is_bounded_too(mode, caplog):
    import logging

    from robustify.models.base import FatalModelError

    os.environ.setdefault(KEY_VAR, "sk-hostile-placeholder-000000000000")
    with HostileServer(mode, listing=True, drip_interval=0.5) as server:
        backend = OpenAICompatBackend("m", base_url=server.base_url, preflight_timeout=2.0,
                                      api_key_env=KEY_VAR)
        started = time.monotonic()
        if mode == "drip":
            with pytest.raises(FatalModelError, match="did not answer GET /models within 2s"):
                asyncio.run(backend.check())
            assert 2.0 <= time.monotonic() - started <= 2.2
        else:
            with caplog.at_level(logging.INFO, logger="robustify.models.openai_compat"):
                asyncio.run(backend.check())  # an oversized listing only skips the model check
            assert ("GET /models: response body larger than 4,194,304 bytes "
                    "(max_response_bytes); stopped reading there; skipping the model check"
                    in caplog.text), caplog.text
        assert server.served[mode] == 1


def test_an_oversized_answer_from_an_older_cache_is_capped_on_reading(tmp_path):
    from perturbations.records import Item, Variant
    from robustify.models.python_callable import PythonCallableBackend
    from robustify.prompts import build_messages
    from robustify.records import Completion, Score
    from robustify.runner.cache import ResponseCache, cache_key
    from robustify.runner.execute import run_queries

    def never(messages: list[dict[str, str]]) -> str:
        raise AssertionError("the cache must answer")

    backend = PythonCallableBackend(never, label="python:never", max_answer_bytes=10)
    item = Item(id="a", input="What is 2+2?", target="4", task="short_answer")
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        # stored uncapped, as a robustify without the cap did
        cache.put(cache_key(backend.identity(), build_messages(item)), Completion("4" * 100))
        cache.flush()
        frame = run_queries([Variant.clean(item)], [backend], build_messages=build_messages,
                            score=lambda item, text: Score(1.0 if text == "4" else 0.0),
                            cache=cache, progress=False)
    row = frame.iloc[0]
    assert row["response"] == "4" * 10 and bool(row["answer_capped"]) and bool(row["cached"])
