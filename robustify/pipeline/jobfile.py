"""Job files: one YAML (or JSON) file that describes a whole run.

A job names the data set(s), the models (with their parameters and the *name* of the
environment variable that holds each key, never the key), the transforms, severities,
seed, output folder and the gates a pipeline should enforce. Command-line flags override
the file. Unknown keys are an error naming the key and the file, so a misspelt
``severites:`` never silently falls back to a default. Files are read with
``yaml.safe_load``: no tags, no objects, nothing executed; anchors and aliases (the
"billion laughs" alias bomb) and nesting deeper than 50 levels are refused.

Example (``examples/job.yaml`` in the repository)::

    data:
      - path: sample
    models:
      - spec: local:smollm2
      - spec: openai:gpt-4o-mini
        api_key_env: OPENAI_API_KEY
        max_tokens: 32
    transforms: [typos, slang, truncation, ambiguity]
    severity: [low, medium, high]
    seed: 0
    gates:
      fail_on_drop: 10          # percentage points, any transform
      per_transform: {typos: 5}
      max_error_rate: 0.05
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from perturbations.errors import ConfigError

__all__ = ["DataSource", "ModelConfig", "Gates", "JobConfig", "load_job", "check_param_name",
           "model_configs",
           "DEFAULT_TRANSFORMS",
           "DEFAULT_SEVERITIES", "DEFAULT_MODEL", "MAX_SEED", "safe_yaml_load"]

DEFAULT_TRANSFORMS = ("profile", "typos", "slang", "truncation", "ambiguity")
"""The default job: ``profile`` (noise fitted to real typed messages, the realistic level,
one variant per item) first, then four stress transforms at low/medium/high."""
DEFAULT_SEVERITIES = ("low", "medium", "high")
DEFAULT_MODEL = "local:smollm2"

_MODEL_PARAM_KEYS = ("temperature", "seed", "max_tokens", "stop", "top_p", "extra")
_MODEL_OPTION_KEYS = ("base_urls", "endpoint_concurrency", "replica_identity")


@dataclass(frozen=True)
class DataSource:
    """One benchmark to load."""

    path: str = "sample"
    """A file, a folder (Hugging Face ``save_to_disk``) or ``sample`` (built in)."""
    format: str | None = None
    """Format or preset name; detected when ``None``."""
    map: str | None = None
    """Field mapping, ``input=question,target=answer``."""
    name: str | None = None
    """Label used to prefix item ids when a job has several data sets."""
    task: str | None = None
    """Task kind for every row (e.g. ``classification`` for a plain text+label CSV)."""


@dataclass(frozen=True)
class ModelConfig:
    """One model to evaluate."""

    spec: str = DEFAULT_MODEL
    """Model spec string (``local:smollm2``, ``openai:NAME@URL``, ``python:mod:func``)."""
    api_key_env: str | None = None
    """Name of the environment variable holding the API key (never the key itself)."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """Generation parameters: temperature, seed, max_tokens, stop, top_p, extra."""
    concurrency: int | None = None
    """Parallel calls for this model (backend default when ``None``)."""
    timeout: float | None = None
    """Seconds before a call counts as timed out."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Backend options: ``base_urls`` (several endpoints for one model),
    ``endpoint_concurrency``, ``replica_identity`` (see docs/models-and-runner.md)."""


@dataclass(frozen=True)
class Gates:
    """Conditions that make a run exit with code 1 (for CI pipelines)."""

    fail_on_drop: float | None = None
    """Fail when a drop's 95% interval lies entirely above this many percentage points."""
    per_transform: Mapping[str, float] = field(default_factory=dict)
    """Thresholds per transform name that override ``fail_on_drop``."""
    max_error_rate: float | None = None
    """Fail when more than this share of model calls failed (0-1)."""


@dataclass(frozen=True)
class JobConfig:
    """Everything a run needs; built from a job file, flags, or both."""

    data: tuple[DataSource, ...] = (DataSource(),)
    models: tuple[ModelConfig, ...] = (ModelConfig(),)
    transforms: tuple[str, ...] = DEFAULT_TRANSFORMS
    severity: tuple[str, ...] | None = None
    """Severities for specs without one; ``None``: :data:`DEFAULT_SEVERITIES`, and a fitted
    profile (``profile:FILE``) stays at its fitted level (one variant per item)."""
    seed: int = 0
    replicates: int = 1
    limit: int | None = None
    out: str | None = None
    cache: str | None = None
    concurrency: int | None = None
    max_calls: int | None = None
    templates: str | None = None
    noise_floor: int = 0
    gates: Gates = Gates()
    realism_ref: str | None = None
    """A file of real user messages; the report's realism table measures each setting's
    variants against it (distance, statistics outside its range)."""
    variants: str | None = None
    """A frozen variants file (``perturb`` output or a run's ``variants.jsonl``) asked
    instead of drawing new variants; paired with its clean items."""
    scorer: str | None = None
    """A registered scorer name for every item (``exact``, ``token_f1`` ...); ``None``: the
    default scorer of each item's task kind. ``judge:MODEL_SPEC``: a judge model grades
    the answers (:mod:`robustify.pipeline.judge`)."""
    judge_options: Mapping[str, Any] = field(default_factory=dict)
    """The judge scorer's own options (concurrency, retries, timeout, max_tokens, mode,
    api_key_env): a job file's ``scorer:`` mapping, or the ``--judge-*`` flags."""
    force: bool = False
    """Write into an existing folder that is not a robustify run (``--force``; never from a
    job file)."""
    generation: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Generation parameters per task kind (``{numeric: {max_tokens: 512}}``); they win
    over the model's parameters and :data:`robustify.prompts.TASK_GENERATION`."""
    scoring_mode: str = "generate"
    """``generate`` (the model writes its answer), ``loglik`` or ``loglik_norm`` (the
    option with the highest log-likelihood; see :mod:`robustify.scoring.loglik`)."""
    fewshot: int = 0
    """Show this many of the user's own rows (per task kind, never evaluated) as worked
    examples instead of the built-in ones; 0 keeps the built-in examples."""
    stratify: str | None = None
    """Keep the proportions of this field (``target``, ``task`` or a metadata key) in the
    ``limit`` sample."""
    batch: Any = False
    """Answer ``openai:`` models through the OpenAI Batch API (``true``, or a mapping of
    :class:`robustify.runner.batch_jsonl.BatchOptions` fields); see docs/batch-api.md."""
    source: str | None = None
    """The job file this came from (for error messages)."""
    file_keys: frozenset[str] = frozenset()
    """Keys whose values were read from ``source`` (flags that override them drop out)."""

    def where(self, key: str) -> str:
        """``"job.yaml: key 'transforms': "`` when ``key`` came from the job file, else ``""``."""
        return f"{self.source}: key {key!r}: " if self.source and key in self.file_keys else ""

    def validate(self) -> "JobConfig":
        """Check value ranges; raise ConfigError naming the key (and file)."""
        where = f"{self.source}: " if self.source else ""
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) \
                or not 0 <= self.seed < MAX_SEED:
            raise ConfigError(f"{self.where('seed') or where}seed must be a whole number from 0 "
                              f"to 2**63-1, got {self.seed!r}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"{where}limit must be a positive number of items, got {self.limit}")
        if self.replicates < 1:
            raise ConfigError(f"{where}replicates must be at least 1, got {self.replicates}")
        if self.concurrency is not None and self.concurrency < 1:
            raise ConfigError(f"{where}concurrency must be at least 1, got {self.concurrency}")
        if self.max_calls is not None and self.max_calls < 0:
            raise ConfigError(f"{where}max_calls must be >= 0, got {self.max_calls}")
        if self.noise_floor < 0:
            raise ConfigError(f"{where}noise_floor must be >= 0, got {self.noise_floor}")
        _check_finite(self)
        from robustify.pipeline.selection import check_selection

        check_selection(self)
        rate = self.gates.max_error_rate
        if rate is not None and not 0 <= rate <= 1:
            raise ConfigError(f"{where}gates.max_error_rate must lie in [0, 1], got {rate}")
        if not self.models:
            raise ConfigError(f"{where}models: at least one model is needed")
        if not self.data:
            raise ConfigError(f"{where}data: at least one data set is needed")
        if self.scorer is not None:
            from robustify.pipeline.judge import check_judge
            from robustify.scoring import get_scorer
            from robustify.scoring.judge import is_judge

            check_judge(self)
            try:
                if not is_judge(self.scorer):
                    get_scorer(self.scorer)
            except ConfigError as exc:
                raise ConfigError(f"{self.where('scorer')}{exc}") from None
        return self

    def override(self, **changes: Any) -> "JobConfig":
        """Return a copy with the non-``None`` changes applied (flags over file)."""
        applied = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **applied, file_keys=self.file_keys - set(applied))


MAX_SEED = 2 ** 63
"""Seeds are stored as 64-bit integers (variants, cache keys)."""


def _check_finite(job: JobConfig) -> None:
    """NaN and infinity are refused wherever a number is read (a NaN gate never fires)."""
    where = f"{job.source}: " if job.source else ""
    numbers: list[tuple[str, Any]] = [
        ("gates.fail_on_drop", job.gates.fail_on_drop),
        ("gates.max_error_rate", job.gates.max_error_rate)]
    numbers += [(f"gates.per_transform.{k}", v) for k, v in job.gates.per_transform.items()]
    for i, model in enumerate(job.models):
        numbers += [(f"models[{i}].{k}", model.params.get(k))
                    for k in ("temperature", "top_p", "max_tokens", "seed")]
        numbers.append((f"models[{i}].timeout", model.timeout))
        numbers.append((f"models[{i}].concurrency", model.concurrency))
    for key, value in numbers:
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}{key} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where}{key} must be a finite number, got {value!r}")
        if key.endswith((".timeout", ".concurrency", ".max_tokens")) and value <= 0:
            raise ConfigError(f"{where}{key} must be above 0, got {value!r}")
        if key.endswith(".temperature") and not 0 <= value <= 100:
            raise ConfigError(f"{where}{key} must lie in [0, 100], got {value!r}")
        if key.endswith(".seed") and not 0 <= value < MAX_SEED:
            raise ConfigError(f"{where}{key} must be a whole number from 0 to 2**63-1, "
                              f"got {value!r}")


_TOP_KEYS = {f.name for f in fields(JobConfig)} - {"source", "force", "file_keys",
                                                   "judge_options"}


def check_param_name(name: str) -> None:
    """Refuse generation parameters that look like credentials (they would be recorded).

    The same rule hides a key in a report (:func:`robustify._secrets.is_secret_name`):
    ``api_key``, ``authToken``, ``clientSecret`` are refused; ``max_tokens`` passes.
    """
    from robustify._secrets import is_secret_name

    if is_secret_name(name):
        raise ConfigError(f"parameter {name!r} looks like a credential: keys never go in "
                          f"parameters; put the key in an environment variable and name it "
                          f"with --api-key-env (api_key_env in a job file)")


def _check_keys(obj: Mapping[str, Any], allowed: set[str], where: str, path: str) -> None:
    for key in obj:
        if key not in allowed:
            import difflib

            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{path}: unknown key {where}{key!r}{hint}; allowed: "
                              f"{', '.join(sorted(allowed))}")


def _as_list(value: Any, key: str, path: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ConfigError(f"{path}: key {key!r} must be a list or a comma-separated string")


def _number(value: Any, key: str, path: str, kind: type = int) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{path}: key {key!r} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{path}: key {key!r} must be a finite number, got {value!r}")
    if kind is int and float(value) != int(value):
        raise ConfigError(f"{path}: key {key!r} must be a whole number, got {value!r}")
    return kind(value)


def _data(value: Any, path: str) -> tuple[DataSource, ...]:
    entries = value if isinstance(value, list) else [value]
    out = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            entry = {"path": entry}
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{path}: data[{i}] must be a path or a mapping")
        _check_keys(entry, {"path", "format", "map", "name", "task"}, f"data[{i}].", path)
        if "map" in entry and isinstance(entry["map"], Mapping):
            entry = {**entry, "map": ",".join(f"{k}={v}" for k, v in entry["map"].items())}
        src = DataSource(**{k: (str(v) if v is not None else None) for k, v in entry.items()})
        if src.path != "sample" and not src.path.startswith("hf:") \
                and not os.path.isabs(src.path):
            # paths in a job file are relative to the file, not to the current folder
            src = replace(src, path=str(Path(path).resolve().parent / src.path))
        out.append(src)
    return tuple(out)


def _models(value: Any, path: str) -> tuple[ModelConfig, ...]:
    entries = value if isinstance(value, list) else [value]
    out = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            entry = {"spec": entry}
        if not isinstance(entry, Mapping) or "spec" not in entry:
            raise ConfigError(f"{path}: models[{i}] must be a spec string or a mapping with 'spec'")
        if "api_key" in entry:
            raise ConfigError(f"{path}: models[{i}].api_key: keys never go in job files; put the "
                              f"key in an environment variable and name it in api_key_env")
        allowed = {"spec", "api_key_env", "concurrency", "timeout", *_MODEL_PARAM_KEYS,
                   *_MODEL_OPTION_KEYS}
        _check_keys(entry, allowed, f"models[{i}].", path)
        params = {k: entry[k] for k in _MODEL_PARAM_KEYS if k in entry}
        if "extra" in params and not isinstance(params["extra"], Mapping):
            raise ConfigError(f"{path}: key models[{i}].extra must map parameter names to values")
        for name in params.get("extra", {}):
            try:
                check_param_name(str(name))
            except ConfigError as exc:
                raise ConfigError(f"{path}: key models[{i}].extra: {exc}") from None
        out.append(ModelConfig(spec=str(entry["spec"]), api_key_env=entry.get("api_key_env"),
                               params=params,
                               concurrency=_number(entry.get("concurrency"),
                                                   f"models[{i}].concurrency", path),
                               timeout=_number(entry.get("timeout"), f"models[{i}].timeout",
                                               path, float),
                               options=_model_options(entry, f"models[{i}].", path)))
    return tuple(out)


def _model_options(entry: Mapping[str, Any], where: str, path: str) -> dict[str, Any]:
    """``base_urls`` (a list of URL strings), ``endpoint_concurrency``, ``replica_identity``."""
    options: dict[str, Any] = {}
    if entry.get("base_urls") is not None:
        urls = entry["base_urls"]
        if isinstance(urls, str):
            urls = [u.strip() for u in urls.split(",")]
        if not isinstance(urls, list) or not urls or \
                not all(isinstance(u, str) and u.strip() for u in urls):
            raise ConfigError(f"{path}: key {where}base_urls must be a list of base URLs "
                              f"(http://host:port/v1)")
        options["base_urls"] = [u.strip() for u in urls]
    if entry.get("endpoint_concurrency") is not None:
        value = _number(entry["endpoint_concurrency"], f"{where}endpoint_concurrency", path)
        if value < 1:
            raise ConfigError(f"{path}: key {where}endpoint_concurrency must be at least 1, "
                              f"got {value}")
        options["endpoint_concurrency"] = value
    if entry.get("replica_identity") is not None:
        if not isinstance(entry["replica_identity"], bool):
            raise ConfigError(f"{path}: key {where}replica_identity must be true or false, "
                              f"got {entry['replica_identity']!r}")
        options["replica_identity"] = entry["replica_identity"]
    return options


def model_configs(models: Any, *, api_key_env: str | None = None,
                  params: Mapping[str, Any] | None = None,
                  source: str = "evaluate(models=...)") -> tuple[ModelConfig, ...]:
    """Models given in Python: spec strings, or mappings read as a job file's ``models``.

    ``api_key_env`` and ``params`` apply to every model; a mapping's own values win.
    """
    entries = list(models) if isinstance(models, (list, tuple)) else [models]
    out = []
    for config in _models([e if isinstance(e, Mapping) else str(e) for e in entries], source):
        out.append(replace(config, api_key_env=config.api_key_env or api_key_env,
                           params={**dict(params or {}), **config.params}))
    return tuple(out)


def _gates(value: Any, path: str) -> Gates:
    if value is None:
        return Gates()
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: key 'gates' must be a mapping")
    _check_keys(value, {"fail_on_drop", "per_transform", "max_error_rate"}, "gates.", path)
    per = value.get("per_transform") or {}
    if not isinstance(per, Mapping):
        raise ConfigError(f"{path}: key 'gates.per_transform' must map transform names to numbers")
    return Gates(
        fail_on_drop=_number(value.get("fail_on_drop"), "gates.fail_on_drop", path, float),
        per_transform={str(k): _number(v, f"gates.per_transform.{k}", path, float)
                       for k, v in per.items()},
        max_error_rate=_number(value.get("max_error_rate"), "gates.max_error_rate", path, float),
    )


def _safe_out(value: str, path: str) -> str:
    """A job file may only name an output folder below the current folder.

    A shared job file must not be able to make the tool write over arbitrary files, so
    absolute paths and ``..`` are refused here; a user who wants them passes ``--out``.
    """
    parts = Path(value).parts
    if Path(value).is_absolute() or ".." in parts or not parts:
        raise ConfigError(f"{path}: key 'out' must be a relative folder without '..' "
                          f"(got {value!r}); use --out to write elsewhere")
    return value


MAX_YAML_DEPTH = 50
"""Deepest nesting of lists and mappings accepted in a job file."""


def safe_yaml_load(text: str, path: str) -> Any:
    """``yaml.safe_load`` without anchors, aliases or deep nesting: one line on refusal.

    An alias bomb (nine lines that expand to a billion nodes) and a file nested thousands
    deep (a RecursionError in the parser) are refused before anything is built.

    Raises:
        ConfigError: ``PATH: line N: ...`` for an anchor, an alias, nesting deeper than
            :data:`MAX_YAML_DEPTH`, or invalid YAML.
    """
    import yaml

    def where(event: Any) -> str:
        mark = getattr(event, "start_mark", None)
        return f"line {mark.line + 1}: " if mark is not None else ""

    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise ConfigError(f"{path}: {where(event)}YAML anchors and aliases (&name, "
                                  f"*name) are not accepted (they can expand without bound); write the values out")
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise ConfigError(f"{path}: {where(event)}nested more than "
                                      f"{MAX_YAML_DEPTH} levels deep")
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: {line}invalid YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to read") from None


def load_job(path: str | os.PathLike[str]) -> JobConfig:
    """Read and validate a job file (YAML or JSON).

    Raises:
        ConfigError: unreadable file, invalid YAML, unknown key or bad value; the
            message names the file and the key (and the line for YAML syntax errors).
    """
    path = str(path)
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{path}: is a directory, expected a job file")
    if p.exists() and not p.is_file():
        raise ConfigError(f"{path}: not a regular file (a FIFO, socket or device), expected a job file")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: job file not found") from None
    except PermissionError:
        raise ConfigError(f"{path}: job file is not readable (permission denied)") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: job file is not UTF-8 text (byte {exc.start})") from None
    raw = safe_yaml_load(text, path)
    if raw is None:
        raise ConfigError(f"{path}: job file is empty")
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: a job file must be a mapping of keys to values")
    _check_keys(raw, _TOP_KEYS, "", path)
    kwargs: dict[str, Any] = {"source": path, "file_keys": frozenset(raw)}
    if "data" in raw:
        kwargs["data"] = _data(raw["data"], path)
    if "models" in raw:
        kwargs["models"] = _models(raw["models"], path)
    for key in ("transforms", "severity"):
        if key in raw:
            kwargs[key] = tuple(str(v) for v in _as_list(raw[key], key, path))
    for key in ("seed", "replicates", "limit", "concurrency", "max_calls", "noise_floor"):
        if key in raw and raw[key] is not None:
            kwargs[key] = _number(raw[key], key, path)
    for key in ("cache", "templates", "realism_ref", "variants"):
        if key in raw and raw[key] is not None:
            value = str(raw[key])
            if not (key == "cache" and value == "off") and not os.path.isabs(value):
                value = str(p.resolve().parent / value)
            kwargs[key] = value
    if raw.get("out") is not None:
        kwargs["out"] = _safe_out(str(raw["out"]), path)
    if isinstance(raw.get("scorer"), Mapping):  # a judge with its own options
        from robustify.pipeline.judge import split_scorer

        kwargs["scorer"], kwargs["judge_options"] = split_scorer(
            raw["scorer"], where=f"{path}: key 'scorer': ")
    elif raw.get("scorer") is not None:
        if not isinstance(raw["scorer"], str):
            raise ConfigError(f"{path}: key 'scorer': expected a scorer name, got "
                              f"{type(raw['scorer']).__name__}")
        kwargs["scorer"] = raw["scorer"]
    if "gates" in raw:
        kwargs["gates"] = _gates(raw["gates"], path)
    if raw.get("batch") is not None:  # checked here: one line naming the file and key
        from robustify.runner.batch_jsonl import batch_options

        batch_options(raw["batch"], f"{path}: key 'batch': ")
        kwargs["batch"] = raw["batch"]
    from robustify.pipeline.selection import read_selection_keys

    kwargs.update(read_selection_keys(raw, path))
    return JobConfig(**kwargs).validate()
