"""Scoring: a model's answer text -> :class:`robustify.records.Score`, by task kind.

- :mod:`.rules` holds the built-in scorers (multiple choice, exact, normalised, numeric,
  yes/no, classification, contains, token F1, regex), registered by name;
- :mod:`.clarify` detects answers that ask for clarification instead of answering.
"""

from __future__ import annotations

from robustify.scoring.rules import (DEFAULT_SCORERS, SCORERS, Scorer, normalize_text,
                                     parse_number, score_answer)

__all__ = ["score_answer", "SCORERS", "DEFAULT_SCORERS", "Scorer", "normalize_text",
           "parse_number"]
