"""Model-written rewrites: spec parsing, the checks, caching, and real SmolLM2 rewrites."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from perturbations import Item
from perturbations.errors import ConfigError
from robustify.pipeline import PreparedJob
from robustify.runner.cache import ResponseCache
from robustify.models.python_callable import PythonCallableBackend
from robustify.probes.rewrite import (PERSONAS, REJECTION_COLUMNS, check_rewrite, clean_rewrite,
                               parse_rewrite_spec, rewrite_manifest, rewrite_messages,
                               rewrite_variants, run_rewrite_specs, split_rewrite_specs)

# True once the lead's hook in robustify/api.py (PreparedJob.rewrites) is in place
_WIRED = "rewrites" in getattr(PreparedJob, "__dataclass_fields__", {})

CODES = {"empty", "refusal", "unchanged", "too_long", "lost_span", "new_number",
         "answer_leaked", "judge", "call_failed"}

MATH = Item(id="math", task="numeric", target="12",
            input="Tom has 7 apples and his sister gives him 5 more apples, how many apples "
                  "does Tom have now?")
CAPITAL = Item(id="capital", target="Paris", metadata={"aliases": ["Paris, France"]},
               input="What is the capital city of France?")
PLANET = Item(id="planet", task="multiple_choice", target="B",
              choices=("Venus", "Mars", "Jupiter", "Neptune"),
              input="Which planet in our solar system is known as the red planet?")
INTENT = Item(id="intent", task="classification", target="billing",
              metadata={"labels": ["billing", "refund"]},
              input="I was charged twice for my order this month, can you check it?")
EGGS = Item(id="eggs", task="numeric", target="24", input="How many eggs are in two dozen?")


# ------------------------------------------------------------------ specs

def test_parse_spec_canonical_and_model_specs_with_colons() -> None:
    spec = parse_rewrite_spec("rewrite:persona=hurried")
    assert spec.canonical == "rewrite:persona=hurried:model=local-smollm2"
    assert spec.transform == "rewrite_hurried" and spec.label_policy == "preserves"
    spec = parse_rewrite_spec("rewrite:persona=vague:temperature=0.7:judge=local:smollm2:"
                              "model=openai:gpt-4o-mini@http://127.0.0.1:8080/v1")
    assert spec.model == "openai:gpt-4o-mini@http://127.0.0.1:8080/v1"
    assert spec.judge == "local:smollm2" and spec.temperature == 0.7
    assert spec.label_policy == "may_break"
    assert spec.canonical == ("rewrite:persona=vague:model=openai-gpt-4o-mini-http-127.0.0.1-"
                              "8080-v1:temperature=0.7:judge=local-smollm2")
    assert parse_rewrite_spec("rewrite:persona=paraphrase:model=python:pkg.mod:fn").model == \
        "python:pkg.mod:fn"


@pytest.mark.parametrize("text, match", [
    ("rewrite:persona=hurryed", "did you mean hurried"),
    ("rewrite", "unknown persona"),
    ("rewrite:colour=red", "cannot read"),
    ("rewrite:persona=hurried:temperature=hot", "temperature"),
    ("rewrite:persona=hurried:temperature=5", "temperature"),
    ("rewrite:persona=hurried:model=gpt4", "invalid model spec"),
    ("typos@0.5", "not a rewrite spec"),
])
def test_parse_spec_errors(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_rewrite_spec(text)


def test_split_rewrite_specs() -> None:
    regular, rewrites = split_rewrite_specs(["typos", "rewrite:persona=hurried", "slang@high",
                                             "rewrite:persona=terse_query"])
    assert regular == ["typos", "slang@high"]
    assert [r.persona for r in rewrites] == ["hurried", "terse_query"]


def test_prompt_names_the_persona_and_the_question() -> None:
    messages = rewrite_messages(MATH, "non_native")
    assert messages[0]["role"] == "system" and "Never answer" in messages[0]["content"]
    assert PERSONAS["non_native"].description in messages[1]["content"]
    assert MATH.input in messages[1]["content"]


# ------------------------------------------------------------------ checks

@pytest.mark.parametrize("item, rewrite, code", [
    (MATH, "tom got 7 apples + 5 more from his sis, how many now?", None),
    (MATH, "Tom has seven apples, sister gives five more, how many now?", None),  # words ok
    (EGGS, "eggs in 2 dozen??", None),                                           # digits ok
    (MATH, "Tom has 7 apples and gets 5 more, so 12 apples.", "answer_leaked"),
    (MATH, "Tom has 7 apples, gets 5, 7 + 5 = 13?", "new_number"),
    (MATH, "Tom has apples and gets 5 more, how many?", "lost_span"),            # lost 7
    (MATH, "he has 7 apples and gets 5 more, how many now?", "lost_span"),       # lost Tom
    (CAPITAL, "The capital city of France is Paris.", "answer_leaked"),
    (CAPITAL, "whats the capital of france", None),
    (CAPITAL, "What is the capital city of France?", "unchanged"),
    (PLANET, "The planet known as the red planet is Mars.", "answer_leaked"),
    (PLANET, "which planet is the red one", None),
    (INTENT, "billing problem: charged 2x for my order this month", "answer_leaked"),
    (INTENT, "I'm sorry, but I'm not available to answer your question right now.", "refusal"),
    (INTENT, "As an AI, I cannot check orders.", "refusal"),
    (CAPITAL, "", "empty"),
    (CAPITAL, "?!", "empty"),
    (CAPITAL, "capital of France " + "and more words " * 20, "too_long"),
])
def test_check_rewrite(item: Item, rewrite: str, code: str | None) -> None:
    reasons = check_rewrite(item, rewrite)
    if code is None:
        assert reasons == []
    else:
        assert reasons and code in [r.split(":")[0] for r in reasons], reasons


def test_vague_persona_may_drop_details_but_not_leak() -> None:
    assert check_rewrite(MATH, "how many apples does he have", keep_spans=False) == []
    assert check_rewrite(MATH, "he has 12 apples right?", keep_spans=False)[0].startswith(
        "answer_leaked")


def test_clean_rewrite_strips_wrappers_only() -> None:
    assert clean_rewrite('Rewritten question: "whats the capital of france?"\nThe answer') == \
        "whats the capital of france?"
    assert clean_rewrite("Here is the rewritten question:\n\ncap of france??") == "cap of france??"
    assert clean_rewrite("  **Rewrite:** hi there  ") == "hi there"
    assert clean_rewrite(None) == ""


# ------------------------------------------------------------------ running (fake rewriter)

class FakeRewriter:
    """Canned rewrites by item text; counts the calls it really gets."""

    CANNED = {
        MATH.input: "tom got 7 apples + 5 more from his sister, how many now?",
        CAPITAL.input: "Sure! The capital city of France is Paris.",
        PLANET.input: "Rewritten question: which planet do ppl call the red one",
        INTENT.input: "I'm sorry, I cannot help with that.",
    }

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, messages: list[dict[str, str]], params=None) -> str:
        with self.lock:
            self.calls += 1
        content = messages[-1]["content"]
        return next(v for k, v in self.CANNED.items() if k in content)


def yes_judge(messages: list[dict[str, str]]) -> str:
    return "No." if "Tom" in messages[-1]["content"] else "Yes, they ask the same thing."


ITEMS = [MATH, CAPITAL, PLANET, INTENT]


def test_rewrite_variants_keeps_good_rewrites_and_reports_the_rest(tmp_path: Path) -> None:
    fake = FakeRewriter()
    backend = PythonCallableBackend(fake, label="fake-rewriter")
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        variants, rejected = rewrite_variants(ITEMS, "rewrite:persona=hurried", backend, cache,
                                              seed=5)
        assert fake.calls == 4
        assert [v.item.id for v in variants] == ["math", "planet"]
        math_v = variants[0]
        assert math_v.item.input == FakeRewriter.CANNED[MATH.input]
        assert math_v.spec == "rewrite:persona=hurried:model=fake-rewriter"   # the real rewriter
        assert math_v.transform == "rewrite_hurried" and math_v.label_policy == "preserves"
        assert math_v.changed and math_v.edit_rate > 0 and math_v.seed == 5
        assert math_v.item.target == "12" and variants[1].item.choices == PLANET.choices
        assert variants[1].item.input == "which planet do ppl call the red one"
        assert list(rejected.columns) == list(REJECTION_COLUMNS)
        assert dict(zip(rejected["item_id"], rejected["reason"])) == {
            "capital": "answer_leaked", "intent": "refusal"}
        assert (rejected["rewriter"] == "fake-rewriter").all()
        # asked again: everything comes from the cache
        again, _ = rewrite_variants(ITEMS, "rewrite:persona=hurried", backend, cache, seed=5)
        assert fake.calls == 4 and [v.item for v in again] == [v.item for v in variants]


def test_judge_rejects_changed_meaning() -> None:
    backend = PythonCallableBackend(FakeRewriter(), label="fake-rewriter")
    judge = PythonCallableBackend(yes_judge, label="judge")
    variants, rejected = rewrite_variants(ITEMS, "rewrite:persona=hurried", backend, None,
                                          judge=judge)
    assert [v.item.id for v in variants] == ["planet"]
    row = rejected.set_index("item_id").loc["math"]
    assert row["reason"] == "judge" and "meaning changed" in row["reasons"]


def test_run_rewrite_specs_and_manifest() -> None:
    fake = FakeRewriter()
    backend = PythonCallableBackend(fake, label="fake-rewriter")
    outcome = run_rewrite_specs(ITEMS, ["rewrite:persona=hurried",
                                        "rewrite:persona=terse_query"],
                                seed=1, replicates=3, backends={"local:smollm2": backend})
    assert fake.calls == 8          # temperature 0: replicate 0 only, per spec
    assert len(outcome.variants) == 4 and len(outcome.rejected) == 4
    first = outcome.manifest[0]
    assert first["spec"] == "rewrite:persona=hurried:model=fake-rewriter"
    assert first["n_items"] == 4 and first["n_accepted"] == 2 and first["n_rejected"] == 2
    assert first["rejected_by_reason"] == {"answer_leaked": 1, "refusal": 1}
    assert first["rewriter"] == "fake-rewriter" and "Never answer" in first["prompt"]["system"]
    assert first["params"]["seed"] == 1
    assert first["rewriter_identity"]["kind"] == "python"
    entry = rewrite_manifest("rewrite:persona=paraphrase", n_items=0)
    assert entry["rewriter"] == "local:smollm2" and entry["n_rejected"] == 0


def test_rewriter_from_a_model_spec_string() -> None:
    spec = "rewrite:persona=hurried:model=python:tests.robustify.beyond_rewriter:lowercase"
    outcome = run_rewrite_specs(ITEMS, [spec], seed=2)
    assert [v.item.input for v in outcome.variants][:2] == [
        MATH.input.lower().rstrip("?") + " pls", CAPITAL.input.lower().rstrip("?") + " pls"]
    entry = outcome.manifest[0]
    assert entry["rewriter"] == "python:tests.robustify.beyond_rewriter:lowercase"
    assert entry["rewriter_identity"]["model"] == "tests.robustify.beyond_rewriter:lowercase"
    assert entry["rewriter_identity"]["params"]["seed"] == 2    # the seed reaches the call
    assert entry["spec"] == ("rewrite:persona=hurried:model=python-tests.robustify."
                             "beyond_rewriter-lowercase")


def test_rewrite_variants_run_and_analyse_like_any_variant() -> None:
    """Accepted rewrites go through the runner and the analysis as a transform of their own."""
    from perturbations import Variant
    from robustify.analysis.paired import summarize
    from robustify.prompts import build_messages
    from robustify.runner.execute import run_queries
    from robustify.scoring import score_answer

    variants, _ = rewrite_variants(ITEMS, "rewrite:persona=hurried", PythonCallableBackend(
        FakeRewriter(), label="fake"))

    def answer(messages: list[dict[str, str]]) -> str:
        text = messages[-1]["content"]
        return "B. Mars" if "planet" in text else "12" if "apples" in text else "no idea"

    rows = run_queries([Variant.clean(i) for i in ITEMS] + variants,
                       [PythonCallableBackend(answer, label="answerer")],
                       build_messages=build_messages, score=score_answer, cache=None,
                       progress=False)
    summary = summarize(rows, n_boot=100).set_index("transform")
    assert list(summary.index) == ["rewrite_hurried"]
    assert summary.loc["rewrite_hurried", "n_items"] == 2
    assert summary.loc["rewrite_hurried", "drop"] == 0.0


@pytest.mark.skipif(not _WIRED, reason="the run_job hook for rewrite specs is not wired "
                                       "into api.py yet")
def test_run_job_accepts_rewrite_specs(tmp_path: Path) -> None:
    import json

    from robustify import evaluate

    spec = "rewrite:persona=hurried:model=python:tests.robustify.beyond_rewriter:lowercase"
    result = evaluate("sample", ["python:tests.robustify.beyond_models:memorised_none"],
                      ["typos@0.5", spec], limit=6, cache="off", out=tmp_path / "run",
                      progress=False)
    assert "rewrite_hurried" in set(result.results["transform"])
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["rewrites"][0]["n_accepted"] + manifest["rewrites"][0]["n_rejected"] == 6
    assert (tmp_path / "run" / "rewrite_rejections.csv").is_file()


def test_failed_calls_are_rejected_not_dropped() -> None:
    def broken(messages: list[dict[str, str]]) -> str:
        raise ValueError("boom")

    backend = PythonCallableBackend(broken, label="broken")
    variants, rejected = rewrite_variants([CAPITAL], "rewrite:persona=hurried", backend)
    assert variants == [] and list(rejected["reason"]) == ["call_failed"]


# ------------------------------------------------------------------ the real local model

@pytest.mark.slow
def test_real_smollm2_rewrites_are_checked(tmp_path: Path, local_model_path: Path) -> None:
    """SmolLM2-135M answers, leaks and apologises a lot: those rewrites must be rejected."""
    from robustify.data import load_items

    wanted = ["mc-001", "math-001", "fact-001", "intent-001"]
    items = [i for i in load_items("sample") if i.id in wanted]
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        # a 40-token budget keeps the test quick; the first line is all a rewrite uses
        variants, rejected = rewrite_variants(items, "rewrite:persona=hurried:max_tokens=40",
                                              None, cache)
    assert len(variants) + len(rejected) == 4
    assert len(rejected) >= 1
    assert set(rejected["reason"]) <= CODES
    assert rejected["reasons"].str.len().gt(0).all()
    by_id = {i.id: i for i in items}
    for v in variants:
        # every kept rewrite passes the checks again and keeps the gold answer
        assert check_rewrite(by_id[v.item.id], v.item.input) == []
        assert v.item.target == by_id[v.item.id].target
        assert v.spec == "rewrite:persona=hurried:model=local-smollm2:max_tokens=40"
    for r in rejected.to_dict("records"):
        assert r["reasons"] == "; ".join(check_rewrite(by_id[r["item_id"]], r["rewrite"],
                                                       raw=r["raw"]))


def test_a_rewrite_composes_with_registry_transforms() -> None:
    """One spec grammar: ``rewrite:...+typos@high`` applies typos to every accepted rewrite,
    seeded like any composed spec and checked by the gold guard against the rewrite."""
    from perturbations import perturb

    from robustify.probes.rewrite import parse_rewrite_spec

    base = "rewrite:persona=hurried:model=python:tests.robustify.beyond_rewriter:lowercase"
    rs = parse_rewrite_spec(base + "+typos@high")
    assert rs.then == "typos@0.8" and rs.model.endswith("beyond_rewriter:lowercase")
    assert rs.canonical.endswith("+typos@0.8") and rs.transform == "rewrite_hurried+typos"
    assert parse_rewrite_spec(base + "+slang+typos@low").then == "slang+typos@0.2"
    with pytest.raises(ConfigError, match="needs its own severity"):
        parse_rewrite_spec(base + "+typos")

    plain = run_rewrite_specs(ITEMS, [base], seed=2).variants
    composed = run_rewrite_specs(ITEMS, [base + "+typos@high"], seed=2).variants
    assert [v.item_id for v in composed] == [v.item_id for v in plain]
    for before, after in zip(plain, composed):
        expected = perturb(before.item, "typos@0.8", seed=2).item.input
        assert after.item.input == expected and after.spec == rs.canonical
        assert after.item.target == before.item.target
