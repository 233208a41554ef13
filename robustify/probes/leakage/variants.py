"""What the leakage probe asks: the verbatim items and their rewrites, and completion prompts.

**Verbatim against rewritten.** :func:`verbatim_variants` returns every item verbatim
and in a few meaning-preserving rewrites (:data:`DEFAULT_REWRITES`: shuffled options,
WordNet synonyms, contractions, and :func:`reorder_clauses`, a clause reordering written
for the probe).

**Completion.** :func:`completion_variants` cuts each item's text at a seeded 40-60% of
its words; the model sees the first part (:func:`completion_messages`) and the rest is
kept as the target. Controls the model cannot have seen ride along: the same words
shuffled, and :data:`FRESH_CONTROLS`; :data:`KNOWN_TEXTS` are the positive control.
"""

from __future__ import annotations

import json
import logging
import random
from typing import Any, Sequence

from perturbations import Item, Variant, parse_spec, perturb
from perturbations.errors import ConfigError, MissingDependencyError
from perturbations.records import choice_letter
from perturbations.transforms.clause_order import reorder_clauses
from perturbations.version import __version__

__all__ = ["DEFAULT_REWRITES", "FRESH_CONTROLS", "KNOWN_TEXTS",
           "COMPLETION_SYSTEM", "reorder_clauses", "verbatim_variants", "probe_text",
           "completion_messages", "completion_variants", "check_cut"]

log = logging.getLogger(__name__)

DEFAULT_REWRITES: tuple[str, ...] = ("choice_shuffle@1", "clause_reorder@1", "contractions@1",
                                     "synonyms@0.5")
"""Meaning-preserving rewrites the verbatim probe asks besides the verbatim item.

``choice_shuffle@1`` moves every option (the gold letter is remapped); ``synonyms@0.5``
swaps about half the safe words for WordNet synonyms; ``contractions@1`` contracts
every long form; ``clause_reorder@1`` moves the clauses of every question a rule fits
(:func:`perturbations.transforms.clause_order.reorder_clauses`). All four are ordinary
registry specs. A rewrite that leaves an item unchanged is not asked."""

# --------------------------------------------------------------------- controls

FRESH_CONTROLS: tuple[Item, ...] = (
    Item(id="fresh-01", input="Which colour was the bicycle that Marta left outside the "
                              "corner bakery on Tuesday morning?", target="green"),
    Item(id="fresh-02", input="How many paper lanterns did the Okonkwo family hang along "
                              "the fence for the street party last summer?", target="14"),
    Item(id="fresh-03", input="What did the night porter at the Hotel Vesna find under the "
                              "piano after the wedding dinner ended?", target="a glove"),
    Item(id="fresh-04", input="Why did the ferry to Lindholm leave twenty minutes late on the "
                              "first windy day of the spring timetable?", target="fog"),
    Item(id="fresh-05", task="multiple_choice",
         input="Which tool did the village clockmaker borrow from the blacksmith before the "
               "autumn fair began?",
         choices=("A file", "A hammer", "A ladder", "A lamp"), target="C"),
    Item(id="fresh-06", task="multiple_choice",
         input="What kind of plant grew through the cracked floor of the old signal box "
               "near the river crossing?",
         choices=("A fern", "A rose", "An oak", "A cactus"), target="A"),
    Item(id="fresh-07", input="My parcel with two blue teapots was scanned in Rotterdam on "
                              "Friday, but the tracking page has not moved since, why?",
         target="shipping_status"),
    Item(id="fresh-08", input="If the choir of the Saint Aubin school has 23 singers and "
                              "nine of them are away at camp, how many can still sing on "
                              "Sunday?", target="14", task="numeric"),
    Item(id="fresh-09", input="Who carried the spare key to the lighthouse storeroom while "
                              "the keeper was visiting his sister in Tromso?", target="Ivar"),
    Item(id="fresh-10", input="Does the late bus from the harbour to the hospital stop at the "
                              "library on public holidays this winter?", target="no",
         task="yes_no"),
    Item(id="fresh-11", input="Which jam did the allotment society sell out of first at the "
                              "rainy open day in the old greenhouse?", target="plum"),
    Item(id="fresh-12", input="How long did the tailor on Kessel Lane need to shorten the "
                              "heavy winter coat of the retired pilot?", target="two days"),
)
"""Items written for this project in the style of short benchmark questions, with made-up
names and details: no model can have read them before this repository existed. They
are the completion probe's unseen reference (beside the shuffled controls)."""

KNOWN_TEXTS: tuple[Item, ...] = (
    Item(id="known-gettysburg", target="-",
         input="Four score and seven years ago our fathers brought forth on this continent, "
               "a new nation, conceived in Liberty, and dedicated to the proposition that all "
               "men are created equal."),
    Item(id="known-preamble", target="-",
         input="We the People of the United States, in Order to form a more perfect Union, "
               "establish Justice, insure domestic Tranquility, provide for the common "
               "defence, promote the general Welfare"),
    Item(id="known-hamlet", target="-",
         input="To be, or not to be, that is the question: Whether 'tis nobler in the mind "
               "to suffer the slings and arrows of outrageous fortune"),
    Item(id="known-dickens", target="-",
         input="It was the best of times, it was the worst of times, it was the age of "
               "wisdom, it was the age of foolishness, it was the epoch of belief"),
)
"""Public-domain texts every web-trained model has read many times: the positive control
showing what the completion figures look like for text that *was* seen."""


# ------------------------------------------------------------------ verbatim probe

def _content_key(item: Item) -> str:
    return json.dumps([item.input, item.context, list(item.choices or ()), item.target],
                      ensure_ascii=False)


def verbatim_variants(items: Sequence[Item], rewrites: Sequence[str] = DEFAULT_REWRITES, *,
                      seed: int = 0, replicates: int = 2,
                      notes: list[str] | None = None) -> list[Variant]:
    """The verbatim items and their distinct, changed, meaning-preserving rewrites.

    Args:
        items: Benchmark items.
        rewrites: Transform specs (any label-preserving spec of the registry).
            ``may_break`` transforms are refused: a rewrite that may change the answer
            is no evidence of memorisation.
        seed: Run seed for the transforms.
        replicates: Draws per random transform (choice shuffle gives a different order
            per replicate); deterministic rewrites are drawn once.
        notes: If given, receives one line per transform that could not run (WordNet
            missing, ...).

    Returns:
        ``Variant.clean`` of every item, then its rewrites. Rewrites that equal the
        verbatim item or an earlier rewrite of it are dropped: asking the same text
        twice is not two pieces of evidence.

    Raises:
        ConfigError: unknown or ``may_break`` spec.
    """
    parsed: list[Any] = []
    for spec in rewrites:
        ts = parse_spec(spec)
        if ts.label_policy == "may_break":
            raise ConfigError(f"rewrite {spec!r} may change the answer (label policy "
                              f"may_break); the leakage probe needs meaning-preserving rewrites")
        parsed.append(ts)
    out: list[Variant] = []
    skipped: set[str] = set()
    for item in items:
        out.append(Variant.clean(item, seed=seed, version=__version__))
        seen = {_content_key(item)}
        for spec in parsed:
            for rep in range(max(1, replicates)):
                try:
                    variant = perturb(item, spec, seed=seed, replicate=rep)
                except MissingDependencyError as exc:
                    if str(spec) not in skipped:
                        skipped.add(str(spec))
                        if notes is not None:
                            notes.append(f"rewrite {spec} skipped: {exc}")
                        log.warning("leakage: rewrite %s skipped: %s", spec, exc)
                    break
                if not variant.changed or _content_key(variant.item) in seen:
                    continue
                seen.add(_content_key(variant.item))
                out.append(variant)
    return out


# ---------------------------------------------------------------- completion probe
def probe_text(item: Item, *, include_choices: bool = True,
               include_context: bool = False) -> str:
    """The text of an item as a benchmark file would print it (what could have leaked).

    The question, then for multiple choice the options as ``A. text`` (``include_choices``),
    optionally preceded by the passage (``include_context``; off by default, since
    passages usually come from public sources the model read anyway).
    """
    parts = []
    if include_context and item.context:
        parts.append(item.context.strip())
    parts.append(item.input.strip())
    if include_choices and item.choices:
        parts.append(" ".join(f"{choice_letter(i)}. {c}" for i, c in enumerate(item.choices)))
    return " ".join(parts)


COMPLETION_SYSTEM = ("You continue texts. Reply with the words that come next in the text, "
                     "exactly as originally written, and nothing else.")
"""System message of the completion probe."""


def completion_messages(item: Item) -> list[dict[str, str]]:
    """Chat messages asking a model to continue ``item.input`` (the probe's prefix)."""
    return [{"role": "system", "content": COMPLETION_SYSTEM},
            {"role": "user", "content": "Continue this text:\n\n" + item.input}]


def check_cut(cut: Sequence[float]) -> tuple[float, float]:
    """``cut`` as ``(low, high)`` shares of words shown.

    Raises:
        ConfigError: unless 0 < low <= high < 1.
    """
    low, high = (float(v) for v in cut)
    if not 0.0 < low <= high < 1.0:
        raise ConfigError(f"cut must satisfy 0 < low <= high < 1, got {tuple(cut)!r}")
    return low, high


def _split_at(words: list[str], fraction: float) -> int:
    # At least 3 words shown and 3 to reproduce, whatever the fraction.
    return min(max(3, round(len(words) * fraction)), len(words) - 3)


def completion_variants(items: Sequence[Item], *, seed: int = 0,
                        cut: tuple[float, float] = (0.4, 0.6),
                        include_choices: bool = True, include_context: bool = False,
                        shuffled: bool = True, fresh: Sequence[Item] | None = FRESH_CONTROLS,
                        known: Sequence[Item] | None = KNOWN_TEXTS) -> list[Variant]:
    """Prefix/remainder prompts for the benchmark items and their controls.

    Each probe is a :class:`Variant` whose item holds the prefix as ``input`` and the
    true remainder as ``target``; ``metadata`` records ``group`` (benchmark, shuffled,
    fresh, known), ``source_id`` and the cut. The cut fraction is drawn per item,
    uniformly in ``cut``, from an RNG seeded by (seed, item id); the shuffled control of
    an item shuffles all its words with its own seeded RNG and is cut at the same word.
    Texts under 6 words are skipped.

    Args:
        items: Benchmark items.
        seed: Seeds the cuts and the shuffles.
        cut: Range of the share of words shown.
        include_choices, include_context: What :func:`probe_text` includes.
        shuffled: Add the word-shuffled control of every item.
        fresh: Unseen control items (default :data:`FRESH_CONTROLS`); ``None`` for none.
        known: Positive-control texts (default :data:`KNOWN_TEXTS`); ``None`` for none.
    """
    low, high = check_cut(cut)
    out: list[Variant] = []

    def add(group: str, source: Item, words: list[str], index: int, probe_id: str) -> None:
        prefix, remainder = " ".join(words[:index]), " ".join(words[index:])
        probe = Item(id=probe_id, input=prefix, target=remainder,
                     metadata={"group": group, "source_id": source.id,
                               "cut_words": index, "n_words": len(words)})
        out.append(Variant(item=probe, spec=f"completion:{group}", transform="completion",
                           severity=round(index / len(words), 6), seed=seed, replicate=0,
                           changed=True, edit_rate=0.0, label_policy="preserves",
                           version=__version__))

    def probe(group: str, source: Item, with_shuffle: bool) -> None:
        words = probe_text(source, include_choices=include_choices,
                           include_context=include_context).split()
        if len(words) < 6:
            return
        fraction = random.Random(f"{seed}\x1fcompletion-cut\x1f{source.id}").uniform(low, high)
        index = _split_at(words, fraction)
        add(group, source, words, index, source.id if group == "benchmark" else
            f"{group}:{source.id}")
        if with_shuffle:
            mixed = list(words)
            random.Random(f"{seed}\x1fcompletion-shuffle\x1f{source.id}").shuffle(mixed)
            add("shuffled", source, mixed, index, f"shuffled:{source.id}")

    for item in items:
        probe("benchmark", item, shuffled)
    for item in fresh or ():
        probe("fresh", item, False)
    for item in known or ():
        probe("known", item, False)
    return out
