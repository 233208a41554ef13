"""Tests of robustify.reporting.document: one model, two renderers, nothing hostile goes live."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from robustify.reporting.document import (CSP, Diff, Document, Example, Figure, Heading,
                                          Paragraph, Table, frame_table, word_diff)
from robustify.reporting.format import escape_html

from .html_check import assert_inert
from .results_factory import HOSTILE_TEXTS

PNG = b"\x89PNG\r\n\x1a\nfake"
HOSTILE = [*HOSTILE_TEXTS, "<script>alert('x')</script>", "](javascript:alert(1))",
           "[x](javascript:alert(1))", "# heading", "> quote", "- item", "1. item",
           "![img](http://example.invalid/t.png)", "**bold** `code` | cell", "a\nb\r\nc"]


def hostile_document(text: str) -> Document:
    doc = Document(text)
    doc.heading(text, 2, anchor="sec")
    doc.heading(text, 3)
    for style in ("", "headline", "note", "muted"):
        doc.para(text, style)
    doc.table([text, "n"], [[text, 1], [None, float("nan")]], numeric=[1])
    doc.figure("chart_1", {"png": PNG}, alt=text, caption=text)
    doc.add([Example(text, ((text, text), ("diff", Diff.of(text, text + " " + text))))])
    return doc


@pytest.mark.parametrize("text", HOSTILE)
def test_html_never_makes_hostile_text_live(text):
    page = hostile_document(text).html()
    parser = assert_inert(page)
    assert escape_html(CSP) in page
    # shown, as text: the words of the payload survive in the visible text
    visible = "".join(parser.text)
    assert " ".join(text.split()) in " ".join(visible.split())


@pytest.mark.parametrize("text", HOSTILE)
def test_markdown_never_makes_hostile_text_live(text):
    md = hostile_document(text).markdown()
    lines = [line for line in md.splitlines() if line]
    # only the document's own headings: the title, one h2 and one h3
    assert [line.split(" ", 1)[0] for line in lines if line.startswith("#")] == ["#", "##", "###"]
    # paragraphs (and the headline's quote) never open another block
    own = ("#", "> ", "| ", "|---", "![", "*", "- **")
    for line in lines:
        body = line[2:] if line.startswith("> ") else line
        assert line.startswith(own) or not re.match(r"\s*([#>+*-]|\d+[.)]|!?\[)", body), line
    # no link or image but the document's own chart
    assert re.findall(r"(?<!\\)\]\([^)]*\)", md) == ["](charts/chart_1.png)"]
    # no HTML but the renderer's own line breaks and diff marks
    assert "<" not in re.sub(r"</?(del|ins)>|<br>", "", md)


def test_blocks_render_as_the_run_report_has_them():
    doc = Document("T")
    doc.heading("Sec", 2, "sec")
    doc.para("Head", "headline")
    doc.table(["a", "b"], [["x", "-1.5"]], numeric=[1])
    doc.figure("c", {"png": PNG, "svg": b"<svg/>"}, "alt", "cap")
    doc.add([Example("ex", (("f", "v"), ("d", Diff.of("a b", "a c"))))])
    page = doc.html()
    assert "<h1>T</h1>" in page and '<h2 id="sec">Sec</h2>' in page
    assert '<p class="headline">Head</p>' in page
    assert '<td>x</td><td class="num">-1.5</td>' in page
    assert '<figcaption>cap</figcaption>' in page
    assert "<dt>d</dt><dd>a <del>b</del><ins>c</ins></dd>" in page
    md = doc.markdown()
    assert md.startswith("# T\n\n## Sec\n\n> Head\n\n| a | b |\n|---|---:|\n| x | -1.5 |")
    assert "![alt](charts/c.png)\n\n*cap*" in md
    assert "- **d:** a <del>b</del><ins>c</ins>" in md
    assert "charts/c.svg" in doc.markdown("svg") and "charts/" not in doc.markdown(None)


def test_write_files(tmp_path):
    doc = Document("T")
    doc.figure("c", {"png": PNG, "svg": b"<svg/>"}, "alt", "cap")
    files = doc.write(tmp_path, "page", formats=("svg",))
    assert set(files) == {"html", "md", "chart_c_svg"}
    assert (tmp_path / "charts" / "c.svg").read_bytes() == b"<svg/>"
    assert "base64" in files["html"].read_text()          # the page embeds the PNG anyway
    assert "](charts/c.svg)" in files["md"].read_text()
    assert not list(tmp_path.rglob("*.tmp"))


def test_missing_cells_and_names():
    table = Table.of(["h"], [[None], [np.float32("nan")], [pd.NA], [3], [""]])
    assert [row[0] for row in table.rows] == ["–", "–", "–", "3", ""]
    with pytest.raises(ValueError):
        Figure("../evil", {"png": PNG}, "a", "c")
    with pytest.raises(ValueError):
        Paragraph("x", "danger")
    frame = pd.DataFrame({"m": ["a"], "v": [0.5]})
    t = frame_table(frame, [("model", "m"), ("value", "v", lambda v: f"{v:.2f}"),
                            ("both", ("m", "v"), lambda m, v: f"{m}={v}"),
                            ("none", "absent")], text={"model", "both"})
    assert t.headers == ("model", "value", "both", "none")
    assert t.rows == (("a", "0.50", "a=0.5", "–"),) and t.numeric == {1, 3}
    assert Heading("x").level == 2


def test_word_diff():
    assert word_diff("What is the capital?", "Waht is teh capital ?") == (
        "<del>What</del><ins>Waht</ins> is <del>the</del><ins>teh</ins> capital<ins> </ins>?")
    assert word_diff("a <b>", "a <i>") == "a &lt;<del>b</del><ins>i</ins>&gt;"
    assert word_diff(None, "x") == "<ins>x</ins>"
    assert word_diff(pd.NA, np.float32("nan")) == ""
