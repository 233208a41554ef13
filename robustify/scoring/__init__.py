"""Scoring: a model's answer text -> :class:`robustify.records.Score`, by task kind or by name.

- :mod:`.registry`: the scorer registry (plugins through ``robustify.scorers``), the
  default scorer per task kind and :func:`score_answer`;
- :mod:`.rules`: the built-in scorers (multiple choice, exact, normalised, numeric,
  yes/no, classification, short answer, contains, token F1, regex);
- :mod:`.similarity`: the ``similarity`` scorer for free text (rapidfuzz ratio with
  negation, number and yes/no vetoes); :mod:`.similarity_embed`: ``similarity_embed``, the
  same on WordLlama embeddings (optional ``embed`` extra);
- :mod:`.labels`: a classification label set prepared once and shared by its answers;
- :mod:`.text`: normalisation and whole-word matching shared by the scorers;
- :mod:`.clarify`: detects answers that ask for clarification instead of answering.
"""

from __future__ import annotations

from robustify.scoring.registry import (DEFAULT_SCORERS, SCORERS, Scorer, get_scorer,
                                        register_scorer, score_answer, scorer_names)
from robustify.scoring.rules import normalize_text, parse_number

__all__ = ["score_answer", "SCORERS", "DEFAULT_SCORERS", "Scorer", "register_scorer",
           "get_scorer", "scorer_names", "normalize_text", "parse_number"]
