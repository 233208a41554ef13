"""Errors of the upper layer that the CLI maps to its own exit codes.

Every deliberate error derives from :class:`perturbations.errors.RobustifyError`; this
module is import-light (no pandas) so that the CLI can name these classes at start-up.
"""

from __future__ import annotations

from perturbations.errors import RobustifyError

__all__ = ["AnalysisError"]


class AnalysisError(RobustifyError):
    """The model calls finished but the analysis or the report failed (CLI exit code 3).

    Every answer is already in the response cache, so the same command, run again once
    the cause is fixed, makes no new model call.
    """
