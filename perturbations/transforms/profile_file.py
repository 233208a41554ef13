"""``profile:PATH.yaml``: apply a profile file, such as one fitted to a user's own traffic."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..base import Option, Transform
from ..records import Item
from ..registry import get_transform, register
from ..spec import FITTED_SEVERITY
from .profiles import Part

from ..realism.levels import REFERENCE_FILE as REFERENCE_PROFILE

__all__ = ["ProfileFile", "REFERENCE_PROFILE", "scaled", "run_parts"]


def run_parts(item: Item, parts: Sequence[Any], severity: float, rng: random.Random) -> Item:
    """Apply profile-file parts at profile severity ``severity``.

    One 64-bit root is drawn from ``rng``; each part's stream (and its share draw) is
    seeded from the root and the part's own spec (``casing:mode=lower``), not from its
    position, so adding or dropping a part never changes another part's noise.
    """
    root = rng.getrandbits(64)
    out = item
    seen: dict[str, int] = {}
    for part in parts:
        key = Part.spec(part)  # the spec without severity: casing:mode=lower
        seen[key] = seen.get(key, 0) + 1
        key += f"#{seen[key]}"
        sev, share = scaled(part.severity, severity), scaled(part.share, severity)
        if sev <= 0 or share <= 0:
            continue
        if share < 1 and random.Random(f"{root}\x1fshare\x1f{key}").random() >= share:
            continue
        transform = get_transform(part.transform)(**dict(part.options))
        out = transform.apply(out, sev, random.Random(f"{root}\x1f{key}"))
    return out


def scaled(value: float, severity: float) -> float:
    """A fitted severity or share at profile severity ``severity`` (capped at 1)."""
    return min(1.0, value * severity / FITTED_SEVERITY)


@register("profile", family="profile", label_policy="preserves")
class ProfileFile(Transform):
    """Apply a profile file: transform parts with fitted severities and shares.

    The file (``profile:PATH.yaml``, written by ``fit_profile(...).save`` or by hand; see
    ``perturbations.realism.profile_file``) lists parts such as ``typos`` at severity
    0.01 on every item and ``casing:mode=lower`` at 1 on 4% of the items. Without a path
    the reference profile fitted to the real typed messages shipped with robustify is used.

    Severity: ``fitted`` (0.1, what a spec without a severity gets) reproduces the
    traffic the file was fitted to: each part runs at its own severity on its own share
    of items. Any other severity scales every part's severity and share by
    severity / 0.1, capped at 1: low (0.2) is twice the fitted noise, medium 5 times,
    high 8 times (stress levels); 0.05 is half.
    Label: preserves for fitted files (every part they use preserves the gold answer); a
    hand-written file with a may_break part (truncation) makes the spec may_break.
    Options: ``path`` = the profile file (YAML).
    """

    OPTIONS = {"path": Option("", None, "profile file written by 'calibrate' (YAML)")}

    @classmethod
    def _validate(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        out = super()._validate(options)
        cls.load(out["path"])  # a bad file fails when the spec is parsed
        return out

    @staticmethod
    def load(path: str):
        """The profile behind ``path`` ('' = the reference profile)."""
        from ..realism.profile_file import load_profile

        if str(path).startswith("~"):
            path = str(Path(path).expanduser())
        return load_profile(path or REFERENCE_PROFILE)

    def apply(self, item: Item, severity: float, rng: random.Random) -> Item:
        if severity <= 0:
            return item
        return run_parts(item, self.load(self.options["path"]).parts, severity, rng)
