"""Fake models with a known amount of memorisation, for the leakage-probe tests.

:data:`ITEMS` are multiple-choice items written for these tests. The fake models read
the prompt the way a model would see it (question text and options, in whatever order
they are shown) and answer as if they had:

* :func:`memorised_half` memorised the even-numbered items verbatim: right on the exact
  benchmark wording and option order, wrong on any rewrite; it knows the odd-numbered
  items properly (right on every version). Asked to continue the text of a memorised
  item, it echoes the prefix and reproduces the true remainder; for anything else it
  says it does not know.
* :func:`memorised_none` memorised nothing and knows every item: right on every
  version, never reproduces a text.
* :func:`coin_flip` memorised nothing but is shaky: right or wrong by a hash of the
  exact prompt, so verbatim and rewritten versions are exchangeable.

Use them as ``python:tests.robustify.beyond_models:memorised_half``.
"""

from __future__ import annotations

import hashlib
import re

from perturbations import Item
from perturbations.records import choice_letter

__all__ = ["ITEMS", "MEMORISED", "memorised_half", "memorised_none", "coin_flip",
           "item_text"]

_RAW = (
    ("Which metal is liquid at room temperature and used in old thermometers?",
     ("Mercury", "Copper", "Silver", "Tin"), 0),
    ("I planted 6 rows of beans, which vegetable did I plant in the garden?",
     ("Carrots", "Beans", "Onions", "Leeks"), 1),
    ("A baker bakes bread every morning. Which job does this person have?",
     ("Pilot", "Nurse", "Baker", "Farmer"), 2),
    ("Which season comes after winter in the northern half of the world?",
     ("Autumn", "Summer", "Monsoon", "Spring"), 3),
    ("What do you call a baby cat in everyday English at home?",
     ("Kitten", "Puppy", "Foal", "Calf"), 0),
    ("If a week has 7 days, how many days are in 2 weeks on the calendar?",
     ("10", "14", "21", "28"), 1),
    ("Which colour do you get by mixing red and white paint in a pot?",
     ("Green", "Purple", "Pink", "Orange"), 2),
    ("My phone is out of charge, which thing do I need to plug in now?",
     ("A ladder", "A spoon", "A pillow", "A charger"), 3),
    ("Which animal is famous for its long neck on the African plains?",
     ("Giraffe", "Hippo", "Zebra", "Lion"), 0),
    ("What do people usually drink from a mug in the early morning?",
     ("Sand", "Coffee", "Glue", "Paint"), 1),
    ("The sun sets in the evening. In which direction does it set?",
     ("North", "South", "West", "East"), 2),
    ("Which instrument keeps time with a swinging weight in a tall case?",
     ("Drum", "Harp", "Flute", "Clock"), 3),
    ("Which shape has three sides and three corners in basic geometry?",
     ("Triangle", "Square", "Circle", "Oval"), 0),
    ("A library lends books to readers, what do you need to borrow one?",
     ("A passport", "A library card", "A ticket", "A key"), 1),
    ("Which planet do we live on in our solar system today?",
     ("Mars", "Venus", "Earth", "Saturn"), 2),
    ("Which bird is a symbol of peace in many old paintings?",
     ("Crow", "Eagle", "Owl", "Dove"), 3),
)

ITEMS: tuple[Item, ...] = tuple(
    Item(id=f"beyond-{i:02d}", input=question, choices=choices,
         target=choice_letter(answer), task="multiple_choice")
    for i, (question, choices, answer) in enumerate(_RAW))
"""The test items."""

MEMORISED = frozenset(item.id for i, item in enumerate(ITEMS) if i % 2 == 0)
"""Ids :func:`memorised_half` memorised verbatim."""


def item_text(item: Item) -> str:
    """The item's text as the completion probe builds it (question, then options)."""
    return item.input + " " + " ".join(f"{choice_letter(i)}. {c}"
                                       for i, c in enumerate(item.choices or ()))


def _last_user(messages: list[dict[str, str]]) -> str:
    return [m["content"] for m in messages if m["role"] == "user"][-1]


def _is_completion(messages: list[dict[str, str]]) -> bool:
    return messages[0]["role"] == "system" and messages[0]["content"].startswith(
        "You continue texts")


def _read(content: str) -> tuple[Item, list[str], bool] | None:
    """(item, options in shown order, verbatim?) for a question prompt, in any layout.

    The options are found by their text (none of them occurs in any question), so the
    fake works whether the template lists them as "A. text" lines or inline.
    """
    for item in ITEMS:
        positions = []
        for choice in item.choices:
            match = re.search(r"(?<!\w)" + re.escape(choice) + r"(?!\w)", content)
            positions.append(match.start() if match else -1)
        if min(positions) < 0:
            continue
        shown = [c for _, c in sorted(zip(positions, item.choices))]
        verbatim = item.input in content and shown == list(item.choices)
        return item, shown, verbatim
    return None


def _answer(messages: list[dict[str, str]], right: bool | None) -> str:
    found = _read(_last_user(messages))
    if found is None:
        return "I am not sure."
    item, shown, _ = found
    gold = item.choices[ord(item.target) - ord("A")]
    # the option's text: what a model says whatever the template (letters or none)
    return gold if right else shown[(shown.index(gold) + 1) % len(shown)]


def _continue(messages: list[dict[str, str]], memorised: frozenset[str]) -> str:
    prefix = _last_user(messages).split("\n\n", 1)[-1]
    for item in ITEMS:
        text = item_text(item)
        if item.id in memorised and text.startswith(prefix):
            # echo the prefix first, as small chat models do, then the remainder
            return text
    return "I do not know how this goes on."


def memorised_half(messages: list[dict[str, str]]) -> str:
    """Right verbatim only on the memorised half; right everywhere on the rest."""
    if _is_completion(messages):
        return _continue(messages, MEMORISED)
    found = _read(_last_user(messages))
    if found is None:
        return "I am not sure."
    item, _, verbatim = found
    return _answer(messages, verbatim or item.id not in MEMORISED)


def memorised_none(messages: list[dict[str, str]]) -> str:
    """Knows every item in every wording; reproduces no text."""
    if _is_completion(messages):
        return _continue(messages, frozenset())
    return _answer(messages, True)


def coin_flip(messages: list[dict[str, str]]) -> str:
    """Right or wrong by a hash of the exact prompt: no memorisation, plenty of noise."""
    if _is_completion(messages):
        return _continue(messages, frozenset())
    digest = hashlib.sha256(_last_user(messages).encode("utf-8")).digest()
    return _answer(messages, digest[0] % 2 == 0)
