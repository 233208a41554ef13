"""Severity anchors: what ``realistic`` means for each transform, and the published figures.
(placeholder, filled in below)"""
from __future__ import annotations
REALISTIC_SEVERITY = {}
def realistic_severity(name: str) -> float:
    return REALISTIC_SEVERITY.get(name, 0.2)
