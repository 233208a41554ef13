"""Validity warnings (robustify.analysis.validity) everywhere a result is stated: the report's
headline box (HTML and Markdown, before any number), the terminal summary of ``run``, the
gates and ``RunResult``'s notebook views."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import robustify
from robustify.analysis import validity as V
from robustify.analysis.stats import wilson_interval
from robustify.cli.run import print_summary, rewrite_notes
from robustify.pipeline.jobfile import Gates
from robustify.pipeline.result import RunResult
from robustify.reporting.format import escape_html

from .html_check import assert_inert
from .results_factory import frame, row

ROOT = Path(__file__).resolve().parents[2]
MODELS = "python:tests.robustify.validity_models"
ORACLE = "python:tests.robustify.e2e_models:oracle"
GOLDEN = "python:tests.robustify.e2e_models:golden"


def _write_data(folder: Path) -> dict[str, Path]:
    """24 yes/no items (gold varies) and 24 four-option items (gold letters A-D in turn)."""
    folder.mkdir(parents=True, exist_ok=True)
    yn, mc = folder / "yn.jsonl", folder / "mc.jsonl"
    with yn.open("w") as f:
        for i in range(24):
            a, b = 10 + i, 20 if i % 2 else 5
            f.write(json.dumps({"id": f"yn-{i:02d}", "task": "yes_no",
                                "input": f"Is the number {a} larger than the number {b}?",
                                "target": "yes" if a > b else "no"}) + "\n")
    with mc.open("w") as f:
        for i in range(24):
            f.write(json.dumps({"id": f"mc-{i:02d}", "task": "multiple_choice",
                                "input": f"Which option belongs to question number {i} of "
                                         f"this quiz?", "target": "ABCD"[i % 4],
                                "choices": [f"option {i}-{k}" for k in range(4)]}) + "\n")
    return {"yn": yn, "mc": mc}


def _cli_run(tmp_path: Path, data: Path, model: str, *flags: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "robustify", "run", "--data", str(data), "--model", model,
         "--transforms", "typos", "--severity", "high", "--out", str(tmp_path / "out"),
         "--cache", "off", *flags], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=600)


def _headline_box_html(page: str) -> str:
    return re.search(r'<div class="headline">(.*?)</div>', page, flags=re.S).group(1)


def _assert_warned_first(out: Path, model: str, fragment: str) -> None:
    """The warning is in the box, before the first number of the model's headline."""
    page = (out / "report.html").read_text()
    assert_inert(page)
    box = _headline_box_html(page)
    warning = box.index("<strong>Warning:</strong>")
    assert escape_html(fragment) in box[warning:]
    assert warning < box.index("clean score of")
    md = (out / "report.md").read_text()
    quote = md[md.index("\n> ") + 1:md.index("\n## ")]
    assert quote.startswith("> **Warning:** ") and fragment.replace("_", "\\_") in quote
    assert quote.index("**Warning:**") < quote.index("clean score of")


# ------------------------------------------------------------------ end to end (CLI)


def test_constant_answer_is_warned_in_report_summary_and_gate(tmp_path: Path) -> None:
    data = _write_data(tmp_path / "data")
    model = f"{MODELS}:always_no"
    proc = _cli_run(tmp_path, data["yn"], model, "--fail-on-drop", "50")
    # the drop (0 pp) is far below the 50 pp gate, yet the gate fails: it measured nothing
    assert proc.returncode == 1, proc.stderr
    constant = "100.0% of its clean answers are the same answer ('no') while the gold answers vary"
    # the summary warns before the model's numbers
    lines = proc.stdout.splitlines()
    warned = [i for i, ln in enumerate(lines) if ln.startswith(f"{model}: WARNING: ")]
    numbers = next(i for i, ln in enumerate(lines) if ln.startswith(f"{model}: clean "))
    assert warned and max(warned) < numbers
    assert any(constant in lines[i] for i in warned)
    assert "no detectable change" in lines[numbers]
    gate = [ln for ln in proc.stderr.splitlines() if ln.startswith("gate failed:")]
    assert len(gate) == 1 and "meaningless measurement" in gate[0] and constant in gate[0]
    _assert_warned_first(tmp_path / "out", model, constant)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["chance"] == {"yes_no": 0.5}


def test_chance_level_multiple_choice_is_warned(tmp_path: Path) -> None:
    data = _write_data(tmp_path / "data")
    model = f"{MODELS}:guess_letter"
    proc = _cli_run(tmp_path, data["mc"], model, "--fail-on-drop", "50")
    assert proc.returncode == 1, proc.stderr
    results = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    clean = [r for r in results if r["spec"] == "clean"]
    right = sum(r["score"] >= 0.5 for r in clean)
    assert wilson_interval(right, 24, ci=0.90)[0] <= 0.25  # the guesser is at chance
    message = f"({right} of 24 right), is not above chance (25.0%, the score of guessing)"
    assert f"{model}: WARNING: the clean score, " in proc.stdout and message in proc.stdout
    gate = [ln for ln in proc.stderr.splitlines() if ln.startswith("gate failed:")]
    assert any("meaningless measurement" in g and message in g for g in gate)
    _assert_warned_first(tmp_path / "out", model, message)


# ------------------------------------------------------------------ in process


@pytest.fixture(scope="module")
def good_run() -> RunResult:
    return robustify.evaluate(data="sample", models=[ORACLE], transforms="typos",
                              severity=["high"], limit=30, cache="off", write=False,
                              progress=False)


def test_a_good_model_has_no_warning(good_run: RunResult, tmp_path: Path) -> None:
    assert good_run.warnings() == {}
    buffer = io.StringIO()
    print_summary(good_run, out=buffer)
    assert "WARNING" not in buffer.getvalue()
    assert good_run.check_gates(Gates(fail_on_drop=50)) == []
    files = good_run.write_report(tmp_path)
    assert "Warning:" not in files["html"].read_text()
    assert "**Warning:**" not in files["md"].read_text()


def test_the_terminal_summary_prints_the_written_reports_numbers(
        good_run: RunResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After write_report, print_summary states the report's numbers without a second
    bootstrap; a result whose rows were replaced since is computed afresh."""
    import robustify.analysis as analysis

    result = RunResult(results=good_run.results.copy(), manifest=good_run.manifest)
    fresh = io.StringIO()
    print_summary(result, out=fresh)
    result.write_report(tmp_path)
    assert result.reported is not None and result.reported.source is result.results

    def no_bootstrap(*args, **kwargs):
        raise AssertionError("computed again")
    with monkeypatch.context() as patch:
        for name in ("summarize", "model_overview", "validity_findings"):
            patch.setattr(analysis, name, no_bootstrap)
        reused = io.StringIO()
        print_summary(result, out=reused)
    assert reused.getvalue() == fresh.getvalue()
    assert "typos" in reused.getvalue() and "clean" in reused.getvalue()
    summary = (tmp_path / "summary.csv").read_text()
    assert summary == result.reported.summary.to_csv(index=False)

    calls: list[str] = []
    original = analysis.summarize

    def counted(*args, **kwargs):
        calls.append("summarize")
        return original(*args, **kwargs)
    monkeypatch.setattr(analysis, "summarize", counted)
    result.results = result.results.copy()  # other rows than the report's: computed afresh
    print_summary(result, out=io.StringIO())
    assert calls == ["summarize"]


def test_answers_at_the_token_limit_are_warned(good_run: RunResult, tmp_path: Path) -> None:
    results = good_run.results.copy()
    # what the runner records when max_tokens stopped an answer (column of the contract)
    results["hit_token_limit"] = [i % 3 != 0 for i in range(len(results))]
    cut = RunResult(results=results, manifest=good_run.manifest)
    share = f"{(results['hit_token_limit'].mean()) * 100:.1f}%"
    message = f"{share} of its answers stopped at the token limit (max_tokens)"
    assert any(message in m for m in cut.warnings()[ORACLE])
    # an overview already computed gives the same warnings (the terminal summary passes it)
    assert cut.warnings(overview=cut.overview()) == cut.warnings()
    buffer = io.StringIO()
    print_summary(cut, out=buffer)
    assert f"{ORACLE}: WARNING: {message}" in buffer.getvalue()
    gates = cut.check_gates(Gates(fail_on_drop=50))
    assert len(gates) == 1 and message in gates[0]
    files = cut.write_report(tmp_path)
    _assert_warned_first(tmp_path, ORACLE, message)
    assert files["html"].is_file()
    # the good run records the column, all False, and is not warned (test above)
    assert not good_run.results["hit_token_limit"].any()
    missing = RunResult(results=good_run.results.drop(columns=["hit_token_limit"]),
                        manifest=good_run.manifest)
    assert missing.warnings() == {}  # an older results file without the column: no cut


def test_repr_and_repr_html(good_run: RunResult) -> None:
    overview = good_run.overview().iloc[0]
    text = repr(good_run)
    first, second = text.splitlines()
    assert first == "RunResult(1 model, 30 items, 60 rows)"
    assert second == (f"  {ORACLE}: clean {overview['clean_score'] * 100:.1f}%, stress drop "
                      f"{overview['overestimation_pp']:+.1f} pp "
                      f"[{overview['overestimation_ci_low_pp']:+.1f}, "
                      f"{overview['overestimation_ci_high_pp']:+.1f}]")
    html = good_run._repr_html_()
    assert_inert(f"<html><body>{html}</body></html>")
    assert html.startswith('<div style="') and f"{ORACLE}&#x27;s clean score of" in html
    warned = RunResult(results=good_run.results.assign(hit_token_limit=True),
                       manifest=good_run.manifest)
    assert repr(warned).splitlines()[1].endswith(", 1 warning")
    box = warned._repr_html_()
    assert box.index("<strong>Warning:</strong>") < box.index("clean score of")


# ------------------------------------------------------------------ the rules themselves


def _clean_rows(model: str, n: int, n_right: int, *, task: str = "multiple_choice",
                answers=None, targets=None, **fields):
    rows = []
    for i in range(n):
        right = i < n_right
        answer = answers[i] if answers else ("A" if right else "B")
        rows.append(row(model, f"i{i:02d}", score=1.0 if right else 0.0, task=task,
                        response=answer, parsed=answer,
                        target=targets[i] if targets else "A", **fields))
    return rows


def test_chance_is_statistical_not_a_coin_flip() -> None:
    chance = {"multiple_choice": 0.25}
    # 10 of 20 right on 4 options clears chance; 7 of 20 (35%) does not
    above = V.validity_findings(frame(_clean_rows("m", 20, 10, answers=list("ABCD" * 5))),
                                chance=chance)
    assert [f.kind for f in above] == []
    at = V.validity_findings(frame(_clean_rows("m", 20, 7, answers=list("ABCD" * 5))),
                             chance=chance)
    assert [f.kind for f in at] == ["at_chance"]
    assert "35.0% (7 of 20 right), is not above chance (25.0%" in at[0].message
    # free answers: chance is 0, so only a score of 0 is "at chance"
    assert V.validity_findings(frame(_clean_rows("m", 20, 1, task="numeric",
                                                 answers=[str(i) for i in range(20)])),
                               chance={"numeric": 0.0}) == []
    zero = V.validity_findings(frame(_clean_rows("m", 20, 0, task="numeric",
                                                 answers=[str(i) for i in range(20)])))
    assert [f.kind for f in zero] == ["at_chance"] and "no clean answer is right" in zero[0].message
    # too few answers to judge
    assert V.validity_findings(frame(_clean_rows("m", V.MIN_ANSWERS - 1, 0))) == []


def test_constant_needs_varying_gold_and_the_threshold() -> None:
    answers = ["No"] * 18 + ["Yes"] * 2  # 90%: at the threshold
    targets = ["no", "yes"] * 10
    rows = _clean_rows("m", 20, 10, task="yes_no", answers=answers, targets=targets)
    kinds = [f.kind for f in V.validity_findings(frame(rows), chance={"yes_no": 0.5})]
    assert "constant" in kinds
    rows = _clean_rows("m", 20, 10, task="yes_no", answers=["No"] * 17 + ["Yes"] * 3,
                       targets=targets)
    assert "constant" not in [f.kind for f in V.validity_findings(frame(rows))]
    # a constant answer to constant gold is not a warning (the data decides it)
    rows = _clean_rows("m", 20, 20, task="yes_no", answers=["No"] * 20, targets=["no"] * 20)
    assert V.validity_findings(frame(rows), chance={"yes_no": 0.5}) == []


def test_unparseable_counts_clean_answers_only() -> None:
    rows = _clean_rows("m", 20, 15, answers=list("ABCD" * 5))
    for r in rows[:5]:
        r["unparseable"] = True  # 25% > 20%
    noisy = [row("m", f"i{i:02d}", "typos@0.8", score=0.0, unparseable=True) for i in range(20)]
    findings = V.validity_findings(frame(rows + noisy), chance={"multiple_choice": 0.25})
    assert [f.kind for f in findings] == ["unparseable"]
    assert findings[0].message.startswith("25.0% of its clean answers could not be parsed")
    for r in rows[:5]:
        r["unparseable"] = False
    # every noisy answer unparseable: a real effect of the noise, not a broken measurement
    assert V.validity_findings(frame(rows + noisy), chance={"multiple_choice": 0.25}) == []


def test_chance_levels_from_items_and_fallback() -> None:
    from perturbations import Item

    items = [Item(id="a", input="q?", target="A", choices=("x", "y"), task="multiple_choice"),
             Item(id="b", input="q?", target="A", choices=("x", "y", "z", "w"),
                  task="multiple_choice"),
             Item(id="c", input="q?", target="yes", task="yes_no"),
             Item(id="d", input="q?", target="x", task="classification",
                  metadata={"labels": ["x", "y", "z", "w", "v"]})]
    assert V.chance_levels(items) == {"multiple_choice": 0.375, "yes_no": 0.5,
                                      "classification": 0.2}
    # an old run without manifest["chance"]: the highest gold letter bounds the options
    rows = _clean_rows("m", 20, 7, targets=list("ABCD" * 5), answers=list("ABCD" * 5))
    assert [f.kind for f in V.validity_findings(frame(rows))] == ["at_chance"]


def test_no_change_is_a_note_not_a_warning(good_run: RunResult) -> None:
    flat = good_run.results.copy()
    flat.loc[flat["spec"] != "clean", "score"] = flat.loc[flat["spec"] != "clean",
                                                          "item_id"].map(
        flat.loc[flat["spec"] == "clean"].set_index("item_id")["score"])
    result = RunResult(results=flat, manifest=good_run.manifest)
    kinds = [f.kind for f in result.validity()]
    assert kinds == ["no_change"] and result.warnings() == {}


def test_rewrite_rejections_in_the_summary(good_run: RunResult) -> None:
    entries = [{"spec": "rewrite:persona=hurried", "n_items": 10, "n_accepted": 7,
                "n_rejected": 3, "rejected_by_reason": {"judge": 1, "empty": 2}},
               {"spec": "rewrite:persona=texting", "n_items": 10, "n_accepted": 10,
                "n_rejected": 0, "rejected_by_reason": {}}]
    lines = rewrite_notes(entries)
    assert lines == ["rewrite:persona=hurried: 7 of 10 rewrites kept, 3 rejected (empty 2, "
                     "judge 1); see rewrite_rejections.csv",
                     "rewrite:persona=texting: 10 of 10 rewrites kept, 0 rejected"]
    buffer = io.StringIO()
    print_summary(RunResult(results=good_run.results,
                            manifest={**good_run.manifest, "rewrites": entries}), out=buffer)
    assert buffer.getvalue().splitlines()[-2:] == lines


@pytest.mark.slow
def test_the_real_local_model_answering_no_to_everything_is_warned(tmp_path: Path,
                                                                   local_model_path) -> None:
    """Issue 19's case with the embedded SmolLM2: "No" to every yes/no passage question."""
    data = tmp_path / "yn.jsonl"
    sample = (ROOT / "robustify" / "data" / "sample.jsonl").read_text().splitlines()
    data.write_text("".join(line + "\n" for line in sample if '"yes_no"' in line))
    proc = _cli_run(tmp_path, data, "local:smollm2", "--limit", "10", "--fail-on-drop", "50")
    results = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    clean = [r["parsed"] for r in results if r["spec"] == "clean"]
    top = max(set(clean), key=clean.count)
    if clean.count(top) < 9:  # a future model that does the task: then no constant warning
        assert "same answer" not in proc.stdout
        return
    assert proc.returncode == 1, proc.stderr
    message = f"of its clean answers are the same answer ({top!r})"
    assert "local:smollm2: WARNING: " in proc.stdout and message in proc.stdout
    assert any("meaningless measurement" in ln and message in ln
               for ln in proc.stderr.splitlines())
    _assert_warned_first(tmp_path / "out", "local:smollm2", message)
