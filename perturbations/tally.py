"""Counting what happened to the variants of a run, per spec (transform x severity).

:class:`VariantTally` is fed every variant drawn, dropped ones included (pass it to
:func:`perturbations.perturb_items` as ``tally=``), and gives one row per spec with
what a report shows beside the drop: how many variants the guard kept, redrew and
dropped and why, how many came out unchanged and why (a transform that cannot apply
is not silent), what transforms pinned, and the realised edit rates per field against
the nominal word rate. Plain counters: tallies of two halves of a run merge.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from .records import FIELDS, Variant

__all__ = ["VariantTally", "SpecCounts"]


@dataclass
class SpecCounts:
    """The running counts of one spec."""

    transform: str
    severity: float
    severity_label: str | None
    label_policy: str
    guard: collections.Counter = field(default_factory=collections.Counter)
    unchanged: int = 0
    skip_reasons: collections.Counter = field(default_factory=collections.Counter)
    violations: collections.Counter = field(default_factory=collections.Counter)
    notes: collections.Counter = field(default_factory=collections.Counter)
    sums: dict = field(default_factory=dict)  # field -> [n changed, chars, words]
    eligible: int = 0
    edited: int = 0
    nominal: float | None = None


class VariantTally:
    """Per-spec counts of variants: guard outcome, unchanged share, edit rates."""

    def __init__(self) -> None:
        self._specs: dict[str, SpecCounts] = {}

    def add(self, variant: Variant) -> None:
        """Count one variant (call it for dropped variants too)."""
        c = self._specs.get(variant.spec)
        if c is None:
            c = self._specs[variant.spec] = SpecCounts(
                variant.transform, variant.severity, variant.severity_label,
                variant.label_policy)
        c.guard[variant.guard] += 1
        c.violations.update({v.split("@", 1)[0] for v in variant.guard_violations})
        c.notes.update(variant.notes)
        if variant.dropped:
            return
        c.nominal = variant.nominal_word_rate
        if not variant.changed:
            c.unchanged += 1
            if variant.skip_reason:
                c.skip_reasons[variant.skip_reason] += 1
        for name, edits in variant.field_edits.items():
            c.eligible += int(edits.get("eligible", 0))
            c.edited += int(edits.get("edited", 0))
            if edits.get("chars"):
                sums = c.sums.setdefault(name, [0, 0.0, 0.0])
                sums[0] += 1
                sums[1] += float(edits["chars"])
                sums[2] += float(edits.get("words", 0.0))

    def merge(self, other: "VariantTally") -> None:
        """Add the counts of ``other`` (e.g. the tally of another process)."""
        for spec, o in other._specs.items():
            c = self._specs.setdefault(spec, SpecCounts(o.transform, o.severity,
                                                        o.severity_label, o.label_policy))
            for name in ("guard", "skip_reasons", "violations", "notes"):
                getattr(c, name).update(getattr(o, name))
            c.unchanged += o.unchanged
            c.eligible += o.eligible
            c.edited += o.edited
            c.nominal = o.nominal if o.nominal is not None else c.nominal
            for name, (n, chars, words) in o.sums.items():
                sums = c.sums.setdefault(name, [0, 0.0, 0.0])
                sums[0] += n
                sums[1] += chars
                sums[2] += words

    def rows(self) -> list[dict[str, Any]]:
        """One dict per spec, sorted by transform, severity and spec.

        Keys: ``spec``, ``transform``, ``severity``, ``severity_label``,
        ``label_policy``; ``drawn`` (variants drawn), ``kept`` (not dropped: asked),
        ``passed``, ``redrawn``, ``dropped``, ``unchecked``, ``dropped_share``;
        ``unchanged`` and ``unchanged_share`` (of the kept), ``cannot_apply`` (kept and
        unchanged because the transform had nothing to change) and ``skip_reasons``;
        ``violations`` (variants with a rejected draw, by violation kind) and ``notes``; per field
        ``<field>_changed`` (kept variants that changed it) with ``<field>_chars`` and
        ``<field>_words``, the mean character and word edit rates of those;
        ``eligible_words``, ``edited_words``, ``realised_word_rate`` (edited / eligible
        over every kept variant) and ``nominal_word_rate``.
        """
        out = []
        for spec, c in sorted(self._specs.items(),
                              key=lambda kv: (kv[1].transform, kv[1].severity, kv[0])):
            drawn = sum(c.guard.values())
            kept = drawn - c.guard["dropped"]
            row: dict[str, Any] = {
                "spec": spec, "transform": c.transform, "severity": c.severity,
                "severity_label": c.severity_label, "label_policy": c.label_policy,
                "drawn": drawn, "kept": kept,
                "passed": c.guard["passed"], "redrawn": c.guard["redrawn"],
                "dropped": c.guard["dropped"], "unchecked": c.guard["unchecked"],
                "dropped_share": round(c.guard["dropped"] / drawn, 6) if drawn else 0.0,
                "unchanged": c.unchanged,
                "unchanged_share": round(c.unchanged / kept, 6) if kept else 0.0,
                "cannot_apply": sum(c.skip_reasons.values()),
                "skip_reasons": dict(sorted(c.skip_reasons.items())),
                "violations": dict(sorted(c.violations.items())),
                "notes": dict(sorted(c.notes.items())),
            }
            for name in FIELDS:
                n, chars, words = c.sums.get(name, (0, 0.0, 0.0))
                row[f"{name}_changed"] = n
                row[f"{name}_chars"] = round(chars / n, 6) if n else None
                row[f"{name}_words"] = round(words / n, 6) if n else None
            row["eligible_words"] = c.eligible
            row["edited_words"] = c.edited
            row["realised_word_rate"] = round(c.edited / c.eligible, 6) if c.eligible else None
            row["nominal_word_rate"] = c.nominal
            out.append(row)
        return out
