"""The notebook API: one call runs a whole job; the result object holds every view of it.

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
import hashlib
import itertools
import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import pandas as pd

from perturbations import CLEAN, Item, Variant, expand_specs, parse_spec_list, perturb_items
from perturbations.errors import ConfigError, RobustifyError
from perturbations.spec import parse_severity
from perturbations.version import __version__

from robustify.errors import AnalysisError
from robustify.atomic import check_writable, slug, sweep_temp_files, tee_jsonl_atomic, write_json_atomic, write_jsonl_atomic
from robustify.pipeline.jobfile import DEFAULT_MODEL, DEFAULT_SEVERITIES, DEFAULT_TRANSFORMS, DataSource, Gates, \
    JobConfig, ModelConfig
from robustify.models.base import FatalModelError
from robustify.records import GenerationParams
from robustify.runner.cache import default_cache_path, open_cache

__all__ = ["evaluate", "run_job", "prepare_job", "PreparedJob", "RunResult",
           "SCHEMA_VERSION", "AnalysisError"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


@dataclass
class PreparedJob:
    """A validated job: everything checked, nothing sent to a model yet."""

    job: JobConfig
    items: list[Item]
    specs: list[str]
    backends: list[Any]
    out_dir: Path
    cache_path: Path | None
    templates: Any
    dataset_hash: str
    rewrites: list[Any] = field(default_factory=list)
    """Model-written rewrite specs (``rewrite:persona=...``), run before the queries."""

    def variants(self) -> Iterator[Variant]:
        """The clean originals first, then every variant, in a stable order."""
        for item in self.items:
            yield Variant.clean(item, seed=self.job.seed, version=__version__)
        yield from perturb_items(self.items, self.specs, seed=self.job.seed,
                                 replicates=self.job.replicates)

    def manifest(self, **extra: Any) -> dict[str, Any]:
        """Run facts recorded beside the results; never contains a key."""
        job = self.job
        return {
            "schema_version": SCHEMA_VERSION,
            "robustify_version": __version__,
            "seed": job.seed,
            "replicates": job.replicates,
            "transforms": list(job.transforms),
            "severity": list(job.severity),
            "specs": list(self.specs),
            "data": [dataclasses.asdict(d) for d in job.data],
            "limit": job.limit,
            "n_items": len(self.items),
            "dataset_hash": self.dataset_hash,
            "models": [_model_facts(b, m) for b, m in zip(self.backends, job.models)],
            "templates": job.templates,
            "scorer": job.scorer,
            "python": platform.python_version(),
            "platform": platform.platform(terse=True),
            **extra,
        }


def _model_facts(backend: Any, config: ModelConfig) -> dict[str, Any]:
    identity = _redact_tree(dict(backend.identity()))  # defensive: identities carry no keys
    return {"label": backend.label, "kind": backend.kind, "identity": identity,
            "api_key_env": config.api_key_env,
            "max_concurrency": getattr(backend, "max_concurrency", None)}


def _redact_tree(obj: Any, key: str = "") -> Any:
    from robustify._secrets import redact

    if isinstance(obj, dict):
        return {k: _redact_tree(v, str(k)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_redact_tree(v, key) for v in obj]
    return redact(obj, key)


def _dataset_hash(items: Sequence[Item]) -> str:
    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps(item.to_dict(), sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _load_data(job: JobConfig) -> list[Item]:
    from robustify.data import load_items

    many = len(job.data) > 1
    items: list[Item] = []
    seen: dict[str, str] = {}
    for source in job.data:
        loaded = load_items(source.path, format=source.format, mapping=source.map,
                            limit=job.limit, seed=job.seed, task=source.task)
        name = source.name or Path(source.path).stem
        for item in loaded:
            if many:
                item = dataclasses.replace(item, id=f"{name}/{item.id}",
                                           metadata={**item.metadata, "dataset": name})
            if item.id in seen:
                raise ConfigError(f"item id {item.id!r} appears in both {seen[item.id]} and "
                                  f"{source.path}; give the data sets a 'name'")
            seen[item.id] = source.path
            items.append(item)
    return items


def _default_out(job: JobConfig) -> Path:
    data = "+".join(d.name or Path(d.path).stem for d in job.data)
    models = "+".join(m.spec.split("@")[0] for m in job.models)
    return Path("reports") / slug(f"{data}__{models}")


def _build_backends(job: JobConfig) -> list[Any]:
    from robustify.models import parse_model_spec

    backends = []
    for model in job.models:
        params = dict(model.params)
        if "stop" in params and params["stop"] is not None:
            params["stop"] = tuple(params["stop"])
        try:
            gen = GenerationParams(**params)
        except TypeError as exc:
            raise ConfigError(f"model {model.spec!r}: bad generation parameter ({exc})") from None
        backends.append(parse_model_spec(model.spec, params=gen, api_key_env=model.api_key_env,
                                         concurrency=model.concurrency or job.concurrency,
                                         timeout=model.timeout))
    return backends


@contextlib.contextmanager
def _blame(job: JobConfig, key: str) -> Iterator[None]:
    """Prefix errors about a value with the job file and key it came from."""
    try:
        yield
    except RobustifyError as exc:
        where = job.where(key)
        if not where:
            raise
        raise ConfigError(f"{where}{exc}") from None


def prepare_job(job: JobConfig, *, preflight: bool = True) -> PreparedJob:
    """Validate a job completely before any model call.

    Loads and checks the data, parses every transform spec and severity, builds the
    backends (checking keys and, with ``preflight``, that remote servers answer),
    and checks the output folder is writable.

    Raises:
        RobustifyError: the first problem found, with the file/line/key it concerns.
    """
    job = job.validate()
    with _blame(job, "severity"):
        for sev in job.severity:
            parse_severity(sev, where="severity")
    with _blame(job, "transforms"):
        from robustify.probes.rewrite import split_rewrite_specs

        regular, rewrites = split_rewrite_specs(job.transforms)
        specs = ([str(s) for s in expand_specs(parse_spec_list(regular), job.severity)]
                 if regular else [])
    items = _load_data(job)
    templates = None
    if job.templates:
        from robustify.prompts import load_templates

        templates = load_templates(job.templates)
    out_dir = Path(job.out) if job.out else _default_out(job)
    check_writable(out_dir)
    with _blame(job, "models"):
        backends = _build_backends(job)
    if preflight:
        for backend in backends:
            check = getattr(backend, "preflight", None)
            if check is not None:
                check()
    cache_path = None if job.cache == "off" else Path(job.cache) if job.cache else default_cache_path()
    return PreparedJob(job=job, items=items, specs=specs, backends=backends, out_dir=out_dir,
                       cache_path=cache_path, templates=templates,
                       dataset_hash=_dataset_hash(items), rewrites=rewrites)


@contextlib.contextmanager
def _run_lock(out_dir: Path) -> Iterator[None]:
    from filelock import FileLock, Timeout

    out_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out_dir / ".robustify.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(f"{out_dir}: another robustify run is writing to this folder; wait "
                          f"for it to finish or choose another --out") from None
    try:
        # a run killed mid-write leaves its temporary files; we hold the lock, so they are stale
        sweep_temp_files(out_dir)
        sweep_temp_files(out_dir / "charts")
        yield
    finally:
        lock.release()


def run_job(job: JobConfig, *, progress: bool = True, write: bool = True,
            prepared: PreparedJob | None = None) -> "RunResult":
    """Run a validated job end to end and (with ``write``) save everything under ``out``.

    The variants file is streamed while the runner plans and is complete before the first
    question is asked (model-written rewrites, when asked for, are made first); answers
    go to the response cache as they arrive (an interrupted run loses only calls in
    flight), and results, summary, charts and report are written atomically at the end.
    """
    from robustify.prompts import build_messages
    from robustify.runner.execute import run_queries

    prep = prepared or prepare_job(job)
    job = prep.job
    started = time.time()
    lock = _run_lock(prep.out_dir) if write else contextlib.nullcontext()
    with lock:
        templates = prep.templates
        messages: Callable[[Item], list[dict[str, str]]] = (
            (lambda item: build_messages(item, templates)) if templates else build_messages)
        cache, _ = open_cache(prep.cache_path)
        fatal: FatalModelError | None = None
        floor = None
        rewritten = None
        variants: Iterable[Variant] = prep.variants()
        stream: Iterator[Variant] = iter(())
        try:
            if prep.rewrites:
                from robustify.probes.rewrite import run_rewrite_specs

                rewritten = run_rewrite_specs(prep.items, prep.rewrites, seed=job.seed,
                                              cache=cache, replicates=job.replicates,
                                              progress=progress)
                if write:
                    rewritten.write(prep.out_dir)
                variants = itertools.chain(variants, rewritten.variants)
            written = _Counted(variants)
            stream = written
            if write:
                # streamed: the runner reads every variant (planning) before its first
                # call, so the file is complete and in place before any question is asked
                stream = tee_jsonl_atomic(prep.out_dir / "variants.jsonl", stream,
                                          Variant.to_json)
            try:
                results = run_queries(stream, prep.backends, build_messages=messages,
                                      score=_scorer_of(job), cache=cache, max_calls=job.max_calls,
                                      progress=progress)
            except FatalModelError as exc:
                # a permanent 401/404: keep what the other models (and this one) answered
                if getattr(exc, "results", None) is None:
                    raise
                fatal, results = exc, exc.results
            if job.noise_floor and fatal is None:
                floor = _noise_floor(prep, messages, cache, progress)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:  # a failed run: drop the half-written variants file now
                close()
            if cache is not None:
                cache.close()
            for backend in prep.backends:
                backend.close()
        try:
            manifest = prep.manifest(
                n_variants=written.count - len(prep.items),
                rewrites=rewritten.manifest if rewritten is not None else [],
                counts=_counts(results),
                duration_s=round(time.time() - started, 2),
            )
            result = RunResult(results=results, manifest=manifest, out_dir=prep.out_dir,
                               noise_floor_rows=floor)
            if write:
                result.write_report(prep.out_dir)
        except RobustifyError:
            raise
        except Exception as exc:
            raise _analysis_failed(exc, results, prep.cache_path) from exc
    if fatal is not None:
        raise fatal
    return result


def _analysis_failed(exc: BaseException, results: pd.DataFrame,
                     cache_path: Path | None) -> AnalysisError:
    from robustify.models.base import one_line

    answered = int(results["error"].isna().sum()) if "error" in results else len(results)
    if cache_path is not None:
        kept = (f"the {answered} answers are kept in the response cache {cache_path}: run the "
                f"same command again to resume without new model calls")
    else:
        kept = (f"the response cache was off (--cache off), so the {answered} answers were not "
                f"kept; use a cache to make a rerun free")
    return AnalysisError(f"the analysis failed after the model calls "
                         f"({type(exc).__name__}: {one_line(exc, limit=300)}); {kept}")


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
                                             timeout=config.timeout))
        frame = run_queries(clean, backends, build_messages=messages, score=_scorer_of(prep.job),
                            cache=cache, progress=progress)
        frame["repeat"] = repeat
        frames.append(frame)
        for backend in backends:
            backend.close()
    return pd.concat(frames, ignore_index=True)


def _scorer_of(job: JobConfig) -> Callable[..., Any]:
    """``score_answer`` with the job's scorer (validated with the job, before any call)."""
    from robustify.scoring import score_answer

    return functools.partial(score_answer, scorer=job.scorer) if job.scorer else score_answer


def _counts(results: pd.DataFrame) -> dict[str, int]:
    failed = results["error"].notna()
    return {
        "rows": int(len(results)),
        "failed": int(failed.sum()),
        "cached": int(results["cached"].fillna(False).astype(bool).sum()),
        "unparseable": int(results["unparseable"].fillna(False).astype(bool).sum()),
    }


@dataclass
class RunResult:
    """Everything a run produced; every view is computed from ``results``.

    Attributes:
        results: The per-row frame (one row per model x variant, clean rows included).
        manifest: Run facts (seed, specs, models, data hash, counts); never a key.
        out_dir: Where the run was written, if it was.
        noise_floor_rows: Re-asked clean rows (column ``repeat``) when a noise floor was run.
    """

    results: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)
    out_dir: Path | None = None
    noise_floor_rows: pd.DataFrame | None = None

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> "RunResult":
        """Read a saved run (results.jsonl + manifest.json) without any model call."""
        from robustify.reporting.run_report import load_results

        run_dir = Path(run_dir)
        results, manifest = load_results(run_dir)
        floor_path = run_dir / "noise_floor.jsonl"
        floor = pd.read_json(floor_path, lines=True) if floor_path.exists() else None
        return cls(results=results, manifest=manifest, out_dir=run_dir, noise_floor_rows=floor)

    @property
    def seed(self) -> int:
        return int(self.manifest.get("seed", 0))

    def summary(self, by: Sequence[str] = ("model", "transform", "severity"), **kwargs: Any) -> pd.DataFrame:
        """Paired drop statistics per group (see :func:`robustify.analysis.summarize`)."""
        from robustify.analysis.paired import summarize

        kwargs.setdefault("seed", self.seed)
        return summarize(self.results, by=tuple(by), **kwargs)

    def overview(self) -> pd.DataFrame:
        """Per model: clean, mean perturbed and worst-case score, and the overestimation."""
        from robustify.analysis.paired import model_overview

        return model_overview(self.results, seed=self.seed)

    def failures(self) -> pd.DataFrame:
        """Rows whose model call failed, with the error."""
        return self.results[self.results["error"].notna()]

    def noise_floor(self) -> pd.DataFrame | None:
        """Flip rate on clean items re-asked with no perturbation, if it was measured."""
        if self.noise_floor_rows is None:
            return None
        from robustify.analysis.paired import noise_floor

        return noise_floor(pd.concat([self.results[self.results["spec"] == CLEAN].assign(repeat=0),
                                      self.noise_floor_rows], ignore_index=True))

    # charts: thin wrappers so a notebook needs only the result object
    def plot_overestimation(self, ax: Any = None) -> Any:
        from robustify.reporting.plots import plot_overestimation

        return plot_overestimation(self.overview(), ax=ax)

    def plot_drop(self, ax: Any = None) -> Any:
        from robustify.reporting.plots import plot_drop_by_transform

        return plot_drop_by_transform(self.summary(), ax=ax)

    def plot_heatmap(self, ax: Any = None) -> Any:
        from robustify.reporting.plots import plot_heatmap

        return plot_heatmap(self.summary(), ax=ax)

    def plot_severity(self, model: str | None = None, ax: Any = None) -> Any:
        from robustify.analysis import severity_curve
        from robustify.reporting.plots import plot_severity_curves

        return plot_severity_curves(severity_curve(self.results), model=model, ax=ax)

    def plot_flips(self, ax: Any = None) -> Any:
        from robustify.reporting.plots import plot_flips

        return plot_flips(self.summary(), ax=ax)

    def write_report(self, path: str | os.PathLike[str] | None = None) -> dict[str, Path]:
        """Write report.html, report.md, summary.csv, results and manifest to ``path``."""
        from robustify.reporting.run_report import write_report

        out = Path(path) if path is not None else self.out_dir
        if out is None:
            raise ConfigError("write_report needs a folder: this result was never saved")
        files = write_report(self.results, out, title=_title(self.manifest),
                             manifest=self.manifest, noise_floor=self.noise_floor())
        files["manifest"] = write_json_atomic(out / "manifest.json", self.manifest)
        if self.noise_floor_rows is not None:
            files["noise_floor"] = write_jsonl_atomic(
                out / "noise_floor.jsonl",
                (json.loads(r) for r in self.noise_floor_rows.to_json(orient="records",
                                                                      lines=True).splitlines()))
        return files

    def check_gates(self, gates: Gates) -> list[str]:
        """Messages for every gate the run fails (empty list: all passed)."""
        messages: list[str] = []
        if gates.max_error_rate is not None and len(self.results):
            rate = float(self.results["error"].notna().mean())
            if rate > gates.max_error_rate:
                messages.append(f"{rate:.1%} of model calls failed, more than the allowed "
                                f"{gates.max_error_rate:.1%}")
        if gates.fail_on_drop is None and not gates.per_transform:
            return messages
        summary = self.summary()
        for row in summary.itertuples(index=False):
            threshold = gates.per_transform.get(row.transform, gates.fail_on_drop)
            if threshold is None or row.label_policy == "may_break":
                continue
            if row.ci_low * 100 > threshold:
                messages.append(
                    f"{row.model} on {row.spec}: drop {row.drop * 100:.1f} pp "
                    f"(95% CI {row.ci_low * 100:.1f} to {row.ci_high * 100:.1f}) lies above the "
                    f"{threshold:g} pp gate")
        return messages


def _title(manifest: dict[str, Any]) -> str:
    data = ", ".join(Path(d.get("path", "?")).stem for d in manifest.get("data", [])) or "data"
    return f"robustify report: {data}"


def evaluate(data: str | Sequence[str] = "sample",
             models: str | Sequence[str] = (DEFAULT_MODEL,),
             transforms: str | Sequence[str] = DEFAULT_TRANSFORMS, *,
             severity: str | Sequence[str | float] = DEFAULT_SEVERITIES,
             seed: int = 0, replicates: int = 1, limit: int | None = None,
             format: str | None = None, mapping: str | None = None,
             out: str | os.PathLike[str] | None = None, cache: str | os.PathLike[str] | None = None,
             concurrency: int | None = None, max_calls: int | None = None,
             params: dict[str, Any] | None = None, api_key_env: str | None = None,
             templates: str | None = None, noise_floor: int = 0, scorer: str | None = None,
             progress: bool = True, write: bool = True) -> RunResult:
    """Run robustify from Python: load, perturb, query, score and analyse.

    Args:
        data: ``"sample"`` (built in), a file path, or several paths.
        models: Model spec(s): ``local:smollm2``, ``openai:gpt-4o-mini``,
            ``openai:NAME@http://127.0.0.1:8080/v1``, ``python:pkg.mod:func``.
        transforms: Spec(s) such as ``typos``, ``slang@high``, ``typos:kind=keyboard``.
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
        scorer: A registered scorer for every item (``exact``, ``token_f1``, a plugin's);
            default: each item's task kind decides (:data:`robustify.scoring.DEFAULT_SCORERS`).
        progress: A bar on a terminal or in Jupyter; in a log, a plain line every 30 s
            once the run has lasted 10 s.
        write: Write the run folder (variants, results, report).

    Returns:
        A :class:`RunResult`.
    """
    as_tuple = (lambda v: (v,) if isinstance(v, str) else tuple(v))
    sources = tuple(DataSource(path=str(p), format=format, map=mapping) for p in as_tuple(data))
    model_cfgs = tuple(ModelConfig(spec=m, api_key_env=api_key_env, params=dict(params or {}))
                       for m in as_tuple(models))
    job = JobConfig(data=sources, models=model_cfgs, transforms=as_tuple(transforms),
                    severity=tuple(str(s) for s in as_tuple(severity)), seed=seed,
                    replicates=replicates, limit=limit, out=str(out) if out is not None else None,
                    cache=str(cache) if cache is not None else None, concurrency=concurrency,
                    max_calls=max_calls, templates=templates, noise_floor=noise_floor,
                    scorer=scorer)
    return run_job(job, progress=progress, write=write)
