"""``--batch``: the OpenAI Batch API end to end, against a loopback Files/Batches server.

What is proved here, each time with the real ``openai`` client talking HTTP to
:class:`~tests.robustify.fake_batch_server.FakeBatchServer`:

* a cache filled by batches gives exactly the results (and cache rows) of normal calls;
* input files are split at the request and byte limits, one line per distinct prompt,
  keyed by the cache key, with no key anywhere in them;
* per-request failures land on their rows as errors; nothing is asked live;
* an expired batch keeps what it answered and resubmits the rest once, and a second
  expiry is recorded as failed;
* a CLI run killed (SIGKILL) while its batches are pending resumes from the ids kept in
  its folder without submitting anything twice, and no stored file holds the key;
* a stop right after a batch was created but before its id was saved finds that batch
  again instead of creating another;
* a failing Files API stops with one line (no key in it) and the next call resumes from
  the written file; a file half written before a stop is never submitted; result lines
  that are unreadable or answer a request never asked do not enter the cache;
* bad ``batch`` settings stop with one line and exit code 2 before any call.
"""

from __future__ import annotations

import json
import math
import signal
import sqlite3
import time
from pathlib import Path

import pytest

import robustify
from perturbations.records import Item, Variant
from robustify.models import parse_model_spec
from robustify.prompts import build_messages
from robustify.runner.batch import run_batches
from robustify.runner.batch_jsonl import BatchOptions
from robustify.runner.cache import ResponseCache, cache_key
from tests.robustify.fake_batch_server import FakeBatchServer
from tests.robustify.reliability_helpers import (ECHO_MODEL, assert_one_line_error, popen_cli,
                                                 read_results, run_cli, write_job)

FAST = {"poll_first": 0.02, "poll_max": 0.1}
VOLATILE = ("latency", "cached")


def _cache_rows(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return sorted(conn.execute("SELECT key, text, tokens_in, tokens_out, capped, "
                                   "finish_reason FROM responses"))


def _frame(result) -> list[dict]:
    frame = result.results.drop(columns=list(VOLATILE))
    return json.loads(frame.to_json(orient="records"))


def _evaluate(server: FakeBatchServer, tmp: Path, name: str, **kwargs):
    return robustify.evaluate(data="sample", models=[f"openai:fake@{server.base_url}"],
                              transforms=["typos", "slang"], limit=8, seed=3,
                              out=tmp / name, cache=tmp / f"{name}.sqlite", progress=False,
                              **kwargs)


def test_batch_filled_cache_gives_the_results_of_normal_calls(tmp_path: Path) -> None:
    with FakeBatchServer(delay=0.05) as server:
        normal = _evaluate(server, tmp_path, "normal")
        calls = server.chat_calls
        assert calls > 20 and server.creates == 0
        batched = _evaluate(server, tmp_path, "batched", batch={"max_requests": 7, **FAST})
        assert server.chat_calls == calls  # nothing asked live
        lines = server.input_lines()
        assert len(lines) == calls  # each distinct prompt once
        assert server.creates == server.uploads == math.ceil(calls / 7)
        assert all(len(record["data"].splitlines()) <= 7 for record in server.files.values()
                   if record["purpose"] == "batch")
        assert {line["url"] for line in lines} == {"/v1/chat/completions"}
        assert {line["body"]["model"] for line in lines} == {"fake"}
        # the bodies are the backend's own: the numeric item's longer answer budget too
        assert {line["body"]["max_tokens"] for line in lines} == {48, 256}
        # answers and scores equal a normal run's, and so does the cache, row for row
        assert _frame(batched) == _frame(normal)
        assert _cache_rows(tmp_path / "batched.sqlite") == _cache_rows(tmp_path / "normal.sqlite")
        assert {line["custom_id"] for line in lines} == \
            {row[0] for row in _cache_rows(tmp_path / "normal.sqlite")}
        facts = batched.manifest["batch"]
        assert facts["requests"] == facts["answers"] == calls and facts["failed"] == 0
        assert bool(batched.results["cached"].all())
        # a second batch run finds everything cached: no upload, no batch
        uploads = server.uploads
        again = _evaluate(server, tmp_path, "batched", batch={"max_requests": 7, **FAST})
        assert server.uploads == uploads and server.chat_calls == calls
        assert _frame(again) == _frame(normal)
        # spent input files are removed; the state keeps every batch id
        state = json.loads((tmp_path / "batched" / "batches" / "state.json").read_text())
        assert [c["status"] for c in state["chunks"]] == ["stored"] * server.creates
        assert {c["batch_id"] for c in state["chunks"]} == set(server.batches)
        assert not list((tmp_path / "batched" / "batches").glob("chunk-*.jsonl"))


def test_input_files_are_cut_at_the_byte_limit(tmp_path: Path) -> None:
    with FakeBatchServer() as server:
        result = _evaluate(server, tmp_path, "bytes", batch={"max_bytes": 2500, **FAST})
        sizes = [len(r["data"]) for r in server.files.values() if r["purpose"] == "batch"]
        assert len(sizes) > 2 and max(sizes) <= 2500
        assert len(server.input_lines()) == result.manifest["batch"]["requests"]
        assert result.results["error"].isna().all()


def test_request_larger_than_a_file_is_a_row_error(tmp_path: Path) -> None:
    with FakeBatchServer() as server:
        result = _evaluate(server, tmp_path, "huge", batch={"max_bytes": 300, **FAST})
        errors = result.results["error"].dropna()
        assert len(errors) == len(result.results) and server.creates == 0
        assert errors.str.contains("larger than batch.max_bytes").all()
        assert server.chat_calls == 0


def test_per_request_failures_are_recorded_on_their_rows(tmp_path: Path) -> None:
    with FakeBatchServer(fail_when="kangaroo") as server:
        result = _evaluate(server, tmp_path, "partial", batch=FAST)
        frame = result.results
        refused = frame["input"].str.contains("kangaroo")
        assert refused.any() and (~refused).any()
        assert (frame.loc[refused, "error"] ==
                "batch request failed (HTTP 400): the fake server refuses this prompt").all()
        assert frame.loc[refused, "score"].isna().all()
        assert frame.loc[~refused, "error"].isna().all()
        assert frame.loc[~refused, "response"].str.startswith("echo: ").all()
        assert server.chat_calls == 0  # failures are not asked live
        facts = result.manifest["batch"]
        assert facts["failed"] == len(set(frame.loc[refused, "input"]))
        assert result.manifest["counts"]["failed"] == int(refused.sum())


def test_expired_batch_keeps_its_answers_and_resubmits_the_rest_once(tmp_path: Path) -> None:
    with FakeBatchServer(expire=1, expire_keep=0.5) as server:
        result = _evaluate(server, tmp_path, "expired", batch=FAST)
        first, second = server.batches.values()
        assert server.creates == 2
        total = first["request_counts"]["total"]
        assert first["status"] == "expired" and first["request_counts"]["completed"] == total // 2
        assert second["request_counts"]["total"] == total - total // 2
        assert result.results["error"].isna().all()
        # the resubmitted lines are the unanswered ones, byte for byte
        lines = server.input_lines()
        assert len(lines) == total + total - total // 2
        assert lines[total:] == lines[total // 2:total]


def test_a_second_expiry_is_recorded_as_failed(tmp_path: Path) -> None:
    with FakeBatchServer(expire=5, expire_keep=0.5) as server:
        result = _evaluate(server, tmp_path, "expired2", batch=FAST)
        assert server.creates == 2  # never a third time
        errors = result.results["error"].dropna()
        assert len(errors) > 0
        assert errors.str.startswith("batch expired twice").all()
        answered = result.results["error"].isna()
        assert result.results.loc[answered, "response"].str.startswith("echo: ").all()


def _variants(n: int) -> list[Variant]:
    return [Variant.clean(Item(id=f"q{i}", input=f"What is test city number {i}?",
                               target=f"city {i}")) for i in range(n)]


class _Stop(Exception):
    pass


def test_a_batch_created_but_not_saved_is_found_not_created_again(tmp_path: Path) -> None:
    with FakeBatchServer(hold=True) as server:
        backend = parse_model_spec(f"openai:fake@{server.base_url}")
        cache = ResponseCache(tmp_path / "c.sqlite")
        folder = tmp_path / "batches"

        def stop(_: float) -> None:
            raise _Stop

        with pytest.raises(_Stop):  # stopped at the first wait: every batch is pending
            run_batches(_variants(5), [backend], build_messages=build_messages, cache=cache,
                        folder=folder, options=BatchOptions(max_requests=2, **FAST), sleep=stop)
        assert server.creates == 3
        # as if killed between the create call and saving its id
        state = json.loads((folder / "state.json").read_text())
        for chunk in state["chunks"]:
            del chunk["batch_id"]
            chunk["creating"] = True
        (folder / "state.json").write_text(json.dumps(state))
        server.release()
        lines: list[str] = []
        outcome = run_batches(_variants(5), [backend], build_messages=build_messages,
                              cache=cache, folder=folder,
                              options=BatchOptions(max_requests=2, **FAST), report=lines.append)
        assert server.creates == 3 and server.uploads == 3 and server.lists == 3
        assert outcome.answers == 5 and outcome.requests == 0
        assert any(line.startswith("resuming 3 batch(es)") for line in lines)
        for variant in _variants(5):
            key = cache_key(backend.identity(), build_messages(variant.item))
            assert cache.get(key).text.startswith("echo: ")
        cache.close()


def test_unreadable_or_unasked_result_lines_never_enter_the_cache(tmp_path: Path) -> None:
    foreign = json.dumps({"custom_id": "0" * 64, "error": None, "response": {
        "status_code": 200, "body": {"choices": [{"message": {"content": "planted"}}]}}})
    with FakeBatchServer(junk=[b"{not json\n", foreign.encode() + b"\n"]) as server:
        backend = parse_model_spec(f"openai:fake@{server.base_url}")
        cache = ResponseCache(tmp_path / "c.sqlite")
        outcome = run_batches(_variants(4), [backend], build_messages=build_messages,
                              cache=cache, folder=tmp_path / "batches",
                              options=BatchOptions(**FAST))
        assert outcome.answers == 4 and len(cache) == 4
        assert "0" * 64 not in cache
        cache.close()


def test_files_api_failure_is_one_line_and_the_rerun_resumes(tmp_path: Path,
                                                             monkeypatch) -> None:
    from robustify.models.base import ModelCallError

    with FakeBatchServer(api_key="sk-right-0123456789abcdef") as server:
        monkeypatch.setenv("BATCH_TEST_KEY", "sk-wrong-0123456789abcdef")
        backend = parse_model_spec(f"openai:fake@{server.base_url}", api_key_env="BATCH_TEST_KEY")
        cache = ResponseCache(tmp_path / "c.sqlite")
        folder = tmp_path / "batches"
        options = BatchOptions(**FAST)
        with pytest.raises(ModelCallError) as info:
            run_batches(_variants(3), [backend], build_messages=build_messages, cache=cache,
                        folder=folder, options=options)
        message = str(info.value)
        assert "upload failed" in message and "run again to resume" in message
        assert "\n" not in message and "sk-wrong" not in message
        state = json.loads((folder / "state.json").read_text())
        assert [c["status"] for c in state["chunks"]] == ["written"]
        assert "input_file_id" not in state["chunks"][0]
        monkeypatch.setenv("BATCH_TEST_KEY", "sk-right-0123456789abcdef")
        outcome = run_batches(_variants(3), [backend], build_messages=build_messages,
                              cache=cache, folder=folder, options=options)
        assert (server.uploads, server.creates) == (1, 1)
        assert outcome.requests == 0 and outcome.answers == 3  # the written file, resumed
        cache.close()


def test_a_file_half_written_before_a_stop_is_never_submitted(tmp_path: Path) -> None:
    from robustify.runner.batch_state import BatchState

    folder = tmp_path / "batches"
    folder.mkdir()
    (folder / "chunk-0123456789abcdef.jsonl.part").write_bytes(b'{"custom_id": "x"')
    state = BatchState(folder)
    assert state.chunks == [] and not list(folder.iterdir())
    with FakeBatchServer() as server:
        backend = parse_model_spec(f"openai:fake@{server.base_url}")
        cache = ResponseCache(tmp_path / "c.sqlite")
        outcome = run_batches(_variants(2), [backend], build_messages=build_messages,
                              cache=cache, folder=folder, options=BatchOptions(**FAST))
        assert outcome.answers == 2 and len(server.input_lines()) == 2
        cache.close()


KEY = "sk-batchtest-0123456789abcdefSECRET"


def test_cli_killed_while_batches_pend_resumes_without_submitting_twice(tmp_path: Path) -> None:
    with FakeBatchServer(hold=True, api_key=KEY) as server:
        job = write_job(tmp_path / "job.yaml", {"batch": {"max_requests": 10, **FAST}})
        out, cache = tmp_path / "run", tmp_path / "cache.sqlite"
        args = ("run", "--config", str(job), "--data", "sample", "--limit", "6",
                "--transforms", "typos", "--model", f"openai:fake@{server.base_url}",
                "--api-key-env", "BATCH_TEST_KEY", "--out", str(out), "--cache", str(cache))
        env = {"BATCH_TEST_KEY": KEY}
        proc = popen_cli(*args, "--batch", env=env, log=tmp_path / "first.log")
        state_file = out / "batches" / "state.json"
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline:  # every batch created and polled at least once
                if state_file.is_file() and server.retrieves >= server.creates > 0:
                    chunks = json.loads(state_file.read_text())["chunks"]
                    if all(c.get("batch_id") for c in chunks):
                        break
                assert proc.poll() is None, (tmp_path / "first.log").read_text()
                time.sleep(0.05)
            else:
                pytest.fail("the batches were not submitted in time")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        created, uploaded = server.creates, server.uploads
        assert created == len(chunks) >= 2
        assert not (out / "results.jsonl").exists()
        log = (tmp_path / "first.log").read_text()
        assert "submitted" in log and "in_progress" in log  # progress lines
        server.release()
        done = run_cli(*args, "--batch", "--quiet", env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert (server.creates, server.uploads) == (created, uploaded)  # nothing twice
        assert server.chat_calls == 0 and server.unauthorized == 0
        assert set(server.headers_seen) == {f"Bearer {KEY}"}  # the key was used ...
        rows = read_results(out)
        assert rows and all(r["error"] is None and r["response"].startswith("echo: ")
                            for r in rows)
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["batch"]["answers"] == sum(c["requests"] for c in chunks)
        # ... and is in no stored file: run folder, batch state, input files, cache, logs
        stored = [p for p in (*out.rglob("*"), *tmp_path.glob("cache.sqlite*"),
                              tmp_path / "first.log") if p.is_file()]
        assert any(p.name == "state.json" for p in stored)
        for path in stored:
            assert KEY.encode() not in path.read_bytes(), path
        for record in server.files.values():
            assert KEY.encode() not in record["data"]
        # the same results as normal calls
        normal = run_cli("run", "--data", "sample", "--limit", "6", "--transforms", "typos",
                         "--model", f"openai:fake@{server.base_url}", "--api-key-env",
                         "BATCH_TEST_KEY", "--out", str(tmp_path / "normal"), "--cache",
                         str(tmp_path / "normal.sqlite"), "--quiet", env=env, timeout=300)
        assert normal.returncode == 0, normal.stderr[-3000:]
        assert read_results(tmp_path / "normal") == rows
        assert server.chat_calls == len(rows) - sum(1 for r in rows if not r["changed"]
                                                    and r["spec"] != "clean")


def test_bad_batch_settings_stop_before_any_call(tmp_path: Path) -> None:
    with FakeBatchServer() as server:
        model = f"openai:fake@{server.base_url}"
        job = write_job(tmp_path / "job.yaml", {"batch": {"max_request": 3}})
        proc = run_cli("run", "--config", str(job), "--model", model, "--limit", "2",
                       "--out", str(tmp_path / "a"), "--cache", str(tmp_path / "c.sqlite"))
        assert_one_line_error(proc, str(job), "batch.max_request")
        job = write_job(tmp_path / "job2.yaml", {"batch": {"max_requests": 0}})
        proc = run_cli("run", "--config", str(job), "--model", model, "--limit", "2",
                       "--out", str(tmp_path / "b"), "--cache", str(tmp_path / "c.sqlite"))
        assert_one_line_error(proc, str(job), "batch.max_requests", "positive")
        proc = run_cli("run", "--batch", "--model", ECHO_MODEL, "--limit", "2",
                       "--out", str(tmp_path / "c"), "--cache", str(tmp_path / "c.sqlite"))
        assert_one_line_error(proc, "--batch needs an openai: model")
        proc = run_cli("run", "--batch", "--model", model, "--limit", "2", "--cache", "off",
                       "--out", str(tmp_path / "d"))
        assert_one_line_error(proc, "--batch needs the response cache")
        proc = run_cli("run", "--batch", "--model", model, "--limit", "2", "--scoring-mode",
                       "loglik", "--out", str(tmp_path / "e"), "--cache",
                       str(tmp_path / "c.sqlite"))
        assert_one_line_error(proc, "--scoring-mode generate")
        assert server.uploads == server.creates == server.chat_calls == 0
        assert not any((tmp_path / name).exists() for name in "abcde")
