"""Errors of the upper layer that the CLI maps to its own exit codes.

Every deliberate error derives from :class:`perturbations.errors.RobustifyError`; this
module is import-light (no pandas) so that the CLI can name these classes at start-up.
"""

from __future__ import annotations

from perturbations.errors import RobustifyError

__all__ = ["AnalysisError", "OutputError"]


class AnalysisError(RobustifyError):
    """The model calls finished but the analysis or the report failed (CLI exit code 3).

    Every answer is already in the response cache, so the same command, run again once
    the cause is fixed, makes no new model call.
    """


class OutputError(RobustifyError):
    """The run folder could not be written (disk full, permission denied): CLI exit code 2.

    Raised before anything half-written is left: the staging folder is removed and the
    answers already received stay in the response cache.
    """
