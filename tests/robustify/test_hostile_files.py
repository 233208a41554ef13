"""Hostile files and folders: input that would pass validation and crash after the model
calls, a YAML alias bomb, accepted nonsense, output folders that are not ours.

Every case runs the real command line (forked from one warm interpreter, see
:mod:`tests.robustify.reliability_forkcli`) with a python model that counts its calls,
and checks: exit code 2, exactly one ``error:`` line naming the file, line and field (or
the flag or key), no model call, no ``--out`` folder and no cache file created.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.robustify.hostile_files_models import COUNTED_MODEL
from tests.robustify.reliability_helpers import assert_one_line_error, cli_env, write_jsonl

GOOD = {"id": "a", "input": "What is the capital city of France?", "target": "Paris"}

ALIAS_BOMB = """\
transforms:
  - &a [typos, typos, typos, typos, typos, typos, typos, typos, typos]
  - &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
  - &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
  - &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
  - &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
  - &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
  - &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
  - &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
"""
"""Nine lines that expand to 9**8 (43 million) transform specs."""


@dataclass(frozen=True)
class Case:
    """CLI arguments (``{d}`` corpus folder, ``{out}``, ``{cache}``) and the error's words."""

    id: str
    args: tuple[str, ...]
    needles: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    out_is_ours: bool = True
    """False when ``--out`` names a folder the case did not make (``/``, a system path)."""


def _run(*args: str, out: str = "{out}", cache: str = "{cache}") -> tuple[str, ...]:
    return ("run", *args, "--out", out, "--cache", cache, "--quiet")


def _data(name: str, *extra: str, **where: str) -> tuple[str, ...]:
    return _run("--data", "{d}/" + name, "--model", COUNTED_MODEL, "--transforms", "typos",
                *extra, **where)


def _flags(*extra: str, **where: str) -> tuple[str, ...]:
    return _data("good.jsonl", *extra, **where)


def _job(name: str, *extra: str) -> tuple[str, ...]:
    return _run("--config", "{d}/" + name, *extra)


CASES: tuple[Case, ...] = (
    # ---- input that used to pass validation, spend every call, then crash
    Case("seed-negative", _flags("--seed=-1"), ("--seed", "at least 0", "-1")),
    Case("job-seed-nan", _job("seednan.yaml"), ("seednan.yaml", "'seed'", "finite", "nan")),
    Case("job-seed-huge", _job("seedhuge.yaml"), ("seedhuge.yaml", "seed", "2**63")),
    Case("metadata-nan", _data("nan.jsonl"),
         ("nan.jsonl", "line 2", "field 'metadata.score'", "nan")),
    Case("metadata-minus-infinity", _data("inf.jsonl"),
         ("inf.jsonl", "line 1", "field 'metadata.weights[1]'", "-inf")),
    Case("target-nan", _data("tnan.jsonl"), ("tnan.jsonl", "line 1", "field 'target'", "nan")),
    Case("metadata-500-deep", _data("deep.jsonl"),
         ("deep.jsonl", "line 2", "field 'metadata'", "nested more than 32 levels")),
    Case("jsonl-5000-deep", _data("deeper.jsonl"),
         ("deeper.jsonl", "line 2", "nested more than 32 levels")),
    Case("json-5000-deep", _data("deeper.json"), ("deeper.json", "line 3", "nested")),
    Case("json-metadata-nan", _data("nan.json"),
         ("nan.json", "line 3", "field 'metadata.score'", "nan")),
    Case("lone-surrogate", _data("surrogate.jsonl"),
         ("surrogate.jsonl", "line 2", "field 'input'", "lone surrogate", "\\ud800")),
    Case("lone-surrogate-json", _data("surrogate.json"),
         ("surrogate.json", "line 1", "field 'metadata.note'", "lone surrogate")),
    Case("json-item-3MB", _data("big.json"),
         ("big.json", "line 3", "field 'input'", "1 MiB", "per item")),
    Case("template-index-out-of-range", _data("two.jsonl", "--templates", "{d}/t99999.yaml"),
         ("t99999.yaml", "item 'a'", "two.jsonl line 1", "IndexError")),
    Case("template-index-fails-on-second-item", _data("two.jsonl", "--templates",
                                                      "{d}/t30.yaml"),
         ("t30.yaml", "item 'b'", "two.jsonl line 2", "IndexError")),
    Case("template-index-on-variants", _data("two.jsonl", "--templates", "{d}/t3.yaml"),
         ("t3.yaml", "short_answer.user", "{input[3]}", "plain names")),
    # ---- YAML
    Case("templates-alias-bomb", _data("two.jsonl", "--templates", "{d}/tbomb.yaml"),
         ("tbomb.yaml", "line 3", "aliases")),
    Case("templates-json-5000-deep", _data("two.jsonl", "--templates", "{d}/tdeep.json"),
         ("tdeep.json", "line 2", "nested more than 50")),
    Case("yaml-alias-bomb", _job("bomb.yaml"), ("bomb.yaml", "line 3", "aliases")),
    Case("yaml-one-alias", _job("alias.yaml"), ("alias.yaml", "line 2", "anchors")),
    Case("yaml-5000-deep", _job("deep.yaml"), ("deep.yaml", "line 2", "nested more than 50")),
    # ---- accepted nonsense
    Case("temperature-nan", _flags("--temperature", "nan"), ("--temperature", "finite", "nan")),
    Case("temperature-inf-in-job", _job("tinf.yaml"),
         ("tinf.yaml", "models[0].temperature", "finite")),
    Case("fail-on-drop-nan", _flags("--fail-on-drop", "nan"), ("--fail-on-drop", "finite")),
    Case("max-error-rate-nan", _flags("--max-error-rate", "nan"), ("--max-error-rate",
                                                                    "finite")),
    Case("gate-for-unknown-transform", _job("gate.yaml"),
         ("gate.yaml", "gates.per_transform", "'slang'", "does not run", "typos")),
    Case("transforms-only-commas", _flags("--transforms", ",,"), ("--transforms", "',,'")),
    Case("severity-only-commas", _flags("--severity", ","), ("--severity", "','")),
    Case("job-concurrency-zero", _job("conc.yaml"), ("conc.yaml", "concurrency", "0")),
    Case("job-model-concurrency-zero", _job("mconc.yaml"),
         ("mconc.yaml", "models[0].concurrency", "0")),
    Case("replicates-a-billion", _flags("--replicates", "1000000000"),
         ("3,000,000,001 model calls", "1000000000 replicates", "limit is 10,000,000")),
    Case("replicates-need-confirmation", _flags("--replicates", "40000"),
         ("120,001 model calls", "more than 100,000", "--max-calls")),
    # ---- output folders
    Case("out-root", _flags(out="/"), ("--out /", "refusing"), out_is_ours=False),
    Case("out-home", _flags(out="{d}/home"), ("home", "refusing"), env={"HOME": "{d}/home"},
         out_is_ours=False),
    Case("out-usr", _flags(out="/usr/share/robustify-run"), ("/usr", "system folder"),
         out_is_ours=False),
    Case("out-etc", _flags(out="/etc"), ("/etc", "system folder"), out_is_ours=False),
    Case("out-not-a-run", _flags(out="{d}/public"),
         ("public", "not a robustify run", "--force"), out_is_ours=False),
    Case("job-out-not-a-run", ("run", "--config", "{d}/public.yaml", "--cache", "{cache}",
                               "--quiet"),
         ("public.yaml", "key 'out'", "not a robustify run", "--force"), out_is_ours=False),
    Case("cache-under-a-file", _flags(cache="{d}/afile/c.sqlite"),
         ("--cache", "afile", "is a file")),
    Case("cache-is-a-folder", _flags(cache="{d}/adir"), ("--cache", "adir", "is a folder")),
    Case("cache-not-a-database", _flags(cache="{d}/garbage.sqlite"),
         ("garbage.sqlite", "not a usable response cache")),
    Case("report-of-an-incomplete-run", ("report", "{d}/incomplete"),
         ("incomplete", "no manifest.json", "did not finish"), out_is_ours=False),
)


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def _make_corpus(d: Path) -> None:
    def text(name: str, content: str) -> None:
        (d / name).write_text(content, encoding="utf-8")

    good = json.dumps(GOOD) + "\n"
    write_jsonl(d / "good.jsonl", [GOOD])
    model = f"models: [{COUNTED_MODEL}]\n"
    text("seednan.yaml", model + "seed: .nan\n")
    text("seedhuge.yaml", model + f"seed: {2 ** 64}\n")
    text("nan.jsonl", good + '{"id": "b", "input": "Why?", "target": "x", '
                             '"metadata": {"score": NaN}}\n')
    text("inf.jsonl", '{"id": "a", "input": "Why?", "target": "x", '
                      '"metadata": {"weights": [1, -Infinity]}}\n')
    text("tnan.jsonl", '{"id": "a", "input": "Why?", "target": NaN}\n')
    write_jsonl(d / "deep.jsonl", [GOOD, {**GOOD, "id": "b", "metadata": _nested(500)}])
    text("deeper.jsonl", good + '{"id": "b", "input": "Why?", "target": "x", "metadata": '
                                + "[" * 5000 + "]" * 5000 + "}\n")
    text("deeper.json", "[\n" + json.dumps(GOOD) + ",\n" + "[" * 5000 + "]" * 5000 + "\n]\n")
    text("nan.json", "[\n" + json.dumps(GOOD) + ",\n"
         + '{"id": "b", "input": "Why?", "target": "x", "metadata": {"score": NaN}}\n]\n')
    text("surrogate.jsonl", good + '{"id": "b", "input": "Why \\ud800 not?", "target": "x"}\n')
    text("surrogate.json", '[{"id": "a", "input": "Why?", "target": "x",\n'
                           '  "metadata": {"note": "bad \\udfff"}}]\n')
    with (d / "big.json").open("w", encoding="utf-8") as fh:
        fh.write("[\n" + json.dumps(GOOD) + ",\n")
        fh.write(json.dumps({"id": "b", "input": "x" * (3 << 20), "target": "x"}) + "\n]\n")
    write_jsonl(d / "two.jsonl", [GOOD, {"id": "b", "input": "Why not?", "target": "x"}])
    text("t99999.yaml", 'short_answer:\n  user: "Q: {input[99999]}"\n')
    text("t30.yaml", 'short_answer:\n  user: "Q: {input[30]}"\n')
    text("t3.yaml", 'short_answer:\n  user: "Q: {input[3]}"\n')
    text("bomb.yaml", model + ALIAS_BOMB)
    text("tbomb.yaml", "short_answer:\n  few_shot:" + ALIAS_BOMB.split("transforms:", 1)[1])
    text("tdeep.json", '{"short_answer":\n {"few_shot": ' + "[" * 5000 + "]" * 5000 + "}}\n")
    text("alias.yaml", model + "transforms: &t [typos]\nseverity: *t\n")
    text("deep.yaml", model.rstrip("\n") + "\nseverity: " + "[" * 5000 + "]" * 5000 + "\n")
    text("tinf.yaml", f"models:\n  - spec: {COUNTED_MODEL}\n    temperature: .inf\n")
    text("gate.yaml", model + "transforms: [typos]\ngates:\n  per_transform: {slang: 5}\n")
    text("conc.yaml", model + "concurrency: 0\n")
    text("mconc.yaml", f"models:\n  - spec: {COUNTED_MODEL}\n    concurrency: 0\n")
    (d / "home").mkdir()
    (d / "public").mkdir()
    text("public/manifest.json", '{"name": "my web app", "start_url": "/"}\n')
    text("public.yaml", model + "out: public\n")
    (d / "adir").mkdir()
    text("afile", "a regular file\n")
    text("garbage.sqlite", "not a database\n")
    (d / "incomplete").mkdir()
    write_jsonl(d / "incomplete" / "results.jsonl", [{"item_id": "a"}])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("hostile-files")
    d = base / "corpus"
    d.mkdir()
    _make_corpus(d)
    before = _snapshot(d)

    def fill(text: str, case: Case) -> str:
        return text.format(d=d, out=base / "out" / case.id,
                           cache=base / "cache" / f"{case.id}.sqlite")

    spec = []
    for case in CASES:
        env = {k: fill(v, case) for k, v in case.env.items()}
        env["ROBUSTIFY_TEST_CALLS"] = str(base / "calls" / case.id)
        spec.append({"id": case.id, "argv": [fill(a, case) for a in case.args],
                     "cwd": str(d), "env": env, "timeout": 60})
    (base / "calls").mkdir()
    (base / "cases.json").write_text(json.dumps(spec), encoding="utf-8")
    driver = subprocess.run(
        [sys.executable, "-m", "tests.robustify.reliability_forkcli",
         str(base / "cases.json"), str(base / "results.json")],
        cwd=str(base), env=cli_env(), capture_output=True, text=True, timeout=600,
        stdin=subprocess.DEVNULL)
    assert driver.returncode == 0, driver.stderr
    raw = json.loads((base / "results.json").read_text(encoding="utf-8"))
    return {"base": base, "dir": d, "raw": raw, "before": before}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
            if p.is_file()}


def test_the_counting_model_counts(tmp_path):
    """Control: a good run through the same model makes its calls and they are counted."""
    calls = tmp_path / "calls"
    write_jsonl(tmp_path / "good.jsonl", [GOOD])
    proc = subprocess.run(
        [sys.executable, "-m", "robustify", *_run(
            "--data", str(tmp_path / "good.jsonl"), "--model", COUNTED_MODEL, "--transforms",
            "typos@high", out=str(tmp_path / "out"), cache="off")],
        env=cli_env({"ROBUSTIFY_TEST_CALLS": str(calls)}), capture_output=True, text=True,
        timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert calls.read_text().count("call\n") == 2  # the clean item and its one variant
    assert (tmp_path / "out" / "manifest.json").is_file()


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_hostile_input_is_refused_before_any_call(corpus, case: Case):
    r = corpus["raw"][case.id]
    assert not r["timed_out"], f"{case.id} hung"
    proc = subprocess.CompletedProcess(case.args, r["returncode"], r["stdout"], r["stderr"])
    assert_one_line_error(proc, *case.needles)
    base = corpus["base"]
    assert not (base / "calls" / case.id).exists(), "a model was called"
    if case.out_is_ours:
        assert not (base / "out" / case.id).exists()
    assert not (base / "cache" / f"{case.id}.sqlite").exists()


def test_no_file_of_the_corpus_was_changed(corpus):
    """The refused runs wrote nothing anywhere: not into public/, not into the home folder."""
    assert _snapshot(corpus["dir"]) == corpus["before"]
    assert not list((corpus["dir"] / "home").iterdir())


def test_an_alias_bomb_is_refused_quickly(tmp_path):
    """The bomb is refused from the parser's events, before any node is built."""
    import time

    from perturbations.errors import ConfigError
    from robustify.pipeline.jobfile import load_job

    job = tmp_path / "bomb.yaml"
    job.write_text(f"models: [{COUNTED_MODEL}]\n" + ALIAS_BOMB, encoding="utf-8")
    started = time.process_time()
    with pytest.raises(ConfigError, match="line 3: YAML anchors and aliases"):
        load_job(job)
    assert time.process_time() - started < 1.0
