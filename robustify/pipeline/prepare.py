"""Preparing a job: everything that can fail is checked before the first model call.

Data loaded and validated, every spec and severity parsed, backends built (keys, files,
callables checked; remote servers asked once with ``preflight``), scorer known, output
folder writable. The result is a :class:`PreparedJob` that :func:`~.run.run_job` runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence


from perturbations import (Item, Variant, VariantTally, expand_specs, parse_spec_list,
                           perturb_items)
from perturbations.errors import ConfigError, RobustifyError
from perturbations.spec import parse_severity
from perturbations.version import __version__

from robustify.atomic import check_out_folder, check_writable, slug
from robustify.pipeline.jobfile import DEFAULT_SEVERITIES, JobConfig, ModelConfig
from robustify.records import GenerationParams
from robustify.runner.cache import default_cache_path


__all__ = ["prepare_job", "PreparedJob", "SCHEMA_VERSION", "CONFIRM_CALLS", "MAX_PLANNED_CALLS"]

log = logging.getLogger(__name__)


SCHEMA_VERSION = 1

CONFIRM_CALLS = 100_000
"""A job planning more model calls than this runs only with ``--max-calls`` set."""
MAX_PLANNED_CALLS = 10_000_000
"""No job plans more calls than this: the variants are streamed, but a run keeps every row
(some 500 bytes with its answer) until its results are written (``docs/scale.md``)."""


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
    realism_ref: list[str] | None = None
    """The real messages of ``job.realism_ref``, read and checked before any call."""
    frozen: Any = None
    """The variants of ``job.variants`` (a frozen file, a
    :class:`~robustify.data.variants_file.FrozenVariants` streamed from disk), asked
    instead of new draws."""
    planned_calls: int = 0
    """Upper bound of the model calls (before the cache): items x variants x models."""

    def check_planned_calls(self) -> None:
        """Refuse a job above :data:`CONFIRM_CALLS` planned calls without ``max_calls``.

        Raises:
            ConfigError: one line with the count, how it is made, and the flag to confirm.
        """
        if self.planned_calls > CONFIRM_CALLS and self.job.max_calls is None:
            raise ConfigError(f"{self.job.where('replicates')}the job plans "
                              f"{self.planned_calls:,} model calls ({_plan_text(self)}), more "
                              f"than {CONFIRM_CALLS:,}; pass --max-calls N (max_calls: N in a "
                              f"job file) to confirm, or lower --replicates/--limit")
    fewshot: dict[str, list[str]] = field(default_factory=dict)
    """Task kind -> ids of the user's rows shown as examples (``job.fewshot``)."""

    def build_messages(self) -> Any:
        """Item -> chat messages with the job's templates, task parameters and scoring mode."""
        from robustify.pipeline.requests import message_builder

        return message_builder(self.templates, self.job)

    def variants(self, tally: VariantTally | None = None) -> Iterator[Variant]:
        """Item by item, its clean original and then its variants (spec, then replicate
        order); with a frozen variants file, every clean original and then the file.

        Item by item, the prompts an item's variants share with its clean original (the
        instructions, the few-shot turns, the start of the question) follow each other, so
        a prefix cache (the ``local:`` backend's, a server's) evaluates the shared part
        once: on the default job the ``local:`` backend evaluates 1.02x the unique-prefix
        tokens, against 1.11x with every clean original first (``docs/local-model.md``).

        Every variant has passed the gold guard (redrawn when a draw broke it); a variant
        no draw could keep is left out. ``tally`` counts, per spec, what the guard did,
        the unchanged variants and the edit rates per field.
        """
        seed = self.job.seed
        if self.frozen is not None:
            for item in self.items:
                yield Variant.clean(item, seed=seed, version=__version__)
            for variant in self.frozen:
                if tally is not None:
                    tally.add(variant)
                yield variant
            return
        drawn = perturb_items(self.items, self.specs, seed=seed,
                              replicates=self.job.replicates, tally=tally)
        upcoming: Variant | None = None
        for item in self.items:
            yield Variant.clean(item, seed=seed, version=__version__)
            if upcoming is None:  # drawn only after the first clean row is out
                upcoming = next(drawn, None)
            while upcoming is not None and upcoming.item_id == item.id:
                yield upcoming
                upcoming = next(drawn, None)
        if upcoming is not None:  # not in item order (cannot happen with perturb_items)
            yield upcoming
            yield from drawn

    def manifest(self, **extra: Any) -> dict[str, Any]:
        """Run facts recorded beside the results; never contains a key."""
        from robustify.analysis.validity import chance_levels  # the validity warnings' chance

        job = self.job
        return {
            "schema_version": SCHEMA_VERSION,
            "robustify_version": __version__,
            "seed": job.seed,
            "replicates": job.replicates,
            "transforms": list(job.transforms),
            "severity": list(job.severity or DEFAULT_SEVERITIES),
            "specs": list(self.specs),
            "data": [dataclasses.asdict(d) for d in job.data],
            "limit": job.limit,
            "n_items": len(self.items),
            "chance": chance_levels(self.items),
            "dataset_hash": self.dataset_hash,
            "models": [_model_facts(b, m) for b, m in zip(self.backends, job.models)],
            "templates": job.templates,
            **({"variants_file": job.variants} if job.variants else {}),
            "scorer": job.scorer,
            "scoring_mode": job.scoring_mode,
            "generation": _generation_table(job),
            "fewshot": {"k": job.fewshot, "rows": self.fewshot},
            "stratify": job.stratify,
            "python": platform.python_version(),
            "platform": platform.platform(terse=True),
            **extra,
        }


def _model_facts(backend: Any, config: ModelConfig) -> dict[str, Any]:
    identity = _redact_tree(dict(backend.identity()))  # defensive: identities carry no keys
    facts = {"label": backend.label, "kind": backend.kind, "identity": identity,
             "api_key_env": config.api_key_env,
             "max_concurrency": getattr(backend, "max_concurrency", None)}
    endpoints = getattr(backend, "endpoint_facts", None)  # a fleet: calls per endpoint
    if callable(endpoints):
        facts["endpoints"] = _redact_tree(endpoints())
    return facts


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


def _generation_table(job: JobConfig) -> dict[str, Any]:
    from robustify.pipeline.requests import generation_table

    return generation_table(job)


def _load_data(job: JobConfig, shots: dict[str, list[Item]] | None = None) -> list[Item]:
    """The job's items; ``shots`` (when given) receives the ``fewshot`` rows by task kind."""
    from robustify.data import load_items
    from robustify.pipeline.selection import draw_fewshot, stratified_sample

    many = len(job.data) > 1
    items: list[Item] = []
    seen: dict[str, str] = {}
    select = bool(job.fewshot or job.stratify)  # then the limit is applied here
    shots = {} if shots is None else shots
    for source in job.data:
        loaded = load_items(source.path, format=source.format, mapping=source.map,
                            limit=None if select else job.limit, seed=job.seed,
                            task=source.task)
        name = source.name or Path(source.path).stem
        if select:  # examples drawn per data set: each keeps its own labels
            with _blame(job, "fewshot"):
                loaded, drawn = draw_fewshot(loaded, job.fewshot, job.seed)
            for kind, rows in drawn.items():
                shots.setdefault(kind, []).extend(
                    dataclasses.replace(r, id=f"{name}/{r.id}") if many else r for r in rows)
            with _blame(job, "stratify"):
                loaded = stratified_sample(loaded, job.limit, job.seed, job.stratify)
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
    backends = []
    for model in job.models:
        params = dict(model.params)
        if "stop" in params and params["stop"] is not None:
            params["stop"] = tuple(params["stop"])
        try:
            gen = GenerationParams(**params)
        except TypeError as exc:
            raise ConfigError(f"model {model.spec!r}: bad generation parameter ({exc})") from None
        backends.append(_make_backend(job, model, gen))
    from robustify.pipeline.requests import wrap_backends

    return wrap_backends(backends, job.models, scoring_mode=job.scoring_mode,
                         make=functools.partial(_make_backend, job))


def _make_backend(job: JobConfig, model: ModelConfig, params: GenerationParams) -> Any:
    from robustify.models import parse_model_spec

    return parse_model_spec(model.spec, params=params, api_key_env=model.api_key_env,
                            concurrency=model.concurrency or job.concurrency,
                            timeout=model.timeout, **model.options)


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
        for sev in job.severity or ():
            parse_severity(sev, where="severity")
    with _blame(job, "transforms"):
        from robustify.probes.rewrite import split_rewrite_specs

        regular, rewrites = split_rewrite_specs(job.transforms)
        specs = ([str(s) for s in expand_specs(parse_spec_list(regular), job.severity)]
                 if regular else [])
    shots: dict[str, list[Item]] = {}
    frozen = None
    if job.variants:
        from robustify.pipeline.frozen import load_frozen

        with _blame(job, "variants"):
            job, items, frozen = load_frozen(job, _load_data)
        specs = list(dict.fromkeys(v.spec for v in frozen))
    else:
        items = _load_data(job, shots)
    planned = _planned_calls(job, len(items), len(specs), len(rewrites),
                             len(frozen) if frozen is not None else None)
    if planned > MAX_PLANNED_CALLS:
        raise ConfigError(f"{job.where('replicates')}the job plans {planned:,} model calls "
                          f"({len(items)} items x (1 + {len(specs) + len(rewrites)} settings x "
                          f"{job.replicates} replicates) x {len(job.models)} models); the "
                          f"limit is {MAX_PLANNED_CALLS:,}: lower --replicates or --limit")
    _check_gates(job, specs, rewrites)
    templates = None
    from robustify.pipeline.checks import (check_cache_path, check_template_file,
                                           check_templates)

    if job.templates:
        from robustify.prompts import load_templates

        with _blame(job, "templates"):
            check_template_file(job.templates)
        templates = load_templates(job.templates)

    if templates is not None:
        check_templates(job, items, templates)
    if shots:
        from robustify.prompts import with_user_shots

        templates = with_user_shots(templates, shots)
    out_dir = Path(job.out) if job.out else _default_out(job)
    check_out_folder(out_dir, force=job.force,
                     flag=job.where("out").rstrip(": ") if job.where("out") else "--out")
    check_writable(out_dir)
    with _blame(job, "models"):
        backends = _build_backends(job)
    if preflight:
        for backend in backends:
            check = getattr(backend, "preflight", None)
            if check is not None:
                check()
    cache_path = None if job.cache == "off" else Path(job.cache) if job.cache else default_cache_path()
    if cache_path is not None:
        with _blame(job, "cache"):
            check_cache_path(cache_path)
    realism_ref = None
    if job.realism_ref:
        from robustify.data.messages import read_messages

        with _blame(job, "realism_ref"):
            realism_ref = read_messages(job.realism_ref)
    return PreparedJob(job=job, items=items, specs=specs, backends=backends, out_dir=out_dir,
                       cache_path=cache_path, templates=templates,
                       dataset_hash=_dataset_hash(items), rewrites=rewrites,
                       realism_ref=realism_ref, frozen=frozen,
                       planned_calls=planned,
                       fewshot={kind: [i.id for i in rows] for kind, rows in shots.items()})


def _planned_calls(job: JobConfig, n_items: int, n_specs: int, n_rewrites: int,
                   n_frozen: int | None = None) -> int:
    """Upper bound of the calls a job makes: clean and every variant, per model, plus the
    rewrites' own calls and the noise floor's repeats. ``n_frozen``: the variants of a
    frozen variants file, asked instead of new draws."""
    if n_frozen is not None:
        return (n_items * (1 + job.noise_floor) + n_frozen) * len(job.models)
    per_model = n_items * (1 + (n_specs + n_rewrites) * job.replicates + job.noise_floor)
    return per_model * len(job.models) + n_items * n_rewrites * job.replicates


def _plan_text(prep: PreparedJob) -> str:
    job = prep.job
    return (f"{len(prep.items)} items x (1 + {len(prep.specs) + len(prep.rewrites)} settings x "
            f"{job.replicates} replicates) x {len(job.models)} models")


def _transform_name(spec: Any) -> str:
    return str(spec).split("@", 1)[0].split(":", 1)[0].strip()


def _check_gates(job: JobConfig, specs: Sequence[str], rewrites: Sequence[Any]) -> None:
    """A per-transform gate must name a transform the job runs (else it never fires)."""
    texts = [str(s) for s in specs] + [r.canonical for r in rewrites]
    # the report's "transform" is the spec without its severity (options kept); a rewrite's
    # is rewrite_<persona>
    names = ({t.split("@", 1)[0] for t in texts} | {_transform_name(t) for t in texts}
             | {r.transform for r in rewrites})
    for name in job.gates.per_transform:
        if name not in names:
            where = f"{job.source}: " if job.source else ""
            where += "gates.per_transform: " if job.source else "--fail-on-drop gate: "
            raise ConfigError(f"{where}a gate for {name!r}, which the job does not run "
                              f"(its transforms: {', '.join(sorted(names)) or 'none'}); the "
                              f"gate would never fire")


