"""Running a job: the lock, the variants file, the queries, the analysis, the report.

:func:`evaluate` is the notebook API: one call runs a whole job and returns its
:class:`~robustify.pipeline.result.RunResult`.

>>> import robustify
>>> result = robustify.evaluate(data="sample", models=["local:smollm2"],
...                             transforms=["typos", "slang"], limit=20)   # doctest: +SKIP
>>> result.summary()                      # one row per model x transform x severity  # doctest: +SKIP
>>> result.plot_overestimation()          # matplotlib Axes                           # doctest: +SKIP
>>> result.write_report("reports/my-run") # report.html, report.md, CSVs              # doctest: +SKIP

The same steps are public for finer control: :func:`robustify.load_items`,
:func:`perturbations.perturb_items`, :func:`robustify.run_queries`,
:func:`robustify.summarize`, :func:`robustify.write_report`. The CLI
(``python -m robustify run``) is a thin layer over :func:`run_job`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from perturbations import CLEAN, Item, Variant, VariantTally
from perturbations.errors import ConfigError, RobustifyError
from perturbations.version import __version__

from robustify.errors import AnalysisError, OutputError
from robustify.atomic import (MANIFEST, RUN_LOCK, sweep_temp_files, tee_jsonl_atomic)
from robustify.pipeline.jobfile import DEFAULT_MODEL, DEFAULT_TRANSFORMS, DataSource, JobConfig, model_configs
from robustify.models.base import FatalModelError
from robustify.runner.cache import open_cache
from robustify.pipeline.prepare import PreparedJob, prepare_job
from robustify.pipeline.result import RunResult

if TYPE_CHECKING:
    import pandas as pd

    from robustify.reporting.chart_process import ChartProcess

__all__ = ["evaluate", "run_job", "AnalysisError", "folder_lock", "write_run_folder"]

log = logging.getLogger(__name__)

CHART_PROCESS_MIN_CALLS = 2000
"""Jobs planning at least this many model calls draw their charts in a second process
(:mod:`robustify.reporting.chart_process`): it starts with the calls and imports
matplotlib meanwhile, which a shorter job would wait for."""


@contextlib.contextmanager
def folder_lock(out_dir: str | os.PathLike[str], *, create: bool = True) -> Iterator[None]:
    """Hold the run folder's lock (one writer at a time) and sweep stale temp files.

    With ``create``, a folder made here is removed again if the block fails while the
    folder holds nothing but the lock: a failed start leaves nothing behind.
    """
    from filelock import FileLock, Timeout

    out_dir = Path(out_dir)
    made = not out_dir.exists()
    if made and not create:
        raise ConfigError(f"{out_dir}: folder not found")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out_dir}: cannot create the run folder "
                          f"({exc.strerror or exc})") from None
    lock = FileLock(str(out_dir / RUN_LOCK))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(f"{out_dir}: another robustify run is writing to this folder; wait "
                          f"for it to finish or choose another --out") from None
    except OSError as exc:
        _remove_if_bare(out_dir, made)
        raise OutputError(f"{out_dir}: cannot lock the run folder ({exc.strerror or exc})") \
            from None
    try:
        # a run killed mid-write leaves its temporary files; we hold the lock, so they are stale
        sweep_temp_files(out_dir)
        sweep_temp_files(out_dir / "charts")
        yield
    except BaseException:
        lock.release()
        _remove_if_bare(out_dir, made)
        raise
    else:
        lock.release()


def _remove_if_bare(out_dir: Path, made: bool) -> None:
    """Remove a folder this run made when only its lock is in it."""
    if not made:
        return
    try:
        names = {p.name for p in out_dir.iterdir()}
        if names <= {RUN_LOCK}:
            for name in names:
                os.unlink(out_dir / name)
            out_dir.rmdir()
    except OSError:
        pass


def write_run_folder(result: RunResult, out_dir: str | os.PathLike[str], *,
                     chart_process: "ChartProcess | None" = None) -> None:
    """Write a run's results and report into ``out_dir`` as a whole or not at all
    (:meth:`RunResult.write_report` stages and renames). The caller holds the folder lock.

    Raises:
        OutputError: disk full, permission denied: nothing was published.
    """
    result.write_report(out_dir, chart_process=chart_process)


def _drop_manifest(out_dir: Path) -> None:
    """A run starting over a finished folder: mark it incomplete until it is rewritten."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(out_dir / MANIFEST)


def _output_errors(stream: Iterator[Variant], path: Path) -> Iterator[Variant]:
    """Pass variants through; a failed write of the variants file becomes one line."""
    try:
        yield from stream
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc}); the answers "
                          f"received so far are in the response cache") from None
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()


def run_job(job: JobConfig, *, progress: bool = True, write: bool = True,
            prepared: PreparedJob | None = None) -> "RunResult":
    """Run a validated job end to end and (with ``write``) save everything under ``out``.

    The variants file is streamed while the runner plans (it plans in slices while the
    first calls are out, :mod:`robustify.runner.feed`) and renamed into place, whole,
    once the last variant is drawn (model-written rewrites, when asked for, are made
    first); answers go to the response cache as they arrive (an interrupted run loses
    only calls in flight), and results, summary, charts and report are written
    atomically at the end.
    """
    from robustify.runner.execute import run_queries

    from robustify.pipeline.consistency import check_consistency, consistency_facts
    from robustify.pipeline.judge import prepare_judge, run_judge

    prep = prepared or prepare_job(job)
    job = prep.job
    prep.check_planned_calls()
    check_consistency(job, prep.items)
    if job.batch:  # refused before any call when the Batch API cannot answer
        from robustify.pipeline.batch import check_batch_job

        check_batch_job(prep)
    started = time.time()
    lock = folder_lock(prep.out_dir) if write else contextlib.nullcontext()
    judge = prepare_judge(job)  # built (and checked) before any call
    judge_facts: dict[str, Any] | None = None
    with lock:
        if write:
            _drop_manifest(prep.out_dir)
        messages: Callable[[Item], list[dict[str, str]]] = prep.build_messages()
        cache, _ = open_cache(prep.cache_path)
        fatal: FatalModelError | None = None
        floor = None
        rewritten = None
        # the report's imports during the calls; a large job's charts in a second process
        warm = _WarmReport(write, charts_apart=prep.planned_calls >= CHART_PROCESS_MIN_CALLS)
        tally = VariantTally()
        variants: Iterable[Variant] = prep.variants(tally)
        stream: Iterator[Variant] = iter(())
        backends, batch_facts = prep.backends, {}
        try:
            if prep.rewrites:
                from robustify.probes.rewrite import run_rewrite_specs

                rewritten = run_rewrite_specs(prep.items, prep.rewrites, seed=job.seed,
                                              cache=cache, replicates=job.replicates,
                                              progress=progress)
                if write:
                    rewritten.write(prep.out_dir)
                variants = itertools.chain(variants, rewritten.variants)
            sampled = _RealismSample(warm.after(variants))
            # the realism table needs only the drawn variants: measured while calls go
            warm.also(functools.partial(sampled.table, prep))
            written = _Counted(sampled)
            stream = written
            if write:
                # streamed as the runner plans (slices between its calls); the file
                # appears, whole, once the last variant is drawn
                path = prep.out_dir / "variants.jsonl"
                stream = _output_errors(tee_jsonl_atomic(path, stream, Variant.to_json), path)
            if job.batch:  # the OpenAI Batch API fills the cache first (docs/batch-api.md)
                from robustify.pipeline.batch import batch_first

                backends, batch_facts = batch_first(prep, messages, cache, rewritten,
                                                    progress, write)
            try:
                ask = _asker(prep.items, run_queries)
                results = ask(stream, backends, build_messages=messages,
                              score=_scorer_of(job), cache=cache, max_calls=job.max_calls,
                              progress=progress)
            except FatalModelError as exc:
                # a permanent 401/404: keep what the other models (and this one) answered
                if getattr(exc, "results", None) is None:
                    raise
                fatal, results = exc, exc.results
            if job.noise_floor and fatal is None:
                floor = _noise_floor(prep, messages, cache, progress)
            if judge is not None:  # the answers are in: the judge grades them
                results, judge_facts = run_judge(judge, results, cache, progress)
                if floor is not None:
                    floor, _ = run_judge(judge, floor, cache, progress)
        except BaseException:
            warm.close()
            raise
        finally:
            close = getattr(stream, "close", None)
            if close is not None:  # a failed run: drop the half-written variants file now
                close()
            if cache is not None:
                cache.close()
            for backend in prep.backends:
                backend.close()
            if judge is not None:
                judge.close()
        try:
            realism = warm.wait()
            manifest = prep.manifest(
                n_variants=written.count - len(prep.items),
                variants=tally.rows(),
                realism=realism if realism is not None else sampled.table(prep),
                concurrency=_concurrency(results),
                rewrites=rewritten.manifest if rewritten is not None else [],
                counts=_counts(results),
                **consistency_facts(prep.items, job.scorer),
                duration_s=round(time.time() - started, 2),
                **batch_facts,
                **({"judge": judge_facts} if judge_facts is not None else {}),
            )
            result = RunResult(results=results, manifest=manifest, out_dir=prep.out_dir,
                               noise_floor_rows=floor)
            if write:
                write_run_folder(result, prep.out_dir, chart_process=warm.charts)
        except OutputError as exc:
            raise OutputError(f"{exc}; {_kept(results, prep.cache_path)}") from None
        except RobustifyError:
            raise
        except Exception as exc:
            raise _analysis_failed(exc, results, prep.cache_path) from exc
        finally:
            warm.close()
    if fatal is not None:
        raise fatal
    return result


def _asker(items: Sequence[Item], run_queries: Callable[..., pd.DataFrame]
           ) -> Callable[..., pd.DataFrame]:
    """``run_queries``, or the two-phase consistency run when an open item has no gold."""
    from robustify.pipeline.consistency import needs_consistency, run_consistency

    if not needs_consistency(items):
        return run_queries
    return functools.partial(run_consistency, run_queries=run_queries)


def _analysis_failed(exc: BaseException, results: pd.DataFrame,
                     cache_path: Path | None) -> AnalysisError:
    from robustify.models.base import one_line

    return AnalysisError(f"the analysis failed after the model calls "
                         f"({type(exc).__name__}: {one_line(exc, limit=300)}); "
                         f"{_kept(results, cache_path)}")


def _kept(results: pd.DataFrame, cache_path: Path | None) -> str:
    """Where the answers of a run that failed after its calls are."""
    answered = int(results["error"].isna().sum()) if "error" in results else len(results)
    if cache_path is not None:
        return (f"the {answered} answers are kept in the response cache {cache_path}: run the "
                f"same command again to resume without new model calls")
    return (f"the response cache was off (--cache off), so the {answered} answers were not "
            f"kept; use a cache to make a rerun free")


class _RealismSample:
    """Pass variants through, keeping the text of the first :attr:`PER_SPEC` of each spec.

    Bounded memory whatever the run's size; measured after the run for the realism table.
    """

    PER_SPEC = 300

    def __init__(self, variants: Iterable[Variant]) -> None:
        self._variants = iter(variants)
        self.texts: dict[str, list[str]] = {}

    def __iter__(self) -> "_RealismSample":
        return self

    def __next__(self) -> Variant:
        variant = next(self._variants)
        if variant.spec != CLEAN:
            kept = self.texts.setdefault(variant.spec, [])
            if len(kept) < self.PER_SPEC:
                kept.append(variant.item.input)
        return variant

    def table(self, prep: PreparedJob) -> dict[str, Any]:
        """The realism table (rows) of the sampled variants, beside the clean items and,
        when the job names one, the real traffic."""
        from perturbations.realism import measure, realism_table

        clean = [item.input for item in prep.items]
        columns = {}
        reference = None
        if prep.realism_ref:
            reference = f"real traffic ({Path(prep.job.realism_ref or '').name})"
            columns[reference] = measure(prep.realism_ref)
        columns["clean items"] = measure(clean[:self.PER_SPEC])
        for spec, texts in self.texts.items():
            columns[spec] = measure(texts, names_from=clean)
        return {"reference": prep.job.realism_ref, "per_spec": self.PER_SPEC,
                "rows": realism_table(columns, reference=reference)}


class _Counted:
    """An iterator that counts what went through it."""

    def __init__(self, items: Iterable[Variant]) -> None:
        self._items = iter(items)
        self.count = 0

    def __iter__(self) -> "_Counted":
        return self

    def __next__(self) -> Variant:
        item = next(self._items)
        self.count += 1
        return item


def _noise_floor(prep: PreparedJob, messages, cache, progress: bool) -> pd.DataFrame:
    """Re-ask the clean items k times with other sampling seeds (no perturbation)."""
    import pandas as pd

    from robustify.models import parse_model_spec
    from robustify.runner.execute import run_queries

    clean = [Variant.clean(item, seed=prep.job.seed, version=__version__) for item in prep.items]
    frames = []
    for repeat in range(1, prep.job.noise_floor + 1):
        backends = []
        for backend, config in zip(prep.backends, prep.job.models):
            params = dataclasses.replace(backend.params, seed=(backend.params.seed or 0) + repeat)
            backends.append(parse_model_spec(config.spec, params=params,
                                             api_key_env=config.api_key_env,
                                             concurrency=config.concurrency or prep.job.concurrency,
                                             timeout=config.timeout, **config.options))
        backends = _wrap(prep, backends)
        frame = run_queries(clean, backends, build_messages=messages, score=_scorer_of(prep.job),
                            cache=cache, progress=progress)
        frame["repeat"] = repeat
        frames.append(frame)
        for backend in backends:
            backend.close()
    return pd.concat(frames, ignore_index=True)


def _scorer_of(job: JobConfig) -> Callable[..., Any]:
    """``score_answer`` with the job's scorer (validated with the job, before any call),
    grading loglik picks exactly in a loglik scoring mode."""
    from robustify.pipeline.requests import mode_scorer
    from robustify.scoring import score_answer

    score = functools.partial(score_answer, scorer=job.scorer) if job.scorer else score_answer
    return mode_scorer(score, job.scoring_mode)


def _wrap(prep: PreparedJob, backends: list[Any]) -> list[Any]:
    """The noise floor's backends, wrapped like the job's (per-task parameters, scoring)."""
    from robustify.pipeline.prepare import _make_backend
    from robustify.pipeline.requests import wrap_backends

    return wrap_backends(backends, prep.job.models, scoring_mode=prep.job.scoring_mode,
                         make=functools.partial(_make_backend, prep.job))


class _WarmReport:
    """Prepare the report while the model calls run.

    About 1.5 s of imports (matplotlib, the charts, the analysis) that would otherwise
    come after the last answer, then the work given to :meth:`also` (the realism table:
    0.2 s on 3,000 variants). The thread starts when the runner has read the last
    variant, so it never competes with planning for the interpreter; during the calls
    the event loop mostly waits on sockets. :meth:`wait` joins it before the report is
    drawn (nothing else draws meanwhile).

    With ``charts_apart`` the thread first starts a
    :class:`~robustify.reporting.chart_process.ChartProcess` (:attr:`charts`), which
    imports matplotlib on the other core and draws the charts; this process then does
    not import matplotlib at all unless the helper fails.
    """

    def __init__(self, enabled: bool, *, charts_apart: bool = False) -> None:
        import threading

        self.enabled = enabled
        self.charts_apart = enabled and charts_apart
        self.charts: ChartProcess | None = None
        self.thread = threading.Thread(target=self._run, name="robustify-warm-report",
                                       daemon=True)
        self._also: Callable[[], Any] | None = None
        self._result: Any = None

    def also(self, work: Callable[[], Any]) -> None:
        """Run ``work`` in the thread after warming; :meth:`wait` returns its result
        (``None`` when it failed or the thread never ran: the caller does it itself)."""
        self._also = work

    def _run(self) -> None:
        if self.charts_apart:
            try:
                from robustify.reporting.chart_process import ChartProcess

                self.charts = ChartProcess()
            except Exception as exc:  # the charts are drawn here then
                log.debug("no chart process: %s", exc)
        self._warm(draw=self.charts is None)
        if self._also is not None:
            try:
                self._result = self._also()
            except Exception as exc:  # the caller computes it again and sees the error
                log.debug("work in the warming thread failed: %s", exc)

    def after(self, variants: Iterable[Variant]) -> Iterator[Variant]:
        """Pass ``variants`` through; start warming once the last one was read."""
        yield from variants
        if self.enabled:
            self.thread.start()

    def wait(self) -> Any:
        """Wait for the warming thread, if it started; the result of :meth:`also`'s work."""
        if self.thread.ident is None:
            return None
        self.thread.join()
        return self._result

    def close(self) -> None:
        """End the chart process, if one was started (after the thread that starts it)."""
        self.wait()
        if self.charts is not None:
            self.charts.close()

    @staticmethod
    def _warm(draw: bool) -> None:
        try:
            import robustify.analysis  # noqa: F401
            import robustify.reporting.run_report  # noqa: F401

            if not draw:  # the chart process draws
                return
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure

            figure = Figure(figsize=(1, 1))
            figure.text(0.5, 0.5, "warm")  # the font cache loads on the first text drawn
            FigureCanvasAgg(figure).draw()
        except Exception as exc:  # warming is an optimisation: the report imports anyway
            log.debug("warming the report modules failed: %s", exc)


def _concurrency(results: pd.DataFrame) -> dict[str, Any]:
    """Calls in flight per model: fixed, or where adaptive concurrency settled."""
    return {label: stats["concurrency"]
            for label, stats in (results.attrs.get("run_stats") or {}).items()
            if isinstance(stats, dict) and "concurrency" in stats}


def _counts(results: pd.DataFrame) -> dict[str, int]:
    failed = results["error"].notna()
    return {
        "rows": int(len(results)),
        "failed": int(failed.sum()),
        "cached": int(results["cached"].fillna(False).astype(bool).sum()),
        "unparseable": int(results["unparseable"].fillna(False).astype(bool).sum()),
    }


def evaluate(data: str | Sequence[str] = "sample",
             models: str | Sequence[str] = (DEFAULT_MODEL,),
             transforms: str | Sequence[str] = DEFAULT_TRANSFORMS, *,
             severity: str | Sequence[str | float] | None = None,
             seed: int = 0, replicates: int = 1, limit: int | None = None,
             format: str | None = None, mapping: str | None = None,
             out: str | os.PathLike[str] | None = None, cache: str | os.PathLike[str] | None = None,
             concurrency: int | None = None, max_calls: int | None = None,
             params: dict[str, Any] | None = None, api_key_env: str | None = None,
             templates: str | None = None, noise_floor: int = 0,
             scorer: str | dict[str, Any] | None = None,
             realism_ref: str | os.PathLike[str] | None = None,
             task: str | None = None, variants: str | os.PathLike[str] | None = None,
             generation: dict[str, dict[str, Any]] | None = None,
             scoring_mode: str = "generate", fewshot: int = 0, stratify: str | None = None,
             batch: bool | dict[str, Any] = False,
             progress: bool = True, write: bool = True, force: bool = False) -> RunResult:
    """Run robustify from Python: load, perturb, query, score and analyse.

    Args:
        data: ``"sample"`` (built in), a file path, or several paths.
        models: Model spec(s): ``local:smollm2``, ``openai:gpt-4o-mini``,
            ``openai:NAME@http://127.0.0.1:8080/v1``, ``openai:NAME@URL1,URL2`` (several
            endpoints), ``python:pkg.mod:func``; or mappings as in a job file's ``models``
            (``{"spec": "openai:NAME", "base_urls": [...], "endpoint_concurrency": 64}``).
        transforms: Spec(s) such as ``typos``, ``slang@high``, ``typos:kind=keyboard``, as a
            list or a comma-separated string (``"typos,slang@high"``).
        severity: Severities for specs without one (numbers or low/medium/high).
        seed: Seeds every variant (and the bootstrap).
        replicates: Independent variants per item and spec.
        limit: Seeded sample of this many items per data set.
        format, mapping: Data format/preset and field mapping (``input=question,...``).
        out: Output folder (default ``reports/<data>__<model>``); ``write=False`` skips writing.
        cache: SQLite cache path (default ``~/.cache/robustify/responses.sqlite``; "off" disables).
        concurrency: Parallel calls per model (backend default when ``None``).
        max_calls: Stop making new calls after this many.
        params: Generation parameters for every model (temperature, seed, max_tokens, stop).
        api_key_env: Name of the variable holding the key for remote models.
        templates: YAML/JSON file overriding the prompt templates.
        noise_floor: Re-ask clean items this many extra times to measure flips without noise.
        realism_ref: A file of real user messages: the realism table measures every
            setting's variants against it.
        generation: Generation parameters per task kind, e.g.
            ``{"numeric": {"max_tokens": 512}}`` (over the model's and the built-in table
            :data:`robustify.prompts.TASK_GENERATION`).
        scoring_mode: ``generate`` (default), ``loglik`` or ``loglik_norm``: multiple
            choice, classification and yes/no items answered by the option with the
            highest log-likelihood (:mod:`robustify.scoring.loglik`).
        fewshot: Show this many of your own rows per task kind as examples (never
            evaluated) instead of the built-in examples.
        stratify: Keep this field's proportions (``target``, ``task``, a metadata key)
            in the ``limit`` sample.
        scorer: A registered scorer for every item (``exact``, ``token_f1``, a plugin's);
            default: each item's task kind decides (:data:`robustify.scoring.DEFAULT_SCORERS`).
            ``"judge:MODEL_SPEC"`` or ``{"judge": MODEL_SPEC, "concurrency": 2, ...}``: a
            judge model grades the answers (:mod:`robustify.pipeline.judge`).
        task: Task kind for every row (``classification``, ``yes_no`` ...), as ``--task``.
        variants: A frozen variants file to ask instead of new draws, as ``--variants``.
        batch: Answer ``openai:`` models through the OpenAI Batch API (about half the
            price, answers within 24 h; ``True`` or a mapping of limits and polling, see
            ``docs/batch-api.md``).
        progress: A bar on a terminal or in Jupyter; in a log, a plain line every 30 s
            once the run has lasted 10 s.
        write: Write the run folder (variants, results, report).
        force: Write into an existing ``out`` folder that is not a robustify run.

    Returns:
        A :class:`RunResult`.
    """
    as_tuple = (lambda v: (v,) if isinstance(v, (str, os.PathLike)) else tuple(v))
    sources = tuple(DataSource(path=str(p), format=format, map=mapping, task=task)
                    for p in as_tuple(data))
    if isinstance(transforms, str):  # "typos,slang" as on the command line
        transforms = [t.strip() for t in transforms.split(",") if t.strip()]
    if isinstance(severity, str):
        severity = [s.strip() for s in severity.split(",") if s.strip()]
    from robustify.pipeline.judge import split_scorer

    scorer, judge_options = split_scorer(scorer)
    model_cfgs = model_configs(models, api_key_env=api_key_env, params=params)
    job = JobConfig(data=sources, models=model_cfgs, transforms=as_tuple(transforms),
                    severity=(tuple(str(s) for s in as_tuple(severity)) if severity is not None
                              else None), seed=seed,
                    replicates=replicates, limit=limit, out=str(out) if out is not None else None,
                    cache=str(cache) if cache is not None else None, concurrency=concurrency,
                    max_calls=max_calls, templates=templates, noise_floor=noise_floor,
                    scorer=scorer, judge_options=judge_options,
                    realism_ref=str(realism_ref) if realism_ref is not None else None,
                    variants=str(variants) if variants is not None else None,
                    force=force, generation=dict(generation or {}),
                    scoring_mode=scoring_mode, fewshot=fewshot, stratify=stratify,
                    batch=batch)
    return run_job(job, progress=progress, write=write)
