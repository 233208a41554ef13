"""Log-likelihood scoring: what the options of an item are, and how the picked one scores.

In ``loglik`` scoring mode (``--scoring-mode loglik``) a model is not asked to write an
answer: each option is rated by the summed log-probability of its tokens after the
prompt, and the best one is the answer (lm-eval's ``multiple_choice`` output type;
``loglik_norm`` divides by the option's length first, lm-eval's ``acc_norm``). The
options are what a right answer looks like in the prompt's worked examples:

==================  =======================================================
task kind           options
==================  =======================================================
multiple_choice     the text of each choice (the letters, when the template's
                    worked examples answer with a letter)
classification      ``metadata["labels"]``
yes_no              ``Yes`` and ``No``
numeric, short      none: these items are still answered by generation
==================  =======================================================

The picked option is graded exactly (no parsing): a multiple-choice option by its
letter, a label or yes/no by the task kind's scorer, which the exact text always
satisfies.
"""

from __future__ import annotations

from typing import Any, Callable

from perturbations.records import Item, choice_letter

from robustify.records import Score
from robustify.scoring.registry import score_answer

__all__ = ["SCORING_MODES", "choice_options", "score_choice"]

SCORING_MODES = ("generate", "loglik", "loglik_norm")
"""``generate``: the model writes an answer (the default); ``loglik``: the option with the
highest log-likelihood; ``loglik_norm``: the same per character of the option."""

_YES_NO = ("Yes", "No")


def choice_options(item: Item, *, letters: bool = False) -> tuple[str, ...] | None:
    """The options to rate for ``item``, or ``None`` when its task kind has none.

    ``letters``: multiple-choice options as their letters (``A``, ``B`` ...) instead of
    their text, for templates whose examples answer with a letter.
    """
    if item.task == "multiple_choice" and item.choices:
        if letters:
            return tuple(choice_letter(i) for i in range(len(item.choices)))
        return tuple(item.choices)
    if item.task == "classification":
        labels = item.metadata.get("labels")
        if labels and not isinstance(labels, str):
            return tuple(dict.fromkeys(str(label) for label in labels))
        return None
    if item.task == "yes_no":
        return _YES_NO
    return None


def score_choice(item: Item, text: str | None,
                 fallback: Callable[[Item, Any], Score] = score_answer) -> Score:
    """Grade the option a loglik call picked (``text`` is that option's exact text).

    A text that is no option of the item (an answer made by generation, for kinds
    without options) goes to ``fallback`` (the job's scorer).
    """
    options = choice_options(item)
    letters = choice_options(item, letters=True)
    if text is None or not options or (text not in options and text not in letters):
        return fallback(item, text)
    if item.task == "multiple_choice":
        assert letters is not None
        letter = choice_letter(options.index(text)) if text in options else text
        right = letter == item.target.strip().upper()
        return Score(1.0 if right else 0.0, parsed=letter, detail={"source": "loglik"})
    graded = score_answer(item, text)
    return Score(graded.value, parsed=graded.parsed, unparseable=graded.unparseable,
                 detail={"source": "loglik"})
