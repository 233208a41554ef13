"""CLI polish through real subprocess runs: --estimate from measured latency, the large-run
warning, leakage progress and --estimate, report --out, timed progress lines, a stray --map
pair, and compare's settings diff."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ORACLE = "python:tests.robustify.e2e_models:oracle"


def cli(*args: str, cwd: Path, env: dict | None = None, timeout: int = 300
        ) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "robustify", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=timeout)


def test_estimate_times_real_calls_and_caches_them(tmp_path: Path, fake_server_factory) -> None:
    server = fake_server_factory(latency=0.3)
    args = ("run", "--model", f"openai:fake@{server.base_url}", "--limit", "6", "--transforms",
            "typos", "--severity", "high", "--concurrency", "2", "--cache", "c.sqlite",
            "--out", "est", "--estimate")
    proc = cli(*args, cwd=tmp_path, env={"OPENAI_API_KEY": ""})
    assert proc.returncode == 0, proc.stderr
    assert len(server.completion_requests) == 3  # SAMPLE_CALLS clean prompts, one at a time
    calls = int(re.search(r"^calls: (\d+)$", proc.stdout, re.M).group(1))
    match = re.search(r": (\d+) calls, 0 cache hits; ([\d.]+) s per call over 3 timed calls, "
                      r"2 at a time: about (\d+) s", proc.stdout)
    assert match, proc.stdout
    latency = float(match.group(2))
    assert 0.3 <= latency < 3.0  # the server waits 0.3 s; the machine is shared
    assert int(match.group(1)) == calls
    assert int(match.group(3)) == round(calls * latency / 2)
    assert not (tmp_path / "est" / "results.jsonl").exists()
    again = cli(*args, cwd=tmp_path, env={"OPENAI_API_KEY": ""})
    assert "cache_hits: 3" in again.stdout and f"calls: {calls - 3}" in again.stdout


def test_large_run_without_limit_is_warned_about(tmp_path: Path) -> None:
    base = ("run", "--model", ORACLE, "--transforms", "typos", "--severity", "high",
            "--max-calls", "0", "--cache", "off", "--quiet")
    proc = cli(*base, "--out", "a", cwd=tmp_path, env={"ROBUSTIFY_LARGE_RUN": "20"})
    assert proc.returncode == 0, proc.stderr
    warning = [l for l in proc.stderr.splitlines() if l.startswith("warning: up to")]
    assert warning and "no --limit" in warning[0] and "--estimate" in warning[0]
    proc = cli(*base, "--limit", "30", "--out", "b", cwd=tmp_path,
               env={"ROBUSTIFY_LARGE_RUN": "20"})
    assert proc.returncode == 0 and "warning: up to" not in proc.stderr


def test_leakage_estimate_and_progress_lines(tmp_path: Path) -> None:
    args = ("leakage", "--model", ORACLE, "--limit", "3", "--cache", "c.sqlite")
    proc = cli(*args, "--estimate", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    first = dict(re.findall(r"^(verbatim|completion) \S+: (\d+) calls", proc.stdout, re.M))
    assert set(first) == {"verbatim", "completion"} and "estimated time: about" in proc.stdout
    assert not (tmp_path / "reports").exists()
    again = cli(*args, "--estimate", cwd=tmp_path)
    assert re.search(rf"^verbatim \S+: {int(first['verbatim']) - 3} calls, 3 cache hits",
                     again.stdout, re.M), again.stdout
    run = cli(*args, "--out", "leak", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    lines = [l for l in run.stderr.splitlines() if l.startswith("leakage: ")]
    assert lines[0] == "leakage: 3 items, 1 model(s), probes verbatim, completion"
    assert lines[1].startswith(f"leakage: verbatim probe: {first['verbatim']} prompts")
    assert lines[2].startswith("leakage: completion probe: ")


def test_report_out_rebuilds_into_another_folder(tmp_path: Path) -> None:
    proc = cli("run", "--model", ORACLE, "--limit", "3", "--transforms", "typos",
               "--severity", "high", "--cache", "off", "--quiet", "--out", "run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    proc = cli("report", "run", "--out", "copy", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"report: {Path('copy') / 'report.html'}"
    assert (tmp_path / "copy" / "report.html").is_file()
    assert (tmp_path / "copy" / "report.md").read_text() == before["report.md"].decode()
    after = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    assert after == before
    (tmp_path / "afile").write_text("x")
    proc = cli("report", "run", "--out", "afile", cwd=tmp_path)
    assert proc.returncode == 2 and "afile: is a file" in proc.stderr


def test_log_progress_lines_come_on_a_timer_while_no_call_finishes(tmp_path: Path) -> None:
    proc = cli("run", "--model", "python:tests.robustify.cli_models:slow", "--limit", "1",
               "--transforms", "typos", "--severity", "high", "--concurrency", "1",
               "--cache", "off", "--out", "slow", cwd=tmp_path,
               env={"ROBUSTIFY_PROGRESS_EVERY": "0.5", "CLI_MODELS_SLEEP": "2.5"})
    assert proc.returncode == 0, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.startswith("calls: ")]
    # the first call takes 2.5 s: lines at 0.5 s, 1 s, ... although no call has finished
    assert sum(l.startswith("calls: 0/2 (0%)") for l in lines) >= 2, proc.stderr
    assert lines[-1].startswith("calls: 2/2 (100%)")


def test_a_stray_map_pair_is_named(tmp_path: Path) -> None:
    proc = cli("run", "--data", "x.csv", "--map", "input=question", "target=answer",
               "sk-live-abcdefghijklmnop", cwd=tmp_path)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "unrecognized arguments: target=answer (target=answer looks like a --map pair" in line
    assert "--map input=question,target=answer" in line and "sk-live" not in line


def test_compare_shows_the_settings_diff_first(tmp_path: Path) -> None:
    base = ("run", "--model", ORACLE, "--limit", "3", "--transforms", "typos", "--severity",
            "high", "--cache", "off", "--quiet")
    for out, extra in (("a", ()), ("b", ("--seed", "3", "--max-tokens", "20")), ("c", ())):
        proc = cli(*base, "--out", out, *extra, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    proc = cli("compare", "a", "b", "c", "--out", "cmp", "--n-boot", "100", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == "settings a → b that differ:"
    diff = {l.split()[0]: l.split(None, 1)[1] for l in out[1:] if l.startswith("  ")
            and "→" in l and "drop" not in l}
    assert diff["seed"] == "0 → 3" and diff["params.max_tokens"] == "48 → 20"
    assert "data_hash" in diff  # --limit with another seed samples other items
    assert "model" not in diff and "data" not in diff and "transforms" not in diff
    assert "settings a → c: the same (model, data, transforms, seed, params, scorer)" in out
    assert out.index("settings a → c: the same (model, data, transforms, seed, params, "
                     "scorer)") < next(i for i, l in enumerate(out) if "clean" in l)
