"""Several endpoints for one model, against a real loopback fleet (tests/robustify/fleet_server.py).

Balance by requests in flight, the per-endpoint bound, failover with no lost call (a
failing, a dying and a slow endpoint), probes that bring an endpoint back, the cache
identity (name + parameters, or the URLs with ``replica_identity``), the manifest's
calls per endpoint, and bad specs (one line, exit 2, before any call), from the Python
API and from the command line.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from perturbations.errors import ConfigError
from robustify.models import RetryPolicy, parse_model_spec, split_model_spec
from robustify.models.fleet import FleetBackend
from robustify.models.openai_compat import OpenAICompatBackend
from tests.robustify.fleet_server import FleetServer
from tests.robustify.reliability_helpers import assert_one_line_error, run_cli


def _fast(backend: Any) -> Any:
    backend.retry = RetryPolicy(time_scale=0.01, rng=__import__("random").Random(0))
    return backend


def _ask(backend: Any, n: int, tag: str = "q") -> list[Any]:
    async def go() -> list[Any]:
        return await asyncio.gather(
            *(backend.agenerate([{"role": "user", "content": f"{tag}{i}"}]) for i in range(n)),
            return_exceptions=True)
    return asyncio.run(go())


def _facts(backend: FleetBackend) -> list[dict[str, Any]]:
    return backend.endpoint_facts()


# ------------------------------------------------------------------ spec forms
def test_spec_with_several_urls_builds_a_fleet() -> None:
    urls = "http://127.0.0.1:8001/v1,http://127.0.0.1:8002/v1/"
    spec = split_model_spec(f"openai:org/model@{urls}")
    assert spec.model == "org/model"
    assert spec.base_urls == ("http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1")
    backend = parse_model_spec(f"openai:org/model@{urls}")
    assert isinstance(backend, FleetBackend)
    assert backend.label == f"openai:org/model@{urls}"
    assert (backend.endpoint_concurrency, backend.max_concurrency) == (16, 32)
    assert backend.identity() == {"kind": "openai", "model": "org/model",
                                  "params": backend.params.to_dict()}
    single = parse_model_spec("openai:m@http://127.0.0.1:8001/v1")
    assert isinstance(single, OpenAICompatBackend)
    assert single.identity()["base_url"] == "http://127.0.0.1:8001/v1"


@pytest.mark.parametrize("kwargs, per, total", [
    ({}, 16, 48),
    ({"endpoint_concurrency": 64}, 64, 192),
    ({"concurrency": 10}, 4, 10),
    ({"concurrency": 10, "endpoint_concurrency": 2}, 2, 10),
])
def test_total_concurrency_is_per_endpoint_bound_times_endpoints(kwargs: dict, per: int,
                                                                 total: int) -> None:
    urls = [f"http://127.0.0.1:{8000 + i}/v1" for i in range(3)]
    backend = parse_model_spec("openai:m", base_urls=urls, **kwargs)
    assert (backend.endpoint_concurrency, backend.max_concurrency) == (per, total)
    assert [ep.bound for ep in backend.pool.endpoints] == [per] * 3


@pytest.mark.parametrize("text, options, fragment", [
    ("openai:m@http://127.0.0.1:1/v1,", {}, "base URL 2 is empty"),
    ("openai:m@http://127.0.0.1:1/v1,127.0.0.1:2", {}, "base URL 2 must start with http"),
    ("openai:m@http://127.0.0.1:1/v1,http://127.0.0.1:1/v1", {}, "listed twice"),
    ("openai:m@http://127.0.0.1:1/v1,http://127.0.0.1:x/v1", {}, "invalid port"),
    ("openai:m@http://127.0.0.1:1/v1", {"base_urls": ["http://127.0.0.1:2/v1"]},
     "give the base URLs once"),
    ("openai:m", {"endpoint_concurrency": 4}, "only apply to several endpoints"),
    ("openai:m", {"base_urls": "http://127.0.0.1:1/v1"}, "must be a list"),
    ("openai:m", {"base_urls": ["http://127.0.0.1:1/v1"], "endpoint_concurrency": 0},
     "endpoint_concurrency must be a positive"),
    ("openai:m", {"base_urls": ["http://127.0.0.1:1/v1"], "replica_identity": "yes"},
     "replica_identity must be true or false"),
    ("openai:m", {"base_urls": ["http://127.0.0.1:1/v1"], "slow_factor": 1},
     "slow_factor must be a number above 1"),
])
def test_bad_fleet_specs(text: str, options: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_model_spec(text, **options)


def test_a_credential_in_any_url_is_refused_without_echoing_it() -> None:
    secret = "sk-proj-abcdefghijklmnopqrstuvwx"
    for text in (f"openai:m@http://127.0.0.1:1/v1,http://u:{secret}@127.0.0.1:2/v1,",
                 f"openai:m@http://127.0.0.1:1/v1,http://127.0.0.1:2/v1?api_key={secret}"):
        with pytest.raises(ConfigError) as err:
            parse_model_spec(text)
        assert "credential" in str(err.value) and secret not in str(err.value)
        assert "127.0.0.1:1" not in str(err.value)


# ------------------------------------------------------------- balance, bounds
def test_calls_are_balanced_and_bounded_per_endpoint() -> None:
    with FleetServer(3, latency=0.03) as fleet:
        backend = _fast(parse_model_spec(f"openai:fake@{fleet.spec_urls}",
                                         endpoint_concurrency=4))
        answers = _ask(backend, 120)
        assert not [a for a in answers if isinstance(a, BaseException)]
        assert sorted(a.text for a in answers) == sorted(f"echo: q{i}" for i in range(120))
        assert sum(fleet.answered) == 120
        assert [ep.max_in_flight for ep in fleet.endpoints] == [4, 4, 4]
        assert all(30 <= n <= 50 for n in fleet.answered), fleet.answered
        assert [f["calls"] for f in _facts(backend)] == fleet.answered
        assert all(f["failures"] == 0 and f["state"] == "up" for f in _facts(backend))


def test_balance_follows_requests_in_flight_not_turns() -> None:
    """A slower endpoint (not slow enough to drain) keeps its calls longer, so it gets fewer."""
    with FleetServer(2, latency=0.02) as fleet:
        fleet.slow(0, 0.5)
        backend = _fast(parse_model_spec("openai:fake", base_urls=fleet.urls,
                                         endpoint_concurrency=2, slow_factor=1000.0))
        answers = _ask(backend, 80)
        assert not [a for a in answers if isinstance(a, BaseException)]
        slow, fast = fleet.answered
        assert slow + fast == 80 and fast >= 3 * slow, fleet.answered


# ------------------------------------------------------------------- failover
def test_a_failing_endpoint_is_drained_and_no_call_is_lost() -> None:
    with FleetServer(3, latency=0.01) as fleet:
        fleet.fail(1)
        backend = _fast(parse_model_spec(f"openai:fake@{fleet.spec_urls}",
                                         endpoint_concurrency=4))
        answers = _ask(backend, 90)
        assert not [a for a in answers if isinstance(a, BaseException)]
        facts = _facts(backend)
        assert fleet.answered[1] == 0 and fleet.answered[0] + fleet.answered[2] == 90
        assert facts[1]["calls"] == 0 and facts[1]["failures"] >= 2
        assert facts[1]["state"] == "drained" and "HTTP 503" in facts[1]["last_drain"]
        assert backend.retry.give_ups == 0


def test_an_endpoint_dying_midway_loses_no_call() -> None:
    with FleetServer(3, latency=0.02) as fleet:
        fleet.die_after(0, 10)
        backend = _fast(parse_model_spec(f"openai:fake@{fleet.spec_urls}",
                                         endpoint_concurrency=4))
        answers = _ask(backend, 150)
        assert not [a for a in answers if isinstance(a, BaseException)]
        assert sorted(a.text for a in answers) == sorted(f"echo: q{i}" for i in range(150))
        assert fleet.endpoints[0].dead.is_set() and fleet.answered[0] == 10
        facts = _facts(backend)
        assert [f["calls"] for f in facts] == fleet.answered
        assert facts[0]["failures"] >= 1 and facts[0]["state"] == "drained"
        assert "connection error" in facts[0]["last_drain"]


def test_a_slow_endpoint_is_drained_then_probed_back() -> None:
    with FleetServer(3, latency=0.02) as fleet:
        fleet.slow(2, 1.5)
        backend = _fast(parse_model_spec(f"openai:fake@{fleet.spec_urls}",
                                         endpoint_concurrency=3))
        answers = _ask(backend, 400, "a")
        assert not [a for a in answers if isinstance(a, BaseException)]
        facts = _facts(backend)
        assert facts[2]["state"] == "drained" and facts[2]["last_drain"].startswith("slow:")
        served_while_slow = fleet.answered[2]
        assert served_while_slow <= 9, fleet.answered  # judged from its third answer
        fleet.heal(2)
        # its probe falls due mid-run (not in the first wave, when every call is slow)
        backend.pool.endpoints[2].retry_at = time.monotonic() + 0.3
        answers = _ask(backend, 400, "b")
        assert not [a for a in answers if isinstance(a, BaseException)]
        facts = _facts(backend)
        assert facts[2]["state"] == "up" and fleet.answered[2] > served_while_slow + 30
        assert backend.pool.endpoints[2].backoff == 1.0


def test_a_dead_endpoint_is_probed_with_backoff_and_comes_back() -> None:
    with FleetServer(2, latency=0.01) as fleet:
        fleet.kill(1)
        # speed is not judged here (a probe on a loaded machine may look slow)
        backend = _fast(parse_model_spec(f"openai:fake@{fleet.spec_urls}",
                                         endpoint_concurrency=2, slow_factor=1000.0))
        assert not [a for a in _ask(backend, 20, "a") if isinstance(a, BaseException)]
        ep = backend.pool.endpoints[1]
        assert ep.state == "drained" and ep.backoff == 1.0
        ep.retry_at = 0.0  # due now: the next call probes it, fails over, backs off more
        assert not [a for a in _ask(backend, 20, "b") if isinstance(a, BaseException)]
        assert ep.state == "drained" and ep.backoff == 2.0 and ep.drains == 2
        fleet.revive(1)
        ep.retry_at = time.monotonic() + 0.2  # due mid-run
        assert not [a for a in _ask(backend, 200, "c") if isinstance(a, BaseException)]
        assert ep.state == "up" and fleet.answered[1] >= 10
        assert ep.backoff == 1.0


def test_a_whole_fleet_down_fails_the_call_after_the_retry_budget() -> None:
    with FleetServer(2) as fleet:
        urls = fleet.urls
        fleet.stop()
    backend = parse_model_spec("openai:fake", base_urls=urls)
    backend.retry = RetryPolicy(max_attempts=3, time_scale=0.001)
    backend.pool.probe_base = 0.01
    for ep in backend.pool.endpoints:
        ep.backoff = 0.01
    [answer] = _ask(backend, 1)
    assert isinstance(answer, Exception) and "connection error" in str(answer)
    assert "gave up after 3 attempts" in str(answer)


def test_preflight_drains_an_endpoint_that_is_down_and_refuses_a_dead_fleet() -> None:
    with FleetServer(2) as fleet:
        fleet.kill(0)
        backend = parse_model_spec(f"openai:fake@{fleet.spec_urls}")
        backend.preflight()
        assert [ep.state for ep in backend.pool.endpoints] == ["drained", "up"]
        fleet.kill(1)
        from robustify.models import FatalModelError

        with pytest.raises(FatalModelError, match="cannot connect"):
            parse_model_spec(f"openai:fake@{fleet.spec_urls}").preflight()


# --------------------------------------------------------- API, cache, manifest
def test_evaluate_with_base_urls_shares_the_cache_across_fleets(tmp_path: Path) -> None:
    from robustify import evaluate

    cache = tmp_path / "cache.sqlite"
    common = dict(data="sample", transforms="typos@low", limit=6, cache=str(cache),
                  progress=False)
    with FleetServer(2, latency=0.005) as first:
        result = evaluate(models=[{"spec": "openai:fake", "base_urls": first.urls,
                                   "endpoint_concurrency": 3}], out=tmp_path / "a", **common)
        calls = sum(first.answered)
    assert calls > 0 and result.results["error"].isna().all()
    endpoints = result.manifest["models"][0]["endpoints"]
    assert [e["url"] for e in endpoints] == first.urls
    assert sum(e["calls"] for e in endpoints) == calls
    assert result.manifest["models"][0]["identity"]["model"] == "fake"
    assert "base_url" not in json.dumps(result.manifest["models"][0]["identity"])
    with FleetServer(3, latency=0.005) as second:  # other ports, same model: no new call
        again = evaluate(models=f"openai:fake@{second.spec_urls}", out=tmp_path / "b", **common)
        assert sum(second.answered) == 0
        assert again.results["cached"].all()
        third = evaluate(models=[{"spec": "openai:fake", "base_urls": second.urls,
                                  "replica_identity": True}], out=tmp_path / "c", **common)
        assert sum(second.answered) == calls  # the URL list keys the cache: asked again
    assert third.manifest["models"][0]["identity"]["base_urls"] == sorted(second.urls)
    assert (third.results["response"].tolist() == result.results["response"].tolist())


def _job(tmp_path: Path, models: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(f"data: [sample]\nlimit: 20\ntransforms: [typos@low, slang@low]\n"
                    f"models:\n{models}", encoding="utf-8")
    return path


def test_cli_job_file_base_urls_with_an_endpoint_dying_midway(tmp_path: Path) -> None:
    with FleetServer(3, latency=0.05) as fleet:
        fleet.die_after(1, 4)
        urls = "".join(f"      - {u}\n" for u in fleet.urls)
        job = _job(tmp_path, f"  - spec: openai:fake\n    endpoint_concurrency: 2\n"
                             f"    base_urls:\n{urls}")
        out = tmp_path / "run"
        proc = run_cli("run", "--config", str(job), "--out", str(out), "--cache",
                       str(tmp_path / "c.sqlite"), "--quiet")
        assert proc.returncode == 0, proc.stderr[-3000:]
        answered = fleet.answered
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["failed"] == 0
    model = manifest["models"][0]
    assert model["max_concurrency"] == 6
    endpoints = model["endpoints"]
    assert [e["url"] for e in endpoints] == fleet.urls
    assert [e["calls"] for e in endpoints] == answered and answered[1] == 4
    assert endpoints[1]["failures"] >= 1 and endpoints[1]["drains"] >= 1
    assert "@" not in json.dumps(endpoints)  # no user-info in any recorded URL


def test_cli_spec_with_a_failing_endpoint(tmp_path: Path) -> None:
    with FleetServer(2, latency=0.02) as fleet:
        fleet.fail(0, 502)
        out = tmp_path / "run"
        proc = run_cli("run", "--model", f"openai:fake@{fleet.spec_urls}", "--data", "sample",
                       "--limit", "5", "--transforms", "typos@low", "--out", str(out),
                       "--cache", "off", "--concurrency", "4", "--quiet")
        assert proc.returncode == 0, proc.stderr[-3000:]
        answered = fleet.answered
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["failed"] == 0
    model = manifest["models"][0]
    assert model["max_concurrency"] == 4
    assert [e["calls"] for e in model["endpoints"]] == answered == [0, answered[1]]
    assert model["endpoints"][0]["state"] == "drained"


@pytest.mark.parametrize("model, fragment", [
    ("openai:fake@http://127.0.0.1:9/v1,", "base URL 2 is empty"),
    ("openai:fake@http://127.0.0.1:9/v1,ftp://127.0.0.1:8/v1", "must start with http"),
])
def test_cli_bad_fleet_spec_is_one_line_exit_2(tmp_path: Path, model: str, fragment: str) -> None:
    proc = run_cli("run", "--model", model, "--data", "sample", "--limit", "2",
                   "--out", str(tmp_path / "run"), "--cache", "off")
    assert_one_line_error(proc, fragment)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("models, fragment", [
    ("  - spec: openai:fake\n    base_urls: 5\n", "models[0].base_urls must be a list"),
    ("  - spec: openai:fake\n    base_urls: [http://127.0.0.1:9/v1]\n"
     "    endpoint_concurrency: 0\n", "models[0].endpoint_concurrency must be at least 1"),
    ("  - spec: openai:fake\n    base_urls: [http://127.0.0.1:9/v1]\n"
     "    replica_identity: maybe\n", "models[0].replica_identity must be true or false"),
    ("  - spec: openai:fake\n    base_url: [http://127.0.0.1:9/v1]\n", "did you mean 'base_urls'"),
    ("  - spec: openai:fake\n    base_urls: [http://127.0.0.1:9/v1, 'http://u:sk-abcdefabcdef"
     "abcdefabcd@127.0.0.1:8/v1']\n", "carries a credential"),
])
def test_cli_bad_job_file_fleet_keys(tmp_path: Path, models: str, fragment: str) -> None:
    with FleetServer(1) as fleet:
        job = _job(tmp_path, models.replace("http://127.0.0.1:9/v1", fleet.urls[0]))
        proc = run_cli("run", "--config", str(job), "--out", str(tmp_path / "run"),
                       "--cache", "off")
        line = assert_one_line_error(proc, fragment)
        assert "job.yaml" in line and "sk-abcdef" not in line
        assert fleet.endpoints[0].completion_count == 0


def test_task_kind_parameters_reuse_the_same_endpoints_and_counts() -> None:
    """A task kind with its own parameters asks the same fleet: one pool, one set of counts."""
    from robustify.models.requests import RequestBackend, add_request
    from robustify.records import GenerationParams

    with FleetServer(2, latency=0.005) as fleet:
        inner = _fast(parse_model_spec(f"openai:fake@{fleet.spec_urls}"))
        wrapped = RequestBackend(inner, make=lambda params: pytest.fail("a second fleet"))
        messages = add_request([{"role": "user", "content": "2+2"}],
                               defaults={"max_tokens": 512})

        async def go() -> Any:
            return await asyncio.gather(*(wrapped.agenerate(messages) for _ in range(6)),
                                        wrapped.agenerate([{"role": "user", "content": "x"}]))
        asyncio.run(go())
        [variant] = wrapped._variants.values()
        assert isinstance(variant, FleetBackend) and variant.pool is inner.pool
        assert variant.params == GenerationParams(max_tokens=512)
        assert variant.identity() != inner.identity()
        bodies = [r.body for ep in fleet.endpoints for r in ep.completion_requests]
        assert sorted(b["max_tokens"] for b in bodies) == [48] + [512] * 6
        assert sum(f["calls"] for f in wrapped.endpoint_facts()) == 7 == sum(fleet.answered)
