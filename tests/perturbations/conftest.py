from __future__ import annotations

import os

import pytest


@pytest.fixture
def update_golden() -> bool:
    """Set ROBUSTIFY_UPDATE_GOLDEN=1 to rewrite golden files (then review the diff)."""
    return os.environ.get("ROBUSTIFY_UPDATE_GOLDEN") == "1"
