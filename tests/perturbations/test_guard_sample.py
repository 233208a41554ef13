"""The guard on the built-in sample (robustify/data/sample.jsonl), every transform at every
severity: no kept variant breaks it, none has to be dropped, and the transforms fixed
for issue 15 pass it at the first draw."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from perturbations import Item, VariantTally, perturb, perturb_items, transform_names
from perturbations.guard import check_variant

SAMPLE = Path(__file__).resolve().parents[2] / "robustify" / "data" / "sample.jsonl"
SEVERITIES = (0.2, 0.5, 0.8, 1.0)
FIXED = ("casing", "punctuation", "contractions", "homophones", "fillers", "synonyms",
         "numbers", "choice_shuffle", "voice_transcript", "mobile_typing")


@pytest.fixture(scope="module")
def items() -> list[Item]:
    # read as JSONL rows of perturbations.Item: the lower layer never imports robustify
    with SAMPLE.open(encoding="utf-8") as fh:
        return [Item.from_dict(json.loads(line)) for line in fh if line.strip()]


@pytest.fixture(scope="module")
def drawn(items: list[Item]) -> tuple[list, VariantTally]:
    tally = VariantTally()
    variants = list(perturb_items(items, transform_names(), severities=SEVERITIES, seed=0,
                                  tally=tally, include_dropped=True))
    return variants, tally


def test_no_kept_variant_breaks_the_guard(items: list[Item], drawn) -> None:
    variants, _ = drawn
    by_id = {item.id: item for item in items}
    assert len(variants) == len(items) * len(transform_names()) * len(SEVERITIES)
    broken = [(v.spec, v.item_id, [str(x) for x in check_variant(by_id[v.item_id], v.item,
                                                                  v.label_policy)])
              for v in variants if not v.dropped]
    assert [b for b in broken if b[2]] == []


def test_nothing_is_dropped_and_redraws_are_rare(drawn) -> None:
    _, tally = drawn
    rows = tally.rows()
    assert sum(r["dropped"] for r in rows) == 0
    assert sum(r["redrawn"] for r in rows) <= 5, [(r["spec"], r["violations"]) for r in rows
                                                   if r["redrawn"]]


@pytest.mark.parametrize("name", FIXED)
@pytest.mark.parametrize("severity", SEVERITIES)
def test_fixed_transforms_pass_at_the_first_draw(items: list[Item], name: str,
                                                 severity: float) -> None:
    broken = []
    for item in items:
        v = perturb(item, f"{name}@{severity}", seed=0, guard=False)
        broken += [str(x) for x in check_variant(item, v.item, v.label_policy)]
    assert broken == []


def test_no_silent_no_ops(drawn) -> None:
    _, tally = drawn
    rows = {r["spec"]: r for r in tally.rows()}
    shuffle = rows["choice_shuffle@0.5"]
    assert shuffle["unchanged_share"] == 0.8  # 80 of the 100 items have no choices
    assert shuffle["skip_reasons"] == {"item has no choices": 80}
    for row in rows.values():
        assert 0.0 <= row["unchanged_share"] <= 1.0
        assert row["cannot_apply"] <= row["unchanged"]
    assert rows["typos@0.5"]["nominal_word_rate"] == 0.25
    assert 0.1 < rows["typos@0.5"]["realised_word_rate"] < 0.4
