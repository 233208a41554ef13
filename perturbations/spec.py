"""Spec strings: what users type on the command line and what the manifest records.

Grammar::

    spec     := part ("+" part)*
    part     := name (":" key "=" value)* ("@" severity)?
    severity := number in [0, 1] | low | medium | high
    value    := text without ":", "+", "@" or ","; lists are joined with "|"

Examples: ``typos``, ``typos@0.3``, ``typos@high``, ``typos:kind=keyboard@0.2``,
``slang+typos@medium`` (one trailing severity applies to every part that has none),
``truncation:mode=clause:fields=input|context@0.5``.

A list of specs on the command line is comma-separated; commas never occur inside a
spec. :func:`parse_spec` validates names and options against the registry, so a typo
in a spec fails before any work starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from .errors import ConfigError
from .registry import get_transform

__all__ = ["SEVERITY_PRESETS", "TransformSpec", "SpecPart", "parse_spec", "parse_spec_list",
           "parse_severity", "format_severity"]

SEVERITY_PRESETS: Mapping[str, float] = {"low": 0.2, "medium": 0.5, "high": 0.8}
"""Named severities. Each transform maps the [0, 1] scale onto its own knobs."""

_PART = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)(?P<opts>(?::[^:@+,]*)*)(?:@(?P<sev>[^@+,:]+))?$")


def parse_severity(text: str | float, *, where: str = "severity") -> tuple[float, str | None]:
    """Return (value, preset name or None) for ``0.3``, ``low``, ``medium``, ``high``."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, label = float(text), None
    else:
        raw = str(text).strip().lower()
        if raw in SEVERITY_PRESETS:
            return SEVERITY_PRESETS[raw], raw
        try:
            value, label = float(raw), None
        except ValueError:
            raise ConfigError(f"{where} {text!r} is neither a number in [0, 1] nor one of "
                              f"{', '.join(SEVERITY_PRESETS)}") from None
    if not 0.0 <= value <= 1.0 or value != value:
        raise ConfigError(f"{where} {text!r} is out of range: it must lie in [0, 1]")
    for name, preset in SEVERITY_PRESETS.items():
        if preset == value:
            label = name
    return value, label


def format_severity(value: float) -> str:
    """Shortest stable text for a severity (0.5 -> "0.5", 1.0 -> "1")."""
    return f"{value:.6g}"


@dataclass(frozen=True)
class SpecPart:
    """One transform in a spec, with its options and (maybe) its own severity."""

    name: str
    options: tuple[tuple[str, str], ...] = ()
    severity: float | None = None

    def canonical(self, with_severity: bool = True) -> str:
        text = self.name + "".join(f":{k}={v}" for k, v in self.options)
        if with_severity and self.severity is not None:
            text += "@" + format_severity(self.severity)
        return text

    def build(self):
        """Instantiate the transform with the spec's options."""
        return get_transform(self.name)(**dict(self.options))


@dataclass(frozen=True)
class TransformSpec:
    """A parsed, validated spec (a single transform or a ``+`` composition)."""

    parts: tuple[SpecPart, ...]
    severity_label: str | None = field(default=None, compare=False)

    @property
    def severity(self) -> float | None:
        """The variant's severity: the parts' common value, or their maximum."""
        values = [p.severity for p in self.parts if p.severity is not None]
        return max(values) if values else None

    @property
    def transform(self) -> str:
        """Names without options or severity, e.g. ``slang+typos``."""
        return "+".join(p.name for p in self.parts)

    def with_default_severity(self, value: float, label: str | None = None) -> "TransformSpec":
        """Fill in ``value`` for every part that has no severity of its own."""
        if all(p.severity is not None for p in self.parts):
            return self
        parts = tuple(p if p.severity is not None else replace(p, severity=value)
                      for p in self.parts)
        return TransformSpec(parts, label if self.severity_label is None else self.severity_label)

    def __str__(self) -> str:
        sevs = {p.severity for p in self.parts}
        if len(sevs) == 1:  # uniform: write the severity once at the end
            (sev,) = sevs
            text = "+".join(p.canonical(with_severity=False) for p in self.parts)
            return text if sev is None else f"{text}@{format_severity(sev)}"
        return "+".join(p.canonical() for p in self.parts)

    @property
    def label_policy(self) -> str:
        """The strictest policy among the parts (may_break > remaps > preserves)."""
        order = {"preserves": 0, "remaps": 1, "may_break": 2}
        return max((get_transform(p.name).label_policy for p in self.parts), key=order.__getitem__)


def parse_spec(text: str) -> TransformSpec:
    """Parse and validate one spec string.

    Raises:
        ConfigError: malformed spec, bad option or severity.
        UnknownNameError: unknown transform (with suggestions).
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("empty transform spec")
    raw = text.strip()
    pieces = raw.split("+")
    parts: list[SpecPart] = []
    label: str | None = None
    for i, piece in enumerate(pieces):
        m = _PART.match(piece.strip())
        if not m:
            raise ConfigError(f"malformed transform spec {raw!r} near {piece!r} "
                              f"(expected name[:key=value]...[@severity], e.g. typos:kind=keyboard@0.2)")
        options: list[tuple[str, str]] = []
        for opt in filter(None, m.group("opts").split(":")):
            key, sep, value = opt.partition("=")
            if not sep or not key or not value:
                raise ConfigError(f"malformed option {opt!r} in spec {raw!r} (expected key=value)")
            options.append((key, value))
        severity = None
        if m.group("sev") is not None:
            severity, label_i = parse_severity(m.group("sev"), where=f"severity in spec {raw!r}")
            if i == len(pieces) - 1:
                label = label_i
        cls = get_transform(m.group("name"))
        cls._validate(dict(options))  # fail now, not halfway through a run
        parts.append(SpecPart(m.group("name"), tuple(sorted(options)), severity))
    last = parts[-1].severity
    if last is not None and all(p.severity is None for p in parts[:-1]):
        parts = [replace(p, severity=last) for p in parts]
    return TransformSpec(tuple(parts), label)


def parse_spec_list(text: str | list[str] | tuple[str, ...]) -> list[TransformSpec]:
    """Parse ``"typos,slang@high"`` or a list of spec strings."""
    items = text.split(",") if isinstance(text, str) else list(text)
    specs = [parse_spec(s) for s in items if str(s).strip()]
    if not specs:
        raise ConfigError("no transform specs given")
    return specs


def spec_options(spec: TransformSpec) -> list[dict[str, Any]]:
    """Options per part as dicts (for the manifest)."""
    return [dict(p.options) for p in spec.parts]
