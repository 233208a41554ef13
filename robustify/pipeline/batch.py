"""``--batch`` in a job: the OpenAI Batch API answers first, then the normal run scores.

:func:`check_batch_job` refuses what the Batch API cannot do, before any call;
:func:`batch_first` runs :func:`robustify.runner.batch.run_batches` over the job's
variants (the same stream the runner reads, drawn again from the same seed) and returns
the backends to hand the runner: the ``openai:`` ones wrapped so that a prompt whose
batch request failed is recorded as failed on its rows, never asked live.

The batch state lives in the run folder (``batches/state.json``), or beside the cache
(``<cache>.batches/``) when the run writes no folder, so a stopped run resumes from it.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

from perturbations import VariantTally
from perturbations.errors import ConfigError

from robustify.runner.batch import BatchAnswered, run_batches
from robustify.runner.batch_jsonl import batch_options, is_batchable

__all__ = ["check_batch_job", "batch_first", "batch_folder"]


def check_batch_job(prep: Any) -> None:
    """Refuse a ``batch`` job the Batch API cannot answer (one line, before any call)."""
    job = prep.job
    where = job.where("batch")
    batch_options(job.batch, where)
    if not any(is_batchable(b) for b in prep.backends):
        raise ConfigError(f"{where}--batch needs an openai: model with one base URL (the "
                          f"OpenAI Batch API); none of "
                          f"{', '.join(b.label for b in prep.backends)} is one")
    if job.scoring_mode != "generate":
        raise ConfigError(f"{where}--batch works with --scoring-mode generate only (the "
                          f"Batch API writes answers; it does not rate options)")
    if prep.cache_path is None:
        raise ConfigError(f"{where}--batch needs the response cache (the answers are read "
                          f"back into it); do not pass --cache off")
    if job.noise_floor:
        raise ConfigError(f"{where}--batch does not combine with --noise-floor (its repeats "
                          f"would be normal calls); run the noise floor separately")


def batch_folder(prep: Any, write: bool) -> Path:
    """Where the batch state is kept: the run folder, else beside the cache."""
    if write:
        return Path(prep.out_dir) / "batches"
    cache = Path(prep.cache_path)
    return cache.with_name(cache.name + ".batches")


def batch_first(prep: Any, messages: Any, cache: Any, rewritten: Any, progress: bool,
                write: bool) -> tuple[list[Any], dict[str, Any]]:
    """Fill the cache through the Batch API; ``(backends for the runner, manifest facts)``."""
    variants: Any = prep.variants(VariantTally())
    if rewritten is not None:
        variants = itertools.chain(variants, rewritten.variants)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    folder = batch_folder(prep, write)
    try:
        outcome = run_batches(variants, prep.backends, build_messages=messages, cache=cache,
                              folder=folder,
                              options=batch_options(prep.job.batch, prep.job.where("batch")),
                              report=say if progress else None)
    except KeyboardInterrupt:
        say(f"stopped: the batch ids are kept in {folder}; run the same command again to "
            f"collect the answers (nothing is submitted twice)")
        raise
    backends = [BatchAnswered(b, outcome.failures.get(b.label, {})) if is_batchable(b) else b
                for b in prep.backends]
    return backends, {"batch": outcome.facts()}
