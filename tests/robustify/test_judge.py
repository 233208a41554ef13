"""The judge scorer (``--scorer judge:MODEL_SPEC``): rubric, verdicts, cache, manifest.

Against a loopback OpenAI-compatible judge that answers by rule (so every verdict is
known in advance) and against the real local SmolLM2 model, end to end on the sample.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from perturbations.errors import ConfigError

from robustify.cli import main
from robustify.pipeline.run import evaluate
from robustify.scoring.judge import (RUBRICS, is_judge, parse_judge_scorer, parse_verdict,
                                     rubric_for)
from tests.robustify.fake_openai_server import Fault, FakeOpenAIServer

ORACLE = "python:tests.robustify.e2e_models:oracle"
BRITTLE = "python:tests.robustify.e2e_models:brittle"
GOLD, SAME = RUBRICS["gold"], RUBRICS["clean_answer"]


# ---------------------------------------------------------------- verdict parsing
@pytest.mark.parametrize("reply, verdict", [
    ("CORRECT", "CORRECT"), ("correct", "CORRECT"), (" **Correct.**\n", "CORRECT"),
    ("Verdict: INCORRECT", "INCORRECT"), ("Incorrect - the year is wrong.", "INCORRECT"),
    ("not correct", "INCORRECT"), ("The answer is NOT incorrect", "CORRECT"),
    ("CORRECT or INCORRECT", None), ("yes", None), ("", None), (None, None),
    ("correctly", None), ("SAME", None),
])
def test_parse_verdict_gold_rubric(reply, verdict):
    assert parse_verdict(reply, GOLD) == verdict


@pytest.mark.parametrize("reply, verdict", [
    ("SAME", "SAME"), ("different.", "DIFFERENT"), ("not the same", "DIFFERENT"),
    ("Not same", "DIFFERENT"), ("They are the SAME, not DIFFERENT", "SAME"), ("SAME or DIFFERENT", None), ("CORRECT", None),
])
def test_parse_verdict_consistency_rubric(reply, verdict):
    assert parse_verdict(reply, SAME) == verdict


def test_rubric_follows_the_reference():
    assert rubric_for({}) is GOLD
    assert rubric_for({"reference": "gold"}) is GOLD
    assert rubric_for({"reference": "clean_answer"}) is SAME
    assert GOLD.sha256 != SAME.sha256 and len(GOLD.sha256) == 64


def test_parse_judge_scorer_forms():
    assert is_judge("judge:local:smollm2") and not is_judge("exact")
    config = parse_judge_scorer("judge:openai:m@http://127.0.0.1:1/v1", {"concurrency": 3})
    assert (config.spec, config.concurrency, config.mode) == \
        ("openai:m@http://127.0.0.1:1/v1", 3, "generate")
    config = parse_judge_scorer({"judge": "local:smollm2", "mode": "loglik", "retries": 2})
    assert config.scorer == "judge:local:smollm2"
    assert config.options() == {"mode": "loglik", "retries": 2}
    for bad, words in [("judge:", "needs a model spec"),
                       ({"judge": "local:smollm2", "temperature": 1}, "unknown judge option"),
                       ({"judge": "local:smollm2", "mode": "vote"}, "'mode' must be one of"),
                       ({"judge": "local:smollm2", "concurrency": 0}, "positive whole")]:
        with pytest.raises(ConfigError, match=words):
            parse_judge_scorer(bad)


# ---------------------------------------------------------------- loopback judge
def _case(messages):
    user = [m["content"] for m in messages if m["role"] == "user"][-1]
    system = [m["content"] for m in messages if m["role"] == "system"][0]
    found = re.search(r"Question:\n(.*)\n\n(?:Reference|First) answer:\n(.*)\n\n"
                      r"(?:Answer to grade|Second answer):\n(.*)\n\n", user, re.S)
    assert found, user
    return system, *found.groups()


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def expected_verdict(question: str, reference: str, answer: str, form: str) -> str:
    """The rule the loopback judge follows (the tests predict every verdict with it)."""
    if form == "gold" and sum(map(ord, question.strip())) % 3 == 2:   # a third of rows
        return "unparseable"
    right = _norm(answer) == _norm(reference)
    if form == "gold":
        return "CORRECT" if right else "INCORRECT"
    return "SAME" if right else "DIFFERENT"


def rule_judge(messages) -> str:
    system, question, reference, answer = _case(messages)
    form = "gold" if system == GOLD.system else "clean_answer"
    verdict = expected_verdict(question, reference, answer, form)
    return {"unparseable": "I am not sure about this one.", "CORRECT": "Verdict: **Correct**.",
            "INCORRECT": "INCORRECT - the answers differ.", "SAME": "same",
            "DIFFERENT": "Different."}[verdict]


@pytest.fixture
def judge_server():
    with FakeOpenAIServer(reply=rule_judge) as server:
        yield server


def _details(frame):
    return [json.loads(d) if isinstance(d, str) else {} for d in frame["score_detail"]]


def _run(tmp_path, server, *extra, out="out"):
    code = main(["run", "--data", "sample", "--model", BRITTLE, "--limit", "10",
                 "--transforms", "typos@high", "--scorer",
                 f"judge:openai:fake@{server.base_url}", "--cache", str(tmp_path / "c.sqlite"),
                 "--out", str(tmp_path / out), "--quiet", *extra])
    assert code == 0
    return json.loads((tmp_path / out / "manifest.json").read_text())


def test_loopback_judge_verdicts_cache_and_manifest(tmp_path, judge_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key-0000")
    manifest = _run(tmp_path, judge_server, "--judge-concurrency", "3")
    import pandas as pd

    frame = pd.read_csv(tmp_path / "out" / "results.csv", keep_default_na=False,
                        na_values={"score": ["", "nan"], "error": [""]},
                        dtype={"input": str, "target": str, "response": str})
    answered = frame[frame["error"].isna()]
    assert len(answered) == len(frame) == 20
    details = _details(frame)
    counts: dict[str, int] = {}
    for row, detail in zip(frame.itertuples(index=False), details):
        want = expected_verdict(row.input, row.target, row.response, "gold")
        assert detail["judge"] == want and detail["rubric"] == "gold"
        counts[want] = counts.get(want, 0) + 1
        if want == "unparseable":   # counted apart, never scored as wrong
            assert math.isnan(row.score) and detail["reply"] == "I am not sure about this one."
        else:
            assert row.score == (1.0 if want == "CORRECT" else 0.0)
    judge = manifest["judge"]
    assert counts.get("unparseable", 0) >= 1 and counts.get("INCORRECT", 0) >= 1
    assert judge["unparseable"] == counts["unparseable"] and judge["failed"] == 0
    assert judge["verdicts"] == {k: v for k, v in counts.items() if k != "unparseable"}
    assert judge["rows_judged"] == 20 and judge["calls"] == judge["unique_prompts"]
    assert judge_server.completion_count == judge["calls"]
    assert judge["concurrency"] == 3 and judge["options"] == {"concurrency": 3}
    assert judge["rubrics"]["gold"]["system"] == GOLD.system
    assert judge["rubrics"]["gold"]["sha256"] == GOLD.sha256
    assert judge["identity"]["params"]["temperature"] == 0.0
    assert manifest["scorer"] == f"judge:openai:fake@{judge_server.base_url}"
    sent = judge_server.completion_requests[0]
    assert sent.messages[0]["content"] == GOLD.system
    assert sent.body["temperature"] == 0.0
    report = (tmp_path / "out" / "report.md").read_text()
    assert f"{counts['unparseable']} unparseable" in report

    # rerun: every answer and every verdict comes from the cache
    again = _run(tmp_path, judge_server, out="again")
    assert judge_server.completion_count == judge["calls"]
    assert again["judge"]["calls"] == 0 and again["judge"]["cache_hits"] == judge["calls"]
    assert again["judge"]["verdicts"] == judge["verdicts"]


def test_consistency_rubric_and_failed_judge_calls(tmp_path, judge_server, monkeypatch):
    """Rows with reference=clean_answer get the SAME/DIFFERENT rubric; identical answers
    need no call; a judge call that keeps failing is recorded on its row (job-file form)."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key-0000")
    data = tmp_path / "items.jsonl"
    rows = [("q1", "What is the capital of France?", "Paris"),
            ("q2", "What colour is the sky on a clear day?", "green"),
            ("q3", "Which island is famous for cloves?", "Zanzibar")]
    data.write_text("".join(json.dumps({"id": i, "input": q, "target": t, "task": "short_answer",
                                        "metadata": {"reference": "clean_answer"}}) + "\n"
                            for i, q, t in rows))
    judge_server.add_rule(Fault.server_error(500), when="Zanzibar")
    job = tmp_path / "job.yaml"
    job.write_text(f"data: {data}\nmodels: ['python:tests.robustify.test_judge:paris']\n"
                   f"transforms: [typos@high]\nscorer:\n  judge: openai:fake@{judge_server.base_url}\n"
                   f"  retries: 1\n  concurrency: 2\n")
    code = main(["run", "--config", str(job), "--cache", str(tmp_path / "c.sqlite"),
                 "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 0
    import pandas as pd

    frame = pd.read_csv(tmp_path / "out" / "results.csv")
    details = {(r.item_id, r.spec): d for r, d in zip(frame.itertuples(index=False),
                                                      _details(frame))}
    # paris() answers "Paris" to everything: q1 identical (no call), q2 different
    assert set(frame["spec"]) == {"clean", "typos@0.8"}
    for spec in ("clean", "typos@0.8"):
        assert details[("q1", spec)] == {"judge": "SAME", "rubric": "clean_answer",
                                         "source": "identical"}
        assert details[("q2", spec)]["judge"] == "DIFFERENT"
        assert details[("q3", spec)]["judge"] == "failed"
        assert "500" in details[("q3", spec)]["judge_error"]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())["judge"]
    assert manifest["identical"] == 2 and manifest["failed"] == 2
    assert manifest["options"] == {"concurrency": 2, "retries": 1}
    assert all(r.messages[0]["content"] == SAME.system
               for r in judge_server.completion_requests)
    scores = frame.set_index(["item_id", "spec"])["score"]
    assert scores[("q1", "clean")] == 1.0 and scores[("q2", "clean")] == 0.0
    assert math.isnan(scores[("q3", "clean")])


def paris(messages):
    """Answers Paris to every question."""
    return "Paris"


@pytest.mark.parametrize("spec, words", [
    ("judge:", "needs a model spec"),
    ("judge:nosuchkind:x", "unknown kind 'nosuchkind'"),
    ("judge:local:/no/such/model.gguf", "model.gguf"),
])
def test_bad_judge_spec_is_one_line_before_any_call(tmp_path, capsys, spec, words):
    code = main(["run", "--data", "sample", "--model", ORACLE, "--limit", "2",
                 "--transforms", "typos", "--scorer", spec, "--cache", str(tmp_path / "c"),
                 "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and words in err, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "c").exists()


def test_loglik_judge_needs_logprobs_before_any_call(tmp_path, capsys):
    code = main(["run", "--data", "sample", "--model", ORACLE, "--limit", "2",
                 "--transforms", "typos", "--scorer", "judge:python:tests.robustify.test_judge:paris",
                 "--judge-mode", "loglik", "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "cannot give token log-probabilities" in err, err
    assert not (tmp_path / "out").exists()


def test_bad_judge_option_in_job_file_names_file_and_key(tmp_path, capsys):
    job = tmp_path / "job.yaml"
    job.write_text("scorer:\n  judge: local:smollm2\n  temprature: 0\n")
    assert main(["run", "--config", str(job), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {job}: key 'scorer': unknown judge option(s) 'temprature'")


# ---------------------------------------------------------------- the real local judge
@pytest.mark.parametrize("mode", ["generate", "loglik"])
def test_local_smollm2_judge_end_to_end(tmp_path, mode):
    scorer = {"judge": "local:smollm2", "mode": mode}
    kwargs = dict(data="sample", models=["local:smollm2"], transforms=["typos@high"],
                  limit=3, cache=tmp_path / "c.sqlite", progress=False)
    result = evaluate(scorer=scorer, out=tmp_path / "out", **kwargs)
    judge = result.manifest["judge"]
    frame = result.results
    verdicts = [json.loads(d)["judge"] for d in frame["score_detail"]]
    assert judge["rows_judged"] == len(frame) == 6
    assert sum(judge["verdicts"].values()) + judge["unparseable"] + judge["failed"] == 6
    assert judge["identity"]["model"] == "smollm2" and judge["mode"] == mode
    for verdict, score in zip(verdicts, frame["score"]):
        assert verdict in ("CORRECT", "INCORRECT", "unparseable")
        assert (score == 1.0) if verdict == "CORRECT" else \
            (score == 0.0) if verdict == "INCORRECT" else math.isnan(score)
    if mode == "loglik":   # the likelier verdict word: always parseable
        assert judge["unparseable"] == 0
    again = evaluate(scorer=scorer, out=tmp_path / "again", **kwargs)
    assert again.manifest["judge"]["calls"] == 0
    assert again.manifest["judge"]["verdicts"] == judge["verdicts"]
    assert Path(tmp_path / "again" / "report.html").exists()


def test_judge_summary_counts_identical_answers_apart_from_judged_verdicts():
    from robustify.runner.judge import judge_summary

    facts = {"spec": "local:smollm2", "mode": "generate", "rows_judged": 3, "calls": 3,
             "cache_hits": 0, "verdicts": {"SAME": 3}, "identical": 3, "unparseable": 3,
             "failed": 0}
    assert judge_summary(facts) == (
        "judge local:smollm2 (generate): 3 answers judged, 3 calls, 0 cache hits; 3 SAME "
        "(3 of them identical to the reference, decided without a call); 3 unparseable and "
        "0 failed (not scored)")
    facts.update(identical=0, verdicts={"SAME": 1, "DIFFERENT": 2}, unparseable=0)
    assert "identical" not in judge_summary(facts)
