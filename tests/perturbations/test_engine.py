"""perturb_items: the same variants, in the same order, whatever the number of workers."""

from __future__ import annotations

import itertools
import resource
import time

import pytest

from perturbations import Item, perturb, perturb_items
from perturbations.errors import ConfigError

WORDS = ("please tell me what the capital of france is and why it matters to people "
         "who travel there often for work").split()


def _items(n: int) -> list[Item]:
    return [Item(id=f"q{i:03d}", input=" ".join(WORDS[i % 7:i % 7 + 9 + i % 5]) + "?",
                 target="Paris") for i in range(n)]


SPECS = ["typos", "slang@high", "truncation@0.4", "whitespace+casing@medium"]


def test_two_workers_and_small_chunks_give_identical_bytes():
    items = _items(45)
    one = [v.to_json() for v in perturb_items(items, SPECS, seed=7, replicates=2)]
    two = [v.to_json() for v in perturb_items(items, SPECS, seed=7, replicates=2, workers=2,
                                              chunk_size=4)]
    # typos expands to three severities: (3 + 1 + 1 + 1) specs x 2 replicates per item
    assert len(one) == 45 * 6 * 2
    assert one == two
    # item order, then spec, then replicate; each equals the single-variant call
    first = perturb_items(items[:1], ["typos@low"], seed=7, replicates=2)
    assert [v.to_json() for v in first] == one[:2]
    assert one[0] == perturb(items[0], "typos@low", seed=7, replicate=0).to_json()


def _child_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)  # workers, once the pool is shut
    return used.ru_utime + used.ru_stime


def test_a_parallel_stream_reads_only_a_few_chunks_ahead_of_its_consumer():
    """A slow consumer: the pool must not perturb everything into memory meanwhile."""
    items = _items(4000)
    specs = ["typos@0.3", "typos@0.6", "slang@high", "whitespace+casing@medium"]
    before = _child_cpu()
    assert sum(1 for _ in perturb_items(items, specs, seed=1, workers=2, chunk_size=10)) \
        == 16000
    everything = _child_cpu() - before

    before = _child_cpu()
    stream = perturb_items(items, specs, seed=1, workers=2, chunk_size=10)
    head = list(itertools.islice(stream, 5))
    time.sleep(1.5)  # long enough for the workers to do all 400 chunks if allowed
    stream.close()
    ahead = _child_cpu() - before
    assert [v.item.id for v in head] == ["q000"] * 4 + ["q001"]
    # submitting every chunk up front (pool.map) made this equal to `everything`
    assert ahead < everything / 3, (ahead, everything)


def test_replicates_below_one_are_refused():
    with pytest.raises(ConfigError, match="replicates must be at least 1"):
        list(perturb_items(_items(2), ["typos"], replicates=0))


# ---------------------------------------------------------------- the guard in the engine

import dataclasses  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402

from perturbations import MAX_REDRAWS, Variant, VariantTally  # noqa: E402
from perturbations.transforms.casing import Casing  # noqa: E402

NEGATED = Item(id="neg", input="Which of these animals does NOT live in water, and why not?",
               target="x")


def _breaking(share: float):
    """A casing.apply that, with probability ``share`` per draw, invents a number."""
    original = Casing.apply

    def apply(self, item, severity, rng):
        out = original(self, item, severity, rng)
        if rng.random() < share:
            out = dataclasses.replace(out, input=out.input + " 7")
        return out
    return apply


def test_a_passing_first_draw_is_the_unguarded_draw() -> None:
    for spec in ("typos@high", "homophones@1", "fillers@0.8", "voice_transcript@high"):
        guarded = perturb(NEGATED, spec, seed=3)
        plain = perturb(NEGATED, spec, seed=3, guard=False)
        assert guarded.guard == "passed" and plain.guard == "unchecked"
        assert guarded.item == plain.item and guarded.guard_redraws == 0


def test_a_broken_draw_is_redrawn_deterministically(monkeypatch) -> None:
    monkeypatch.setattr(Casing, "apply", _breaking(0.5))
    variants = [perturb(NEGATED, "casing@high", seed=s) for s in range(40)]
    redrawn = [v for v in variants if v.guard == "redrawn"]
    assert redrawn and all(v.guard_redraws >= 1 for v in redrawn)
    assert all(v.guard_violations[0].startswith("number_added@input") for v in redrawn)
    assert all(" 7" not in v.item.input for v in variants if not v.dropped)
    again = [perturb(NEGATED, "casing@high", seed=s) for s in range(40)]
    assert [v.to_json() for v in again] == [v.to_json() for v in variants]


def test_a_variant_that_never_passes_is_dropped_and_counted(monkeypatch) -> None:
    monkeypatch.setattr(Casing, "apply", _breaking(1.0))
    v = perturb(NEGATED, "casing@high", seed=0)
    assert v.dropped and v.guard_redraws == MAX_REDRAWS and v.guard_violations
    items = _items(5)
    tally = VariantTally()
    assert list(perturb_items(items, ["casing@high"], tally=tally)) == []
    kept = list(perturb_items(items, ["casing@high"], include_dropped=True))
    assert len(kept) == 5 and all(v.dropped for v in kept)
    (row,) = tally.rows()
    assert (row["drawn"], row["kept"], row["dropped"], row["dropped_share"]) == (5, 0, 5, 1.0)
    assert row["violations"] == {"number_added": 5}


def test_guarded_stream_is_identical_across_workers() -> None:
    items = _items(30)
    specs = ["typos@1", "voice_transcript@high", "choice_shuffle@0.5"]
    one, two = VariantTally(), VariantTally()
    a = [v.to_json() for v in perturb_items(items, specs, seed=4, tally=one)]
    b = [v.to_json() for v in perturb_items(items, specs, seed=4, workers=2, chunk_size=7,
                                            tally=two)]
    assert a == b and one.rows() == two.rows()


def test_an_unchanged_variant_says_why_once(caplog) -> None:
    item = Item(id="plain", input="what is the capital of france", target="Paris")
    with caplog.at_level(logging.INFO, logger="perturbations.engine"):
        first = perturb(item, "choice_shuffle@high", seed=0)
        perturb(Item(id="other", input="hi there", target="x"), "choice_shuffle@high")
    assert not first.changed and first.skip_reason == "item has no choices"
    said = [r for r in caplog.records if "choice_shuffle cannot apply" in r.getMessage()]
    assert len(said) <= 1  # once per process (an earlier test may have said it already)
    assert perturb(item, "casing@high").skip_reason == "no word whose case the mode would change"
    assert perturb(item, "punctuation@high").skip_reason == "no punctuation the mode may touch"
    assert perturb(Item(id="c", input="name the capital of france", target="Paris"),
                   "contractions@high").skip_reason == "no phrase to contract or expand"
    drawn_nothing = perturb(Item(id="d", input="Is it red today?", target="x"), "typos@0.01")
    assert not drawn_nothing.changed and drawn_nothing.skip_reason is None


def test_choice_shuffle_reports_what_it_pinned() -> None:
    item = Item(id="mc", task="multiple_choice", input="Which are mammals?", target="D",
                choices=("Whale", "Bat", "Shark", "All of the above"))
    v = perturb(item, "choice_shuffle@1", seed=0)
    assert v.item.choices[-1] == "All of the above" and v.item.target == "D"
    assert v.notes == ("pinned: option refers to the options above or below it",)


def test_edit_rates_are_per_field() -> None:
    item = Item(id="ctx", input="Is the library open on Sunday mornings for students?",
                context="The city library opens at 9 a.m. on weekdays. " * 20, target="no")
    v = perturb(item, "typos@high", seed=1)
    edits = v.field_edits
    assert list(edits) == ["input"] and v.primary_field == "input"
    assert v.edit_rate == edits["input"]["chars"] > 0.02  # not diluted by the passage
    assert 0 < edits["input"]["words"] <= 1 and edits["input"]["eligible"] == 7
    assert v.nominal_word_rate == 0.4 and v.realised_word_rate == \
        round(edits["input"]["edited"] / 7, 6)
    both = perturb(item, "typos:fields=input|context@high", seed=1)
    assert set(both.field_edits) == {"input", "context"}
    shuffled = perturb(Item(id="c", input="Pick one.", target="A", task="multiple_choice",
                            choices=("alpha", "beta", "gamma")), "choice_shuffle@1", seed=0)
    assert shuffled.primary_field == "choices" and shuffled.edit_rate > 0


def test_variant_records_round_trip_and_old_rows_still_read() -> None:
    v = perturb(NEGATED, "voice_transcript@high", seed=2)
    row = v.to_dict()
    keys = list(row)
    assert keys[:13] == ["variant_id", "item_id", "spec", "transform", "severity",
                         "severity_label", "seed", "replicate", "changed", "edit_rate",
                         "label_policy", "version", "item"]
    assert keys[13:] == ["guard", "guard_redraws", "guard_violations", "skip_reason", "notes",
                         "field_edits", "nominal_word_rate"]
    assert Variant.from_dict(json.loads(v.to_json())) == v
    old = {k: row[k] for k in keys[:13]}
    back = Variant.from_dict(old)
    assert back.guard == "unchecked" and back.field_edits == {} and back.item == v.item
    assert back.variant_id == v.variant_id
