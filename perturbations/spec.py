"""Spec strings: what users type on the command line and what the manifest records.

Grammar::

    spec     := part ("+" part)*
    part     := name (":" key "=" value)* ("@" severity)?  |  "profile:" path ("@" severity)?
    severity := number in [0, 1] | realistic | low | medium | high | fitted
    value    := text without ":", "+", "@" or ","; lists are joined with "|"
    path     := a file path without "+", "@" or ","

Examples: ``typos``, ``typos@0.3``, ``typos@high``, ``typos:kind=keyboard@0.2``,
``slang+typos@medium`` (one trailing severity applies to every part that has none),
``truncation:mode=clause:fields=input|context@0.5``, ``profile:fits/support.yaml``.

Severity levels. ``low``, ``medium`` and ``high`` (0.2, 0.5, 0.8) are *stress* levels:
each transform maps the number onto its own knobs, and even ``low`` is heavier than what
people leave in the messages they send. ``realistic`` is anchored on people: each
transform gets its own severity, taken from published typing-error rates or from real
typed messages (:mod:`perturbations.realism.anchors`; transforms without an anchor use
``low``), so ``slang+typos@realistic`` gives each part its own number. ``fitted`` is the
level at which a profile file reproduces the traffic it was fitted to; a
``profile:PATH`` spec without a severity gets it, so it stands for one variant per item
that looks like that traffic (:attr:`TransformSpec.fitted_default`).

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
           "parse_severity", "format_severity", "REALISTIC", "FITTED", "FITTED_SEVERITY",
           "SEVERITY_LEVELS", "part_realistic_severity"]

SEVERITY_PRESETS: Mapping[str, float] = {"low": 0.2, "medium": 0.5, "high": 0.8}
"""Named stress severities. Each transform maps the [0, 1] scale onto its own knobs."""

REALISTIC = "realistic"
"""Label of the per-transform level anchored on people (see the module docstring)."""

FITTED = "fitted"
"""Label of the level at which a profile file reproduces its traffic."""

FITTED_SEVERITY = 0.1
"""The severity number of the ``fitted`` level; a profile file scales by severity / 0.1."""

SEVERITY_LEVELS: tuple[str, ...] = (REALISTIC, "low", "medium", "high")
"""Every named level, realistic first, then the stress levels."""

_PROFILE_PART = re.compile(r"^profile:(?!path=)(?P<path>[^+,]+?)(?:@(?P<sev>[^@+,:/\\]+))?$")

_PART = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)(?P<opts>(?::[^:@+,]*)*)(?:@(?P<sev>[^@+,:]+))?$")


def parse_severity(text: str | float, *, where: str = "severity") -> tuple[float, str | None]:
    """Return (value, preset name or None) for ``0.3``, ``low``, ``medium``, ``high``."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, label = float(text), None
    else:
        raw = str(text).strip().lower()
        if raw in SEVERITY_PRESETS:
            return SEVERITY_PRESETS[raw], raw
        if raw == REALISTIC:  # per transform; parts get their own value from the label
            return SEVERITY_PRESETS["low"], REALISTIC
        if raw == FITTED:
            return FITTED_SEVERITY, FITTED
        try:
            value, label = float(raw), None
        except ValueError:
            raise ConfigError(f"{where} {text!r} is neither a number in [0, 1] nor one of "
                              f"{', '.join((*SEVERITY_LEVELS, FITTED))}") from None
    if not 0.0 <= value <= 1.0 or value != value:
        raise ConfigError(f"{where} {text!r} is out of range: it must lie in [0, 1]")
    for name, preset in SEVERITY_PRESETS.items():
        if preset == value:
            label = name
    return value, label


def part_realistic_severity(name: str, label: str = REALISTIC) -> float:
    """The severity a part gets at the ``realistic`` (or ``fitted``) level."""
    if get_transform(name).name == "profile":
        return FITTED_SEVERITY
    from .realism.levels import realistic_severity

    return realistic_severity(name)


def format_severity(value: float) -> str:
    """Shortest stable text for a severity (0.5 -> "0.5", 1.0 -> "1")."""
    return f"{value:.6g}"


@dataclass(frozen=True)
class SpecPart:
    """One transform in a spec, with its options and (maybe) its own severity."""

    name: str
    options: tuple[tuple[str, str], ...] = ()
    severity: float | None = None
    fitted_default: bool = field(default=False, compare=False)
    """True when the severity is a profile file's fitted level, given for lack of one."""

    def canonical(self, with_severity: bool = True) -> str:
        if self.name == "profile" and len(self.options) == 1 and self.options[0][0] == "path":
            text = f"profile:{self.options[0][1]}" if self.options[0][1] else "profile"
        else:
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
        """Fill in ``value`` for every part that has no severity of its own.

        With ``label`` ``realistic`` or ``fitted`` each part gets its own level instead
        (:func:`part_realistic_severity`), whatever ``value`` is.
        """
        if all(p.severity is not None for p in self.parts):
            return self
        parts = tuple(p if p.severity is not None else replace(p, severity=_level(p, value, label))
                      for p in self.parts)
        return TransformSpec(parts, label if self.severity_label is None else self.severity_label)

    @property
    def fitted_default(self) -> bool:
        """True when a profile part got the fitted level because the spec named none.

        Such a spec stands for one variant per item at the fitted level; a caller with
        an explicit list of severities (``--severity``) should expand it with
        :meth:`with_severity` for each instead of keeping it as it is.
        """
        return any(p.fitted_default for p in self.parts)

    def with_severity(self, value: float, label: str | None = None) -> "TransformSpec":
        """Set ``value`` on every part without a severity of its own choosing (no
        severity, or a fitted level given by default); explicit severities are kept."""
        parts = tuple(replace(p, severity=_level(p, value, label), fitted_default=False)
                      if p.severity is None or p.fitted_default else p for p in self.parts)
        return TransformSpec(parts, label)

    def __str__(self) -> str:
        if self.severity_label in (REALISTIC, FITTED) and all(
                p.severity == _level(p, -1.0, self.severity_label) for p in self.parts):
            # every part took its level from the label: write the label, which parses back
            # to the same severities and keeps the name in variants and results
            return "+".join(p.canonical(with_severity=False) for p in self.parts) + \
                f"@{self.severity_label}"
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
        return max((_part_policy(p) for p in self.parts), key=order.__getitem__)


def _level(part: SpecPart, value: float, label: str | None) -> float:
    if label in (REALISTIC, FITTED):
        return part_realistic_severity(part.name, label)
    return value


def _part_policy(part: SpecPart) -> str:
    cls = get_transform(part.name)
    if part.name == "profile":  # the file decides: a hand-written one may hold truncation
        return cls.load(dict(part.options).get("path", "")).label_policy
    return cls.label_policy


def _parse_profile_part(piece: str, raw: str) -> tuple[SpecPart, str | None] | None:
    """``profile:PATH[@severity]`` (a path, not ``key=value``), or None if not one."""
    m = _PROFILE_PART.match(piece)
    if m is None:
        return None
    path = m.group("path").strip()
    if "@" in path:
        raise ConfigError(f"profile path in spec {raw!r} must not contain '@', '+' or ','")
    severity = label = None
    if m.group("sev") is not None:
        severity, label = parse_severity(m.group("sev"), where=f"severity in spec {raw!r}")
        if label in (REALISTIC, FITTED):
            severity = FITTED_SEVERITY
    get_transform("profile")._validate({"path": path})
    return SpecPart("profile", (("path", path),), severity), label


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
        profile = _parse_profile_part(piece.strip(), raw)
        if profile is not None:
            parts.append(profile[0])
            if i == len(pieces) - 1:
                label = profile[1]
            continue
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
        cls = get_transform(m.group("name"))
        cls._validate(dict(options))  # fail now, not halfway through a run
        if m.group("sev") is not None:
            severity, label_i = parse_severity(m.group("sev"), where=f"severity in spec {raw!r}")
            if label_i in (REALISTIC, FITTED):
                severity = part_realistic_severity(m.group("name"), label_i)
            if i == len(pieces) - 1:
                label = label_i
        parts.append(SpecPart(m.group("name"), tuple(sorted(options)), severity))
    last = parts[-1]
    if last.severity is not None and all(p.severity is None for p in parts[:-1]):
        value = last.severity
        parts = [replace(p, severity=_level(p, value, label)) for p in parts[:-1]] + [last]
    elif all(p.severity is None for p in parts) and all(p.name == "profile" for p in parts):
        # a profile file without a severity reproduces its traffic: one variant per item
        parts = [replace(p, severity=FITTED_SEVERITY, fitted_default=True) for p in parts]
        label = FITTED
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
