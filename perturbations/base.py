"""The transform contract: :class:`Transform`, :class:`TextTransform` and options.

A transform is a class with declarative facts (``name``, ``family``, ``label_policy``,
``OPTIONS``) and one method, :meth:`Transform.apply`, that takes an item, a severity in
[0, 1] and the variant's own ``random.Random`` and returns the perturbed item. It never
touches global RNG state and never mutates its input.

Most transforms rewrite text; they subclass :class:`TextTransform` and implement
:meth:`TextTransform.perturb_text`, which receives the text together with the spans
that must stay intact: numbers, option letters and declared phrases
(:func:`~perturbations.text.protected_spans`), the words the question hinges on
(:func:`~perturbations.text.guard_spans`: negations, decisive and upper-case words,
number and quantity words, quoted terms) and the answer where the text contains it.
The base class decides which fields are user-typed (``input`` by default; the
``fields`` option adds ``context`` and ``choices``).

Two optional hooks make a transform's silence explicit: :meth:`Transform.cannot_apply`
says why it has nothing to change on an item ("item has no choices"), and
:meth:`Transform.notes` reports what it deliberately left alone ("pinned: all of the
above"). The engine records both on the variant.
"""

from __future__ import annotations

import dataclasses
import random
import re
import sys
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

from .errors import ConfigError
from .records import Item, answer_strings
from .text import answer_spans, guard_spans, protected_spans

__all__ = ["Option", "Transform", "TextTransform", "PERTURBABLE_FIELDS", "keep_spans"]

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
    nominal_word_rate_per_severity: ClassVar[float | None] = None
    """Share of eligible words a transform promises to edit per unit of severity
    (``typos``: 0.5), compared with the realised share; None when it promises none."""

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

    def cannot_apply(self, item: Item, severity: float) -> str | None:
        """Why this transform has nothing to change on ``item``, or None if it has.

        Called by the engine only when a variant came out unchanged, to tell "cannot
        apply" (no choices, no candidate words) from "drew no edit this time". Must not
        use randomness. The default knows nothing and returns None.
        """
        return None

    def notes(self, item: Item, severity: float) -> tuple[str, ...]:
        """What this transform deliberately left alone on ``item`` (e.g. options it kept
        in place), as short stable strings the engine records and reports count."""
        return ()

    @classmethod
    def nominal_word_rate(cls, severity: float) -> float | None:
        """The share of eligible words this transform means to edit at ``severity``.

        ``nominal_word_rate_per_severity`` on the class, else a module-level
        ``WORD_RATE`` constant (the convention of :mod:`perturbations.transforms.typos`),
        times severity; None for transforms that state no word rate.
        """
        rate = cls.nominal_word_rate_per_severity
        if rate is None:
            rate = getattr(sys.modules.get(cls.__module__), "WORD_RATE", None)
        return None if rate is None else round(float(rate) * severity, 6)


class TextTransform(Transform):
    """A transform that rewrites user-typed text fields one at a time.

    Subclasses implement :meth:`perturb_text`. The ``fields`` option (default
    ``input``) selects which of ``input``, ``context`` and ``choices`` are rewritten;
    the target is never touched.
    """

    FIELDS_OPTION: ClassVar[Option] = Option(
        "input", PERTURBABLE_FIELDS, "which fields to perturb, e.g. input|context", multi=True)
    rewrites_negations: ClassVar[bool] = False
    """True for transforms that rewrite a negation without losing it ("do not" ->
    "don't"): lower-case negations are then not protected (upper-case ones still are)."""
    NOTHING_TO_CHANGE: ClassVar[str] = "no candidate words"
    """The reason :meth:`cannot_apply` gives when no text has a candidate."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "fields" not in cls.OPTIONS:
            cls.OPTIONS = {**cls.OPTIONS, "fields": TextTransform.FIELDS_OPTION}

    def perturb_text(self, text: str, severity: float, rng: random.Random,
                     protected: Sequence[tuple[int, int]]) -> str:
        """Rewrite one text. ``protected`` spans must come out unchanged."""
        raise NotImplementedError

    def count_candidates(self, text: str, severity: float,
                         protected: Sequence[tuple[int, int]]) -> int | None:
        """How many places of ``text`` this transform could change (None: unknown).

        Used by :meth:`cannot_apply`; must agree with what :meth:`perturb_text` edits.
        """
        return None

    def apply(self, item: Item, severity: float, rng: random.Random) -> Item:
        if severity <= 0:
            return item
        changes: dict[str, Any] = {}
        for field, text, protected in self._texts(item):
            new = self.perturb_text(text, severity, rng, protected)
            # An edit that empties the text would make an invalid item and is never
            # what a user types; keep the original instead.
            new = new if new.strip() else text
            if field == "choices":
                changes["choices"] = changes.get("choices", ()) + (new,)
            else:
                changes[field] = new
        return dataclasses.replace(item, **changes) if changes else item

    def cannot_apply(self, item: Item, severity: float) -> str | None:
        texts = list(self._texts(item))
        if not texts:
            return f"item has no {' or '.join(self.options['fields'])}"
        counts = [self.count_candidates(text, severity, protected)
                  for _, text, protected in texts]
        if any(c is None or c > 0 for c in counts):
            return None
        return self.NOTHING_TO_CHANGE

    def protected_spans_for(self, text: str, item: Item, field: str
                            ) -> list[tuple[int, int]]:
        """Every span of ``text`` (one ``field`` of ``item``) this transform must keep."""
        return keep_spans(text, item, field, negations=not self.rewrites_negations)

    def _texts(self, item: Item) -> list[tuple[str, str, list[tuple[int, int]]]]:
        """(field, text, protected spans) of each selected field, in rewrite order."""
        fields = self.options["fields"]
        out = []
        if "input" in fields:
            out.append(("input", item.input, self.protected_spans_for(item.input, item, "input")))
        if "context" in fields and item.context:
            out.append(("context", item.context,
                        self.protected_spans_for(item.context, item, "context")))
        if "choices" in fields and item.choices:
            out += [("choices", c, self.protected_spans_for(c, item, "choices"))
                    for c in item.choices]
        return out


def keep_spans(text: str, item: Item, field: str, *, negations: bool = True
               ) -> list[tuple[int, int]]:
    """Every span of ``text``, one ``field`` of ``item``, that a text transform keeps:
    :func:`~perturbations.text.protected_spans` (with the item's declared phrases),
    :func:`~perturbations.text.guard_spans` and, outside the options, the answer
    (:func:`~perturbations.records.answer_strings`). Inside the options the gold text
    is not protected: it would be the one option left clean."""
    if field == "choices":
        return sorted(protected_spans(text) + guard_spans(text, negations=negations))
    return sorted(protected_spans(text, _protect_phrases(item))
                  + guard_spans(text, negations=negations)
                  + answer_spans(text, answer_strings(item)))


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
