"""Tests of robustify.reporting.format: one rule for missing values, numbers and escaping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from robustify.reporting import format as F

MISSING_VALUES = [None, float("nan"), np.float32("nan"), np.float64("nan"), pd.NA, pd.NaT]
NUMBER_HELPERS = [F.pct, F.pp, F.pvalue, F.num, lambda x: F.ci(x, 1.0), lambda x: F.ci(1.0, x)]
TEXT_HELPERS = [F.short, F.truncate, F.escape_html, F.escape_md,
                lambda x: F.escape_md(x, line_start=False)]


@pytest.mark.parametrize("value", MISSING_VALUES, ids=repr)
def test_every_helper_treats_every_missing_value_alike(value):
    assert F.is_missing(value)
    for helper in NUMBER_HELPERS:
        assert helper(value) == F.MISSING
    for helper in TEXT_HELPERS:
        assert helper(value) == ""


@pytest.mark.parametrize("value", [0, 0.0, np.float32(0.25), np.int64(3), "x", "", "nan", [1]])
def test_present_values_are_not_missing(value):
    assert not F.is_missing(value)


def test_numbers():
    assert F.pct(0.123) == "12.3%" and F.pct(np.float32(0.5)) == "50.0%"
    assert F.pct(1, digits=0) == "100%"
    assert F.pp(2.345) == "+2.3" and F.pp(-0.04) == "+0.0" and F.pp(-1.25, sign=False) == "-1.2"
    assert F.ci(-1.24, 3.46) == "[-1.2, +3.5]"
    assert F.pvalue(0.0004) == "<0.001" and F.pvalue(0.05) == "0.050"
    assert F.num(3) == "3" and F.num(np.int64(7)) == "7" and F.num(2.0) == "2"
    assert F.num(0.123456) == "0.123"


def test_text():
    assert F.short("a  b\n c") == "a b c"
    assert F.short("x" * 10, limit=5) == "xxxx…"
    assert F.truncate("word " * 200, limit=20).endswith(" …")
    assert F.truncate("short") == "short"


HOSTILE = ["<script>alert(1)</script>", "[click](javascript:alert(1))", "# heading",
           "> quote", "- item", "1. item", "**bold** _it_ `code` | pipe ~strike~",
           "<img src=x onerror=alert(1)>", "line\nbreak"]


@pytest.mark.parametrize("text", HOSTILE)
def test_escape_html_leaves_no_markup(text):
    out = F.escape_html(text)
    assert "<" not in out and ">" not in out and '"' not in out and "'" not in out


@pytest.mark.parametrize("text", HOSTILE)
def test_escape_md_leaves_no_markup(text):
    out = F.escape_md(text)
    assert "<script" not in out and "<img" not in out
    assert "](" not in out.replace("\\](", "")       # no link can close
    assert not out.startswith(("#", ">", "-", "+", "1.")), out
    assert "\n" not in out
    for mark in "*_`|~[]":
        assert mark not in out.replace("\\" + mark, "")


def test_escape_md_inside_a_line_keeps_signs_readable():
    assert F.escape_md("-3.2", line_start=False) == "-3.2"
    assert F.escape_md("-3.2") == "\\-3.2"
    assert F.escape_md("the model's answer") == "the model's answer"
