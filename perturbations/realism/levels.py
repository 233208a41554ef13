"""The ``realistic`` level of each transform, read off the shipped reference profile.

Kept apart from :mod:`.anchors` (which draws variants to measure presets) because spec
parsing needs these numbers: this module imports nothing of the package, so
``spec -> levels`` never leads back to the engine or to spec parsing.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Mapping

__all__ = ["realistic_severity", "realistic_source", "REFERENCE_FILE"]


REFERENCE_FILE = Path(__file__).resolve().parent.parent / "data" / "profile_reference.json"
"""The reference profile fitted on the shipped real typed corpora (a profile file, in JSON)."""


@functools.cache
def _reference_levels() -> Mapping[str, float]:
    # Read as plain JSON, not through the profile-file loader: spec parsing calls this, and
    # the loader (registry, transforms) must not become a dependency of spec parsing. A
    # test checks these levels against the loader's reading of the same file.
    parts = json.loads(REFERENCE_FILE.read_text(encoding="utf-8"))["parts"]
    levels: dict[str, float] = {}
    for part in parts:
        # the same expected amount on every item
        level = round(float(part["severity"]) * float(part.get("share", 1.0)), 4)
        levels[part["transform"]] = max(levels.get(part["transform"], 0.0), level)
    return levels


def realistic_severity(name: str) -> float:
    """The ``realistic`` severity of transform ``name`` (``low`` when it has no anchor)."""
    level = _reference_levels().get(name, 0.0)
    return level if level > 0 else 0.2


def realistic_source(name: str) -> str:
    """One line: where ``name``'s realistic severity comes from."""
    if name == "profile":
        return "the file's fitted level"
    if _reference_levels().get(name, 0.0) > 0:
        return "fitted to real typed messages (data/profile_reference.json)"
    return "no anchor in real typed messages: same as low"
