"""Tests of the run report (robustify.reporting): files, numbers, escaping, the Markdown twin,
atomic writes, and the chart list it iterates."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
from perturbations.errors import ConfigError

import robustify.analysis as A
from robustify import reporting as R
from robustify.reporting import charts
from robustify.reporting.document import CSP, word_diff
from robustify.reporting.format import escape_html, escape_md
from robustify.reporting.results_io import jsonable, results_jsonl
from robustify._secrets import redact
from robustify.atomic import write_json_atomic

from .html_check import assert_inert, parse_html
from .results_factory import HOSTILE_TEXTS, frame, make_results, row

MODELS = ("local:smollm2", "openai:gpt-4o-mini")
HOSTILE_MODEL = "<b onmouseover=alert(1)>evil-model</b>"
SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz012345"
CHARTS = tuple(charts.names())


def hostile_results() -> pd.DataFrame:
    df = make_results(MODELS, n_items=12, seed=5, hostile=True,
                      clean_accuracy={MODELS[0]: 0.9, MODELS[1]: 0.7})
    # Hostile text in every place data reaches the page: model name, question, gold,
    # parsed answer and metadata.
    df.loc[df["model"] == MODELS[1], "model"] = HOSTILE_MODEL
    item = df["item_id"] == "item-002"
    df.loc[item, "input"] = df.loc[item, "input"] + " " + HOSTILE_TEXTS[2]
    df.loc[item & (df["spec"] != "clean"), "score"] = 0.0
    df.loc[item & (df["spec"] != "clean"), "response"] = HOSTILE_TEXTS[1]
    df.loc[item & (df["spec"] == "clean"), "score"] = 1.0
    df.loc[df["meta.difficulty"] == "easy", "meta.difficulty"] = "<script>alert('meta')</script>"
    return df


MANIFEST = {
    "seed": 0, "data": [{"path": "sample", "name": None}],
    "models": [{"label": "openai:gpt-4o-mini", "api_key_env": "OPENAI_API_KEY",
                "identity": {"base_url": "https://user:hunter2@example.invalid/v1"}}],
    "api_key": SECRET, "note": f"Authorization: Bearer {SECRET}",
    "title_note": "<script>alert('manifest')</script>",
}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    df = hostile_results()
    files = R.write_report(df, out, title="Robustness <report>", manifest=MANIFEST, n_boot=300)
    return out, df, files


def test_files_written(written):
    out, _, files = written
    expected = {"html", "md", "summary_csv", "results_csv", "results_jsonl"}
    expected |= {f"chart_{c}_{f}" for c in CHARTS for f in ("png", "svg")}
    assert set(files) == expected
    for key, path in files.items():
        assert path.is_file() and path.stat().st_size > 0, key
        assert path.parent in (out, out / "charts")
    assert (out / "charts" / "heatmap.svg").read_text().lstrip().startswith("<?xml")
    assert (out / "charts" / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_temp_files_left(written):
    out, _, _ = written
    leftovers = [p.name for p in out.rglob("*") if p.name.startswith(".") or
                 p.name.endswith(".tmp")]
    assert leftovers == []


def test_headline_matches_model_overview(written):
    out, df, _ = written
    page = (out / "report.html").read_text()
    overview = A.model_overview(df, n_boot=300, seed=0)
    first = overview.iloc[0]
    # this frame has no realistic level: the headline says the noise is stress, and why
    sentence = (f"On sample, {MODELS[0]}&#x27;s clean score of {first['clean_score'] * 100:.1f}% "
                f"overstates its score under stress noise (typos, slang) by "
                f"{first['overestimation_pp']:.1f} pp (95% CI "
                f"{first['overestimation_ci_low_pp']:.1f} to "
                f"{first['overestimation_ci_high_pp']:.1f} pp). This run has no realistic level")
    assert first["overestimation_pp"] > 0
    assert f'<div class="headline"><p>{sentence}' in page
    md = (out / "report.md").read_text()
    headline = next(line for line in md.splitlines() if "clean score of" in line)
    assert "'s clean score of" in headline  # Markdown text keeps its quotes
    assert "truncation" not in sentence  # may_break transforms stay out of the headline


def test_summary_csv_matches_summarize(written):
    out, df, _ = written
    saved = pd.read_csv(out / "summary.csv")
    expected = A.summarize(df, n_boot=300, seed=0)
    assert list(saved.columns) == list(expected.columns)
    for column in ("drop_pp", "ci_low_pp", "ci_high_pp", "p_value", "consistency"):
        assert saved[column].fillna(-1).round(9).tolist() == \
            expected[column].fillna(-1).round(9).tolist(), column
    html_page = (out / "report.html").read_text()
    r0 = expected.iloc[0]
    assert f"[{r0['ci_low_pp']:+.1f}, {r0['ci_high_pp']:+.1f}]" in html_page


def test_page_has_strict_csp_and_no_active_content(written):
    out, _, _ = written
    page = (out / "report.html").read_text()
    assert (f'<meta http-equiv="Content-Security-Policy" content="{CSP.replace(chr(39), "&#x27;")}">'
            in page)
    assert "default-src &#x27;none&#x27;; img-src data:; style-src &#x27;unsafe-inline&#x27;" in page
    parsed = assert_inert(page)
    assert sum(tag == "img" for tag, _ in parsed.tags) == len(CHARTS)


@pytest.mark.parametrize("payload", [*HOSTILE_TEXTS, HOSTILE_MODEL,
                                     "<script>alert('meta')</script>"])
def test_hostile_strings_appear_only_escaped(written, payload):
    out, _, _ = written
    page = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    assert payload not in page and payload not in md
    escaped = escape_html(payload)
    assert escaped in page, f"{payload!r} not shown at all"
    # The page's visible text shows the payload verbatim, as text.
    assert payload in "".join(parse_html(page).text)
    for raw in ("<script", "<img src=x", '<a href="javascript', "<b onmouseover"):
        assert raw not in page
        assert raw not in md


def test_no_secret_in_any_output(written):
    out, _, _ = written
    for name, escape in (("report.html", escape_html), ("report.md", escape_md)):
        text = (out / name).read_text()
        assert SECRET not in text and "hunter2" not in text
        # run facts are a short table of what was run, not the manifest flattened
        assert escape("openai:gpt-4o-mini") in text and "example.invalid" not in text


def test_markdown_twin(written):
    out, _, _ = written
    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    assert md.startswith("# Robustness &lt;report&gt;\n")
    h2_html = re.findall(r"<h2[^>]*>(.*?)</h2>", page)
    h2_md = re.findall(r"^## (.*)$", md, flags=re.M)
    assert h2_md == h2_html and "Examples of flipped answers" in h2_md
    images = re.findall(r"!\[[^\]]*\]\((charts/[^)]+)\)", md)
    assert images == [f"charts/{c}.png" for c in CHARTS]
    assert all((out / p).is_file() for p in images)
    assert "<del>" in md and "<ins>" in md
    assert "| model | items | variants |" in md


def test_examples_show_diff_and_both_answers(written):
    out, df, _ = written
    page = (out / "report.html").read_text()
    assert "<h4>right → wrong: local:smollm2 on item-" in page
    assert re.search(r"<dt>perturbed</dt><dd>[^<]*(<del>|<ins>)", page)
    assert "<dt>clean answer</dt>" in page and "<dt>noisy answer</dt>" in page


def test_results_jsonl_round_trip(written):
    out, df, _ = written
    loaded, manifest = R.load_results(out)
    assert manifest == {}
    assert list(loaded.columns) == list(df.columns)
    assert len(loaded) == len(df)
    assert loaded["score"].isna().sum() == df["score"].isna().sum()
    assert loaded["response"].tolist()[:5] == df["response"].tolist()[:5]
    pd.testing.assert_frame_equal(A.summarize(loaded, n_boot=50), A.summarize(df, n_boot=50))
    first = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    assert first == json.loads(json.dumps(jsonable(df.iloc[0].to_dict())))
    assert first["model"] == MODELS[0] and first["meta.domain"] == "science"
    csv = pd.read_csv(out / "results.csv")
    assert len(csv) == len(df) and list(csv.columns) == list(df.columns)


SECRET_NAMES = ("api_key", "models.0.api_key", "x-api-key", "access_token", "client_secret",
                "password", "credentials", "Authorization", "apikey", "apiKey", "accessToken",
                "clientSecret", "secretKey", "openaiApiKey", "OPENAI_API_KEY", "secrets.openai",
                "api_key.value", "auth", "bearer", "private_key", "privateKey", "pwd", "Cookie",
                "session_token", "authToken", "key")
HARMLESS_NAMES = ("models.0.identity.params.max_tokens", "tokens_in", "api_key_env",
                  "models.0.api_key_env", "secretary", "keyboard", "seed", "author",
                  "dataset_hash", "keys", "repeat_penalty", "top_p")


def test_job_files_refuse_exactly_the_names_reports_hide():
    """One rule: a parameter name the job check accepts is never one a report would hide."""
    from robustify.pipeline.jobfile import check_param_name

    for name in SECRET_NAMES:
        with pytest.raises(ConfigError, match="looks like a credential"):
            check_param_name(name)
    for name in ("max_tokens", "tokens_in", "repeat_penalty", "top_p", "seed", "keyboard"):
        check_param_name(name)
        assert redact("x", name) == "x"


def test_redaction_hides_credentials_not_token_counts():
    for key in ("api_key", "models.0.api_key", "x-api-key", "access_token", "client_secret",
                "password", "credentials", "Authorization", "apikey", "apiKey", "accessToken",
                "clientSecret", "secretKey", "openaiApiKey", "OPENAI_API_KEY", "secrets.openai",
                "api_key.value", "auth", "bearer", "private_key", "privateKey", "pwd", "Cookie",
                "session_token"):
        assert redact("abc123", key) == "[redacted]", key
    for key in ("models.0.identity.params.max_tokens", "tokens_in", "api_key_env",
                "models.0.api_key_env", "secretary", "keyboard", "seed", "author",
                "dataset_hash", "keys"):
        assert redact("48", key) == "48", key
    assert redact("sk-" + "a" * 24, "note") == "[redacted]"  # by its shape, any key


def test_rebuild_report_is_identical(tmp_path):
    df = make_results(MODELS, n_items=10, seed=9)
    # insertion order differs from manifest.json's sorted keys, as in a real run
    manifest = {"title": "robustify report: sample", "seed": 0,
                "models": [{"label": "m", "identity": {"params": {"top_p": None, "seed": 0}}}],
                "counts": {"rows": 20, "failed": 0}}
    first = tmp_path / "run"
    files = R.write_report(df, first, title=manifest["title"], manifest=manifest, n_boot=200)
    write_json_atomic(first / "manifest.json", manifest)
    original = {k: p.read_bytes() for k, p in files.items()}
    rebuilt = R.rebuild_report(first, out_dir=tmp_path / "again", n_boot=200)
    assert set(rebuilt) == set(files)
    for key in files:   # byte for byte, charts and the HTML included
        assert rebuilt[key].read_bytes() == original[key], key
    in_place = R.rebuild_report(first, n_boot=200)
    assert in_place["html"] == first / "report.html"
    assert in_place["html"].read_bytes() == original["html"]


def test_rebuild_reads_noise_floor(tmp_path):
    df = make_results(MODELS[:1], n_items=6, seed=1, transforms=("typos",))
    R.write_report(df, tmp_path, title="t", n_boot=0)
    clean = df[df["spec"] == "clean"]
    repeats = pd.concat([clean.assign(repeat=1), clean.assign(repeat=2, score=0.0)])
    (tmp_path / "noise_floor.jsonl").write_text(results_jsonl(repeats))
    files = R.rebuild_report(tmp_path, n_boot=0)
    page = files["html"].read_text()
    assert "<h3>Noise floor</h3>" in page
    assert "<h1>robustify report: this benchmark</h1>" in page


def test_missing_run_folder_is_a_data_error(tmp_path):
    from perturbations.errors import DataError

    with pytest.raises(DataError, match="no results.jsonl"):
        R.rebuild_report(tmp_path)
    (tmp_path / "results.jsonl").write_text('{"model": "m"}\nnot json\n')
    with pytest.raises(DataError, match="line 2"):
        R.load_results(tmp_path)


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    df = make_results(MODELS[:1], n_items=5, transforms=("typos",))
    R.write_report(df, tmp_path, title="first", n_boot=0, formats=())
    before = (tmp_path / "report.html").read_text()

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr("robustify.atomic.os.fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        R.write_report(df, tmp_path, title="second", n_boot=0, formats=())
    assert (tmp_path / "report.html").read_text() == before
    assert [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")] == []


def test_formats_and_clean_only_runs(tmp_path):
    df = make_results(MODELS[:1], n_items=4, transforms=("typos",))
    files = R.write_report(df, tmp_path / "svg", title="t", n_boot=0, formats=("svg",))
    assert not any(k.endswith("_png") for k in files)
    assert "](charts/heatmap.svg)" in files["md"].read_text()
    clean_only = df[df["spec"] == "clean"]
    files = R.write_report(clean_only, tmp_path / "clean", title="t", n_boot=0)
    page = files["html"].read_text()
    assert "no perturbed rows" in page and "<img" not in page


def test_word_diff_exact():
    assert word_diff("What is the capital?", "Waht is teh capital ?") == (
        "<del>What</del><ins>Waht</ins> is <del>the</del><ins>teh</ins> capital<ins> </ins>?")
    assert word_diff("a <b>", "a <i>") == "a &lt;<del>b</del><ins>i</ins>&gt;"
    assert word_diff(None, "x") == "<ins>x</ins>"
    assert word_diff("same", "same") == "same"


def test_redact():
    assert redact(SECRET) == "[redacted]"
    assert redact("token value", key="hf_token") == "[redacted]"
    assert redact("OPENAI_API_KEY", key="api_key_env") == "OPENAI_API_KEY"
    assert redact("http://u:p@host/v1") == "http://[redacted]@host/v1"
    assert redact("a" * 64) == "a" * 64  # dataset hashes stay


def test_figure_size_grows_with_content():
    def size(name, m, t):
        return charts.get(name).size(m, t)

    small = size("drop_by_transform", 2, 3)
    big = size("drop_by_transform", 4, 12)
    assert big[0] > small[0]
    assert size("heatmap", 10, 4)[1] > size("heatmap", 2, 4)[1]
    assert size("overestimation", 8, 1)[1] > size("overestimation", 2, 1)[1]
    assert size("drop_by_transform", 20, 40)[0] <= 24.0
    assert size("severity_curves", 4, 1)[1] > size("severity_curves", 3, 1)[1]


def test_relative_drop_undefined_shows_dash(tmp_path):
    rows = []
    for i in range(3):
        rows += [row("m", f"q{i}", "clean", 0.0), row("m", f"q{i}", "typos@0.5", 0.0)]
    files = R.write_report(frame(rows), tmp_path, title="zero", n_boot=0, formats=())
    saved = pd.read_csv(files["summary_csv"])
    assert math.isnan(saved["relative_drop"].iloc[0])
    assert "<td class=\"num\">–</td>" in files["html"].read_text()


def test_api_result_object_can_write(tmp_path):
    # RunResult.write_report passes noise_floor=...; keep that signature working.
    df = make_results(MODELS[:1], n_items=4, transforms=("typos",))
    files = R.write_report(df, Path(tmp_path), title="t", manifest={}, noise_floor=None,
                           n_boot=0, formats=())
    assert files["html"].is_file()
