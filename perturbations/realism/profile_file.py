"""Profile files: a fitted (or hand-written) recipe of transform parts, saved as YAML.

A profile file lists transform parts, each with its own severity and the share of
items it is applied to, and carries the statistics it was fitted to::

    robustify_profile: 1
    name: support-traffic
    source: {file: tickets.csv, messages: 1200}
    seed: 0
    parts:
      - {transform: typos, options: {kind: mix}, severity: 0.012, share: 1.0}
      - {transform: casing, options: {mode: lower}, severity: 1.0, share: 0.04}
    target: {...}    # statistics of the real messages (TrafficStats fields)
    fitted: {...}    # the same statistics measured on the fitted variants
    clean: {...}     # ... and on the clean texts the fit drew variants of

It is applied with the spec ``profile:PATH.yaml`` (see
:class:`perturbations.transforms.profile_file.ProfileFile`). Files are read with
``yaml.safe_load`` after refusing anchors and aliases; every error names the file and
the field.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError, DataError, UnknownNameError
from ..registry import get_transform
from ..transforms.profiles import Part
from .stats import TrafficStats

__all__ = ["FittedPart", "FittedProfile", "load_profile", "FORMAT_VERSION"]

FORMAT_VERSION = 1
"""Value of the ``robustify_profile`` key this code reads and writes."""

_TOP_KEYS = {"robustify_profile", "name", "description", "source", "seed", "parts",
             "target", "fitted", "clean", "notes"}
_PART_KEYS = {"transform", "options", "severity", "share"}


@dataclass(frozen=True)
class FittedPart(Part):
    """One transform of a profile file: a profile :class:`Part` with its own severity.

    ``share`` is the share of items the part runs on at the fitted level; ``scale`` is
    unused (a profile file scales every part by the profile severity / 0.1).
    """

    severity: float = 0.0
    """The part's severity when the profile runs at its fitted level."""

    def __init__(self, transform: str, options: Mapping[str, str] | None = None,
                 severity: float = 0.0, share: float = 1.0) -> None:
        object.__setattr__(self, "transform", transform)
        object.__setattr__(self, "options", dict(options or {}))
        object.__setattr__(self, "scale", 1.0)
        object.__setattr__(self, "share", share)
        object.__setattr__(self, "severity", severity)

    def spec(self) -> str:
        """The part as a spec string, with its severity (``casing:mode=lower@1``)."""
        return f"{super().spec()}@{self.severity:.6g}"

    def to_dict(self) -> dict[str, Any]:
        return {"transform": self.transform, "options": dict(sorted(self.options.items())),
                "severity": round(float(self.severity), 6), "share": round(float(self.share), 6)}


@dataclass(frozen=True)
class FittedProfile:
    """A profile file in memory: parts plus the statistics it was fitted to."""

    parts: tuple[FittedPart, ...]
    """Applied in order."""
    name: str = "fitted"
    """Short name shown in tables."""
    description: str = ""
    """Free text."""
    source: Mapping[str, Any] = field(default_factory=dict)
    """Where the real messages came from (file, number of messages)."""
    seed: int = 0
    """Seed the fit drew its variants with."""
    target: TrafficStats | None = None
    """Statistics of the real messages."""
    fitted: TrafficStats | None = None
    """Statistics of the fitted variants of the clean texts."""
    clean: TrafficStats | None = None
    """Statistics of the clean texts themselves."""
    notes: tuple[str, ...] = ()
    """What the fit could not reproduce, one line each."""

    @property
    def label_policy(self) -> str:
        """The strictest label policy among the parts."""
        order = {"preserves": 0, "remaps": 1, "may_break": 2}
        return max((get_transform(p.transform).label_policy for p in self.parts),
                   key=order.__getitem__, default="preserves")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"robustify_profile": FORMAT_VERSION, "name": self.name}
        if self.description:
            out["description"] = self.description
        if self.source:
            out["source"] = dict(self.source)
        out["seed"] = self.seed
        out["parts"] = [p.to_dict() for p in self.parts]
        for key in ("target", "fitted", "clean"):
            stats = getattr(self, key)
            if stats is not None:
                out[key] = stats.to_dict()
        if self.notes:
            out["notes"] = list(self.notes)
        return out

    def dumps(self) -> str:
        """The YAML text of the profile file."""
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True,
                              default_flow_style=None, width=100)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the profile file and return its path: YAML, or JSON (which is also
        YAML, so it loads the same way) when the name ends in ``.json``."""
        path = Path(path)
        if path.suffix.lower() == ".json":
            import json

            text = json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n"
        else:
            text = self.dumps()
        path.write_text(text, encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "FittedProfile":
        """Read and validate a profile file (see :func:`load_profile`)."""
        return load_profile(path)

    @classmethod
    def from_dict(cls, data: Any, *, path: str = "<profile>") -> "FittedProfile":
        """Validate a parsed profile document."""
        if not isinstance(data, Mapping):
            raise DataError("a profile file must be a mapping of keys", path=path)
        unknown = sorted(set(map(str, data)) - _TOP_KEYS)
        if unknown:
            raise DataError(f"unknown key(s) {', '.join(unknown)} (expected "
                            f"{', '.join(sorted(_TOP_KEYS))})", path=path, field=unknown[0])
        version = data.get("robustify_profile")
        if version != FORMAT_VERSION:
            raise DataError(f"expected robustify_profile: {FORMAT_VERSION}, got {version!r}",
                            path=path, field="robustify_profile")
        raw_parts = data.get("parts")
        if not isinstance(raw_parts, list) or not raw_parts:
            raise DataError("needs a non-empty list of parts", path=path, field="parts")
        parts = tuple(_part(p, i, path) for i, p in enumerate(raw_parts))
        stats = {}
        for key in ("target", "fitted", "clean"):
            if data.get(key) is not None:
                try:
                    stats[key] = TrafficStats.from_dict(data[key])
                except (KeyError, TypeError, ValueError) as exc:
                    raise DataError(f"not a complete set of statistics ({exc})", path=path,
                                    field=key) from None
        seed = data.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise DataError(f"seed must be an integer, got {seed!r}", path=path, field="seed")
        source = data.get("source") or {}
        if not isinstance(source, Mapping):
            raise DataError("source must be a mapping", path=path, field="source")
        notes = data.get("notes") or ()
        if isinstance(notes, str) or not all(isinstance(n, str) for n in notes):
            raise DataError("notes must be a list of strings", path=path, field="notes")
        return cls(parts=parts, name=str(data.get("name") or "fitted"),
                   description=str(data.get("description") or ""), source=dict(source),
                   seed=seed, notes=tuple(notes), **stats)


def _part(raw: Any, index: int, path: str) -> FittedPart:
    where = f"parts[{index}]"
    if not isinstance(raw, Mapping):
        raise DataError("each part must be a mapping with transform, severity, share",
                        path=path, field=where)
    unknown = sorted(set(map(str, raw)) - _PART_KEYS)
    if unknown:
        raise DataError(f"unknown key(s) {', '.join(unknown)}", path=path,
                        field=f"{where}.{unknown[0]}")
    name = raw.get("transform")
    if not isinstance(name, str):
        raise DataError("transform must be a transform name", path=path,
                        field=f"{where}.transform")
    try:
        cls = get_transform(name)
    except UnknownNameError as exc:
        raise DataError(str(exc), path=path, field=f"{where}.transform") from None
    if cls.family == "profile":
        raise DataError(f"{name!r} is a profile; a profile file lists plain transforms",
                        path=path, field=f"{where}.transform")
    options = raw.get("options") or {}
    if not isinstance(options, Mapping):
        raise DataError("options must be a mapping", path=path, field=f"{where}.options")
    options = {str(k): str(v) for k, v in options.items()}
    try:
        cls._validate(options)
    except ConfigError as exc:
        raise DataError(str(exc), path=path, field=f"{where}.options") from None
    values = {}
    for key, default in (("severity", None), ("share", 1.0)):
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not 0.0 <= float(value) <= 1.0:
            raise DataError(f"{key} must be a number in [0, 1], got {value!r}", path=path,
                            field=f"{where}.{key}")
        values[key] = float(value)
    return FittedPart(name, options, values["severity"], values["share"])


def _refuse_anchors(text: str, path: str) -> None:
    import yaml

    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                mark = getattr(event, "start_mark", None)
                raise DataError("anchors and aliases (&name, *name) are not allowed in a "
                                "profile file", path=path,
                                line=mark.line + 1 if mark is not None else None)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise DataError(f"invalid YAML: {getattr(exc, 'problem', None) or exc}", path=path,
                        line=mark.line + 1 if mark is not None else None) from None


def load_profile(path: str | os.PathLike[str]) -> FittedProfile:
    """Read, check and return the profile file at ``path`` (cached by path and mtime).

    Raises:
        DataError: missing file, invalid YAML, anchors/aliases, unknown keys or
            transforms, options or numbers out of range (the message names the field).
    """
    p = Path(path)
    try:
        stat = p.stat()
    except OSError:
        raise DataError("profile file not found", path=str(path)) from None
    return _load_cached(str(p.resolve()), stat.st_mtime_ns, stat.st_size, str(path))


@functools.lru_cache(maxsize=64)
def _load_cached(resolved: str, mtime: int, size: int, shown: str) -> FittedProfile:
    import yaml

    try:
        text = Path(resolved).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read profile file: {exc}", path=shown) from None
    _refuse_anchors(text, shown)
    return FittedProfile.from_dict(yaml.safe_load(text), path=shown)
