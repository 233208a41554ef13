"""Records of the upper layer: generation parameters, model responses and scores."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

__all__ = ["GenerationParams", "Completion", "Score", "RESULT_COLUMNS"]


@dataclass(frozen=True)
class GenerationParams:
    """Sampling parameters sent with every call and recorded in the manifest."""

    temperature: float = 0.0
    """0 = greedy decoding, the default so runs repeat."""
    seed: int | None = 0
    """Sampling seed passed to the backend where it supports one."""
    max_tokens: int = 48
    """Answer budget; short because the prompts ask for short answers."""
    stop: tuple[str, ...] = ()
    """Stop sequences."""
    top_p: float | None = None
    """Nucleus sampling cut-off; ``None`` leaves the backend default."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Backend-specific parameters sent as they are: ``extra_body`` for OpenAI-compatible
    servers (e.g. ``{"repeat_penalty": 1.0}`` for llama.cpp's server), keyword arguments of
    ``create_chat_completion`` for the local backend. Part of the cache key."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        d["extra"] = dict(self.extra)
        return d


@dataclass(frozen=True)
class Completion:
    """What a backend returns for one call."""

    text: str
    """The assistant message text."""
    tokens_in: int | None = None
    """Prompt tokens, when the backend reports them."""
    tokens_out: int | None = None
    """Completion tokens, when the backend reports them."""
    capped: bool = False
    """True when the text was cut to the answer-size cap (see ``robustify.models.answer_cap``)."""
    finish_reason: str | None = None
    """Why generation stopped, as the backend says: ``"stop"`` (the model ended its answer
    or a stop sequence), ``"length"`` (cut at ``max_tokens``), or ``None`` when unknown."""

    @property
    def hit_token_limit(self) -> bool:
        """True when the answer was cut by ``max_tokens`` (``finish_reason == "length"``)."""
        return self.finish_reason == "length"


@dataclass(frozen=True)
class Score:
    """How one answer scored against the gold target."""

    value: float
    """1.0 right, 0.0 wrong, in between for partial credit (token F1); NaN = unscored."""
    parsed: str | None = None
    """The answer the scorer extracted (a letter, a number, a label), if any."""
    unparseable: bool = False
    """True when no answer could be extracted: counted apart from wrong answers."""
    detail: dict[str, Any] = field(default_factory=dict)
    """Scorer-specific extras (e.g. which alias matched)."""

    @property
    def scored(self) -> bool:
        return not math.isnan(self.value)


RESULT_COLUMNS = (
    "model", "item_id", "variant_id", "spec", "transform", "severity", "severity_label",
    "replicate", "changed", "edit_rate", "label_policy", "task", "input", "target",
    "response", "parsed", "score", "unparseable", "score_detail", "error", "latency", "cached",
    "tokens_in", "tokens_out", "hit_token_limit", "answer_capped",
)
"""Columns of the per-row results frame, one row per model x variant (clean rows have
``spec == "clean"``). ``hit_token_limit`` is True when the answer was cut at
``max_tokens`` (counted apart from wrong answers); ``answer_capped`` is True where the
answer was cut to the answer-size cap. Item metadata follows as extra ``meta.<key>`` columns."""
