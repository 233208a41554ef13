"""Fit a profile to real traffic: transform parts whose variants reproduce its statistics.

:func:`fit_profile` takes the statistics of a user's real messages
(:func:`~perturbations.realism.stats.measure`) and clean texts (benchmark questions),
and searches, one knob at a time, for the severity or share of each part at which the
variants of the clean texts show the same statistic. Every candidate is evaluated on
the same per-text random streams (common random numbers), so the statistic moves
monotonically with the knob and a bisection finds it; two passes settle the small
interactions (lower-casing a message also lower-cases its capitalised typo). The fit is
deterministic: same inputs and seed, same profile.

What cannot be reproduced is said in the profile's ``notes``: the fit only adds noise,
so clean texts that are longer, or already less punctuated, than the traffic stay so.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ..engine import variant_rng
from ..records import Item
from ..spec import FITTED_SEVERITY
from ..transforms.profile_file import run_parts
from .profile_file import FittedPart, FittedProfile
from .stats import TrafficStats, measure

__all__ = ["fit_profile", "refit", "Knob", "KNOBS", "clean_questions", "simulate",
           "replicates_for", "TOLERANCES", "MIN_VARIANTS"]

_DATA = Path(__file__).resolve().parent.parent / "data"


@dataclass(frozen=True)
class Knob:
    """One part of a fitted profile and the statistic it is fitted to."""

    stat: str
    """The :class:`TrafficStats` field this part moves."""
    transform: str
    """Registered transform."""
    options: tuple[tuple[str, str], ...]
    """Spec options of the part."""
    fixed: float
    """The value of the other knob: the severity for share knobs, the share otherwise."""
    fits: str = "share"
    """Which of severity or share is searched."""

    def part(self, value: float) -> FittedPart:
        severity, share = (self.fixed, value) if self.fits == "share" else (value, self.fixed)
        return FittedPart(self.transform, dict(self.options), round(severity, 6), round(share, 6))


KNOBS: tuple[Knob, ...] = (
    Knob("contraction_share", "contractions", (("mode", "contract"),), 1.0),
    Knob("texting_share", "slang", (("style", "lexicon"),), 1.0),
    Knob("words", "distractor", (), 0.2),
    Knob("filler_share", "fillers", (), 0.15),
    Knob("typos_per_100", "typos", (("kind", "mix"),), 1.0, fits="severity"),
    Knob("whitespace_share", "whitespace", (("mode", "double"),), 0.2),
    Knob("lower_share", "casing", (("mode", "lower"),), 1.0),
    Knob("upper_share", "casing", (("mode", "upper"),), 1.0),
    Knob("no_final_punct", "punctuation", (("mode", "drop"),), 1.0),
)
"""The parts of a fitted profile, in the order they are applied (typed text first, then
its case and punctuation; doubled spaces only, never tabs or line breaks). Capitals come
after lower case, so a message drawn for both is shouted, and raising the profile
severity never undoes one with the other."""

TOLERANCES: Mapping[str, float] = {
    "contraction_share": 0.03, "texting_share": 0.02, "words": 0.5, "filler_share": 0.01,
    "typos_per_100": 0.05, "whitespace_share": 0.01, "upper_share": 0.01,
    "lower_share": 0.02, "no_final_punct": 0.02,
}
"""How far from the target a statistic may stay before the fit says so in its notes."""

_BISECT_STEPS = 9


@functools.cache
def clean_questions() -> tuple[str, ...]:
    """Clean questions and support requests written for robustify (60 texts)."""
    data = json.loads((_DATA / "clean_questions.json").read_text(encoding="utf-8"))
    return tuple(data["questions"])


MIN_VARIANTS = 240
"""The fit draws replicates of the clean texts until it has at least this many variants:
a typo on one message in twenty needs a few hundred draws to be measured, not sixty."""


def replicates_for(clean_texts: Sequence[str]) -> int:
    """Replicates of each clean text the fit draws (at least :data:`MIN_VARIANTS` in all)."""
    return max(1, -(-MIN_VARIANTS // max(len(clean_texts), 1)))


def simulate(parts: Sequence[FittedPart], clean_texts: Sequence[str], seed: int = 0,
             replicates: int = 1) -> list[str]:
    """The variants of each clean text under ``parts`` at the fitted level."""
    out = []
    for r in range(replicates):
        for i, text in enumerate(clean_texts):
            item = Item(id=f"fit-{i}", input=text, target="x")
            rng = variant_rng(seed, "fit", FITTED_SEVERITY, r, item.id)
            out.append(run_parts(item, parts, FITTED_SEVERITY, rng).input)
    return out


def _stat(parts: list[FittedPart], clean: Sequence[str], seed: int, stat: str) -> float:
    variants = simulate(parts, clean, seed, replicates_for(clean))
    return float(getattr(measure(variants, names_from=clean), stat))


def _search(knob: Knob, parts: list[FittedPart], index: int, clean: Sequence[str], seed: int,
            target: float) -> float:
    """Bisect the knob's value in [0, 1] so that its statistic is closest to ``target``."""
    def at(value: float) -> float:
        trial = list(parts)
        trial[index] = knob.part(value)
        return _stat(trial, clean, seed, knob.stat)

    lo, hi = 0.0, 1.0
    f_lo, f_hi = at(lo), at(hi)
    if target <= f_lo:
        return 0.0
    if target >= f_hi:
        return 1.0
    upper = 0.05 if knob.fits == "severity" else 1.0  # typo severities are small: zoom in
    if knob.fits == "severity" and at(upper) >= target:
        hi, f_hi = upper, at(upper)
    for _ in range(_BISECT_STEPS):
        mid = (lo + hi) / 2
        f_mid = at(mid)
        if f_mid < target:
            lo, f_lo = mid, f_mid
        else:
            hi, f_hi = mid, f_mid
    return lo if abs(f_lo - target) <= abs(f_hi - target) else hi


def fit_profile(target: TrafficStats, clean_texts: Sequence[str] | None = None, *,
                seed: int = 0, name: str = "fitted", source: Mapping[str, object] | None = None,
                passes: int = 2) -> FittedProfile:
    """Fit transform parts so that variants of ``clean_texts`` show ``target``'s statistics.

    Args:
        target: Statistics of the real messages (:func:`measure`).
        clean_texts: The texts the profile will perturb (benchmark questions); default
            the 60 clean questions shipped with robustify. At most 300 are used (an even
            sample), which is plenty for shares of a few percent.
        seed: Seed of the variants drawn while fitting.
        name: Name written into the profile.
        source: Where the real messages came from (written into the profile).
        passes: Coordinate passes over the knobs.

    Returns:
        The fitted profile, with ``target``, ``fitted`` (statistics of the fitted
        variants) and ``clean`` statistics, and notes on what it could not reproduce.
    """
    clean = list(clean_texts) if clean_texts is not None else list(clean_questions())
    clean = [t for t in clean if isinstance(t, str) and t.strip()]
    if not clean:
        raise ValueError("fit_profile needs at least one clean text")
    if len(clean) > 300:
        step = len(clean) / 300
        clean = [clean[int(i * step)] for i in range(300)]
    base = measure(clean)
    parts = [k.part(0.0) for k in KNOBS]
    active = [i for i, k in enumerate(KNOBS)
              if getattr(target, k.stat) > getattr(base, k.stat) + TOLERANCES[k.stat]]
    for _ in range(passes):
        for i in active:
            value = _search(KNOBS[i], parts, i, clean, seed, getattr(target, KNOBS[i].stat))
            parts[i] = KNOBS[i].part(value)
    kept = [p for p, k in zip(parts, KNOBS) if (p.share if k.fits == "share" else p.severity) > 0]
    fitted = measure(simulate(kept, clean, seed, replicates_for(clean)), names_from=clean)
    notes = []
    for k in KNOBS:
        want, got = getattr(target, k.stat), getattr(fitted, k.stat)
        if abs(want - got) > max(TOLERANCES[k.stat], 0.1 * want):
            why = ("the clean texts already show more of it; noise is only added"
                   if got > want else "not reachable with this part")
            notes.append(f"{k.stat}: traffic {want:.3g}, fitted variants {got:.3g} ({why})")
    return FittedProfile(parts=tuple(kept), name=name, source=dict(source or {}), seed=seed,
                         target=target, fitted=fitted, clean=base, notes=tuple(notes))


def refit(profile: FittedProfile, clean_texts: Sequence[str], seed: int | None = None
          ) -> FittedProfile:
    """Fit the same target again on other clean texts (e.g. the user's benchmark)."""
    if profile.target is None:
        raise ValueError("the profile carries no target statistics to refit")
    return fit_profile(profile.target, clean_texts, seed=profile.seed if seed is None else seed,
                       name=profile.name, source=profile.source)

