"""The pipeline: a job (file, flags or API call) validated, run end to end and reported.

- :mod:`.jobfile` reads and validates job files (YAML) into :class:`JobConfig`;
- :mod:`.run` prepares a job (everything checked before the first model call), runs it
  and holds the :class:`RunResult` and :func:`evaluate` the notebook API calls.
"""

from __future__ import annotations

from robustify.pipeline.jobfile import JobConfig, load_job
from robustify.pipeline.run import PreparedJob, RunResult, evaluate, prepare_job, run_job

__all__ = ["evaluate", "run_job", "prepare_job", "PreparedJob", "RunResult", "JobConfig",
           "load_job"]
