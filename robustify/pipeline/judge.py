"""A job's judge scorer: read from the job, built before any call, run after the answers.

``scorer: judge:MODEL_SPEC`` (or, in a job file, a mapping ``{judge: MODEL_SPEC,
concurrency: 2, retries: 3, timeout: 60, max_tokens: 8, mode: loglik, api_key_env: VAR}``)
grades every answer with a judge model (:mod:`robustify.scoring.judge` for the rubric
and the verdicts, :mod:`robustify.runner.judge` for the pass). :func:`prepare_judge`
builds the judge backend with the job's other checks, before any model call; a bad spec
is one line naming the key. :func:`run_judge` grades the results once every answer is
in, and its facts (spec, options, rubric text and hashes, verdict counts, unparseable,
failed, calls and cache hits) go to the manifest under ``judge``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from perturbations.errors import ConfigError

from robustify.scoring.judge import JudgeConfig, is_judge, parse_judge_scorer

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Judge", "split_scorer", "check_judge", "prepare_judge", "run_judge"]


@dataclass
class Judge:
    """A built judge: its configuration and its backend (nothing called yet)."""

    config: JudgeConfig
    backend: Any

    def close(self) -> None:
        """Release the judge backend."""
        self.backend.close()


def split_scorer(scorer: Any, where: str = "") -> tuple[str | None, dict[str, Any]]:
    """``(scorer string, judge options)`` of a scorer given as a string or a judge mapping.

    Raises:
        ConfigError: a mapping that is no judge scorer, or a bad judge option.
    """
    if scorer is None or isinstance(scorer, str):
        return scorer, {}
    if isinstance(scorer, Mapping) and is_judge(scorer):
        config = parse_judge_scorer(scorer, where=where)
        return config.scorer, config.options()
    raise ConfigError(f"{where}expected a scorer name or a judge mapping "
                      f"({{judge: MODEL_SPEC, ...}}), got {type(scorer).__name__}")


def _config(job: Any) -> JudgeConfig | None:
    if not is_judge(job.scorer):
        return None
    return parse_judge_scorer(job.scorer, getattr(job, "judge_options", None) or {},
                              where=job.where("scorer"))


def check_judge(job: Any) -> None:
    """Check a job's judge scorer without building anything (syntax, model kind).

    Raises:
        ConfigError: one line naming the key (and the job file).
    """
    from robustify.models.registry import split_model_spec

    config = _config(job)
    if config is None:
        return
    try:
        split_model_spec(config.spec)
    except ConfigError as exc:
        raise ConfigError(f"{job.where('scorer')}judge: {exc}") from None


def prepare_judge(job: Any) -> Judge | None:
    """Build the job's judge backend (no call), or ``None`` when the scorer is no judge.

    Raises:
        ConfigError: bad spec, option or missing key, naming the key.
    """
    from robustify.runner.judge import build_judge

    config = _config(job)
    if config is None:
        return None
    try:
        return Judge(config, build_judge(config))
    except ConfigError as exc:
        raise ConfigError(f"{job.where('scorer')}judge: {exc}") from None


def run_judge(judge: Judge, results: pd.DataFrame, cache: Any, progress: bool | str
              ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Grade ``results`` with the judge; the facts are redacted for the manifest."""
    from robustify._secrets import redact
    from robustify.runner.judge import judge_results

    graded, facts = judge_results(results, judge.backend, judge.config, cache=cache,
                                  progress=progress)
    facts["identity"] = {k: redact(v, str(k)) for k, v in facts["identity"].items()}
    return graded, facts
