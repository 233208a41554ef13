"""The pipeline: a job (file, flags or API call) validated, run end to end and reported.

- :mod:`.jobfile` reads and validates job files (YAML) into :class:`JobConfig`;
- :mod:`.prepare` checks everything that can fail before the first model call;
- :mod:`.run` runs a prepared job (lock, variants file, queries, analysis, report) and
  holds :func:`evaluate`, the notebook API;
- :mod:`.result` is the :class:`RunResult` every view is computed from.
"""

from __future__ import annotations

from robustify.pipeline.jobfile import JobConfig, load_job
from robustify.pipeline.prepare import SCHEMA_VERSION, PreparedJob, prepare_job
from robustify.pipeline.result import RunResult
from robustify.pipeline.run import evaluate, run_job

__all__ = ["evaluate", "run_job", "prepare_job", "PreparedJob", "RunResult", "JobConfig",
           "load_job", "SCHEMA_VERSION"]
