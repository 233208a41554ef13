"""Bad input is refused before any work: one line naming the file and the line or key,
exit code 2, no traceback, and nothing left behind.

A corpus of broken benchmark files, job files, flags and model specs, each run through
the real command line (``python -m robustify run`` and, where data is involved,
``perturb``) in a subprocess. Every case checks:

* exit code 2 and exactly one ``error: ...`` line on stderr, no traceback;
* the line contains the file (or flag/key) and what is wrong;
* the ``--out`` folder was not created (or is empty) and no cache file was made.

Most cases run as forked children of one warm interpreter, each executing
``robustify/__main__.py`` exactly as ``python -m robustify`` would (see
:mod:`tests.robustify.reliability_forkcli`), so the corpus costs seconds, not a minute of
imports; the permission cases run as real ``python -m robustify`` processes without
root's permission override.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.robustify.reliability_helpers import (ECHO_MODEL, assert_one_line_error, cli_cmd,
                                                 cli_env, write_jsonl)

GOOD = {"id": "a", "input": "What is the capital city of France?", "target": "Paris"}

_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _PR_CAPBSET_DROP = 1, 2, 24


def _drop_file_capabilities() -> None:
    """In the child: give up root's right to ignore file permissions (bounding set).

    After exec the process is still uid 0, but without CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH a ``chmod 000`` file really is unreadable and a ``chmod 555``
    folder really is read-only, as for any other user.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _can_enforce_permissions() -> bool:
    """True when a chmod 000 file is unreadable to a child (non-root, or caps droppable)."""
    probe = Path(os.environ.get("TMPDIR", "/tmp")) / f".robustify-perm-probe-{os.getpid()}"
    probe.write_text("x")
    probe.chmod(0)
    try:
        preexec = _drop_file_capabilities if os.geteuid() == 0 else None
        proc = subprocess.run(["cat", str(probe)], preexec_fn=preexec, capture_output=True)
        return proc.returncode != 0
    except OSError:
        return False
    finally:
        probe.chmod(0o600)
        probe.unlink()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Case:
    """One bad input: the CLI arguments and what the error line must mention.

    ``{d}`` in an argument is the folder of corpus files, ``{out}`` the case's output
    path and ``{cache}`` its cache file.
    """

    id: str
    args: tuple[str, ...]
    needles: tuple[str, ...]
    env: dict[str, str | None] = field(default_factory=dict)
    unprivileged: bool = False
    """Run without root's permission override (for permission cases)."""
    timeout: float = 60.0


def _run(*args: str) -> tuple[str, ...]:
    return ("run", *args, "--out", "{out}", "--cache", "{cache}", "--quiet")


def _data_run(name: str, *extra: str) -> tuple[str, ...]:
    return _run("--data", "{d}/" + name, "--model", ECHO_MODEL, "--transforms", "typos", *extra)


def _perturb(*args: str) -> tuple[str, ...]:
    return ("perturb", *args, "--out", "{out}/variants.jsonl")


def _job(name: str) -> tuple[str, ...]:
    return _run("--config", "{d}/" + name)


CASES: tuple[Case, ...] = (
    # ---- benchmark files: run and perturb
    Case("malformed-jsonl", _data_run("malformed.jsonl"),
         ("malformed.jsonl", "line 2", "malformed JSON")),
    Case("malformed-jsonl-perturb", _perturb("--data", "{d}/malformed.jsonl"),
         ("malformed.jsonl", "line 2", "malformed JSON")),
    Case("missing-target", _data_run("missing.jsonl"), ("missing.jsonl", "line 2", "'target'")),
    Case("duplicate-id", _data_run("dup.jsonl"),
         ("dup.jsonl", "line 3", "field 'id'", "duplicate id 'a'", "line 1")),
    Case("duplicate-id-perturb", _perturb("--data", "{d}/dup.jsonl"),
         ("dup.jsonl", "line 3", "duplicate id 'a'")),
    Case("empty-question", _data_run("emptyq.jsonl"),
         ("emptyq.jsonl", "line 2", "field 'input'", "empty")),
    Case("choices-not-a-list", _data_run("types.jsonl"),
         ("types.jsonl", "line 1", "field 'choices'", "must be a list")),
    Case("target-is-an-object", _data_run("types2.jsonl"),
         ("types2.jsonl", "line 1", "field 'target'", "got an object")),
    Case("input-is-a-list", _data_run("types3.jsonl"),
         ("types3.jsonl", "line 1", "field 'input'", "got a list")),
    Case("json-not-a-list", _data_run("obj.json"), ("obj.json", "line 1", "list of objects")),
    Case("non-utf8", _data_run("latin1.jsonl"),
         ("latin1.jsonl", "line 2", "not valid UTF-8", "0xe9")),
    Case("non-utf8-perturb", _perturb("--data", "{d}/latin1.jsonl"),
         ("latin1.jsonl", "line 2", "not valid UTF-8")),
    Case("non-utf8-csv", _data_run("latin1.csv"), ("latin1.csv", "line 3", "not valid UTF-8")),
    Case("utf16", _data_run("utf16.jsonl"), ("utf16.jsonl", "UTF-16", "UTF-8")),
    Case("10MB-line", _data_run("huge.jsonl"), ("huge.jsonl", "line 2", "1 MiB")),
    Case("empty-file", _data_run("empty.jsonl"), ("empty.jsonl", "empty")),
    Case("empty-file-perturb", _perturb("--data", "{d}/empty.jsonl"), ("empty.jsonl", "empty")),
    Case("csv-header-only", _data_run("header.csv"), ("header.csv", "no rows")),
    Case("ragged-csv", _data_run("ragged.csv"),
         ("ragged.csv", "line 3", "4 cells", "header has 3")),
    Case("ragged-csv-perturb", _perturb("--data", "{d}/ragged.csv"), ("ragged.csv", "line 3")),
    Case("mc-target-not-a-choice", _data_run("mc.jsonl"),
         ("mc.jsonl", "line 1", "field 'target'", "'F'", "not among the choices")),
    Case("mc-target-not-a-choice-perturb", _perturb("--data", "{d}/mc.jsonl"),
         ("mc.jsonl", "line 1", "'F'", "not among the choices")),
    Case("unmapped-column", _data_run("good.jsonl", "--map", "input=question_text"),
         ("good.jsonl", "field 'input'", "no column 'question_text'")),
    Case("data-not-found", _data_run("nope.jsonl"), ("nope.jsonl", "file not found")),
    Case("data-is-a-directory", _data_run("adir"), ("adir", "is a directory")),
    Case("data-is-a-directory-perturb", _perturb("--data", "{d}/adir"),
         ("adir", "is a directory")),
    Case("data-unreadable", _data_run("secret.jsonl"), ("secret.jsonl", "permission denied"),
         unprivileged=True),
    Case("data-unreadable-perturb", _perturb("--data", "{d}/secret.jsonl"),
         ("secret.jsonl", "permission denied"), unprivileged=True),
    Case("data-is-a-fifo", _data_run("fifo.jsonl"), ("fifo.jsonl", "not a regular file"),
         timeout=4),
    # ---- formats, transforms, severities
    Case("unknown-format", _run("--model", ECHO_MODEL, "--format", "mmlux"),
         ("unknown format 'mmlux'", "did you mean 'mmlu'")),
    Case("unknown-transform", _run("--model", ECHO_MODEL, "--transforms", "typos,slagn"),
         ("unknown transform 'slagn'", "did you mean 'slang'")),
    Case("unknown-transform-perturb", _perturb("--transforms", "typoz"),
         ("unknown transform 'typoz'", "did you mean 'typos'")),
    Case("unknown-transform-option", _run("--model", ECHO_MODEL, "--transforms",
                                          "typos:kindx=keyboard"),
         ("transform 'typos'", "no option 'kindx'", "kind")),
    Case("spec-severity-out-of-range", _run("--model", ECHO_MODEL, "--transforms", "typos@1.5"),
         ("typos@1.5", "out of range", "[0, 1]")),
    Case("severity-out-of-range", _run("--model", ECHO_MODEL, "--severity", "low,2"),
         ("severity", "'2'", "out of range")),
    Case("severity-negative-perturb", _perturb("--severity", "-0.1"),
         ("severity", "-0.1", "out of range")),
    Case("severity-unknown-name", _run("--model", ECHO_MODEL, "--severity", "extreme"),
         ("severity 'extreme'", "low, medium, high")),
    Case("malformed-transform-spec", _run("--model", ECHO_MODEL, "--transforms", "typos:kind=@@"),
         ("malformed transform spec", "typos:kind=@@")),
    # ---- models
    Case("malformed-model-spec", _run("--model", "openai"),
         ("invalid model spec 'openai'", "kind:", "accepted forms")),
    Case("unknown-model-kind", _run("--model", "hf:gpt2"),
         ("invalid model spec 'hf:gpt2'", "unknown kind 'hf'", "accepted forms")),
    Case("python-model-missing", _run("--model", "python:tests.robustify.reliability_models:nope"),
         ("reliability_models", "no attribute 'nope'")),
    Case("missing-api-key", _run("--model", "openai:gpt-4o-mini"),
         ("openai:gpt-4o-mini", "OPENAI_API_KEY", "not set"), env={"OPENAI_API_KEY": None}),
    Case("missing-api-key-custom-variable", _run("--model", "openai:gpt-4o-mini",
                                                 "--api-key-env", "TEAM_LLM_KEY"),
         ("TEAM_LLM_KEY", "not set"), env={"TEAM_LLM_KEY": None}),
    Case("unreachable-base-url", _run("--model", "openai:m@http://127.0.0.1:{port}/v1"),
         ("openai:m@http://127.0.0.1:{port}/v1", "cannot connect")),
    # ---- job files
    Case("invalid-yaml", _job("bad.yaml"), ("bad.yaml", "line 2", "invalid YAML")),
    Case("yaml-python-tag", _job("tag.yaml"), ("tag.yaml", "line 1", "invalid YAML",
                                               "python/object")),
    Case("unknown-job-key", _job("unknown.yaml"),
         ("unknown.yaml", "unknown key 'severites'", "did you mean 'severity'")),
    Case("unknown-model-key", _job("mkey.yaml"),
         ("mkey.yaml", "models[0]", "'temprature'", "did you mean 'temperature'")),
    Case("api-key-in-job", _job("key.yaml"), ("key.yaml", "models[0].api_key", "api_key_env")),
    Case("job-negative-replicates", _job("rep.yaml"), ("rep.yaml", "replicates", "-1")),
    Case("job-limit-zero", _job("lim.yaml"), ("lim.yaml", "limit", "0")),
    Case("job-seed-not-a-number", _job("seed.yaml"), ("seed.yaml", "'seed'", "number")),
    Case("job-empty", _job("emptyjob.yaml"), ("emptyjob.yaml", "empty")),
    Case("job-is-a-directory", _run("--config", "{d}/adir"), ("adir", "is a directory")),
    Case("job-not-found", _run("--config", "{d}/nojob.yaml"), ("nojob.yaml", "not found")),
    Case("job-out-escapes", _job("out1.yaml"), ("out1.yaml", "'out'", "../escape")),
    Case("job-unknown-transform", _job("tz.yaml"), ("tz.yaml", "unknown transform 'typoz'"),
         ),
    Case("job-unknown-model", _job("mb.yaml"), ("mb.yaml", "unknown kind 'foo'"),
         ),
    Case("job-is-a-fifo", _run("--config", "{d}/fifo.yaml"), ("fifo.yaml", "not a regular file"),
         timeout=4),
    Case("templates-unknown-key", _run("--model", ECHO_MODEL, "--templates", "{d}/tmpl.yaml"),
         ("tmpl.yaml", "multiple_choice.usr")),
    # ---- output paths and numbers
    Case("out-under-a-file", ("run", "--model", ECHO_MODEL, "--out", "{d}/afile/out",
                              "--cache", "{cache}"), ("afile", "is a file")),
    Case("out-under-a-file-perturb", ("perturb", "--out", "{d}/afile/v.jsonl"),
         ("afile", "is a file")),
    Case("out-is-a-directory-perturb", ("perturb", "--out", "{d}/adir"),
         ("adir", "is a directory")),
    Case("out-not-writable", ("run", "--model", ECHO_MODEL, "--out", "{d}/readonly/out",
                              "--cache", "{cache}"), ("readonly", "not writable"),
         unprivileged=True),
    Case("limit-zero", _run("--model", ECHO_MODEL, "--limit", "0"), ("--limit", "at least 1")),
    Case("limit-zero-perturb", _perturb("--limit", "0"), ("--limit", "at least 1")),
    Case("negative-replicates", _run("--model", ECHO_MODEL, "--replicates", "-1"),
         ("--replicates", "-1")),
    Case("negative-replicates-perturb", _perturb("--replicates", "-3"), ("--replicates", "-3")),
    Case("concurrency-zero", _run("--model", ECHO_MODEL, "--concurrency", "0"),
         ("--concurrency", "at least 1")),
    Case("error-rate-above-one", _run("--model", ECHO_MODEL, "--max-error-rate", "1.5"),
         ("max_error_rate", "1.5", "[0, 1]")),
    Case("unknown-task", _run("--model", ECHO_MODEL, "--task", "essay"),
         ("--task", "'essay'", "multiple_choice")),
)


def _make_corpus(d: Path) -> None:
    """Write every broken file the cases refer to."""
    def text(name: str, content: str) -> None:
        (d / name).write_text(content, encoding="utf-8")

    line = json.dumps(GOOD) + "\n"
    write_jsonl(d / "good.jsonl", [GOOD])
    text("malformed.jsonl", line + '{"id": "b", "input": \n')
    text("missing.jsonl", line + json.dumps({"id": "b", "input": "Where is it?"}) + "\n")
    text("dup.jsonl", line + json.dumps({**GOOD, "id": "b"}) + "\n" + line)
    text("emptyq.jsonl", line + json.dumps({"id": "b", "input": "   ", "target": "x"}) + "\n")
    text("types.jsonl", json.dumps({"id": "a", "input": "Pick one", "target": "A",
                                    "choices": "A or B"}) + "\n")
    text("types2.jsonl", json.dumps({"id": "a", "input": "Pick one", "target": {"x": 1}}) + "\n")
    text("types3.jsonl", json.dumps({"id": "a", "input": ["a"], "target": "x"}) + "\n")
    text("obj.json", '{"a": 1}')
    (d / "latin1.jsonl").write_bytes(line.encode() + b'{"id":"b","input":"caf\xe9?","target":"x"}\n')
    (d / "latin1.csv").write_bytes(b"id,question,answer\na,Where?,x\nb,Caf\xe9?,y\n")
    (d / "utf16.jsonl").write_bytes(line.encode("utf-16"))
    (d / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + line.encode()
                                  + json.dumps({**GOOD, "id": "b"}).encode() + b"\n")
    (d / "bom.csv").write_bytes(b"\xef\xbb\xbfid,question,answer\r\na,What is two plus two?,4\r\n")
    with (d / "huge.jsonl").open("wb") as fh:
        fh.write(line.encode())
        fh.write(b'{"id": "b", "input": "' + b"x" * (10 * 1024 * 1024) + b'", "target": "x"}\n')
    text("empty.jsonl", "")
    text("header.csv", "id,question,answer\n")
    text("ragged.csv", "id,question,answer\na,What?,x\nb,Why?,y,extra\n")
    text("mc.jsonl", json.dumps({"id": "a", "input": "Which colour?", "choices": ["red", "green"],
                                 "target": "F"}) + "\n")
    (d / "adir").mkdir()
    text("afile", "a regular file\n")
    os.mkfifo(d / "fifo.jsonl")
    os.mkfifo(d / "fifo.yaml")
    secret = d / "secret.jsonl"
    secret.write_text(line, encoding="utf-8")
    secret.chmod(0)
    (d / "readonly").mkdir()
    (d / "readonly").chmod(0o555)
    model = f"models: [{ECHO_MODEL}]\n"
    text("bad.yaml", "data: [sample\nmodels: x\n")
    text("tag.yaml", f'models: !!python/object/apply:os.system ["touch {d}/PWNED"]\n')
    text("unknown.yaml", model + "severites: [low]\n")
    text("mkey.yaml", f"models:\n  - spec: {ECHO_MODEL}\n    temprature: 0\n")
    text("key.yaml", "models:\n  - spec: openai:gpt-4o-mini\n    api_key: sk-abc123456789xyz\n")
    text("rep.yaml", model + "replicates: -1\n")
    text("lim.yaml", model + "limit: 0\n")
    text("seed.yaml", model + "seed: abc\n")
    text("emptyjob.yaml", "")
    text("out1.yaml", model + "out: ../escape\n")
    text("tz.yaml", model + "transforms: [typoz]\n")
    text("mb.yaml", "models: ['foo:bar']\n")
    text("tmpl.yaml", 'multiple_choice:\n  usr: "{input}"\n')


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Build the corpus, run every case (a few at a time) and keep the outcomes."""
    base = tmp_path_factory.mktemp("bad-inputs")
    d = base / "corpus"
    d.mkdir()
    _make_corpus(d)
    port = _closed_port()
    can_enforce = _can_enforce_permissions()

    def argv(case: Case) -> list[str]:
        out, cache = base / "out" / case.id, base / "cache" / f"{case.id}.sqlite"
        return [a.format(d=d, out=out, cache=cache, port=port) for a in case.args]

    def run_unprivileged(case: Case) -> Any:
        if not can_enforce:
            return None
        preexec = _drop_file_capabilities if os.geteuid() == 0 else None
        return subprocess.run(cli_cmd(*argv(case)), cwd=str(base), env=cli_env(case.env),
                              text=True, capture_output=True, timeout=case.timeout,
                              stdin=subprocess.DEVNULL, preexec_fn=preexec)

    # Most cases: forked children of one warm interpreter (see reliability_forkcli).
    forked = [c for c in CASES if not c.unprivileged]
    spec = [{"id": c.id, "argv": argv(c), "cwd": str(base), "env": c.env,
             "timeout": c.timeout} for c in forked]
    # control: a good invocation succeeds in the same harness
    spec.append({"id": "_control", "argv": ["transforms"], "cwd": str(base), "env": {},
                 "timeout": 60})
    (base / "cases.json").write_text(json.dumps(spec), encoding="utf-8")
    driver = subprocess.run(
        [sys.executable, "-m", "tests.robustify.reliability_forkcli",
         str(base / "cases.json"), str(base / "results.json")],
        cwd=str(base), env=cli_env(), capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL)
    assert driver.returncode == 0, driver.stderr
    raw = json.loads((base / "results.json").read_text(encoding="utf-8"))
    control = raw["_control"]
    assert control["returncode"] == 0 and "typos" in control["stdout"], control
    outcomes: dict[str, Any] = {}
    for case in forked:
        r = raw[case.id]
        outcomes[case.id] = (subprocess.TimeoutExpired(case.args, case.timeout)
                             if r["timed_out"] else
                             subprocess.CompletedProcess(argv(case), r["returncode"],
                                                         r["stdout"], r["stderr"]))
    # Permission cases: real `python -m robustify` processes without root's override.
    for case in CASES:
        if case.unprivileged:
            outcomes[case.id] = run_unprivileged(case)
    yield {"dir": d, "base": base, "port": port, "outcomes": outcomes}
    (d / "readonly").chmod(0o755)


def _params() -> list[Any]:
    return [pytest.param(case, id=case.id) for case in CASES]


def test_the_corpus_is_large_enough():
    assert len({c.id for c in CASES}) == len(CASES) >= 25


@pytest.mark.parametrize("case", _params())
def test_bad_input_is_refused_cleanly(corpus, case: Case):
    outcome = corpus["outcomes"][case.id]
    if outcome is None:
        pytest.skip("cannot make a file unreadable here (root without CAP_SETPCAP)")
    if isinstance(outcome, subprocess.TimeoutExpired):
        pytest.fail(f"the CLI hung for {case.timeout:g}s instead of refusing the input")
    needles = [n.format(port=corpus["port"]) for n in case.needles]
    assert_one_line_error(outcome, *needles)
    out = corpus["base"] / "out" / case.id
    assert not out.exists() or not any(out.iterdir()), sorted(out.rglob("*"))
    assert not (corpus["base"] / "cache" / f"{case.id}.sqlite").exists()


def test_nothing_escaped_the_corpus(corpus):
    """The YAML tag did not run; the job's '../escape' folder was never made."""
    assert not (corpus["dir"] / "PWNED").exists()
    assert not (corpus["base"] / ".." / "escape").exists()
    assert not (corpus["dir"] / "afile").is_dir()


# --------------------------------------------------------------------- accepted input

@pytest.mark.parametrize("name", ["bom.jsonl", "bom.csv"])
def test_a_byte_order_mark_is_accepted(corpus, tmp_path, name):
    """A UTF-8 BOM (Excel, Notepad) is not an error: both verbs read the file as if absent."""
    data = corpus["dir"] / name
    proc = subprocess.run(cli_cmd("perturb", "--data", str(data), "--transforms", "typos@high",
                                  "--out", str(tmp_path / "v.jsonl")),
                          env=cli_env(), text=True, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    variants = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    ids = {v["item"]["id"] if "item" in v else v["item_id"] for v in variants}
    assert ids == ({"a", "b"} if name.endswith("jsonl") else {"a"})
    questions = {v["item"]["input"] for v in variants if "item" in v}
    assert all("\ufeff" not in q for q in questions)
    if name.endswith("csv"):
        proc = subprocess.run(cli_cmd("run", "--data", str(data), "--model", ECHO_MODEL,
                                      "--transforms", "typos@high", "--out", str(tmp_path / "run"),
                                      "--cache", str(tmp_path / "c.sqlite"), "--quiet"),
                              env=cli_env(), text=True, capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        rows = [json.loads(x) for x in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
        assert {r["item_id"] for r in rows} == {"a"} and rows[0]["target"] == "4"
