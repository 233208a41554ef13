"""Security: no key leaks, hostile text stays inert in the report, job files are data.

* The API key comes from the environment only and is never written: not in the run
  folder, the cache (sqlite, -wal, -shm), the variants, the report, the manifest, the
  logs (``-v``) or error messages, even when the server quotes it back.
* Model output and benchmark text are escaped in report.html: opened in headless
  Chromium, a report full of ``<script>``, ``onerror`` and ``javascript:`` runs nothing.
* Job files are read with a safe loader, nothing is unpickled, and no path from a job
  file or a data set name can make the tool write outside the chosen output folder.
"""

from __future__ import annotations

import ast
import json
import shutil
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from perturbations.errors import ConfigError
from robustify.pipeline.jobfile import load_job
from tests.robustify.fake_openai_server import FakeOpenAIServer, Fault
from tests.robustify.reliability_helpers import (ECHO_MODEL, ROOT, assert_one_line_error,
                                                 read_results, run_cli, short_items, write_job,
                                                 write_jsonl)
from tests.robustify.reliability_models import HOSTILE_ANSWERS, HOSTILE_ITEMS

KEY_VAR = "ROBUSTIFY_RELIABILITY_TEST_KEY"


def _new_key() -> str:
    return f"sk-reliab-{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}"


def _leaks(key: str, texts: dict[str, bytes]) -> list[str]:
    """Names of the texts that contain the key or its random part."""
    secret = key.encode()
    core = key.removeprefix("sk-reliab-").encode()
    return [name for name, data in texts.items()
            if secret in data or core[:16] in data or core[-16:] in data]


def _everything_written(*folders: Path, extra: tuple[Path, ...] = ()) -> dict[str, bytes]:
    """Bytes of every file in the folders (cache -wal/-shm included) and the extras."""
    out: dict[str, bytes] = {}
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                out[str(path)] = path.read_bytes()
    for path in extra:
        if path.is_file():
            out[str(path)] = path.read_bytes()
    return out


def _job(tmp: Path, server: FakeOpenAIServer, n: int = 12) -> Path:
    data = write_jsonl(tmp / "items.jsonl", short_items(n))
    return write_job(tmp / "job.yaml", {
        "data": [{"path": str(data)}],
        "models": [{"spec": f"openai:fake-model@{server.base_url}", "api_key_env": KEY_VAR,
                    "concurrency": 4}],
        "transforms": ["typos@high"]})


def test_key_never_reaches_a_file_a_log_or_the_manifest(tmp_path):
    key = _new_key()
    with FakeOpenAIServer(require_key=key) as server:
        # the server quotes the key back in errors the run survives
        server.add_rule(Fault.http(400, f"bad request from key {key}"),
                        when="test city number 3?")
        server.add_rule(Fault.server_error(503, f"overloaded ({key})"),
                        when="test city number 5?", times=1)
        server.add_rule(Fault.error_body(f"temporarily broken for {key}"),
                        when="test city number 6?", times=1)
        job = _job(tmp_path, server)
        proc = run_cli("-v", "run", "--config", str(job), "--out", str(tmp_path / "out"),
                       "--cache", str(tmp_path / "cache" / "c.sqlite"),
                       env={KEY_VAR: key})
        assert proc.returncode == 0, proc.stderr
        # the key really was used: every request carried it
        assert server.completion_count > 0
        assert all(r.headers.get("authorization") == f"Bearer {key}" for r in server.requests)
    assert "INFO" in proc.stderr  # -v really logged
    rows = read_results(tmp_path / "out")
    errors = [r["error"] for r in rows if r["error"]]
    assert errors and all(e.startswith("HTTP 400: bad request from key ") and "***" in e
                          for e in errors), errors
    texts = _everything_written(tmp_path / "out", tmp_path / "cache")
    texts["stdout"], texts["stderr"] = proc.stdout.encode(), proc.stderr.encode()
    assert any(name.endswith("c.sqlite") for name in texts)
    assert _leaks(key, texts) == []
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["models"][0]["api_key_env"] == KEY_VAR  # the name is kept, not the value


@pytest.mark.parametrize("where", ["completion", "preflight"])
def test_a_401_quoting_the_key_does_not_leak_it(tmp_path, where):
    key = _new_key()
    if where == "preflight":
        # the server rejects the key at GET /models (and quotes part of it)
        server = FakeOpenAIServer(require_key="sk-the-right-one-0000")
    else:
        server = FakeOpenAIServer()
    with server:
        server.add_rule(Fault.http(401, f"Incorrect API key provided: {key}. Check it."),
                        when=lambda messages: True)
        job = _job(tmp_path, server)
        proc = run_cli("-v", "run", "--config", str(job), "--out", str(tmp_path / "out"),
                       "--cache", str(tmp_path / "c.sqlite"), env={KEY_VAR: key})
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "HTTP 401" in lines[0] and "check the API key variable" in lines[0]
    assert "Traceback" not in proc.stderr
    texts = _everything_written(tmp_path, extra=())
    texts["stdout"], texts["stderr"] = proc.stdout.encode(), proc.stderr.encode()
    texts.pop(str(tmp_path / "job.yaml"), None)
    assert _leaks(key, texts) == []


@pytest.mark.parametrize("flag", ["--api-key", "--apikey"])
def test_a_key_typed_on_the_command_line_is_not_echoed(tmp_path, flag):
    key = _new_key()
    proc = run_cli("run", flag, key, "--model", "openai:gpt-4o-mini",
                   "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "c.sqlite"))
    assert_one_line_error(proc)
    assert _leaks(key, {"stderr": proc.stderr.encode(), "stdout": proc.stdout.encode()}) == []


def test_a_key_passed_as_a_generation_parameter_is_refused(tmp_path):
    key = _new_key()
    proc = run_cli("run", "--param", f"api_key={key}", "--model", ECHO_MODEL, "--limit", "2",
                   "--transforms", "typos", "--out", str(tmp_path / "out"),
                   "--cache", str(tmp_path / "c.sqlite"), "--quiet")
    texts = _everything_written(tmp_path)
    texts["stdout"], texts["stderr"] = proc.stdout.encode(), proc.stderr.encode()
    assert _leaks(key, texts) == []
    assert_one_line_error(proc, "api_key", "environment variable")


def test_credentials_in_a_base_url_are_refused(tmp_path):
    key = _new_key()
    proc = run_cli("run", "--model", f"openai:m@http://user:{key}@127.0.0.1:9/v1",
                   "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "c.sqlite"))
    assert_one_line_error(proc, "environment variable")
    assert _leaks(key, {"stderr": proc.stderr.encode()}) == []


# ------------------------------------------------------------------ hostile report

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             shutil.which("google-chrome")) if p), None)

_STATE = """(() => ({
  title: document.title,
  pwned: document.body.getAttribute('data-pwned'),
  scripts: document.querySelectorAll('script').length,
  iframes: document.querySelectorAll('iframe, object, embed').length,
  svgs_with_handlers: document.querySelectorAll('svg[onload]').length,
  links: Array.from(document.querySelectorAll('a')).map(a => a.getAttribute('href')),
  handlers: Array.from(document.querySelectorAll('*')).filter(
      e => Array.from(e.attributes).some(a => a.name.startsWith('on'))).length,
  text: document.body.innerText,
  csp: (document.querySelector('meta[http-equiv="Content-Security-Policy"]') || {}).content,
}))()"""


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_hostile_model_output_and_benchmark_text_stay_inert(tmp_path):
    from tests.robustify.test_report_browser import Browser

    data = write_jsonl(tmp_path / "hostile.jsonl", HOSTILE_ITEMS)
    proc = run_cli("run", "--data", str(data), "--transforms", "typos@high,slang@high",
                   "--model", "python:tests.robustify.reliability_models:hostile_flip",
                   "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "c.sqlite"),
                   "--quiet")
    assert proc.returncode == 0, proc.stderr
    rows = read_results(tmp_path / "out")
    noisy = [r for r in rows if r["spec"] != "clean" and r["changed"]]
    assert noisy and all(r["response"] in HOSTILE_ANSWERS for r in noisy)
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "<script>" not in html.split("</head>", 1)[1]
    browser = Browser(tmp_path / "profile")
    try:
        browser.open((tmp_path / "out" / "report.html").as_uri())
        time.sleep(0.5)  # let anything that slipped through fire
        state = browser.js(_STATE)
        dialogs = [e for e in browser.events if e.get("method") == "Page.javascriptDialogOpening"]
    finally:
        browser.close()
    assert state["pwned"] is None, state["pwned"]
    assert state["scripts"] == 0 and state["iframes"] == 0 and state["handlers"] == 0
    assert not any(h and h.lower().startswith("javascript:") for h in state["links"])
    assert "script-src" not in (state["csp"] or "") and "default-src 'none'" in state["csp"]
    assert dialogs == []
    # shown as text, not dropped: the hostile answers and questions are readable
    shown = [a for a in HOSTILE_ANSWERS if a in state["text"]]
    assert len(shown) >= 3, shown
    assert "<script>document.body.setAttribute('data-pwned','question')</script>" in state["text"]


# ------------------------------------------------------------- job files and paths

def test_job_files_cannot_run_code(tmp_path):
    marker = tmp_path / "PWNED"
    payloads = [
        f'models: !!python/object/apply:os.system ["touch {marker}"]\n',
        f'seed: !!python/object/new:os.system ["touch {marker}"]\n',
        "transforms: !!python/name:os.system\n",
        f'data: [{{path: !!python/object/apply:subprocess.check_output [["touch", "{marker}"]]}}]\n',
    ]
    for i, text in enumerate(payloads):
        job = tmp_path / f"evil{i}.yaml"
        job.write_text(text)
        with pytest.raises(ConfigError, match="invalid YAML"):
            load_job(job)
    assert not marker.exists()


FORBIDDEN_CALLS = {("yaml", "load"), ("yaml", "unsafe_load"), ("yaml", "full_load"),
                   ("yaml", "load_all"), ("pickle", "load"), ("pickle", "loads"),
                   ("pd", "read_pickle"), ("pandas", "read_pickle"), ("marshal", "loads")}
FORBIDDEN_MODULES = {"pickle", "cPickle", "dill", "marshal", "shelve", "joblib", "cloudpickle"}


def test_nothing_is_unpickled_or_evaluated():
    """No module of the two packages deserialises code: no pickle, no unsafe YAML, no eval."""
    problems = []
    files = sorted((ROOT / "robustify").rglob("*.py")) + sorted((ROOT / "perturbations").rglob("*.py"))
    assert len(files) > 20
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [(node.module or "").split(".")[0]]
            else:
                names = []
            problems += [f"{path}:{node.lineno}: imports {n}" for n in names
                         if n in FORBIDDEN_MODULES]
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name) and func.id in ("eval", "exec"):
                    problems.append(f"{path}:{node.lineno}: calls {func.id}")
                if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                        and (func.value.id, func.attr) in FORBIDDEN_CALLS):
                    problems.append(f"{path}:{node.lineno}: calls {func.value.id}.{func.attr}")
                if isinstance(func, ast.Attribute) and func.attr == "load" and any(
                        k.arg == "allow_pickle" for k in node.keywords):
                    problems.append(f"{path}:{node.lineno}: loads with allow_pickle")
    assert problems == []


def test_the_cache_holds_text_only(tmp_path):
    """Cache rows are plain text columns; a stored answer that looks like a pickle is text."""
    from robustify.runner.cache import ResponseCache
    from robustify.records import Completion

    payload = "cos\nsystem\n(S'touch PWNED'\ntR."  # a protocol-0 pickle of os.system(...)
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        cache.put("k", Completion(text=payload))
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        assert cache.get("k").text == payload
    conn = sqlite3.connect(tmp_path / "c.sqlite")
    types = {row[0] for row in conn.execute("SELECT typeof(text) FROM responses")}
    conn.close()
    assert types == {"text"}
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("out", ["../x", "a/../../x", "/tmp/robustify-escape", "..", ""])
def test_a_job_file_cannot_choose_an_output_outside_the_folder(tmp_path, out):
    job = tmp_path / "job.yaml"
    job.write_text(json.dumps({"models": [ECHO_MODEL], "out": out}))
    with pytest.raises(ConfigError, match="'out'"):
        load_job(job)


def test_data_names_cannot_put_separators_in_output_paths(tmp_path):
    """Data set names and model labels only ever become one slugged folder name."""
    work = tmp_path / "work"
    work.mkdir()
    a = write_jsonl(work / "a.jsonl", short_items(3, "a"))
    b = write_jsonl(work / "b.jsonl", short_items(3, "b"))
    job = write_job(work / "job.yaml", {
        "data": [{"path": str(a), "name": "../../../evil"},
                 {"path": str(b), "name": "x/../../y\\z"}],
        "models": [ECHO_MODEL], "transforms": ["typos@high"]})
    before = {p for p in tmp_path.rglob("*")}
    proc = run_cli("run", "--config", str(job), "--cache", str(work / "c.sqlite"), "--quiet",
                   cwd=work)
    assert proc.returncode == 0, proc.stderr
    created = {p for p in tmp_path.rglob("*")} - before
    reports = work / "reports"
    runs = [p for p in reports.iterdir()] if reports.is_dir() else []
    assert len(runs) == 1, sorted(created)
    run_dir = runs[0]
    # one plain folder name (".." inside a name is harmless; the name itself is not "..")
    assert run_dir.resolve().parent == reports.resolve() and run_dir.name not in (".", "..")
    outside = [p for p in created if not (p == reports or reports in p.parents
                                          or p.name.startswith("c.sqlite"))]
    assert outside == []
    assert (run_dir / "report.html").is_file()
    rows = read_results(run_dir)
    assert {r["item_id"].rsplit("/", 1)[0] for r in rows} == {"../../../evil", "x/../../y\\z"}
