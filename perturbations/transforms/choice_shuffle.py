"""Choice shuffle: the same options in a different order, with the gold letter remapped.

Options that point at other options keep pointing at the same ones: "All of the above"
stays last, an option that names others by letter ("Both (a) and (b)") stays where it
is together with the options it names, and an item whose question names options by
letter ("Is (B) a mammal?") is left as it is. What was pinned or kept is reported
through :meth:`ChoiceShuffle.notes` and :meth:`ChoiceShuffle.cannot_apply`.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

from ..base import Transform
from ..records import Item, choice_letter
from ..references import option_links, question_letters
from ..registry import register
from ..text import count_for

__all__ = ["ChoiceShuffle", "displacement", "plan", "Plan"]

PINNED_SCOPE = "pinned: option refers to the options above or below it"
PINNED_LETTERS = "pinned: options name other options by letter"
PINNED_OTHERS = "pinned: option refers to the other options"
KEPT_QUESTION = "kept in place: the question names options by letter"
KEPT_SCOPE = "kept in place: an 'above'/'below' option is not at the end"


def displacement(n: int, severity: float, rng: random.Random) -> list[int]:
    """A permutation of ``range(n)`` that moves a severity-controlled share of positions.

    ``perm[new_index] = old_index``. The displaced positions are chosen at random and
    rotated along a random cycle, so every one of them really moves (a plain shuffle
    would leave some in place by chance). Moving one option alone is impossible, so a
    count of one is raised to two.
    """
    perm = list(range(n))
    k = count_for(n, severity, rng)
    if k == 0 or n < 2:
        return perm
    k = max(k, 2)
    positions = rng.sample(range(n), k)
    for a, b in zip(positions, positions[1:] + positions[:1]):
        perm[b] = a
    return perm


@dataclass(frozen=True)
class Plan:
    """Which options of an item may move, and why the others may not."""

    movable: tuple[int, ...]
    """Positions whose options may change places (empty: leave the item as it is)."""
    notes: tuple[str, ...]
    """What was pinned or kept, as stable strings (see the module constants)."""


def plan(item: Item) -> Plan:
    """Decide which options of ``item`` may move without breaking a reference."""
    choices = item.choices or ()
    n = len(choices)
    if n < 2:
        return Plan((), ())
    if question_letters(item.input, n) or question_letters(item.context or "", n):
        return Plan((), (KEPT_QUESTION,))
    links = option_links(choices)
    if any(i != n - 1 for i in links.above) or any(i != 0 for i in links.below):
        return Plan((), (KEPT_SCOPE,))
    pinned: set[int] = set()
    notes: list[str] = []
    if links.above or links.below:
        pinned |= links.above | links.below
        notes.append(PINNED_SCOPE)
    if links.others:
        pinned |= links.others
        notes.append(PINNED_OTHERS)
    if links.letters:
        for i, refs in links.letters.items():
            pinned |= {i} | refs
        notes.append(PINNED_LETTERS)
    return Plan(tuple(i for i in range(n) if i not in pinned), tuple(notes))


@register("choice_shuffle", family="choice_shuffle", label_policy="remaps")
class ChoiceShuffle(Transform):
    """Reorder the answer options of a multiple-choice item and remap the gold letter.

    Tests position bias: a model that answers "A" by habit, or remembered the option
    order of a leaked benchmark, loses accuracy here. Only ``choices`` is reordered.
    Options that refer to other options keep their meaning: "All/None of the above"
    (last) and "None of the following" (first) stay where they are; an option that
    names others by letter ("Both (a) and (b)", "either A or C") stays in place with
    the options it names, and so does "all of these"; an item whose question names
    options by letter ("Is (B) correct?", "option C"), or whose "above" option is not
    last, is left as it is. Items without choices are returned unchanged; both cases
    are reported (see :meth:`cannot_apply` and :meth:`notes`).

    Severity: share of the movable options that change position (0.5 -> about half of
    them move; 1 -> every movable option moves). At least two move whenever any does.
    Label: remaps. The option texts are kept; a letter target ("A".."Z") is rewritten
    so that ``choices[target]`` is the same option text as before. A target that is not
    an option letter (option text, a label) is left as is, and stays correct.
    Options: none.
    """

    def apply(self, item: Item, severity: float, rng: random.Random) -> Item:
        if severity <= 0 or not item.choices or len(item.choices) < 2:
            return item
        movable = plan(item).movable
        if len(movable) < 2:
            return item
        n = len(item.choices)
        sub = displacement(len(movable), severity, rng)
        perm = list(range(n))
        for new, old in enumerate(sub):
            perm[movable[new]] = movable[old]
        if perm == list(range(n)):
            return item
        choices = tuple(item.choices[old] for old in perm)
        target = item.target
        letters = [choice_letter(i) for i in range(n)]
        if target in letters:
            target = choice_letter(perm.index(letters.index(target)))
        return dataclasses.replace(item, choices=choices, target=target)

    def cannot_apply(self, item: Item, severity: float) -> str | None:
        if not item.choices:
            return "item has no choices"
        decided = plan(item)
        if len(decided.movable) < 2:
            kept = [note for note in decided.notes if note.startswith("kept")]
            return kept[0] if kept else "fewer than two options may move"
        return None

    def notes(self, item: Item, severity: float) -> tuple[str, ...]:
        return plan(item).notes if item.choices else ()
