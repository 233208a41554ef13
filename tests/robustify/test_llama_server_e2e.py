"""End to end through a real OpenAI-compatible server: llama-cpp-python's server on loopback.

The job runs through the ``openai`` client against ``python -m llama_cpp.server`` serving the
embedded SmolLM2 GGUF, and at temperature 0 its answers must agree with the in-process local
backend on the same prompts.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(local_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python[server]")
    port = _free_port()
    # the server logs a lot; a pipe nobody reads would fill up and stall it
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "robustify.models.serve_local", "--model", str(local_model_path),
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "1",
         "--seed", "0"],
        stdout=log, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 180
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail("llama_cpp.server did not come up within 180 s")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.mark.slow
def test_job_through_llama_cpp_server_agrees_with_local_backend(
        llama_server: str, tmp_path: Path, local_model_path: Path) -> None:
    out = tmp_path / "served"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OPENAI_API_KEY", None)  # loopback servers need no key
    # llama.cpp's server applies repeat_penalty 1.1 unless told otherwise, the in-process
    # create_chat_completion 1.0: send the in-process value so both decode the same way
    proc = subprocess.run(
        [sys.executable, "-m", "robustify", "run", "--param", "repeat_penalty=1.0",
         "--model", f"openai:smollm2@{llama_server}",
         "--limit", "8", "--transforms", "typos,slang", "--severity", "high",
         "--out", str(out), "--cache", str(tmp_path / "served.sqlite"), "--quiet"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    served = pd.read_json(out / "results.jsonl", lines=True)
    assert len(served) == 8 * 3 and served["error"].isna().all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["models"][0]["kind"] == "openai"
    assert manifest["models"][0]["identity"]["base_url"].startswith("http://127.0.0.1:")
    html = (out / "report.html").read_text()
    assert f"openai:smollm2@{llama_server}" in html

    # the same prompts through the in-process backend, cache off
    from perturbations import Variant
    from robustify import build_messages, parse_model_spec, run_queries, score_answer

    variants = [Variant.from_dict(json.loads(line))
                for line in (out / "variants.jsonl").read_text().splitlines()]
    local = run_queries(variants, [parse_model_spec("local:smollm2", n_threads=1)],
                        build_messages=build_messages, score=score_answer, cache=None,
                        progress=False)
    merged = served.merge(local, on="variant_id", suffixes=("_served", "_local"))
    assert len(merged) == len(served)
    agree = (merged["response_served"].str.strip() == merged["response_local"].str.strip())
    assert agree.all(), merged.loc[~agree, ["variant_id", "response_served", "response_local"]]
    assert (merged["score_served"] == merged["score_local"]).all()
