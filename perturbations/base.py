"""The transform contract: :class:`Transform`, :class:`TextTransform` and options.

A transform is a class with declarative facts (``name``, ``family``, ``label_policy``,
``OPTIONS``) and one method, :meth:`Transform.apply`, that takes an item, a severity in
[0, 1] and the variant's own ``random.Random`` and returns the perturbed item. It never
touches global RNG state and never mutates its input.

Most transforms rewrite text; they subclass :class:`TextTransform` and implement
:meth:`TextTransform.perturb_text`, which receives the text together with the spans
that must stay intact. The base class decides which fields are user-typed (``input``
by default; the ``fields`` option adds ``context`` and ``choices``).
"""

from __future__ import annotations

import dataclasses
import random
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

from .errors import ConfigError
from .records import Item
from .text import protected_spans

__all__ = ["Option", "Transform", "TextTransform", "PERTURBABLE_FIELDS"]

PERTURBABLE_FIELDS = ("input", "context", "choices")
_HEADING = re.compile(r"^(Severity|Label|Options|Example|Protects)\b.*:")


@dataclass(frozen=True)
class Option:
    """A spec option a transform accepts (``typos:kind=keyboard``)."""

    default: Any
    """Value used when the spec does not set the option."""
    choices: tuple[str, ...] | None = None
    """Allowed values for a string option; ``None`` means free text / number."""
    help: str = ""
    """One line for ``python -m robustify transforms``."""
    multi: bool = False
    """The value is a ``|``-separated list of choices (``fields=input|context``)."""


class Transform:
    """Base class of every transform. Subclasses are registered with ``@register``.

    Class attributes set by ``@register``: ``name``, ``family``, ``label_policy``.
    ``touches_protected`` is True only for transforms whose point is to rewrite
    protected spans (numbers to words); the contract test exempts them from the
    protected-span check. ``deterministic`` is True for transforms whose output does not
    depend on the RNG at all (the contract test then skips the seed-sensitivity check).
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    label_policy: ClassVar[str] = "preserves"
    touches_protected: ClassVar[bool] = False
    deterministic: ClassVar[bool] = False
    OPTIONS: ClassVar[Mapping[str, Option]] = {}

    def __init__(self, **options: Any) -> None:
        self.options = self._validate(options)

    @classmethod
    def _validate(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        known = dict(cls.OPTIONS)
        out: dict[str, Any] = {}
        for key, value in options.items():
            if key not in known:
                allowed = ", ".join(sorted(known)) or "none"
                raise ConfigError(f"transform {cls.name!r} has no option {key!r} "
                                  f"(options: {allowed})")
            opt = known[key]
            if opt.choices is not None:
                values = str(value).split("|") if opt.multi else [str(value)]
                bad = [v for v in values if v not in opt.choices]
                if bad or not values:
                    raise ConfigError(f"transform {cls.name!r}: option {key}={value!r} is not "
                                      f"one of {', '.join(opt.choices)}")
                value = tuple(values) if opt.multi else values[0]
            elif isinstance(opt.default, (int, float)) and not isinstance(opt.default, bool):
                try:
                    value = type(opt.default)(value)
                except (TypeError, ValueError):
                    raise ConfigError(f"transform {cls.name!r}: option {key}={value!r} "
                                      f"is not a number") from None
            out[key] = value
        for key, opt in known.items():
            if key not in out:
                default = opt.default
                out[key] = tuple(default.split("|")) if opt.multi and isinstance(default, str) \
                    else default
        return out

    @classmethod
    def severity_doc(cls) -> str:
        """The 'Severity:' paragraph of the class docstring (shown by the CLI)."""
        return _doc_section(cls.__doc__ or "", "Severity")

    @classmethod
    def summary(cls) -> str:
        """First paragraph of the docstring, on one line."""
        first = (cls.__doc__ or "").strip().split("\n\n")[0]
        return " ".join(first.split())

    def apply(self, item: Item, severity: float, rng: random.Random) -> Item:
        """Return the perturbed item (``item`` itself when severity is 0)."""
        raise NotImplementedError


class TextTransform(Transform):
    """A transform that rewrites user-typed text fields one at a time.

    Subclasses implement :meth:`perturb_text`. The ``fields`` option (default
    ``input``) selects which of ``input``, ``context`` and ``choices`` are rewritten;
    the target is never touched.
    """

    FIELDS_OPTION: ClassVar[Option] = Option(
        "input", PERTURBABLE_FIELDS, "which fields to perturb, e.g. input|context", multi=True)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "fields" not in cls.OPTIONS:
            cls.OPTIONS = {**cls.OPTIONS, "fields": TextTransform.FIELDS_OPTION}

    def perturb_text(self, text: str, severity: float, rng: random.Random,
                     protected: Sequence[tuple[int, int]]) -> str:
        """Rewrite one text. ``protected`` spans must come out unchanged."""
        raise NotImplementedError

    def apply(self, item: Item, severity: float, rng: random.Random) -> Item:
        if severity <= 0:
            return item
        phrases = _protect_phrases(item)
        changes: dict[str, Any] = {}
        fields = self.options["fields"]
        if "input" in fields:
            changes["input"] = self._rewrite(item.input, severity, rng, phrases, item)
        if "context" in fields and item.context:
            changes["context"] = self._rewrite(item.context, severity, rng, phrases, item)
        if "choices" in fields and item.choices:
            changes["choices"] = tuple(self._rewrite(c, severity, rng, (), item)
                                       for c in item.choices)
        return dataclasses.replace(item, **changes) if changes else item

    def _rewrite(self, text: str, severity: float, rng: random.Random,
                 phrases: Sequence[str], item: Item) -> str:
        out = self.perturb_text(text, severity, rng, protected_spans(text, phrases))
        # An edit that empties the text would make an invalid item and is never what a
        # user types; keep the original instead.
        return out if out.strip() else text


def _protect_phrases(item: Item) -> tuple[str, ...]:
    declared = item.metadata.get("protect") or ()
    if isinstance(declared, str):
        declared = (declared,)
    return tuple(str(p) for p in declared)


def _doc_section(doc: str, heading: str) -> str:
    lines = [ln.strip() for ln in doc.splitlines()]
    out: list[str] = []
    grabbing = False
    for ln in lines:
        if ln.startswith(f"{heading}:"):
            grabbing = True
            rest = ln[len(heading) + 1:].strip()
            if rest:
                out.append(rest)
            continue
        if grabbing:
            if not ln or _HEADING.match(ln):
                break
            out.append(ln)
    return " ".join(out)
