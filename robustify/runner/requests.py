"""The messages of each item with its per-item request: task-kind parameters, loglik options.

:class:`RequestBuilder` is the ``build_messages`` callable the pipeline hands the runner
when a job uses per-task generation parameters or log-likelihood scoring. It renders
the chat with :func:`robustify.prompts.build_messages` and appends the request entry
that :class:`robustify.models.requests.RequestBackend` reads (see that module): the
task kind's parameters (:func:`robustify.prompts.task_params`) and, in a loglik mode,
the options to rate (:func:`robustify.scoring.loglik.choice_options`).
"""

from __future__ import annotations

from typing import Any, Mapping

from perturbations.errors import ConfigError
from perturbations.records import Item

from robustify.models.requests import add_request
from robustify.prompts import (DEFAULT_TEMPLATES, TASK_GENERATION, PromptTemplate,
                               build_messages)
from robustify.scoring.loglik import SCORING_MODES, choice_options

__all__ = ["RequestBuilder"]


class RequestBuilder:
    """Item -> chat messages plus the request entry.

    Args:
        templates: Prompt templates by task kind (``None``: the defaults).
        generation: A job's ``generation`` section: task kind -> parameters that win
            over the model's own and over :data:`robustify.prompts.TASK_GENERATION`.
        scoring_mode: One of :data:`robustify.scoring.loglik.SCORING_MODES`.
    """

    def __init__(self, templates: Mapping[str, PromptTemplate] | None = None, *,
                 generation: Mapping[str, Mapping[str, Any]] | None = None,
                 scoring_mode: str = "generate") -> None:
        if scoring_mode not in SCORING_MODES:
            raise ConfigError(f"unknown scoring mode {scoring_mode!r} (choose from "
                              f"{', '.join(SCORING_MODES)})")
        self.templates = templates
        self.generation = {k: dict(v) for k, v in (generation or {}).items()}
        self.scoring_mode = scoring_mode

    def __call__(self, item: Item) -> list[dict[str, str]]:
        messages = build_messages(item, self.templates)
        options = None
        if self.scoring_mode != "generate":
            template = (self.templates or {}).get(item.task) or DEFAULT_TEMPLATES[item.task]
            # rate what the worked examples answer with: the option text or its letter
            letters = "{choice}" not in template.shot_answer
            options = choice_options(item, letters=letters)
        if options:
            return add_request(messages, options=list(options),
                               normalize=self.scoring_mode == "loglik_norm")
        return add_request(messages, defaults=TASK_GENERATION.get(item.task),
                           params=self.generation.get(item.task))
