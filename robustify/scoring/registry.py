"""The scorer registry: names -> scorers, the default per task kind, and :func:`score_answer`.

Built-in scorers are registered in :mod:`robustify.scoring.rules`; other packages add
scorers through the entry-point group ``robustify.scorers`` (each entry point names a
module whose import runs :func:`register_scorer`). A scorer is ``(item, text) -> Score``
(a bool or a number is accepted too) and ``text`` is never ``None``. Choose one by name
with ``scorer=`` in :func:`robustify.evaluate`, ``scorer:`` in a job file or ``--scorer``
on the command line; without one each item is graded by the default of its task kind.
"""

from __future__ import annotations

import math
from typing import Any, Callable, TypeVar

from perturbations.plugins import Registry
from perturbations.records import Item

from robustify.records import Score

__all__ = ["SCORERS", "DEFAULT_SCORERS", "Scorer", "register_scorer", "get_scorer",
           "score_answer", "scorer_names", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "robustify.scorers"

Scorer = Callable[[Item, str], Any]
"""A scorer: ``(item, answer_text) -> Score | bool | float``; ``text`` is never ``None``."""


def _check(obj: Any) -> None:
    if not callable(obj):
        raise TypeError(f"a scorer must be callable (item, text) -> Score, got {obj!r}")


SCORERS: Registry[Scorer] = Registry("scorer", entry_point_group=ENTRY_POINT_GROUP,
                                     builtins=("robustify.scoring.rules",
                                               "robustify.scoring.similarity",
                                               "robustify.scoring.similarity_embed"), check=_check)
"""Scorer name -> scorer."""

DEFAULT_SCORERS: dict[str, str] = {
    "multiple_choice": "multiple_choice",
    "yes_no": "yes_no",
    "numeric": "numeric",
    "classification": "classification",
    "short_answer": "short_answer",
    "open": "similarity",
}
"""Which scorer grades each task kind when none is given."""

S = TypeVar("S", bound=Callable[..., Any])


def register_scorer(name: str) -> Callable[[S], S]:
    """Decorator registering a scorer under ``name`` (lower_snake_case)."""
    return SCORERS.register(name)


def get_scorer(name: str) -> Scorer:
    """The scorer registered as ``name``.

    A scorer with an optional dependency carries a ``requires`` attribute, a function
    that raises :class:`ConfigError` (naming the install command) when it is missing;
    it runs here, so a job fails before any model call.

    Raises:
        UnknownNameError: with close matches.
        ConfigError: the scorer's optional dependency is not installed.
    """
    scorer = SCORERS.get(name)
    requires = getattr(scorer, "requires", None)
    if callable(requires):
        requires()
    return scorer


def scorer_names() -> list[str]:
    """Every registered scorer name, sorted."""
    return SCORERS.names()


def _coerce(result: Any) -> Score:
    if isinstance(result, Score):
        return result
    if isinstance(result, bool):
        return Score(1.0 if result else 0.0)
    if isinstance(result, (int, float)):
        return Score(float(result))
    raise TypeError(f"a custom scorer must return Score, bool or a number, got "
                    f"{type(result).__name__}")


def score_answer(item: Item, text: str | None, *,
                 scorer: str | Callable[[Item, str], Any] | None = None) -> Score:
    """Grade one answer.

    Args:
        item: The item asked (for a variant: its perturbed item, whose target is the
            gold, remapped where the transform remaps it).
        text: The model's answer; ``None`` when the call failed.
        scorer: A registered scorer name, a callable ``(item, text) -> Score | bool |
            float``, or ``None`` for the default of ``item.task`` (:data:`DEFAULT_SCORERS`).

    Returns:
        The score; ``Score(nan)`` when ``text`` is ``None``.

    Raises:
        UnknownNameError: ``scorer`` names no registered scorer (close matches are listed).
        ConfigError: the item lacks what the scorer needs (choices, answer_regex ...).

    >>> from perturbations import Item
    >>> item = Item(id="q", input="Is it raining?", target="yes", task="yes_no")
    >>> score_answer(item, "Yes, it is.").value, score_answer(item, "yes", scorer="exact").value
    (1.0, 1.0)
    """
    fn = scorer if callable(scorer) else _named(scorer or DEFAULT_SCORERS[item.task])
    if text is None:
        return Score(math.nan)
    return _coerce(fn(item, text))


def _named(name: str) -> Scorer:
    """The scorer ``name``; ``judge:MODEL_SPEC`` (syntax checked) is a placeholder that
    leaves every answer unscored (NaN) until the judge pass grades it once the answers
    are in (:mod:`robustify.scoring.judge`)."""
    from robustify.scoring.judge import is_judge, parse_judge_scorer

    if is_judge(name):
        parse_judge_scorer(name)
        return _judge_pending
    return get_scorer(name)


def _judge_pending(item: Item, text: str) -> Score:
    """An answer waiting for the judge pass: unscored until then."""
    return Score(math.nan, detail={"judge": "pending"})
