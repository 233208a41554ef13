"""The main job end to end through ``python -m robustify run`` as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, cwd: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "robustify", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_main_job_on_the_embedded_default(tmp_path: Path, local_model_path: Path) -> None:
    """The README's main job with a small --limit: real SmolLM2, every default transform."""
    out = tmp_path / "run"
    proc = _run("run", "--limit", "6", "--out", str(out), "--cache", str(tmp_path / "c.sqlite"),
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"report: {out / 'report.html'}" in proc.stdout
    assert "drop (95% CI), pp" in proc.stdout and "local:smollm2" in proc.stdout
    for name in ("manifest.json", "variants.jsonl", "results.jsonl", "results.csv", "summary.csv",
                 "report.html", "report.md", "charts/overestimation.png", "charts/heatmap.svg"):
        assert (out / name).is_file(), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["n_items"] == 6 and manifest["seed"] == 0
    # the realistic level first (noise fitted to real typed messages), then the stress levels
    assert manifest["transforms"] == ["profile", "typos", "slang", "truncation", "ambiguity"]
    assert manifest["specs"] == ["profile@fitted"] + [
        f"{t}@{s}" for t in ("typos", "slang", "truncation", "ambiguity")
        for s in ("0.2", "0.5", "0.8")]
    assert "realistic" in proc.stdout and "gold guard:" in proc.stdout
    assert manifest["models"][0]["label"] == "local:smollm2"
    results = pd.read_json(out / "results.jsonl", lines=True)
    assert len(results) == 6 * (1 + 13)
    assert results["error"].isna().all()
    assert set(results["spec"]) == {"clean", *manifest["specs"]}
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 13 and summary["n_items"].eq(6).all()
    html = (out / "report.html").read_text()
    assert "local:smollm2" in html and html.count("<img") >= 5

    # a second run answers everything from the cache and writes identical results
    again = _run("run", "--limit", "6", "--out", str(out), "--cache", str(tmp_path / "c.sqlite"),
                 "--quiet", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    rerun = pd.read_json(out / "results.jsonl", lines=True)
    assert rerun["cached"].all()
    cols = ["variant_id", "response", "score", "parsed"]
    pd.testing.assert_frame_equal(rerun[cols], results[cols])


def _gate_run(tmp_path: Path, model: str, *flags: str) -> subprocess.CompletedProcess:
    return _run("run", "--model", f"python:tests.robustify.e2e_models:{model}", "--limit", "20",
                "--transforms", "typos,slang", "--severity", "high", "--out", str(tmp_path / model),
                "--cache", "off", "--quiet", *flags, cwd=tmp_path)


def test_gate_passes_when_the_model_is_robust(tmp_path: Path) -> None:
    proc = _gate_run(tmp_path, "oracle", "--fail-on-drop", "5")
    assert proc.returncode == 0, proc.stderr
    assert "gate failed" not in proc.stderr
    summary = pd.read_csv(tmp_path / "oracle" / "summary.csv")
    # the oracle only knows verbatim questions: it is robust exactly where the text is unchanged
    assert (summary["clean_score"] == 1.0).all()


def test_gate_fails_with_exit_1_when_the_drop_interval_is_above_threshold(tmp_path: Path) -> None:
    proc = _gate_run(tmp_path, "brittle", "--fail-on-drop", "5")
    assert proc.returncode == 1, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("gate failed:")]
    assert len(lines) == 2, proc.stderr
    assert "on typos@0.8" in lines[0] and "lies above the 5 pp gate" in lines[0]
    # everything was saved before the gate verdict
    assert (tmp_path / "brittle" / "report.html").is_file()
    assert (tmp_path / "brittle" / "results.jsonl").is_file()


def test_gate_threshold_above_the_drop_passes(tmp_path: Path) -> None:
    proc = _gate_run(tmp_path, "brittle", "--fail-on-drop", "100")
    assert proc.returncode == 0, proc.stderr


def test_per_transform_gate_from_job_file(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("gates:\n  fail_on_drop: 100\n  per_transform: {slang: 5}\n")
    proc = _gate_run(tmp_path, "brittle", "--config", str(job))
    assert proc.returncode == 1
    failed = [ln for ln in proc.stderr.splitlines() if ln.startswith("gate failed:")]
    assert len(failed) == 1 and "slang@0.8" in failed[0]


def test_estimate_makes_no_call_and_counts_prompts(tmp_path: Path) -> None:
    proc = _run("run", "--model", "python:tests.robustify.e2e_models:brittle", "--limit", "10",
                "--transforms", "typos", "--severity", "high", "--estimate", "--cache", "off",
                "--out", str(tmp_path / "est"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "calls:" in proc.stdout and "rows: 20" in proc.stdout
    assert not (tmp_path / "est" / "results.jsonl").exists()


def test_param_flag_reaches_an_openai_compatible_server(tmp_path: Path, fake_server) -> None:
    """--param sends standard fields as such and backend-specific ones in the JSON body."""
    proc = _run("run", "--model", f"openai:fake@{fake_server.base_url}", "--limit", "2",
                "--transforms", "typos", "--severity", "high", "--param", "repeat_penalty=1.0",
                "--param", "top_p=0.5", "--out", str(tmp_path / "p"), "--cache", "off", "--quiet",
                cwd=tmp_path, env={"OPENAI_API_KEY": ""})
    assert proc.returncode == 0, proc.stderr
    bodies = [r.body for r in fake_server.completion_requests]
    assert bodies and all(b["repeat_penalty"] == 1.0 and b["top_p"] == 0.5 for b in bodies)
    assert all(b["temperature"] == 0 and b["seed"] == 0 and "extra_body" not in b for b in bodies)
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert manifest["models"][0]["identity"]["params"]["extra"] == {"repeat_penalty": 1.0}
