"""The report's "Browse every item" section: every item and variant, folded, no script.

The page forbids scripts (its CSP), so filtering is done by folding: one ``<details>``
per group (the clean items, then each transform), and inside a transform one per outcome
(right → wrong, right → unparseable, wrong → right, still right, still wrong, not scored),
each summary line with its counts. A reader opens only what they look for.

The section is kept proportional: at most :data:`BROWSE_MAX_ROWS` rows in all (each group
keeps its share), texts cut at :data:`BROWSE_TEXT_LIMIT` characters, and a note points to
``results.jsonl``, which holds every row in full. The Markdown twin leaves the section out.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from perturbations.records import CLEAN
from robustify.reporting.document import Block, Details, Heading, Paragraph, Table
from robustify.reporting.format import MISSING, is_missing, num, short

__all__ = ["BROWSE_MAX_ROWS", "BROWSE_TEXT_LIMIT", "OUTCOMES", "browse_blocks", "outcome"]

BROWSE_MAX_ROWS = 1500
"""Most rows the section shows; above it each group shows its share and a note says so."""
BROWSE_TEXT_LIMIT = 200
"""Characters of a question or an answer shown in a cell."""

OUTCOMES = ("right → wrong", "right → unparseable", "wrong → right", "still right",
            "still wrong", "not scored")
"""The outcome groups of a transform, in the order they are listed."""


def outcome(row: Any) -> str:
    """The outcome group of one paired row (see :data:`OUTCOMES`)."""
    return _outcome(row.get("flip"), row.get("unparseable"), row.get("score"))


def _outcome(flip: Any, unparseable: Any, score: Any) -> str:
    if flip is None or is_missing(flip):
        return "not scored"
    if flip == "right->wrong":
        return "right → unparseable" if bool(unparseable) else "right → wrong"
    if flip == "wrong->right":
        return "wrong → right"
    return "still right" if float(score) >= 0.5 else "still wrong"


def _answer(response: Any, parsed: Any) -> str:
    shown = "none" if is_missing(parsed) else short(parsed, 40)
    return f"{short(response, BROWSE_TEXT_LIMIT)} [parsed: {shown}]"


def _table(rows: pd.DataFrame, *, many_models: bool, clean: bool) -> Table:
    headers = ["item"] + (["model"] if many_models else [])
    if clean:
        headers += ["question", "gold", "answer", "score"]
    else:
        headers += ["variant", "noisy question", "gold", "clean answer", "noisy answer",
                    "score"]
    out = []
    for r in rows.to_dict("records"):
        cells = [str(r["item_id"])] + ([str(r["model"])] if many_models else [])
        if clean:
            cells += [short(r.get("input"), BROWSE_TEXT_LIMIT), short(r.get("target"), 60),
                      _answer(r.get("response"), r.get("parsed"))]
        else:
            cells += [f"{r['spec']} #{r['replicate']}", short(r.get("input"), BROWSE_TEXT_LIMIT),
                      short(r.get("target"), 60),
                      _answer(r.get("clean_response"), r.get("clean_parsed")),
                      _answer(r.get("response"), r.get("parsed"))]
        cells.append(MISSING if is_missing(r.get("score")) else num(r["score"]))
        out.append(cells)
    return Table.of(headers, out, numeric={len(headers) - 1})


def _shown(n: int, total: int) -> int:
    return n if total <= BROWSE_MAX_ROWS else max(1, math.ceil(n * BROWSE_MAX_ROWS / total))


def _count_line(n: int, shown: int) -> str:
    return f"{n}" if shown >= n else f"{n}, first {shown} shown"


def browse_blocks(results: pd.DataFrame, paired: pd.DataFrame) -> list[Block]:
    """The section's blocks: a heading, a note, the clean group and one group per transform."""
    if results is None or results.empty:
        return []
    many = results["model"].nunique() > 1
    clean = results.loc[results["spec"] == CLEAN]
    total = len(clean) + len(paired)
    blocks: list[Block] = [
        Heading("Browse every item", 2, "browse"),
        Paragraph("Every clean item and every variant with the model's answer and score, by "
                  "transform, then by what happened to the answer; open a line to see its "
                  "rows. results.jsonl holds every row in full (the Markdown report leaves "
                  "this section out).", "note")]
    if total > BROWSE_MAX_ROWS:
        blocks.append(Paragraph(f"{total} rows: each group shows its share of the first "
                                f"{BROWSE_MAX_ROWS}; the rest are in results.jsonl.", "note"))
    scores = pd.to_numeric(clean["score"], errors="coerce")
    shown = _shown(len(clean), total)
    blocks.append(Details(
        f"clean items: {_count_line(len(clean), shown)} rows, {int((scores >= 0.5).sum())} "
        f"right, {int(scores.isna().sum())} not scored",
        (_table(clean.head(shown), many_models=many, clean=True),)))
    if paired.empty:
        return blocks
    # three columns, not every row as a dict (Arrow text columns convert slowly)
    groups = paired.assign(__outcome=[
        _outcome(*values) for values in zip(paired["flip"], paired["unparseable"],
                                            paired["score"])])
    for transform in pd.unique(groups["transform"]):
        rows = groups.loc[groups["transform"] == transform]
        counts = rows["__outcome"].value_counts()
        inner: list[Block] = []
        for name in OUTCOMES:
            part = rows.loc[rows["__outcome"] == name]
            if part.empty:
                continue
            k = _shown(len(part), total)
            inner.append(Details(f"{name}: {_count_line(len(part), k)}",
                                 (_table(part.head(k), many_models=many, clean=False),)))
        tally = ", ".join(f"{counts[name]} {name}" for name in OUTCOMES if name in counts)
        blocks.append(Details(f"{transform}: {len(rows)} variants of "
                              f"{rows['item_id'].nunique()} items ({tally})", tuple(inner)))
    return blocks
