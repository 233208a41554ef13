"""Per-task generation parameters, hit_token_limit, loglik scoring, --fewshot, --stratify."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from perturbations.errors import ConfigError
from perturbations.records import Item
from robustify.data import load_items
from robustify.models import parse_model_spec
from robustify.models.requests import RequestBackend, loglik_function, pick_option, split_request
from robustify.pipeline import evaluate
from robustify.pipeline.jobfile import load_job
from robustify.pipeline.selection import draw_fewshot, stratified_sample
from robustify.prompts import build_messages
from robustify.records import GenerationParams
from robustify.runner.requests import RequestBuilder
from tests.robustify import scoring_models
from tests.robustify.fake_logprobs_server import FakeLogprobsServer, char_logprob

ROOT = Path(__file__).resolve().parents[2]
BUDGET = "python:tests.robustify.scoring_models:budget"


def _closing(backend, coro):
    """Run ``coro``, then close the backend's HTTP client in the same event loop."""
    async def run():
        try:
            return await coro
        finally:
            await backend.aclose()

    return asyncio.run(run())


def _run(tmp_path: Path, **kwargs) -> pd.DataFrame:
    result = evaluate(data="sample", transforms=["typos@high"], out=tmp_path / "out",
                      cache=tmp_path / "cache.sqlite", progress=False, **kwargs)
    return result.results


# ------------------------------------------------------------ per-task generation
def test_numeric_items_get_a_larger_budget_and_cut_answers_are_flagged(tmp_path: Path) -> None:
    scoring_models.CALLS.clear()
    frame = _run(tmp_path, models=[BUDGET], limit=20, stratify="task")
    clean = frame[frame["spec"] == "clean"]
    budgets = dict(zip(clean["task"], clean["response"]))
    assert budgets["numeric"] == "256"                      # TASK_GENERATION
    assert {budgets[k] for k in budgets if k != "numeric"} == {"48"}
    # the flag follows the backend's finish_reason ("length" below 100 tokens here)
    assert (clean["hit_token_limit"] == (clean["task"] != "numeric")).all()
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["generation"] == {"numeric": {"max_tokens": 256}, "open": {"max_tokens": 128}}
    # a cached re-run keeps the flag with the answer and makes no call
    calls = len(scoring_models.CALLS)
    again = _run(tmp_path, models=[BUDGET], limit=20, stratify="task")
    assert len(scoring_models.CALLS) == calls and again["cached"].all()
    assert again["hit_token_limit"].tolist() == frame["hit_token_limit"].tolist()


def test_job_generation_section_and_pinned_max_tokens(tmp_path: Path) -> None:
    frame = _run(tmp_path, models=[BUDGET], limit=10, stratify="task",
                 generation={"yes_no": {"max_tokens": 7}})
    clean = _budgets(frame)
    assert clean["yes_no"] == {"7"} and clean["numeric"] == {"256"}
    # a max_tokens the user set for the model beats the table, not the job's section
    frame = _run(tmp_path, models=[BUDGET], limit=10, stratify="task",
                 params={"max_tokens": 32}, generation={"yes_no": {"max_tokens": 7}})
    clean = _budgets(frame)
    assert clean["numeric"] == {"32"} and clean["yes_no"] == {"7"}
    assert clean["short_answer"] == {"32"}


def _budgets(frame: pd.DataFrame) -> dict[str, set[str]]:
    clean = frame[frame["spec"] == "clean"]
    return {task: set(group["response"]) for task, group in clean.groupby("task")}


def test_request_entry_only_when_needed_and_never_sent() -> None:
    builder = RequestBuilder()
    fact = Item(id="f", input="Capital of Peru?", target="Lima")
    sum_ = Item(id="n", input="2 + 2?", target="4", task="numeric")
    assert builder(fact) == build_messages(fact)            # cache keys as before
    chat, request = split_request(builder(sum_))
    assert chat == build_messages(sum_) and request == {"defaults": {"max_tokens": 256}}
    with pytest.raises(ConfigError, match="unknown scoring mode"):
        RequestBuilder(scoring_mode="vote")


def test_openai_finish_reason_length_sets_hit_token_limit() -> None:
    with FakeLogprobsServer() as server:
        server.finish_reason = "length"
        backend = parse_model_spec(f"openai:fake@{server.base_url}")
        completion = _closing(backend, backend.agenerate([{"role": "user", "content": "hi"}]))
    assert completion.finish_reason == "length" and completion.hit_token_limit


# ------------------------------------------------------------------------ loglik
def test_openai_loglik_sums_only_the_continuation_tokens() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital?"}]
    with FakeLogprobsServer() as server:
        backend = parse_model_spec(f"openai:fake@{server.base_url}")
        rate = loglik_function(backend)
        values = _closing(backend, rate(messages, ["Paris", "Rome", "Lima"]))
        prompts = server.completions_prompts
    context = "system: Be brief.\n\nuser: Capital?\n\nassistant:"
    assert prompts == [f"{context} {o}" for o in ("Paris", "Rome", "Lima")]
    # the option with its leading space; the generated "!" and the context are not counted
    assert values == pytest.approx([sum(map(char_logprob, f" {o}"))
                                    for o in ("Paris", "Rome", "Lima")])


def test_a_token_straddling_the_context_end_counts_with_the_option() -> None:
    from robustify.models.loglik_openai import continuation_loglik

    # "assistant:" | " Paris" | "!" (generated, beyond the prompt's 16 characters)
    logprobs = {"text_offset": [0, 9, 10, 16], "token_logprobs": [None, -1.0, -2.5, -9.0]}
    assert continuation_loglik(logprobs, 10, 16) == -2.5
    merged = {"text_offset": [0, 9], "token_logprobs": [None, -3.0]}   # ": Paris" one token
    assert continuation_loglik(merged, 10, 16) == -3.0


def test_pick_option_plain_and_per_character() -> None:
    assert pick_option([-3.0, -2.0], ["long answer", "no"]) == 1
    assert pick_option([-3.0, -2.0], ["long answer", "no"], normalize=True) == 0
    assert pick_option([-1.0, -1.0], ["a", "b"]) == 0       # ties: the first


def test_loglik_mode_refuses_a_backend_without_logprobs(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "robustify", "run", "--model", BUDGET, "--limit", "3",
         "--scoring-mode", "loglik", "--out", str(tmp_path / "out"), "--cache", "off"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot give token log-probabilities" in lines[0]
    assert not (tmp_path / "out" / "results.csv").exists()


@pytest.mark.slow
def test_loglik_with_the_local_model(tmp_path: Path, local_model_path: Path) -> None:
    backend = parse_model_spec("local:smollm2", params=GenerationParams(max_tokens=1))
    item = next(i for i in load_items("sample") if i.id == "mc-003")   # China
    messages = build_messages(item)
    rate = loglik_function(backend)
    values = asyncio.run(rate(messages, list(item.choices)))
    again = asyncio.run(rate(messages, list(reversed(item.choices))))
    assert values == pytest.approx(list(reversed(again)), abs=1e-4)   # order-free
    assert all(v < 0 for v in values)
    # the greedy first token is the most likely single token
    greedy = asyncio.run(backend.agenerate(messages)).text
    assert asyncio.run(rate(messages, [greedy]))[0] >= max(
        asyncio.run(rate(messages, [t]))[0] for t in ("A", "The", "Egypt", "No"))
    wrapped = RequestBackend(backend, scoring="loglik")
    answer = asyncio.run(wrapped.agenerate(RequestBuilder(scoring_mode="loglik")(item)))
    assert answer.text == item.choices[max(range(4), key=lambda i: values[i])]

    frame = evaluate(data="sample", models=["local:smollm2"], transforms=["typos@high"],
                     limit=10, stratify="task", scoring_mode="loglik", out=tmp_path / "o",
                     cache=tmp_path / "c.sqlite", progress=False).results
    items = {i.id: i for i in load_items("sample")}
    mc = frame[(frame["task"] == "multiple_choice") & (frame["spec"] == "clean")]
    assert len(mc) == 2
    for item_id, response, parsed, score in zip(mc["item_id"], mc["response"], mc["parsed"],
                                                mc["score"]):
        letter = "ABCD"[items[item_id].choices.index(response)]
        assert parsed == letter and score == float(letter == items[item_id].target)
    yn = frame[frame["task"] == "yes_no"]
    assert set(yn["response"]) <= {"Yes", "No"} and yn["score"].notna().all()
    numeric = frame[frame["task"] == "numeric"]
    assert numeric["response"].str.len().gt(0).all()       # still generated


# --------------------------------------------------------------- fewshot, stratify
def test_fewshot_draws_unevaluated_rows_and_records_them(tmp_path: Path) -> None:
    scoring_models.CALLS.clear()
    result = evaluate(data="sample", models=[BUDGET], transforms=["typos@high"], fewshot=2,
                      out=tmp_path / "out", cache="off", progress=False)
    shots = result.manifest["fewshot"]
    assert shots["k"] == 2 and sorted(shots["rows"]) == ["classification", "multiple_choice",
                                                         "numeric", "short_answer", "yes_no"]
    drawn = {i for ids in shots["rows"].values() for i in ids}
    assert len(drawn) == 10 and not drawn & set(result.results["item_id"])
    assert result.results["item_id"].nunique() == 90
    # the same examples again with the same seed, others with another seed
    again, _ = draw_fewshot(load_items("sample"), 2, 0)
    assert {i.id for i in load_items("sample")} - {i.id for i in again} == drawn
    other, _ = draw_fewshot(load_items("sample"), 2, 1)
    assert {i.id for i in again} != {i.id for i in other}


def test_fewshot_examples_are_in_every_prompt_clean(tmp_path: Path) -> None:
    items = load_items("sample")
    rest, shots = draw_fewshot(items, 1, 0)
    shot = shots["numeric"][0]
    job = load_job(_job(tmp_path, "fewshot: 1\nlimit: 5\nstratify: task\n"))
    from robustify.pipeline import prepare_job

    prep = prepare_job(job, preflight=False)
    numeric = next(i for i in prep.items if i.task == "numeric")
    chat, _ = split_request(prep.build_messages()(numeric))
    assert chat[1] == {"role": "user", "content": shot.input}
    assert chat[2] == {"role": "assistant", "content": shot.target}  # no worked solution
    assert prep.fewshot["numeric"] == [shot.id]


def test_fewshot_needs_rows_left_to_evaluate(tmp_path: Path) -> None:
    data = tmp_path / "tiny.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "input": f"q{i}?", "target": "a"}) + "\n"
                            for i in range(3)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "robustify", "run", "--data", str(data), "--model", BUDGET,
         "--fewshot", "3", "--out", str(tmp_path / "out"), "--cache", "off"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: fewshot 3: only 3 short_answer row(s) in the data; 4 "
                                   "or more are needed (3 examples and at least one to "
                                   "evaluate)")
    assert not (tmp_path / "out").exists()


def test_stratify_keeps_proportions_and_is_seeded() -> None:
    items = [Item(id=f"q{i}", input=f"q{i}?", target="yes" if i < 30 else "no", task="yes_no")
             for i in range(40)]
    sample = stratified_sample(items, 8, 0, "target")
    assert Counter(i.target for i in sample) == {"yes": 6, "no": 2}
    assert [i.id for i in sample] == sorted((i.id for i in sample), key=lambda s: int(s[1:]))
    assert stratified_sample(items, 8, 0, "target") == sample
    assert stratified_sample(items, 8, 1, "target") != sample
    mixed = stratified_sample(load_items("sample"), 10, 0, "task")
    assert Counter(i.task for i in mixed) == {k: 2 for k in ("multiple_choice", "yes_no",
                                                             "numeric", "classification",
                                                             "short_answer")}
    domains = stratified_sample(load_items("sample"), 7, 0, "domain")   # a metadata key
    assert len(domains) == 7
    with pytest.raises(ConfigError, match="no row has the field 'colour'"):
        stratified_sample(items, 8, 0, "colour")


def _job(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(f"models: ['{BUDGET}']\ntransforms: [typos]\n" + text)
    return path


@pytest.mark.parametrize("text, fragment", [
    ("fewshot: two\n", "key 'fewshot' must be a whole number"),
    ("fewshot: -1\n", "fewshot must be a whole number >= 0"),
    ("scoring_mode: vote\n", "scoring_mode must be one of generate, loglik, loglik_norm"),
    ("generation: {numbers: {max_tokens: 9}}\n", "generation: unknown task kind 'numbers'"),
    ("generation: {numeric: {max_token: 9}}\n", "generation.numeric: unknown parameter"),
    ("generation: {numeric: {max_tokens: 0}}\n", "generation.numeric.max_tokens must be"),
])
def test_bad_scoring_keys_name_the_file_and_key(tmp_path: Path, text: str, fragment: str) -> None:
    path = _job(tmp_path, text)
    with pytest.raises(ConfigError, match=fragment) as info:
        load_job(path)
    assert str(path) in str(info.value)


def test_scoring_keys_load_from_a_job_file(tmp_path: Path) -> None:
    job = load_job(_job(tmp_path, "fewshot: 2\nstratify: target\nscoring_mode: loglik_norm\n"
                                  "generation: {numeric: {max_tokens: 300}}\n"))
    assert (job.fewshot, job.stratify, job.scoring_mode) == (2, "target", "loglik_norm")
    assert job.generation == {"numeric": {"max_tokens": 300}}


def test_wrapped_backends_keep_their_identity_unless_a_budget_is_pinned() -> None:
    inner = parse_model_spec(BUDGET)
    assert RequestBackend(inner).identity() == inner.identity()     # old cache keys hold
    pinned = RequestBackend(inner, pinned=["max_tokens"]).identity()
    assert pinned == {**inner.identity(), "pinned": ["max_tokens"]}
    wrapped = RequestBackend(inner, make=lambda p: parse_model_spec(BUDGET, params=p),
                             pinned=["max_tokens"])
    request = {"defaults": {"max_tokens": 256}, "params": {"temperature": 0.5}}
    assert wrapped.params_for(request) == GenerationParams(temperature=0.5)
    assert wrapped.label == inner.label and wrapped.target == inner.target
