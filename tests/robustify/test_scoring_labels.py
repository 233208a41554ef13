"""The prepared label set reads every answer as rebuilding the label names per answer did."""

from __future__ import annotations

import random
import re
from typing import Any, Mapping

import pytest

from perturbations.records import Item
from robustify.records import Score
from robustify.scoring import normalize_text, score_answer
from robustify.scoring.labels import label_set

# --- the reference: the classification scorer as it was before preparation ------------


def _contains(haystack: str, needle: str) -> bool:
    return bool(needle) and re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", haystack) is not None


def _reference_names(item: Item) -> dict[str, list[str]]:
    aliases = item.metadata.get("aliases") or {}
    if not isinstance(aliases, Mapping):
        aliases = {item.target: list(aliases) if not isinstance(aliases, str) else [aliases]}
    labels = list(item.metadata.get("labels") or [])
    for label in [item.target, *aliases]:
        if label not in labels:
            labels.append(label)
    names: dict[str, list[str]] = {}
    for label in labels:
        extra = aliases.get(label, ())
        if isinstance(extra, str):
            extra = (extra,)
        spellings = [normalize_text(str(label), drop_articles=False)]
        spellings += [normalize_text(str(a), drop_articles=False) for a in extra]
        names[str(label)] = [s for s in dict.fromkeys(spellings) if s]
    return names


def _reference(item: Item, text: str) -> tuple[Any, ...]:
    answer = normalize_text(text, drop_articles=False)
    if not answer:
        return (0.0, None, True, {"reason": "empty"})
    names = _reference_names(item)
    for label, spellings in names.items():
        if answer in spellings:
            return (float(label == item.target), label, False, {"source": "exact"})
    starts = [label for label, spellings in names.items()
              if any(answer.startswith(s + " ") for s in spellings)]
    if len(starts) == 1:
        return (float(starts[0] == item.target), starts[0], False, {"source": "leading"})
    hits = {label: [s for s in spellings if _contains(answer, s)]
            for label, spellings in names.items()}
    hits = {label: found for label, found in hits.items() if found}
    mentioned = [label for label, found in hits.items()
                 if not all(any(other != label and f != g and _contains(g, f)
                                for other, gs in hits.items() for g in gs)
                            for f in found)]
    if len(mentioned) == 1:
        return (float(mentioned[0] == item.target), mentioned[0], False, {"source": "mention"})
    return (0.0, None, True, {"reason": "several labels" if mentioned else "no label",
                              "labels": mentioned})


def _as_tuple(score: Score) -> tuple[Any, ...]:
    return (score.value, score.parsed, score.unparseable, score.detail)


# --- a many-label set with nested and shared spellings ---------------------------------

TOPICS = ["card", "account", "order", "payment", "subscription", "app", "refund"]
ACTIONS = ["activate", "cancel", "status", "problem", "change", "lost", "fee", "limit",
           "delay", "verify", "close"]
LABELS = [f"{t}_{a}" for t in TOPICS for a in ACTIONS]  # 77 labels
ALIASES = {label: [label.replace("_", " ") + " issue", label.split("_")[1] + " " +
                   label.split("_")[0], "The " + label.split("_")[0].title()]
           for label in LABELS[::3]}
ALIASES["card_fee"] = ["fee", "card fee", "Fee!"]  # "fee" nested in "card fee"
WORDS = ["please", "my", "the", "is", "it", "or", "and", "I", "think", "Category:", "—",
         "card", "fee", "cancel", "status", "order", "refund", "issue", "ça", "ＣＡＲＤ"]


def _answers(rng: random.Random) -> list[str]:
    out = ["", "  ", "card_fee", "Card Fee", "fee", "FEE issue", "card fee please",
           "order status or order_cancel", "It is card_lost, not card_fee.",
           "the card", "The Card", "status card and more", "ＣＡＲＤ_ＦＥＥ", "card fee card"]
    spellings = LABELS + [a for values in ALIASES.values() for a in values]
    for _ in range(400):
        parts = [rng.choice(spellings if rng.random() < 0.4 else WORDS)
                 for _ in range(rng.randint(1, 6))]
        out.append(rng.choice([" ", "  ", ", ", "-"]).join(parts))
    return out


@pytest.mark.parametrize("aliases", [ALIASES, None, ["fee", "charge"]],
                         ids=["alias-map", "no-aliases", "flat-alias-list"])
def test_prepared_label_set_scores_exactly_as_before(aliases: Any) -> None:
    rng = random.Random(7)
    answers = _answers(rng)
    metadata: dict[str, Any] = {"labels": list(LABELS)}
    if aliases is not None:
        metadata["aliases"] = aliases
    items = [Item(id=f"i{k}", input="q", target=target, task="classification",
                  metadata=dict(metadata))
             for k, target in enumerate([LABELS[0], "card_fee", "not_a_label", LABELS[-1]])]
    sources = set()
    for item in items:
        for text in answers:
            got = _as_tuple(score_answer(item, text))
            assert got == _reference(item, text), (item.target, text)
            sources.add(got[3].get("source") or got[3].get("reason"))
    # every branch of the reading was exercised
    assert sources == {"exact", "leading", "mention", "several labels", "no label", "empty"}


def test_label_set_is_prepared_once_per_label_set() -> None:
    first = Item(id="a", input="q", target="card_fee", task="classification",
                 metadata={"labels": list(LABELS), "aliases": ALIASES})
    second = Item(id="b", input="other", target="order_status", task="classification",
                  metadata={"labels": list(LABELS), "aliases": dict(ALIASES)})
    other = Item(id="c", input="q", target="card_fee", task="classification",
                 metadata={"labels": LABELS[:10]})
    assert label_set(first) is label_set(second)  # equal label sets share one
    assert label_set(other) is not label_set(first)
    assert list(label_set(other).names) == LABELS[:10]
    # a target outside the labels joins the set, so it keys the memo too
    outside = Item(id="d", input="q", target="brand_new", task="classification",
                   metadata={"labels": list(LABELS)})
    assert list(label_set(outside).names)[-1] == "brand_new"
    assert "brand_new" not in label_set(first).names


def test_unhashable_labels_still_score() -> None:
    item = Item(id="u", input="q", target="yes", task="classification",
                metadata={"labels": ["yes", "no"], "aliases": {"yes": [{"odd": 1}]}})
    assert score_answer(item, "no").parsed == "no"
