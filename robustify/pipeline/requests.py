"""Wiring per-task generation parameters and the scoring mode into a job.

Every backend of a job is wrapped in :class:`robustify.models.requests.RequestBackend`
(same label, kind and cache identity), so items of a task kind with their own
generation parameters (:data:`robustify.prompts.TASK_GENERATION`, a job's
``generation`` section) are answered with them, and a loglik scoring mode rates the
options of multiple-choice, classification and yes/no items. A model that cannot give
log-probabilities in a loglik mode is refused here, before any call.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, Sequence

from robustify.models.requests import RequestBackend
from robustify.prompts import TASK_GENERATION
from robustify.records import GenerationParams
from robustify.runner.requests import RequestBuilder
from robustify.scoring.loglik import score_choice

__all__ = ["wrap_backends", "message_builder", "mode_scorer", "generation_table"]


def wrap_backends(backends: Sequence[Any], models: Sequence[Any], *, scoring_mode: str,
                  make: Callable[[Any, GenerationParams], Any]) -> list[RequestBackend]:
    """Wrap each backend; ``make(model_config, params)`` builds the model with other params.

    Raises:
        ConfigError: a loglik mode with a backend that cannot give log-probabilities.
    """
    table_keys = {key for params in TASK_GENERATION.values() for key in params}
    mode = "generate" if scoring_mode == "generate" else "loglik"
    out = []
    for backend, config in zip(backends, models):
        if isinstance(backend, RequestBackend):
            out.append(backend)
            continue
        pinned = sorted(table_keys & set(config.params))
        out.append(RequestBackend(backend, make=functools.partial(make, config),
                                  pinned=pinned, scoring=mode))
    return out


def message_builder(templates: Mapping[str, Any] | None, job: Any) -> RequestBuilder:
    """The ``build_messages`` callable of a job (prompts plus per-item requests)."""
    return RequestBuilder(templates, generation=job.generation, scoring_mode=job.scoring_mode)


def mode_scorer(score: Callable[..., Any], scoring_mode: str) -> Callable[..., Any]:
    """The job's scorer, grading loglik picks exactly in a loglik mode."""
    if scoring_mode == "generate":
        return score
    return functools.partial(score_choice, fallback=score)


def generation_table(job: Any) -> dict[str, dict[str, Any]]:
    """Per task kind, the parameters it changes (the table, then the job's section)."""
    table = {kind: dict(params) for kind, params in TASK_GENERATION.items()}
    for kind, params in (job.generation or {}).items():
        table.setdefault(kind, {}).update(params)
    return table
