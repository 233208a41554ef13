"""Leakage probe: is a model's benchmark score partly memory of the benchmark itself?

Two probes, both *signals, not proof*:

**Verbatim against rewritten.** Every item is asked verbatim and in a few
meaning-preserving rewrites (shuffled options, WordNet synonyms, contractions, a
clause reordering written here, optionally model-written paraphrases from
:mod:`robustify.probes.rewrite`). An item the model answers right verbatim and wrong in *every*
one of its rewrites is a *memorisation suspect*. Some suspects arise by chance: a model
that is shaky on an item is right on one of its versions now and then, and that
version is the verbatim one with probability 1/(k+1). The chance baseline is therefore
an exact within-item permutation: if "verbatim" were just a label stuck at random on
one of the item's k+1 versions, an item with exactly one right version would be a
suspect with probability 1/(k+1) and any other item never. The expected number of
suspects is the sum of those probabilities; its distribution is Poisson-binomial, which
gives an exact one-sided p-value and the 95% chance range. A model with more suspects
than chance answers the verbatim wording better than its own rewrites: the pattern
memorisation leaves. Rewrites that are simply harder (a clumsy synonym) raise the
count too, which is why the wording everywhere says *suspect*.

**Completion.** The model sees the first 40-60% of an item's words (a seeded cut) and
is asked to continue. Its continuation is compared with the true remainder: the share
of the remainder's word n-grams it reproduces, how many leading words it gets exactly,
and a character similarity (rapidfuzz ratio). The figures mean something only against
controls the model cannot have seen: the same items with their words shuffled (seeded,
same cut, paired item by item) and a few fresh items written for this project.
Famous public-domain openings (the Gettysburg Address, ...) serve as a positive control
showing what reproduction of a text the model did see looks like.

>>> result = probe_leakage("sample", ["local:smollm2"], limit=20)   # doctest: +SKIP
>>> result.verbatim_summary[["model", "suspect_rate", "chance_rate", "p_value"]]  # doctest: +SKIP
>>> result.write_report("reports/leakage")                          # doctest: +SKIP

CLI: ``python -m robustify leakage --data sample --model local:smollm2 --limit 40``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import os
import random
import re
import textwrap
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from statistics import NormalDist
from string import Template
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from perturbations import Item, Variant, perturb
from perturbations.errors import ConfigError, MissingDependencyError
from perturbations.records import choice_letter
from perturbations.version import __version__

from robustify.atomic import write_bytes_atomic, write_text_atomic
from robustify.analysis.stats import group_rng, poisson_binomial_pmf, wilson_interval
from robustify.records import GenerationParams, Score

if TYPE_CHECKING:
    from matplotlib.axes import Axes


__all__ = [
    "DEFAULT_REWRITES",
    "CLAUSE_REORDER",
    "FRESH_CONTROLS",
    "KNOWN_TEXTS",
    "LeakageResult",
    "ReportDoc",
    "probe_leakage",
    "reorder_clauses",
    "verbatim_variants",
    "verbatim_item_stats",
    "verbatim_summary",
    "poisson_binomial_pmf",
    "wilson_interval",
    "probe_text",
    "completion_variants",
    "completion_messages",
    "completion_metrics",
    "completion_item_stats",
    "completion_summary",
    "plot_suspects",
    "plot_completion",
    "write_leakage_report",
]

log = logging.getLogger(__name__)

DEFAULT_REWRITES: tuple[str, ...] = ("choice_shuffle@1", "clause_reorder", "contractions@1",
                                     "synonyms@0.5")
"""Meaning-preserving rewrites the verbatim probe asks besides the verbatim item.

``choice_shuffle@1`` moves every option (the gold letter is remapped); ``synonyms@0.5``
swaps about half the safe words for WordNet synonyms; ``contractions@1`` contracts
every long form; ``clause_reorder`` is :func:`reorder_clauses`. A rewrite that leaves an
item unchanged is not asked."""

CLAUSE_REORDER = "clause_reorder"
"""Spec recorded for :func:`reorder_clauses` rewrites (not a registered transform: it
has no severity scale, and lives here because only the probe needs it)."""

PROBES = ("verbatim", "completion")
"""Probe names accepted by :func:`probe_leakage`."""

GROUPS = ("benchmark", "shuffled", "fresh", "known")
"""Completion-probe groups: the benchmark items, their word-shuffled controls, fresh
items written for this project, famous texts (positive control)."""

_Z95 = NormalDist().inv_cdf(0.975)

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


# ------------------------------------------------------------------ clause reordering

_QUESTION_START = frozenset(
    "how what which who whom whose where when why is are was were do does did can could "
    "will would should shall may might must has have had am".split())
_SUBORDINATE = frozenset("if when because although though since while unless once".split())
_SUBJECT_START = frozenset("i we you they he she it my our your please this".split())
_LOWERABLE = _QUESTION_START | _SUBORDINATE | frozenset(
    "the a an my our your please there each every this that these those it we you they "
    "he she".split())
_PREPOSITIONS = ("according to", "in", "at", "on", "by", "for", "from", "during", "within",
                 "after", "before", "across", "without", "with", "under", "over", "near",
                 "around", "inside", "until")
_CLAUSE_MARKERS = frozenset("to that which who whom where when if because while and or but "
                            "so than".split())
_PP = re.compile(r"\s(" + "|".join(re.escape(p) for p in _PREPOSITIONS) + r")\s", re.IGNORECASE)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _decap(text: str) -> str:
    # Only lower a first word we know is not a name ("Tom has ..." must keep "Tom").
    first = text.split(" ", 1)[0]
    if first.lower() in _LOWERABLE and first != "I":
        return first.lower() + text[len(first):]
    return text


def _verb_form(word: str) -> bool:
    word = word.lower()
    return len(word) > 4 and word.endswith(("ed", "ing", "en"))


def reorder_clauses(text: str) -> str | None:
    """Reorder the clauses of a question without changing what it asks.

    Rules, first match wins:

    1. Several sentences ending in a question: the question moves first
       ("A pack has 6 bottles. How many are in 5 packs?" ->
       "How many are in 5 packs? A pack has 6 bottles.").
    2. Two comma-joined clauses: a leading condition moves to the end ("If X, how ...?" ->
       "How ..., if X?"), a statement before a question becomes its own sentence after
       it ("I ate 4 of them, how many are left?" -> "How many are left? I ate 4 of
       them."), two statements swap ("I want to cancel, I am not using it." ->
       "I am not using it, I want to cancel.").
    3. A one-clause question ending in a prepositional phrase fronts it ("What is the
       boiling point of water in degrees Celsius?" -> "In degrees Celsius, what is the
       boiling point of water?"), unless the phrase or the rest contains another clause.

    Words are moved, never changed, so numbers, names and option letters survive.

    Args:
        text: The question.

    Returns:
        The reordered text, or ``None`` when no rule applies.
    """
    stripped = " ".join(text.split())
    if not stripped:
        return None
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])", stripped)
    if len(sentences) >= 2:
        if sentences[-1].endswith("?") and not sentences[0].endswith("?"):
            return " ".join([sentences[-1], *sentences[:-1]])
        return None
    end = stripped[-1] if stripped[-1] in "?.!" else ""
    body = stripped[:-1] if end else stripped
    parts = body.split(", ")
    if len(parts) == 2 and "," not in parts[0] + parts[1]:
        a, b = parts
        words_a, words_b = a.split(), b.split()
        if len(words_a) >= 3 and len(words_b) >= 3:
            first_a, first_b = words_a[0].lower(), words_b[0].lower()
            if first_a in _SUBORDINATE:
                return f"{_cap(b)}, {_decap(a)}{end}"
            if first_b in _QUESTION_START and end == "?" and first_a not in _QUESTION_START:
                return f"{_cap(b)}? {_cap(a)}."
            if (first_a not in _QUESTION_START and first_b in _SUBJECT_START
                    and end in (".", "!", "")):
                return f"{_cap(b)}, {_decap(a)}{end}"
        return None
    if "," in body or end != "?":
        return None
    matches = list(_PP.finditer(body))
    for match in reversed(matches):
        head, phrase = body[:match.start()], body[match.start() + 1:]
        phrase_words = phrase.split()
        rest = phrase_words[len(match.group(1).split()):]
        head_words = head.split()
        if not 1 <= len(rest) <= 5 or len(head_words) < 4:
            continue
        if rest[0].lower() in ("to",) or any(w.lower() in _CLAUSE_MARKERS for w in rest):
            continue
        if any(w.lower() in _CLAUSE_MARKERS or w.lower() in _SUBORDINATE
               for w in head_words[1:]):
            return None
        if head_words[-1].lower() in _QUESTION_START or _verb_form(head_words[-1]):
            # "spoken by most people", "located in": the phrase belongs to the verb
            continue
        if match.group(1).lower() == "by" and any(_verb_form(w) for w in head_words):
            # "spoken in Mexico by most people": a passive's agent, not a circumstance
            continue
        if any(_verb_form(w) for w in rest):
            # "in our solar system called": the phrase runs into a participle
            continue
        return f"{_cap(phrase)}, {_decap(head)}?"
    return None


def _reorder_item(item: Item) -> Item | None:
    new = reorder_clauses(item.input)
    if new is None or new == item.input:
        return None
    return Item(id=item.id, input=new, target=item.target, context=item.context,
                choices=item.choices, task=item.task, metadata=item.metadata)


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
        rewrites: Transform specs (any label-preserving spec of the registry) and/or
            :data:`CLAUSE_REORDER`. ``may_break`` transforms are refused: a rewrite that
            may change the answer is no evidence of memorisation.
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
    from perturbations import parse_spec

    parsed: list[Any] = []
    for spec in rewrites:
        if spec == CLAUSE_REORDER:
            parsed.append(CLAUSE_REORDER)
            continue
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
            if spec == CLAUSE_REORDER:
                new = _reorder_item(item)
                if new is None or _content_key(new) in seen:
                    continue
                seen.add(_content_key(new))
                from perturbations.text import edit_rate

                out.append(Variant(item=new, spec=CLAUSE_REORDER, transform=CLAUSE_REORDER,
                                   severity=1.0, seed=seed, replicate=0, changed=True,
                                   edit_rate=round(edit_rate(item.input, new.input), 6),
                                   label_policy="preserves", version=__version__))
                continue
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


_VERBATIM_ITEM_COLUMNS = (
    "model", "item_id", "task", "verbatim_score", "verbatim_right", "n_rewrites",
    "rewrites_right", "rewrite_accuracy", "suspect", "chance_prob", "rewrite_specs",
    "verbatim_parsed", "rewrite_parsed", "input", "rewrite_input",
)


def verbatim_item_stats(results: pd.DataFrame) -> pd.DataFrame:
    """Per model x item: the verbatim outcome against its rewrites.

    Args:
        results: Runner rows of :func:`verbatim_variants` (clean rows have
            ``spec == "clean"``). Rows whose call failed (score NaN) are left out; an
            item whose verbatim call failed, or with no scored rewrite, is dropped.

    Returns:
        One row per model x item: ``verbatim_right`` (score >= 0.5), ``n_rewrites``
        (scored rewrites), ``rewrites_right``, ``rewrite_accuracy``, ``suspect`` (right
        verbatim, wrong on every rewrite), ``chance_prob`` (the probability of being a
        suspect if the verbatim label fell at random on one of the item's versions:
        1/(k+1) when exactly one version is right, else 0), the rewrite specs, parsed
        answers and texts.
    """
    if results.empty:
        return pd.DataFrame(columns=list(_VERBATIM_ITEM_COLUMNS))
    df = results.copy()
    df["score"] = pd.to_numeric(df["score"], errors="coerce")
    rows = []
    for (model, item_id), g in df.groupby(["model", "item_id"], sort=False):
        clean = g.loc[g["spec"] == "clean"]
        rewrites = g.loc[(g["spec"] != "clean") & g["score"].notna()]
        if clean.empty or clean["score"].isna().all() or rewrites.empty:
            continue
        verbatim = clean.iloc[0]
        v_right = bool(verbatim["score"] >= 0.5)
        right = rewrites["score"] >= 0.5
        k, r = int(len(rewrites)), int(right.sum())
        total_right = r + int(v_right)
        rows.append({
            "model": model, "item_id": item_id, "task": verbatim.get("task"),
            "verbatim_score": float(verbatim["score"]), "verbatim_right": v_right,
            "n_rewrites": k, "rewrites_right": r, "rewrite_accuracy": r / k,
            "suspect": v_right and r == 0,
            "chance_prob": (1.0 / (k + 1)) if total_right == 1 else 0.0,
            "rewrite_specs": ", ".join(rewrites["spec"].astype(str)),
            "verbatim_parsed": verbatim.get("parsed"),
            "rewrite_parsed": ", ".join("–" if p is None or (isinstance(p, float)
                                                               and math.isnan(p)) else str(p)
                                        for p in rewrites.get("parsed", [])),
            "input": verbatim.get("input"),
            "rewrite_input": _rewrite_example(verbatim, rewrites),
        })
    return pd.DataFrame(rows, columns=list(_VERBATIM_ITEM_COLUMNS))


def _rewrite_example(verbatim: pd.Series, rewrites: pd.DataFrame) -> str:
    """One rewrite to show beside the question: a reworded one if any, with its spec.

    A results row holds the question text but not the options, so a choice shuffle
    (same text, options moved) is named as such rather than shown as an identical text.
    """
    reworded = rewrites.loc[rewrites["input"] != verbatim.get("input")]
    if len(reworded):
        first = reworded.iloc[0]
        return f"[{first['spec']}] {first['input']}"
    return f"[{rewrites.iloc[0]['spec']}] same wording, options reordered"


def verbatim_summary(item_stats: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0,
                     ci: float = 0.95) -> pd.DataFrame:
    """Per model: memorisation suspects against the chance baseline.

    Columns: ``n_items`` (items with a scored verbatim answer and at least one scored
    rewrite), ``verbatim_accuracy``, ``rewrite_accuracy`` (over rewrites),
    ``n_verbatim_right``, ``n_suspects``, ``suspect_rate`` with its Wilson interval
    ``ci_low``/``ci_high``, ``suspect_share_of_right`` (suspects / items right
    verbatim), ``chance_rate`` (expected rate under the within-item permutation null),
    ``chance_high`` (95th percentile of the null rate), ``excess_pp`` (suspect minus
    chance rate, in pp) with a bootstrap interval over items ``excess_ci_low_pp`` /
    ``excess_ci_high_pp``, ``p_value`` (exact one-sided P(suspects >= observed) under
    the null) and ``signal`` (True when p < 0.05).
    """
    from robustify.analysis.stats import bootstrap_ci

    rows = []
    if item_stats.empty:
        return pd.DataFrame(columns=["model", "n_items", "suspect_rate", "chance_rate",
                                     "p_value", "signal"])
    for model, g in item_stats.groupby("model", sort=False):
        n = int(len(g))
        suspects = int(g["suspect"].sum())
        probs = g["chance_prob"].to_numpy(dtype=float)
        pmf = poisson_binomial_pmf(probs)
        cdf = np.cumsum(pmf)
        p_value = float(min(1.0, pmf[suspects:].sum()))
        chance_high = int(np.searchsorted(cdf, 0.95 - 1e-12)) / n
        low, high = wilson_interval(suspects, n, ci)
        diff = g["suspect"].astype(float).to_numpy() - probs
        e_low, e_high = bootstrap_ci(diff, n_boot=n_boot, seed=group_rng(seed, ("excess", model)),
                                     ci=ci)
        n_right = int(g["verbatim_right"].sum())
        rewrite_acc = float(g["rewrites_right"].sum() / max(1, g["n_rewrites"].sum()))
        rows.append({
            "model": model, "n_items": n,
            "verbatim_accuracy": float(g["verbatim_right"].mean()),
            "rewrite_accuracy": rewrite_acc,
            "n_rewrites": int(g["n_rewrites"].sum()),
            "n_verbatim_right": n_right, "n_suspects": suspects,
            "suspect_rate": suspects / n, "ci_low": low, "ci_high": high,
            "suspect_share_of_right": suspects / n_right if n_right else math.nan,
            "chance_rate": float(probs.sum() / n), "chance_high": chance_high,
            "excess_pp": (suspects / n - probs.sum() / n) * 100.0,
            "excess_ci_low_pp": e_low * 100.0, "excess_ci_high_pp": e_high * 100.0,
            "p_value": p_value, "signal": bool(p_value < 0.05),
        })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- completion probe

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)


def _words(text: str | None) -> list[str]:
    return [w.lower().replace("’", "'") for w in _WORD.findall(text or "")]


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
    low, high = cut
    if not 0.0 < low <= high < 1.0:
        raise ConfigError(f"cut must satisfy 0 < low <= high < 1, got {cut!r}")
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


def _strip_echo(prefix: list[str], continuation: list[str]) -> list[str]:
    """Drop a restatement of the prefix at the start of the continuation.

    Small chat models often repeat the text they were given before continuing it;
    that echo is not reproduction of the unseen remainder, so it is removed: the whole
    prefix when the continuation opens with a close copy of it (rapidfuzz ratio >= 85);
    else everything up to the prefix's last three words when they reappear within the
    first len(prefix) + 10 words (a framed or paraphrased echo); else the longest tail
    of the prefix the continuation starts with (2+ words).
    """
    from rapidfuzz import fuzz

    if not continuation or not prefix:
        return continuation
    n = len(prefix)
    if len(continuation) >= n and fuzz.ratio(" ".join(continuation[:n]), " ".join(prefix)) >= 85:
        return continuation[n:]
    # a framed or paraphrased echo ('The original text is: "... conceived in"'): the
    # prefix's last three words reappear early on; continue from there
    tail = prefix[-3:]
    window = min(len(continuation), n + 10)
    for j in range(0, window - len(tail) + 1):
        if continuation[j:j + len(tail)] == tail:
            return continuation[j + len(tail):]
    for m in range(min(n, len(continuation)), 1, -1):
        if continuation[:m] == prefix[-m:]:
            return continuation[m:]
    return continuation


def completion_metrics(prefix: str, remainder: str, continuation: str | None, *,
                       ngram: int = 3) -> dict[str, float]:
    """How much of ``remainder`` a model's ``continuation`` reproduces.

    Words are lower-cased word tokens (punctuation ignored); an echo of the prefix at the
    start of the continuation is removed first (see :func:`_strip_echo`).

    Returns:
        ``ngram_overlap``: share of the remainder's word n-grams (n = ``ngram``, or the
        remainder's length if shorter) found anywhere in the first 2 x len(remainder)
        words of the continuation; ``exact_prefix``: leading words equal to the
        remainder's, over its length; ``similarity``: rapidfuzz ``ratio`` / 100 between
        the remainder and as many continuation words; ``n_remainder`` words. All NaN
        when the continuation is ``None`` (the call failed).

    >>> completion_metrics("to be or", "not to be", "not to be")["ngram_overlap"]
    1.0
    """
    from rapidfuzz import fuzz

    rem = _words(remainder)
    if continuation is None or not rem:
        return {"ngram_overlap": math.nan, "exact_prefix": math.nan, "similarity": math.nan,
                "n_remainder": float(len(rem))}
    cont = _strip_echo(_words(prefix), _words(continuation))
    window = cont[:2 * len(rem)]
    n = max(1, min(ngram, len(rem)))
    wanted = [tuple(rem[i:i + n]) for i in range(len(rem) - n + 1)]
    have = {tuple(window[i:i + n]) for i in range(max(0, len(window) - n + 1))}
    overlap = sum(g in have for g in wanted) / len(wanted)
    exact = 0
    for a, b in zip(rem, cont):
        if a != b:
            break
        exact += 1
    similarity = fuzz.ratio(" ".join(rem), " ".join(cont[:len(rem)])) / 100.0
    return {"ngram_overlap": float(overlap), "exact_prefix": exact / len(rem),
            "similarity": float(similarity), "n_remainder": float(len(rem))}


_COMPLETION_ITEM_COLUMNS = ("model", "group", "item_id", "source_id", "prefix", "remainder",
                            "continuation", "ngram_overlap", "exact_prefix", "similarity",
                            "reproduced", "error")


def completion_item_stats(results: pd.DataFrame, *, ngram: int = 3,
                          reproduced_at: float = 0.5) -> pd.DataFrame:
    """Per model x probe: the metrics of :func:`completion_metrics` and a flag.

    ``reproduced`` is True when at least ``reproduced_at`` of the remainder's n-grams
    came back. Failed calls keep NaN metrics and their error.
    """
    rows = []
    for rec in results.to_dict("records"):
        meta_group = rec.get("meta.group")
        metrics = completion_metrics(rec["input"], rec["target"], rec.get("response"),
                                     ngram=ngram)
        overlap = metrics["ngram_overlap"]
        rows.append({
            "model": rec["model"], "group": meta_group, "item_id": rec["item_id"],
            "source_id": rec.get("meta.source_id"), "prefix": rec["input"],
            "remainder": rec["target"], "continuation": rec.get("response"),
            "ngram_overlap": overlap, "exact_prefix": metrics["exact_prefix"],
            "similarity": metrics["similarity"],
            "reproduced": bool(not math.isnan(overlap) and overlap >= reproduced_at),
            "error": rec.get("error"),
        })
    return pd.DataFrame(rows, columns=list(_COMPLETION_ITEM_COLUMNS))


def completion_summary(item_stats: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0,
                       ci: float = 0.95) -> pd.DataFrame:
    """Per model x group: mean reproduction with bootstrap intervals over items.

    Columns: ``n``, ``ngram_overlap`` (+ ``ngram_ci_low``/``ngram_ci_high``),
    ``similarity`` (+ interval), ``exact_prefix``, ``reproduced_rate``. On the
    ``benchmark`` rows also the paired excess over the item's own shuffled control,
    ``excess_ngram_pp`` and ``excess_similarity_pp`` with bootstrap intervals over items
    (``..._ci_low_pp``/``..._ci_high_pp``): how much more of the true remainder comes back
    than of a remainder the model cannot have seen, from the same words.
    """
    from robustify.analysis.stats import bootstrap_ci

    rows = []
    if item_stats.empty:
        return pd.DataFrame(columns=["model", "group", "n", "ngram_overlap", "similarity"])
    scored = item_stats.loc[item_stats["ngram_overlap"].notna()]
    for model in pd.unique(item_stats["model"]):
        mine = scored.loc[scored["model"] == model]
        for group in GROUPS:
            g = mine.loc[mine["group"] == group]
            if g.empty:
                continue
            row: dict[str, Any] = {"model": model, "group": group, "n": int(len(g))}
            for metric, short in (("ngram_overlap", "ngram"), ("similarity", "similarity")):
                values = g[metric].to_numpy(dtype=float)
                low, high = bootstrap_ci(values, n_boot=n_boot,
                                         seed=group_rng(seed, (model, group, metric)), ci=ci)
                row[metric] = float(values.mean())
                row[f"{short}_ci_low"], row[f"{short}_ci_high"] = low, high
            row["exact_prefix"] = float(g["exact_prefix"].mean())
            row["reproduced_rate"] = float(g["reproduced"].mean())
            if group == "benchmark":
                control = mine.loc[mine["group"] == "shuffled"].set_index("source_id")
                paired = g.loc[g["source_id"].isin(control.index)]
                for metric, short in (("ngram_overlap", "ngram"), ("similarity", "similarity")):
                    if paired.empty:
                        row[f"excess_{short}_pp"] = math.nan
                        row[f"excess_{short}_ci_low_pp"] = math.nan
                        row[f"excess_{short}_ci_high_pp"] = math.nan
                        continue
                    diff = (paired[metric].to_numpy(dtype=float)
                            - control.loc[paired["source_id"], metric].to_numpy(dtype=float))
                    low, high = bootstrap_ci(diff, n_boot=n_boot,
                                             seed=group_rng(seed, (model, "excess", metric)), ci=ci)
                    row[f"excess_{short}_pp"] = float(diff.mean()) * 100.0
                    row[f"excess_{short}_ci_low_pp"] = low * 100.0
                    row[f"excess_{short}_ci_high_pp"] = high * 100.0
            rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------ charts

def _axes(ax: "Axes | None", figsize: tuple[float, float]) -> "Axes":
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt  # only when the caller asked for a new figure

    _, new_ax = plt.subplots(figsize=figsize, layout="constrained")
    return new_ax


def plot_suspects(summary: pd.DataFrame, ax: "Axes | None" = None, *,
                  title: str | None = None) -> "Axes":
    """Memorisation suspects per model against the chance band.

    One row per model: the dot is the share of items right verbatim and wrong on every
    rewrite, with its Wilson interval; the grey band runs from 0 to the 95th percentile
    of the share chance alone would give, and the bar inside it marks the expected
    chance share. A dot right of the band is a memorisation *signal*.

    Args:
        summary: Output of :func:`verbatim_summary`.
        ax: Axes to draw on; a new figure when ``None``.
        title: Overrides the default title.

    Returns:
        The Axes.
    """
    from robustify.reporting.plots import series_style

    needed = ("model", "suspect_rate", "ci_low", "ci_high", "chance_rate", "chance_high")
    missing = [c for c in needed if c not in summary.columns]
    if missing:
        raise ConfigError(f"plot_suspects needs column(s) {', '.join(missing)}; pass the "
                          f"output of verbatim_summary")
    n = len(summary)
    ax = _axes(ax, (7.0, 1.2 + 0.6 * max(n, 1)))
    for i, row in enumerate(summary.itertuples(index=False)):
        y = n - 1 - i
        ax.add_patch(_rect(0.0, y - 0.3, row.chance_high * 100.0, 0.6))
        ax.plot([row.chance_rate * 100.0] * 2, [y - 0.3, y + 0.3], color="#555555", lw=2,
                label="expected by chance" if i == 0 else None)
        style = series_style(i)
        ax.errorbar([row.suspect_rate * 100.0], [y],
                    xerr=[[max(0.0, (row.suspect_rate - row.ci_low) * 100.0)],
                          [max(0.0, (row.ci_high - row.suspect_rate) * 100.0)]],
                    fmt=style["marker"], color=style["color"], capsize=4, ms=8,
                    label="suspect share (95% CI)" if i == 0 else None)
        ax.annotate(f"{row.suspect_rate * 100:.1f}%", (row.suspect_rate * 100.0, y),
                    textcoords="offset points", xytext=(0, 9), ha="center", fontsize=8)
    ax.set_yticks(list(range(n)))
    ax.set_yticklabels([textwrap.fill(str(m), 28, break_long_words=True)
                        for m in summary["model"]][::-1], fontsize=8)
    ax.set_ylim(-0.7, n - 0.3)
    top = max([5.0, *(summary["ci_high"].fillna(0) * 100.0 + 5.0),
               *(summary["chance_high"].fillna(0) * 100.0 + 5.0)])
    ax.set_xlim(0, min(100.0, top))
    ax.set_xlabel("items right verbatim, wrong on every rewrite (%)")
    ax.set_title(title or "Memorisation suspects vs chance", fontsize=10)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return ax


def _rect(x: float, y: float, width: float, height: float) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), width, height, color="#d9d9d9", zorder=0)


def plot_completion(summary: pd.DataFrame, ax: "Axes | None" = None, *,
                    metric: str = "ngram_overlap", title: str | None = None) -> "Axes":
    """Completion-probe reproduction per group (benchmark vs its controls), per model.

    Grouped bars: one group per probe group (benchmark items, their word-shuffled
    controls, fresh unseen items, famous texts), one bar per model, height = mean
    ``metric`` in percent with its bootstrap interval. Benchmark bars well above the
    shuffled and fresh bars, near the famous-text bar, are a leakage signal.

    Args:
        summary: Output of :func:`completion_summary`.
        ax: Axes to draw on; a new figure when ``None``.
        metric: ``ngram_overlap`` or ``similarity``.
        title: Overrides the default title.
    """
    from robustify.reporting.plots import series_style

    short = {"ngram_overlap": "ngram", "similarity": "similarity"}.get(metric)
    if short is None:
        raise ConfigError(f"metric must be ngram_overlap or similarity, got {metric!r}")
    for column in ("model", "group", metric):
        if column not in summary.columns:
            raise ConfigError(f"plot_completion needs column {column!r}; pass the output of "
                              f"completion_summary")
    groups = [g for g in GROUPS if g in set(summary["group"])]
    models = list(pd.unique(summary["model"]))
    ax = _axes(ax, (7.0, 3.8))
    width = 0.8 / max(1, len(models))
    top = 0.0
    for m, model in enumerate(models):
        style = series_style(m)
        sub = summary.loc[summary["model"] == model].set_index("group")
        xs, heights, lows, highs = [], [], [], []
        for gi, group in enumerate(groups):
            if group not in sub.index:
                continue
            row = sub.loc[group]
            xs.append(gi - 0.4 + width * (m + 0.5))
            value = float(row[metric]) * 100.0
            heights.append(value)
            lows.append(max(0.0, value - float(row[f"{short}_ci_low"]) * 100.0))
            highs.append(max(0.0, float(row[f"{short}_ci_high"]) * 100.0 - value))
        ax.bar(xs, heights, width=width * 0.95, color=style["color"], hatch=style["hatch"],
               edgecolor="white", label=str(model), yerr=[lows, highs], capsize=3)
        for x, h, hi in zip(xs, heights, highs):
            ax.annotate(f"{h:.1f}%", (x, h + hi), textcoords="offset points", xytext=(0, 3),
                        ha="center", fontsize=7)
            top = max(top, h + hi)
    labels = {"benchmark": "benchmark items", "shuffled": "same words shuffled",
              "fresh": "fresh items (unseen)", "known": "famous texts (seen)"}
    ax.set_xticks(list(range(len(groups))))
    ax.set_xticklabels([labels[g] for g in groups])
    # small values must stay visible: scale to the data, never past 100%
    ax.set_ylim(0, min(100.0, max(5.0, top * 1.25)))
    what = "word n-grams of the true remainder reproduced" if metric == "ngram_overlap" \
        else "similarity to the true remainder"
    ax.set_ylabel(f"{what} (%)")
    ax.set_title(title or "Completion probe: benchmark items vs controls")
    if len(models) > 1:
        ax.legend(fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return ax


# ------------------------------------------------------------------------ report

_CSS_FALLBACK = "body{font-family:sans-serif;max-width:1100px;margin:2rem auto}"


class ReportDoc:
    """A small document model rendered to an HTML page and its Markdown twin.

    Every piece of text is HTML-escaped (and Markdown-escaped) on output; the page
    carries :data:`robustify.reporting.run_report.CSP`, so no script can run even if a model answered
    with one. Charts are kept as PNG bytes: embedded in the HTML, written as files for
    the Markdown.
    """

    def __init__(self, title: str) -> None:
        self.title = title
        self.blocks: list[tuple[str, Any]] = [("h", (1, title))]
        self.charts: dict[str, bytes] = {}

    def heading(self, text: str, level: int = 2) -> None:
        """Add a heading."""
        self.blocks.append(("h", (level, text)))

    def para(self, text: str, cls: str = "") -> None:
        """Add a paragraph (``cls="headline"`` or ``"note"`` style it)."""
        self.blocks.append(("p", (text, cls)))

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]],
              numeric: Iterable[int] = ()) -> None:
        """Add a table; ``numeric`` column indices are right-aligned."""
        self.blocks.append(("t", (list(headers), [[("" if c is None else str(c)) for c in r]
                                                  for r in rows], set(numeric))))

    def chart(self, name: str, png: bytes, alt: str, caption: str) -> None:
        """Add a chart (PNG bytes) under a file-safe ``name``."""
        self.charts[name] = png
        self.blocks.append(("c", (name, alt, caption)))

    @staticmethod
    def _e(value: Any) -> str:
        return html.escape("" if value is None else str(value), quote=True)

    @classmethod
    def _md(cls, value: Any) -> str:
        # quotes are harmless in Markdown text (no attributes), so they stay readable
        raw = html.escape("" if value is None else str(value), quote=False)
        text = re.sub(r"([\\`*_\[\]|~])", r"\\\1", raw)
        text = re.sub(r"^(\s*)([#>+-])", r"\1\\\2", text)  # no accidental heading/quote/list
        return text.replace("\r\n", "\n").replace("\n", "<br>")

    def html(self) -> str:
        """The self-contained page."""
        from robustify.reporting.run_report import CSP

        out = []
        for kind, data in self.blocks:
            if kind == "h":
                out.append(f"<h{data[0]}>{self._e(data[1])}</h{data[0]}>")
            elif kind == "p":
                cls = f' class="{self._e(data[1])}"' if data[1] else ""
                out.append(f"<p{cls}>{self._e(data[0])}</p>")
            elif kind == "t":
                headers, rows, numeric = data
                head = "".join(f"<th>{self._e(h)}</th>" for h in headers)
                body = "".join("<tr>" + "".join(
                    f'<td class="num">{self._e(c)}</td>' if i in numeric else
                    f"<td>{self._e(c)}</td>" for i, c in enumerate(r)) + "</tr>" for r in rows)
                out.append(f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
                           f"<tbody>{body}</tbody></table></div>")
            elif kind == "c":
                name, alt, caption = data
                src = "data:image/png;base64," + base64.b64encode(self.charts[name]).decode()
                out.append(f'<figure><img src="{src}" alt="{self._e(alt)}">'
                           f"<figcaption>{self._e(caption)}</figcaption></figure>")
        body = "\n".join(out)
        try:
            page = Template(resources.files("robustify").joinpath("templates/report.html")
                            .read_text(encoding="utf-8"))
            return page.substitute(csp=self._e(CSP), version=self._e(__version__),
                                   title=self._e(self.title), body=body)
        except (OSError, KeyError, ValueError):  # template missing or changed: still a page
            return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
                    f'<meta http-equiv="Content-Security-Policy" content="{self._e(CSP)}">'
                    f"<title>{self._e(self.title)}</title><style>{_CSS_FALLBACK}</style>"
                    f"</head><body>{body}</body></html>")

    def markdown(self, chart_dir: str = "charts") -> str:
        """The Markdown twin; charts referenced as ``chart_dir/<name>.png``."""
        out = []
        for kind, data in self.blocks:
            if kind == "h":
                out.append(f"{'#' * data[0]} {self._md(data[1])}")
            elif kind == "p":
                out.append(f"> {self._md(data[0])}" if data[1] == "headline" else self._md(data[0]))
            elif kind == "t":
                headers, rows, numeric = data
                lines = ["| " + " | ".join(self._md(h) for h in headers) + " |",
                         "|" + "|".join("---:" if i in numeric else "---"
                                        for i in range(len(headers))) + "|"]
                lines += ["| " + " | ".join(self._md(c) for c in r) + " |" for r in rows]
                out.append("\n".join(lines))
            elif kind == "c":
                name, alt, caption = data
                out.append(f"![{self._md(alt)}]({chart_dir}/{name}.png)\n\n*{self._md(caption)}*")
        return "\n\n".join(out) + "\n"

    def write(self, out_dir: str | os.PathLike[str], stem: str) -> dict[str, Path]:
        """Write ``<stem>.html``, ``<stem>.md`` and ``charts/<name>.png``, each atomically."""
        out = Path(out_dir)
        files: dict[str, Path] = {}
        for name, png in self.charts.items():
            files[f"chart_{name}"] = write_bytes_atomic(out / "charts" / f"{name}.png", png)
        files["html"] = write_text_atomic(out / f"{stem}.html", self.html())
        files["md"] = write_text_atomic(out / f"{stem}.md", self.markdown())
        return files


def figure_png(draw: Callable[[Any], Any], size: tuple[float, float], dpi: int = 110) -> bytes:
    """Draw on a fresh, pyplot-free Figure and return its PNG bytes (no global state)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    draw(fig.add_subplot(1, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def _pct(x: Any, digits: int = 1) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else \
        f"{float(x) * 100:.{digits}f}%"


def _pp(x: Any) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{float(x):+.1f}"


def _pval(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def _short(text: Any, limit: int = 160) -> str:
    text = "" if text is None or (isinstance(text, float) and math.isnan(text)) else str(text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


SIGNALS_NOT_PROOF = (
    "These figures are signals, not proof. A model can be right only on the verbatim "
    "wording because a rewrite happened to be harder or clumsier, and it can continue a "
    "text because the text is predictable. Read them as 'worth a closer look', never as a "
    "finding of contamination on their own.")


@dataclass
class LeakageResult:
    """Everything a leakage probe produced; every frame is also written by the report.

    Attributes:
        verbatim_items: Per model x item (:func:`verbatim_item_stats`).
        verbatim_summary: Per model (:func:`verbatim_summary`).
        completion_items: Per model x probe (:func:`completion_item_stats`).
        completion_summary: Per model x group (:func:`completion_summary`).
        rows: The raw runner rows of both probes (column ``probe``).
        settings: Seed, rewrites, cut, data label, item count ... (shown in the report).
        notes: Skipped rewrites, rejected model rewrites, failures.
        rewrite_rejections: Model-written rewrites that failed their checks.
    """

    verbatim_items: pd.DataFrame
    verbatim_summary: pd.DataFrame
    completion_items: pd.DataFrame
    completion_summary: pd.DataFrame
    rows: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    rewrite_rejections: pd.DataFrame | None = None

    def suspects(self, k: int = 10) -> pd.DataFrame:
        """The ``k`` most suspect items per model.

        Suspects first, most rewrites (all wrong) first, then the items whose completion
        probe reproduced most of the true remainder (both signals together).
        """
        items = self.verbatim_items.loc[self.verbatim_items["suspect"]].copy()
        if items.empty:
            return items
        overlap = self.completion_items.loc[self.completion_items["group"] == "benchmark",
                                            ["model", "source_id", "ngram_overlap"]]
        overlap = overlap.rename(columns={"source_id": "item_id",
                                          "ngram_overlap": "completion_overlap"})
        items = items.merge(overlap, on=["model", "item_id"], how="left")
        items = items.sort_values(["model", "n_rewrites", "completion_overlap"],
                                  ascending=[True, False, False], kind="mergesort",
                                  na_position="last")
        order = {m: i for i, m in enumerate(pd.unique(self.verbatim_items["model"]))}
        items = items.sort_values("model", key=lambda s: s.map(order), kind="mergesort")
        return items.groupby("model", sort=False).head(k).reset_index(drop=True)

    def plot_suspects(self, ax: "Axes | None" = None) -> "Axes":
        """:func:`plot_suspects` of this result."""
        return plot_suspects(self.verbatim_summary, ax=ax)

    def plot_completion(self, ax: "Axes | None" = None, metric: str = "ngram_overlap") -> "Axes":
        """:func:`plot_completion` of this result."""
        return plot_completion(self.completion_summary, ax=ax, metric=metric)

    def write_report(self, out_dir: str | os.PathLike[str], *, top: int = 10) -> dict[str, Path]:
        """Write leakage.html, leakage.md, charts and CSVs (see :func:`write_leakage_report`)."""
        return write_leakage_report(self, out_dir, top=top)


def write_leakage_report(result: LeakageResult, out_dir: str | os.PathLike[str], *,
                         top: int = 10) -> dict[str, Path]:
    """Write the probe's report into ``out_dir`` (a run folder or a folder of its own).

    Files (each written atomically; nothing else in the folder is touched):
    ``leakage.html`` (self-contained, escaped, no script), ``leakage.md``,
    ``charts/leakage_suspects.png``, ``charts/leakage_completion.png``,
    ``leakage_items.csv`` (verbatim probe per item), ``leakage_completion.csv``,
    ``leakage_summary.json`` (both summaries, settings and notes) and
    ``leakage_rows.jsonl`` (every model answer).

    Returns:
        Paths by key.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = result.settings
    doc = ReportDoc(f"Leakage probe: {s.get('data', 'data')}")
    doc.para(SIGNALS_NOT_PROOF, "headline")
    vs = result.verbatim_summary
    if len(vs):
        doc.heading("Verbatim against rewritten")
        for row in vs.to_dict("records"):
            verdict = ("more items than chance would give: a memorisation signal"
                       if row["signal"] else "no more than chance would give")
            doc.para(f"{row['model']}: {row['n_suspects']} of {row['n_items']} items "
                     f"({_pct(row['suspect_rate'])}, 95% CI {_pct(row['ci_low'])} to "
                     f"{_pct(row['ci_high'])}) are right verbatim and wrong on every "
                     f"rewrite; chance alone would give {_pct(row['chance_rate'])} "
                     f"(95% of chance outcomes at or below {_pct(row['chance_high'])}), "
                     f"p = {_pval(row['p_value'])}: {verdict}.")
        doc.table(["model", "items", "verbatim acc.", "rewrite acc.", "rewrites", "suspects",
                   "suspect share (95% CI)", "share of right items", "chance", "chance 95th pct",
                   "excess pp (95% CI)", "p"],
                  [[r["model"], r["n_items"], _pct(r["verbatim_accuracy"]),
                    _pct(r["rewrite_accuracy"]), r["n_rewrites"], r["n_suspects"],
                    f"{_pct(r['suspect_rate'])} [{_pct(r['ci_low'])}, {_pct(r['ci_high'])}]",
                    _pct(r["suspect_share_of_right"]), _pct(r["chance_rate"]),
                    _pct(r["chance_high"]),
                    f"{_pp(r['excess_pp'])} [{_pp(r['excess_ci_low_pp'])}, "
                    f"{_pp(r['excess_ci_high_pp'])}]", _pval(r["p_value"])]
                   for r in vs.to_dict("records")], numeric=range(1, 12))
        doc.chart("leakage_suspects", figure_png(lambda ax: plot_suspects(vs, ax=ax),
                                                 (7.0, 1.4 + 0.6 * len(vs))),
                  "Memorisation suspects per model against the chance band",
                  "Dot: share of items right verbatim and wrong on every rewrite (Wilson 95% "
                  "CI). Grey band: 0 to the 95th percentile of the share chance would give "
                  "(within-item permutation); dark bar: its expected value.")
        doc.para(
            "Method: each item is asked verbatim and in meaning-preserving rewrites "
            f"({', '.join(s.get('rewrites', []))}; rewrites that change nothing are not "
            "asked). A suspect is right verbatim and wrong on all k of its rewrites. Chance "
            "baseline: if 'verbatim' were a label stuck at random on one of the item's k+1 "
            "versions, an item with exactly one right version is a suspect with probability "
            "1/(k+1), any other item never; the suspect count is then Poisson-binomial, "
            "which gives the expected share, the 95th percentile and an exact one-sided "
            "p-value. Rewrites that are harder than the original raise the count as well, "
            "so treat suspects as leads.", "note")
        sus = result.suspects(top)
        if len(sus):
            doc.heading("Most suspect items", 3)
            doc.table(["model", "item", "rewrites (all wrong)", "completion overlap",
                       "verbatim answer", "rewrite answers", "question", "a rewrite [spec]"],
                      [[r["model"], r["item_id"], r["n_rewrites"],
                        _pct(r.get("completion_overlap")), _short(r["verbatim_parsed"], 40),
                        _short(r["rewrite_parsed"], 60), _short(r["input"]),
                        _short(r["rewrite_input"])] for r in sus.to_dict("records")],
                      numeric=(2, 3))
    cs = result.completion_summary
    if len(cs):
        doc.heading("Completion probe")
        for row in cs.loc[cs["group"] == "benchmark"].to_dict("records"):
            doc.para(f"{row['model']}: given {s.get('cut_text', 'about half')} of each item, "
                     f"it reproduced {_pct(row['ngram_overlap'])} of the remainder's word "
                     f"{s.get('ngram', 3)}-grams; {_pp(row.get('excess_ngram_pp'))} pp "
                     f"(95% CI {_pp(row.get('excess_ngram_ci_low_pp'))} to "
                     f"{_pp(row.get('excess_ngram_ci_high_pp'))}) more than on the same "
                     f"words shuffled. {_pct(row['reproduced_rate'])} of items had at least "
                     f"half of the remainder's n-grams come back.")
        labels = {"benchmark": "benchmark items", "shuffled": "same words shuffled (unseen)",
                  "fresh": "fresh items (unseen)", "known": "famous texts (seen: positive control)"}
        doc.table(["model", "group", "n", "n-gram overlap (95% CI)", "similarity (95% CI)",
                   "exact leading words", "reproduced", "excess vs shuffled, pp (95% CI)"],
                  [[r["model"], labels.get(r["group"], r["group"]), r["n"],
                    f"{_pct(r['ngram_overlap'])} [{_pct(r['ngram_ci_low'])}, "
                    f"{_pct(r['ngram_ci_high'])}]",
                    f"{_pct(r['similarity'])} [{_pct(r['similarity_ci_low'])}, "
                    f"{_pct(r['similarity_ci_high'])}]",
                    _pct(r["exact_prefix"]), _pct(r["reproduced_rate"]),
                    (f"{_pp(r.get('excess_ngram_pp'))} [{_pp(r.get('excess_ngram_ci_low_pp'))}, "
                     f"{_pp(r.get('excess_ngram_ci_high_pp'))}]"
                     if r["group"] == "benchmark" else "")]
                   for r in cs.to_dict("records")], numeric=(2, 3, 4, 5, 6, 7))
        doc.chart("leakage_completion", figure_png(lambda ax: plot_completion(cs, ax=ax),
                                                   (7.5, 4.0)),
                  "Completion probe: share of the true remainder reproduced, per group",
                  "Bars: mean share of the remainder's word n-grams the continuation "
                  "reproduced (bootstrap 95% CI over items). Benchmark items far above their "
                  "shuffled and fresh controls are a signal of leakage.")
        doc.para(
            "Method: the model sees the first part of each item's text (question and, for "
            "multiple choice, the options; the cut is drawn per item in "
            f"{s.get('cut_text', '40-60%')} of the words, seeded) and is asked to continue. "
            "An echo of the given text is removed; then the share of the true remainder's "
            "word n-grams found in the continuation, the leading words reproduced exactly "
            "and a character similarity (rapidfuzz ratio) are measured. Controls: the same "
            "item's words shuffled (cut at the same word, paired), fresh items written for "
            "this project, and famous public-domain texts as a positive control.", "note")
        ci = result.completion_items
        bench = ci.loc[(ci["group"] == "benchmark") & ci["ngram_overlap"].notna()]
        if len(bench):
            doc.heading("Items whose remainder came back most", 3)
            shown = bench.sort_values(["ngram_overlap", "similarity"], ascending=False,
                                      kind="mergesort").groupby("model", sort=False).head(top)
            doc.table(["model", "item", "n-gram overlap", "similarity", "shown", "true remainder",
                       "continuation"],
                      [[r["model"], r["item_id"], _pct(r["ngram_overlap"]), _pct(r["similarity"]),
                        _short(r["prefix"], 100), _short(r["remainder"], 100),
                        _short(r["continuation"], 140)] for r in shown.to_dict("records")],
                      numeric=(2, 3))
    if result.rewrite_rejections is not None and len(result.rewrite_rejections):
        doc.heading("Rejected model-written rewrites", 3)
        rej = result.rewrite_rejections
        doc.table(["item", "rewrite spec", "reason", "text"],
                  [[r["item_id"], r["spec"], r["reason"], _short(r["rewrite"], 120)]
                   for r in rej.to_dict("records")])
    if result.notes:
        doc.heading("Notes", 3)
        for note in result.notes:
            doc.para(note, "note")
    doc.heading("Settings", 3)
    doc.table(["setting", "value"], [[k, json.dumps(v, default=str) if not isinstance(v, str)
                                      else v] for k, v in s.items()])
    files = doc.write(out, "leakage")
    files["items_csv"] = write_text_atomic(out / "leakage_items.csv",
                                           result.verbatim_items.to_csv(index=False))
    files["completion_csv"] = write_text_atomic(out / "leakage_completion.csv",
                                                result.completion_items.to_csv(index=False))
    summary = {"settings": s, "notes": result.notes,
               "verbatim": json.loads(result.verbatim_summary.to_json(orient="records")),
               "completion": json.loads(result.completion_summary.to_json(orient="records"))}
    files["summary_json"] = write_text_atomic(
        out / "leakage_summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    from robustify.reporting.run_report import write_results_jsonl

    files["rows_jsonl"] = write_results_jsonl(result.rows, out / "leakage_rows.jsonl")
    return files


# ------------------------------------------------------------------------ running

def _backends(models: Sequence[Any], params: GenerationParams | None
              ) -> tuple[list[Any], list[Any]]:
    """Backends for the models (strings built here, objects used as given) and those to close."""
    from robustify.models import parse_model_spec

    built, owned = [], []
    for model in models:
        if isinstance(model, str):
            backend = parse_model_spec(model, params=params)
            owned.append(backend)
            built.append(backend)
        else:
            built.append(model)
    return built, owned


def _score_completion(item: Item, text: str | None) -> Score:
    if text is None:
        return Score(math.nan)
    # the row's score is the similarity, so results files sort and plot like any run
    metrics = completion_metrics(item.input, item.target, text)
    return Score(metrics["similarity"])


def probe_leakage(items: Sequence[Item] | str = "sample", models: Sequence[Any] | str = (
                  "local:smollm2",), *, probes: Sequence[str] = PROBES,
                  rewrites: Sequence[str] = DEFAULT_REWRITES, replicates: int = 2,
                  seed: int = 0, limit: int | None = None,
                  cut: tuple[float, float] = (0.4, 0.6), ngram: int = 3,
                  include_choices: bool = True, fresh_controls: bool = True,
                  known_texts: bool = True, cache: Any = "default",
                  rewriter: Any = None, personas: Sequence[str] = ("paraphrase",),
                  completion_max_tokens: int = 64, n_boot: int = 2000,
                  progress: bool = False, data_label: str | None = None) -> LeakageResult:
    """Run the leakage probes on items and models.

    Args:
        items: Items, or a data path / ``"sample"`` read with :func:`robustify.data.load_items`.
        models: Model spec strings (``local:smollm2``, ``openai:...``, ``python:...``) or
            ready backends (used as given, not closed).
        probes: ``verbatim`` and/or ``completion``.
        rewrites: Specs for the verbatim probe (:data:`DEFAULT_REWRITES`).
        replicates: Draws per random rewrite.
        seed: Seeds the rewrites, the completion cuts and shuffles, and the bootstrap.
        limit: With a data path, a seeded sample of this many items.
        cut: Range of the share of words shown in the completion probe.
        ngram: n of the completion probe's n-gram overlap.
        include_choices: Completion texts include the options of multiple-choice items.
        fresh_controls, known_texts: Add :data:`FRESH_CONTROLS` / :data:`KNOWN_TEXTS`.
        cache: ``"default"`` (the run cache), a path, a ``ResponseCache``, or ``None``.
        rewriter: A model spec or backend that also writes paraphrase rewrites
            (:mod:`robustify.probes.rewrite`, checked; rejected ones are reported, never used).
        personas: Personas asked of ``rewriter``.
        completion_max_tokens: Answer budget of the completion prompts.
        n_boot: Bootstrap draws for every interval.
        progress: Show progress bars.
        data_label: Name of the data in the report.

    Returns:
        A :class:`LeakageResult`.

    Raises:
        ConfigError: bad probe name, rewrite spec or cut; model spec errors.
    """
    from robustify.prompts import build_messages
    from robustify.runner.execute import run_queries
    from robustify.scoring import score_answer

    started = time.time()
    probes = list(probes)
    bad = [p for p in probes if p not in PROBES]
    if bad or not probes:
        raise ConfigError(f"unknown probe(s) {', '.join(bad) or '(none given)'}; choose from "
                          f"{', '.join(PROBES)}")
    if not 0.0 < cut[0] <= cut[1] < 1.0:  # checked now, not after the verbatim probe ran
        raise ConfigError(f"cut must satisfy 0 < low <= high < 1, got {cut!r}")
    for persona in personas if rewriter is not None else ():
        from robustify.probes.rewrite import parse_rewrite_spec

        parse_rewrite_spec(f"rewrite:persona={persona}")
    if isinstance(models, str) or not isinstance(models, Sequence):
        models = [models]
    if isinstance(items, (str, os.PathLike)):
        from robustify.data import load_items

        data_label = data_label or Path(str(items)).stem
        items = load_items(str(items), limit=limit, seed=seed)
    items = list(items)
    if not items:
        raise ConfigError("the leakage probe needs at least one item")
    notes: list[str] = []
    from robustify.runner.cache import open_cache

    cache_obj, own_cache = open_cache(cache)
    frames: list[pd.DataFrame] = []
    rejections: pd.DataFrame | None = None
    verbatim_items = pd.DataFrame(columns=list(_VERBATIM_ITEM_COLUMNS))
    v_summary = pd.DataFrame()
    completion_items = pd.DataFrame(columns=list(_COMPLETION_ITEM_COLUMNS))
    c_summary = pd.DataFrame()
    all_owned: list[Any] = []
    try:
        # every backend is built (and so checked) before the first call of any probe
        if "verbatim" in probes:
            v_backends, owned = _backends(models, None)
            all_owned += owned
        if "completion" in probes:
            c_backends, owned = _backends(models, GenerationParams(
                max_tokens=int(completion_max_tokens)))
            all_owned += owned
        if "verbatim" in probes:
            variants = verbatim_variants(items, rewrites, seed=seed, replicates=replicates,
                                         notes=notes)
            if rewriter is not None:
                from robustify.probes.rewrite import rewrite_variants

                for persona in personas:
                    extra, rejected = rewrite_variants(items, f"rewrite:persona={persona}",
                                                       rewriter, cache_obj, seed)
                    variants += extra
                    rejections = rejected if rejections is None else pd.concat(
                        [rejections, rejected], ignore_index=True)
                    notes.append(f"model-written rewrites ({persona}): {len(extra)} used, "
                                 f"{len(rejected)} rejected by the checks")
            rows = run_queries(variants, v_backends, build_messages=build_messages,
                               score=score_answer, cache=cache_obj, progress=progress)
            rows["probe"] = "verbatim"
            frames.append(rows)
            verbatim_items = verbatim_item_stats(rows)
            v_summary = verbatim_summary(verbatim_items, n_boot=n_boot, seed=seed)
            failed = int(rows["error"].notna().sum())
            if failed:
                notes.append(f"verbatim probe: {failed} of {len(rows)} calls failed and were "
                             f"left out")
        if "completion" in probes:
            probes_v = completion_variants(
                items, seed=seed, cut=cut, include_choices=include_choices,
                fresh=FRESH_CONTROLS if fresh_controls else None,
                known=KNOWN_TEXTS if known_texts else None)
            rows = run_queries(probes_v, c_backends, build_messages=completion_messages,
                               score=_score_completion, cache=cache_obj, progress=progress)
            rows["probe"] = "completion"
            frames.append(rows)
            completion_items = completion_item_stats(rows, ngram=ngram)
            c_summary = completion_summary(completion_items, n_boot=n_boot, seed=seed)
            failed = int(rows["error"].notna().sum())
            if failed:
                notes.append(f"completion probe: {failed} of {len(rows)} calls failed and "
                             f"were left out")
    finally:
        for backend in all_owned:
            backend.close()
        if own_cache and cache_obj is not None:
            cache_obj.close()
    model_labels = [m if isinstance(m, str) else getattr(m, "label", repr(m)) for m in models]
    settings = {
        "data": data_label or "items", "n_items": len(items), "models": model_labels,
        "probes": probes, "seed": seed, "rewrites": list(rewrites), "replicates": replicates,
        "cut": list(cut), "cut_text": f"{cut[0] * 100:.0f}-{cut[1] * 100:.0f}%", "ngram": ngram,
        "include_choices": include_choices, "fresh_controls": fresh_controls,
        "known_texts": known_texts, "n_boot": n_boot, "robustify_version": __version__,
        "duration_s": round(time.time() - started, 2),
    }
    if rewriter is not None:
        settings["rewriter"] = rewriter if isinstance(rewriter, str) else getattr(
            rewriter, "label", repr(rewriter))
        settings["personas"] = list(personas)
    rows_all = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return LeakageResult(verbatim_items=verbatim_items, verbatim_summary=v_summary,
                         completion_items=completion_items, completion_summary=c_summary,
                         rows=rows_all, settings=settings, notes=notes,
                         rewrite_rejections=rejections)
