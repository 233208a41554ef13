"""Choice shuffle: the same options in a different order, with the gold letter remapped."""

from __future__ import annotations

import dataclasses
import random

from ..base import Transform
from ..records import Item, choice_letter
from ..registry import register
from ..text import count_for

__all__ = ["ChoiceShuffle", "displacement"]


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


@register("choice_shuffle", family="choice_shuffle", label_policy="remaps")
class ChoiceShuffle(Transform):
    """Reorder the answer options of a multiple-choice item and remap the gold letter.

    Tests position bias: a model that answers "A" by habit, or remembered the option
    order of a leaked benchmark, loses accuracy here. Only ``choices`` is reordered;
    option letters written into the question text are left as they are, so use it on
    items whose options are presented from ``choices``. Items without choices are
    returned unchanged.

    Severity: share of the options that change position (0.5 -> about half of them
    move; 1 -> every option moves). At least two options move whenever any does.
    Label: remaps. The option texts are kept; a letter target ("A".."Z") is rewritten
    so that ``choices[target]`` is the same option text as before. A target that is not
    an option letter (option text, a label) is left as is, and stays correct.
    Options: none.
    """

    def apply(self, item: Item, severity: float, rng: random.Random) -> Item:
        if severity <= 0 or not item.choices or len(item.choices) < 2:
            return item
        n = len(item.choices)
        perm = displacement(n, severity, rng)
        if perm == list(range(n)):
            return item
        choices = tuple(item.choices[old] for old in perm)
        target = item.target
        letters = [choice_letter(i) for i in range(n)]
        if target in letters:
            target = choice_letter(perm.index(letters.index(target)))
        return dataclasses.replace(item, choices=choices, target=target)
