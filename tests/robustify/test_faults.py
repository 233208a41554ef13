"""Faults survived: a run against a misbehaving server finishes, loses nothing and stops
hammering a server that refuses it for good.

* 1,000 items against a loopback server injecting 20% 429 (half with ``Retry-After``),
  10% 5xx, 5% hangs past the timeout, 2% garbage answers and dropped connections: every
  row is answered or carries its error, one row per model x variant, attempts bounded,
  and the manifest counts the failures. Waits run at ``time_scale`` 0.01 (the real
  schedule, 100x faster), so this runs in-process through :func:`robustify.pipeline.run.run_job`.
* A permanent 401/404 stops the CLI after about ``concurrency`` requests, with one
  line on stderr and exit code 2.
* ``--max-error-rate`` / ``gates.max_error_rate``: exit 1 with a clear message, after
  everything was saved.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from pathlib import Path

import pytest

from perturbations.records import Variant
from robustify.pipeline import prepare_job, run_job
from robustify.pipeline.jobfile import load_job
from robustify.models import RetryPolicy
from robustify.prompts import build_messages
from tests.robustify.fake_openai_server import FakeOpenAIServer, Fault
from tests.robustify.reliability_helpers import (FaultKind, FaultMix, assert_one_line_error,
                                                 read_results, run_cli, short_items, temp_files,
                                                 write_job, write_jsonl)

MAX_ATTEMPTS = 5
CONCURRENCY = 32

FAULT_MIX = (
    FaultKind("429 Retry-After", Fault.rate_limit(retry_after=0.2), 0.10),
    FaultKind("429", Fault.rate_limit(), 0.10),
    FaultKind("500", Fault.server_error(500), 0.034),
    FaultKind("502", Fault.server_error(502, "Bad gateway"), 0.033),
    FaultKind("503", Fault.server_error(503, "Service unavailable"), 0.033),
    FaultKind("hang", Fault.hang(3.0), 0.05),
    FaultKind("malformed JSON", Fault.malformed_json(), 0.007),
    FaultKind("empty choices", Fault.empty_choices(), 0.007),
    FaultKind("200 error body", Fault.error_body(), 0.006),
    FaultKind("dropped connection", Fault.drop(), 0.02),
)
"""Kinds and rates of the faults injected into every chat request (39% in all)."""


def _last_user(messages: list[dict[str, str]]) -> str:
    return next(m["content"] for m in reversed(messages) if m["role"] == "user")


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory: pytest.TempPathFactory):
    """One 1,000-item run under the full fault mix; yields what the checks need."""
    tmp = tmp_path_factory.mktemp("faults")
    data = write_jsonl(tmp / "items.jsonl", short_items(1000))
    with FakeOpenAIServer(record=False) as server:
        mix = FaultMix(FAULT_MIX, seed=7).install(server)
        job = load_job(write_job(tmp / "job.yaml", {
            "data": [{"path": str(data)}],
            # a short timeout makes a hang (3 s) cost 1.5 s instead of 60 s. It is a total
            # deadline per attempt: at 0.5 s, an attempt of this busy in-process run could
            # expire before its request reached the server, which the checks below forbid
            "models": [{"spec": f"openai:fake-model@{server.base_url}", "timeout": 1.5,
                        "concurrency": CONCURRENCY}],
            "transforms": ["typos@high"], "seed": 0, "cache": str(tmp / "cache.sqlite")}))
        job = job.override(out=str(tmp / "run"))
        prepared = prepare_job(job)
        policy = RetryPolicy(max_attempts=MAX_ATTEMPTS, time_scale=0.01, rng=random.Random(0))
        prepared.backends[0].retry = policy
        result = run_job(job, progress=False, prepared=prepared)
        stats = server.stats()
    yield {"tmp": tmp, "out": tmp / "run", "mix": mix, "result": result, "stats": stats,
           "policy": policy}


def _prompt_of_rows(out: Path) -> dict[str, str]:
    """variant_id -> the last user message the model was sent for it."""
    prompts = {}
    with (out / "variants.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            variant = Variant.from_dict(json.loads(line))
            prompts[variant.variant_id] = _last_user(build_messages(variant.item))
    return prompts


def test_every_fault_kind_was_injected(fault_run):
    injected = fault_run["mix"].injected
    assert set(injected) == {k.name for k in FAULT_MIX}, injected
    total = sum(fault_run["mix"].counts.values())
    assert total == fault_run["stats"]["completions"]
    # the realised rates are close to the requested ones
    for kind in FAULT_MIX:
        assert abs(injected[kind.name] / total - kind.weight) < 0.02 + kind.weight / 2, kind
    print("faults injected:", injected, "of", total, "requests")


def test_every_row_answered_or_failed_with_its_error(fault_run):
    out = fault_run["out"]
    rows = read_results(out)
    variants = (out / "variants.jsonl").read_text(encoding="utf-8").splitlines()
    # one row per model x variant: nothing lost, nothing scored twice
    keys = Counter((r["model"], r["variant_id"]) for r in rows)
    assert len(rows) == len(variants) == 2000
    assert max(keys.values()) == 1
    assert {v for _, v in keys} == {json.loads(line)["variant_id"] for line in variants}
    answered = failed = 0
    for row in rows:
        if row["error"] is None:
            answered += 1
            assert row["response"] is not None
            assert row["score"] is not None and not math.isnan(row["score"])
        else:
            failed += 1
            assert row["response"] is None and row["score"] is None
            assert "\n" not in row["error"] and row["error"].strip()
            assert row["error"].startswith(f"gave up after {MAX_ATTEMPTS} attempts: "), row["error"]
    assert answered + failed == len(rows)
    assert answered > 0.9 * len(rows)


def test_only_prompts_whose_attempts_ran_out_fail(fault_run):
    mix, out = fault_run["mix"], fault_run["out"]
    prompts = _prompt_of_rows(out)
    for row in read_results(out):
        history = mix.history[prompts[row["variant_id"]]]
        assert 1 <= len(history) <= MAX_ATTEMPTS
        if row["error"] is None:
            assert history[-1] == "ok", (row, history)
        else:
            # given up only once every allowed attempt was spent
            assert len(history) == MAX_ATTEMPTS, (row, history)
    never_answered = {p for p, h in mix.history.items() if "ok" not in h}
    failed_prompts = {prompts[r["variant_id"]] for r in read_results(out) if r["error"]}
    assert never_answered <= failed_prompts


def test_retries_are_bounded(fault_run):
    mix, stats = fault_run["mix"], fault_run["stats"]
    unique_prompts = len(mix.history)
    assert stats["completions"] <= unique_prompts * MAX_ATTEMPTS
    assert max(len(h) for h in mix.history.values()) <= MAX_ATTEMPTS
    # each failed attempt was retried at most once: requests <= prompts + retries. Not "==":
    # a retry can follow a request that never reached the server (a pooled keep-alive
    # connection the server had just closed after a hang), which the server cannot count.
    retries = fault_run["policy"].retries
    assert unique_prompts + 0.95 * retries <= stats["completions"] <= unique_prompts + retries


def test_manifest_counts_the_failures(fault_run):
    out = fault_run["out"]
    rows = read_results(out)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["rows"] == len(rows)
    assert manifest["counts"]["failed"] == sum(r["error"] is not None for r in rows)
    assert manifest["counts"]["failed"] == len(fault_run["result"].failures())
    print("rows:", manifest["counts"], "requests:", fault_run["stats"]["completions"],
          "retries:", fault_run["policy"].retries, "give-ups:", fault_run["policy"].give_ups)
    assert (out / "report.html").is_file() and not temp_files(out)


# ------------------------------------------------------------------- permanent failures

def _small_job(tmp: Path, server: FakeOpenAIServer, n: int = 60, **model: object) -> Path:
    data = write_jsonl(tmp / "items.jsonl", short_items(n))
    return write_job(tmp / "job.yaml", {
        "data": [{"path": str(data)}],
        "models": [{"spec": f"openai:fake-model@{server.base_url}", "concurrency": 4, **model}],
        "transforms": ["typos@high"]})


@pytest.mark.parametrize("status, needle", [
    (401, "check the API key variable"),
    (404, "check the model name and base URL"),
])
def test_permanent_error_stops_the_run_early(tmp_path, status, needle):
    with FakeOpenAIServer() as server:
        server.add_rule(Fault.http(status, "no such thing"), when=lambda messages: True)
        job = _small_job(tmp_path, server)
        proc = run_cli("run", "--config", str(job), "--out", str(tmp_path / "out"),
                       "--cache", str(tmp_path / "c.sqlite"), "--quiet")
        line = assert_one_line_error(proc, f"HTTP {status}", needle, "openai:fake-model")
        # about `concurrency` requests, never one per prompt (120 here), never retried
        assert server.completion_count <= 4, (server.completion_count, line)
    rows = read_results(tmp_path / "out")
    assert len(rows) == 120 and all(f"HTTP {status}" in r["error"] for r in rows)


def test_rejected_key_at_preflight_makes_no_completion_call(tmp_path):
    with FakeOpenAIServer(require_key="sk-the-right-key-0000") as server:
        job = _small_job(tmp_path, server)
        proc = run_cli("run", "--config", str(job), "--out", str(tmp_path / "out"),
                       "--cache", str(tmp_path / "c.sqlite"), "--quiet",
                       env={"OPENAI_API_KEY": "sk-a-wrong-key-123456"})
        assert_one_line_error(proc, "HTTP 401", "check the API key variable")
        assert server.completion_count == 0
    assert not (tmp_path / "out").exists()


def test_bad_request_fails_the_item_not_the_run(tmp_path):
    """A 400 fails its item only; a failure rate under --max-error-rate passes the gate."""
    with FakeOpenAIServer() as server:
        server.add_rule(Fault.http(400, "maximum context length exceeded"),
                        when="test city number 7?")
        job = _small_job(tmp_path, server, n=12)
        proc = run_cli("run", "--config", str(job), "--out", str(tmp_path / "out"),
                       "--cache", str(tmp_path / "c.sqlite"), "--quiet",
                       "--max-error-rate", "0.5")
        assert proc.returncode == 0, proc.stderr
        assert "gate failed" not in proc.stderr
        # a 400 is not retried
        asked = Counter(server.prompts)
        assert max(asked.values()) == 1
    rows = read_results(tmp_path / "out")
    bad = [r for r in rows if r["error"]]
    assert bad and all("HTTP 400: maximum context length exceeded" == r["error"] for r in bad)
    assert all(r["item_id"] == "q0007" for r in bad)
    assert f"{len(bad)} of {len(rows)} rows failed (their model call gave up)" in proc.stderr


# ----------------------------------------------------------------------- error-rate gate

@pytest.mark.parametrize("where", ["flag", "job"])
def test_max_error_rate_gate_fails_after_saving_everything(tmp_path, where):
    with FakeOpenAIServer() as server:
        # a third of the items are refused for good (400: not retried)
        for i in range(0, 30, 3):
            server.add_rule(Fault.http(400, "refused"), when=f"test city number {i}?")
        job = _small_job(tmp_path, server, n=30)
        args = ["run", "--config", str(job), "--out", str(tmp_path / "out"),
                "--cache", str(tmp_path / "c.sqlite"), "--quiet"]
        if where == "flag":
            args += ["--max-error-rate", "0.1"]
        else:
            raw = json.loads(job.read_text())
            raw["gates"] = {"max_error_rate": 0.1}
            job.write_text(json.dumps(raw))
        proc = run_cli(*args)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    gate = [line for line in proc.stderr.splitlines() if line.startswith("gate failed:")]
    assert len(gate) == 1 and "more than the allowed 10.0%" in gate[0], proc.stderr
    out = tmp_path / "out"
    for name in ("variants.jsonl", "results.jsonl", "results.csv", "summary.csv",
                 "report.html", "report.md", "manifest.json"):
        assert (out / name).is_file(), name
    rows = read_results(out)
    failed = sum(r["error"] is not None for r in rows)
    assert len(rows) == 60 and failed >= 10
    assert f"{failed / len(rows):.1%} of model calls failed" in gate[0]
    assert f"{failed} of {len(rows)} rows failed (their model call gave up)" in proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["failed"] == failed
