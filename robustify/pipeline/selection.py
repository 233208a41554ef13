"""Which rows are evaluated and which are shown as examples: ``--fewshot`` and ``--stratify``.

* ``fewshot: K`` draws, per task kind, K of the user's own rows as worked examples
  (seeded: a hash of the seed and the row id ranks the rows, so the same rows are drawn
  on every run and whatever the file order). They are shown clean, before every item,
  clean and perturbed alike, and are never evaluated themselves. ``--limit`` then
  samples the rows left.
* ``stratify: FIELD`` makes the ``--limit`` sample keep FIELD's proportions (largest
  remainder rounding; inside each value the same seeded ranking). FIELD is ``target``,
  ``task``, or a metadata key (``domain`` or ``meta.domain``).

The job keys also read here: ``generation`` (per-task generation parameters) and
``scoring_mode``; they are checked before any model call.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from typing import Any, Mapping, Sequence

from perturbations.errors import ConfigError
from perturbations.records import TASK_KINDS, Item

__all__ = ["check_selection", "read_selection_keys", "draw_fewshot", "stratified_sample",
           "field_value"]

_GENERATION_KEYS = ("temperature", "seed", "max_tokens", "stop", "top_p")
_MODES = ("generate", "loglik", "loglik_norm")


def _rank(seed: int, salt: str, item_id: str) -> bytes:
    return hashlib.sha256(f"{salt}\x1f{seed}\x1f{item_id}".encode("utf-8")).digest()


def field_value(item: Item, name: str) -> Any:
    """The value of ``name`` for one item: ``target``, ``task`` or a metadata key."""
    if name in ("target", "task"):
        return getattr(item, name)
    key = name.removeprefix("meta.")
    value = item.metadata.get(key)
    return None if isinstance(value, (list, dict)) else value


def draw_fewshot(items: Sequence[Item], k: int, seed: int
                 ) -> tuple[list[Item], dict[str, list[Item]]]:
    """Split the rows into (rows to evaluate, K example rows per task kind).

    Raises:
        ConfigError: A task kind has K rows or fewer (nothing would be left to evaluate).
    """
    if k <= 0:
        return list(items), {}
    by_kind: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_kind[item.task].append(item)
    shots: dict[str, list[Item]] = {}
    for kind, rows in by_kind.items():
        if len(rows) <= k:
            raise ConfigError(f"fewshot {k}: only {len(rows)} {kind} row(s) in the data; "
                              f"{k + 1} or more are needed ({k} examples and at least one "
                              f"to evaluate)")
        shots[kind] = sorted(rows, key=lambda i: _rank(seed, "fewshot", i.id))[:k]
    taken = {id(item) for rows in shots.values() for item in rows}
    return [item for item in items if id(item) not in taken], shots


def stratified_sample(items: Sequence[Item], limit: int | None, seed: int,
                      field: str | None) -> list[Item]:
    """A seeded sample of ``limit`` rows (file order kept), proportional to ``field``.

    Each value gets ``limit * share`` rows rounded by largest remainder (ties: the more
    common value, then the value's text); rows without the field form their own group.
    Without ``field`` it is a plain seeded sample.

    Raises:
        ConfigError: ``field`` is set on no row.
    """
    if limit is None or limit >= len(items):
        return list(items)
    groups: dict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        value = field_value(item, field) if field else None
        groups["" if value is None else f"={value}"].append(index)
    if field and set(groups) == {""}:
        raise ConfigError(f"stratify: no row has the field {field!r} (use target, task or a "
                          f"metadata key)")
    total = len(items)
    quotas = {g: limit * len(rows) / total for g, rows in groups.items()}
    counts = {g: math.floor(q) for g, q in quotas.items()}
    left = limit - sum(counts.values())
    for g in sorted(groups, key=lambda g: (-(quotas[g] - counts[g]), -len(groups[g]), g))[:left]:
        counts[g] += 1
    chosen: list[int] = []
    for g, rows in groups.items():
        ranked = sorted(rows, key=lambda i: _rank(seed, "limit", items[i].id))
        chosen.extend(ranked[:counts[g]])
    return [items[i] for i in sorted(chosen)]


def check_selection(job: Any) -> None:
    """Check ``fewshot``, ``stratify``, ``scoring_mode`` and ``generation`` of a job."""
    where = f"{job.source}: " if job.source else ""
    if isinstance(job.fewshot, bool) or not isinstance(job.fewshot, int) or job.fewshot < 0:
        raise ConfigError(f"{where}fewshot must be a whole number >= 0, got {job.fewshot!r}")
    if job.stratify is not None and (not isinstance(job.stratify, str) or not job.stratify):
        raise ConfigError(f"{where}stratify must be a field name, got {job.stratify!r}")
    if job.scoring_mode not in _MODES:
        raise ConfigError(f"{where}scoring_mode must be one of {', '.join(_MODES)}, got "
                          f"{job.scoring_mode!r}")
    _check_generation(job.generation, where)


def _check_generation(value: Any, where: str) -> None:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}generation must map task kinds to parameters, e.g. "
                          f"{{numeric: {{max_tokens: 256}}}}")
    for kind, params in value.items():
        if kind not in TASK_KINDS:
            raise ConfigError(f"{where}generation: unknown task kind {kind!r} (task kinds: "
                              f"{', '.join(TASK_KINDS)})")
        if not isinstance(params, Mapping):
            raise ConfigError(f"{where}generation.{kind} must map parameter names to values")
        for name, param in params.items():
            if name not in _GENERATION_KEYS:
                raise ConfigError(f"{where}generation.{kind}: unknown parameter {name!r} "
                                  f"(allowed: {', '.join(_GENERATION_KEYS)})")
            if name == "max_tokens" and (isinstance(param, bool) or not isinstance(param, int)
                                         or param < 1):
                raise ConfigError(f"{where}generation.{kind}.max_tokens must be a whole "
                                  f"number >= 1, got {param!r}")


def read_selection_keys(raw: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The job-file keys ``generation``, ``scoring_mode``, ``fewshot``, ``stratify``."""
    out: dict[str, Any] = {}
    if raw.get("generation") is not None:
        _check_generation(raw["generation"], f"{path}: ")
        out["generation"] = {str(k): dict(v) for k, v in raw["generation"].items()}
    if raw.get("scoring_mode") is not None:
        out["scoring_mode"] = str(raw["scoring_mode"])
    if raw.get("fewshot") is not None:
        value = raw["fewshot"]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: key 'fewshot' must be a whole number, got {value!r}")
        out["fewshot"] = value
    if raw.get("stratify") is not None:
        out["stratify"] = str(raw["stratify"])
    return out
