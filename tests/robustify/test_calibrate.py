"""``calibrate`` end to end: real messages in a file, a profile out, variants that match.

The messages are the real typed chat turns shipped in perturbations/data (Taskmaster-3,
source and licence in CORPORA_SOURCE.txt). The CLI fits on the even-numbered half; the
variants that ``run``/``perturb`` then draw with ``--transforms profile:FILE`` are
checked against the odd-numbered half, which the fit never saw.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from perturbations import Item, perturb_items
from perturbations.realism import (clean_questions, distance, load_profile, measure,
                                   out_of_range, reference_corpora)
from perturbations.realism.compare import DISTANCE_FIELDS

from robustify.cli import main
from robustify.data.messages import read_messages

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def halves() -> tuple[list[str], list[str]]:
    chat = reference_corpora()["taskmaster3-chat"]
    return list(chat[0::2]), list(chat[1::2])


def test_cli_fit_reproduces_held_out_traffic(tmp_path: Path, halves, capsys,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    fit_half, held_out = halves
    # a relative profile path: the spec string (part of every variant's seed) is the same in
    # every run, so the check below is deterministic
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "tickets.csv"
    with source.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["ticket", "body"])
        writer.writerows(enumerate(fit_half))
    out = Path("support.yaml")
    assert main(["calibrate", "--from", str(source), "--map", "input=body", "--out",
                 str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{len(fit_half)} messages measured" in printed
    assert "real traffic" in printed and "mobile_typing@low" in printed
    assert "distance to real traffic" in printed
    profile = load_profile(out)
    assert profile.target.n == len(fit_half) and profile.parts

    items = [Item(id=f"q{i}", input=t, target="x") for i, t in enumerate(clean_questions())]
    # no --severity: one variant per item at the fitted level; 4 replicates (240 variants)
    # so that a few typos more or less do not decide the check
    variants = list(perturb_items(items, [f"profile:{out}"], seed=1, replicates=4))
    assert len(variants) == 4 * len(items)
    got = measure([v.item.input for v in variants], names_from=clean_questions())
    real = measure(held_out)
    # the words statistic is not fitted (noise is only added to the clean texts)
    typed = [f for f in DISTANCE_FIELDS if f != "words"]
    assert out_of_range(got, real, typed) == []
    assert distance(got, real, typed) < 0.8
    stressed = list(perturb_items(items, [f"profile:{out}"], severities=["high"], seed=1))
    assert distance(measure([v.item.input for v in stressed], names_from=clean_questions()),
                    real, typed) > 2 * distance(got, real, typed)


def test_api_calibrate_and_run_with_the_profile(tmp_path: Path, halves) -> None:
    import robustify

    fit_half, _ = halves
    cal = robustify.calibrate(fit_half, tmp_path / "p.yaml", compare=("typos@low",))
    assert cal.path == tmp_path / "p.yaml" and cal.spec == f"profile:{tmp_path / 'p.yaml'}"
    row = {r["statistic"]: r for r in cal.table}["distance to real traffic"]
    assert row["fitted"] < row["typos@low"]
    result = robustify.evaluate(data="sample", models=["python:tests.robustify.e2e_models:golden"],
                                transforms=[cal.spec], limit=10, cache="off", progress=False,
                                write=False)
    specs = set(result.results["spec"]) - {"clean"}
    assert len(specs) == 1 and specs.pop().startswith("profile:")  # one fitted level, no stress
    assert len(result.results) == 2 * 10


def test_messages_reader_errors_name_file_line_and_column(tmp_path: Path) -> None:
    from perturbations.errors import DataError

    text = tmp_path / "m.txt"
    text.write_text("hello there\n\n  \nwhere is my order\n", encoding="utf-8")
    assert read_messages(text) == ["hello there", "where is my order"]
    table = tmp_path / "m.jsonl"
    table.write_text('{"msg": "hi"}\n{"msg": 3}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"m.jsonl, line 2, field 'msg': expected text"):
        read_messages(table, column="msg")
    with pytest.raises(DataError, match="no message column found.*--map input=COLUMN"):
        read_messages(table)
    empty = tmp_path / "e.txt"
    empty.write_text("\n \n", encoding="utf-8")
    with pytest.raises(DataError, match="no message found"):
        read_messages(empty)


def test_cli_calibrate_bad_input_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "p.yaml"
    proc = subprocess.run([sys.executable, "-m", "robustify", "calibrate", "--from",
                           str(tmp_path / "missing.csv"), "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "missing.csv: file not found" in proc.stderr and not out.exists()


def test_report_states_realistic_first_and_shows_realism_and_variants(tmp_path: Path,
                                                                      halves) -> None:
    """Issue 16: every report has the realism table; the realistic drop is the headline."""
    import robustify

    ref = tmp_path / "traffic.txt"
    ref.write_text("\n".join(halves[1]) + "\n", encoding="utf-8")
    result = robustify.evaluate(data="sample", models=["python:tests.robustify.e2e_models:golden"],
                                transforms=["profile", "typos"], limit=20, cache="off",
                                realism_ref=ref, out=tmp_path / "run", progress=False)
    table = result.realism_table()
    assert {"real traffic (traffic.txt)", "clean items", "profile@fitted", "typos@0.8"} <= \
        set(table.columns)
    distance = table.loc["distance to real traffic (traffic.txt)"]
    assert distance["profile@fitted"] < distance["typos@0.8"]
    md = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    headline = next(line for line in md.splitlines() if "clean score of" in line)
    assert "under noise fitted to real typed messages (profile@fitted)" in headline
    assert "Under stress levels, heavier than people type (typos)" in headline
    assert "## Realism: is this the noise people type?" in md and "Dhakal" in md
    assert "## Variants: did the right answer survive?" in md
    assert md.index("## Realism") < md.index("## Variants") < md.index("## Run facts")
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert 'id="realism"' in html and 'id="variants"' in html
