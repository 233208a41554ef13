"""Analysis: the results frame -> paired drops, intervals, flips, worst case, rankings.

Every perturbed row is paired with the same model's answer to its own clean item.
"""

from __future__ import annotations

from robustify.analysis.paired import *  # noqa: F401,F403
from robustify.analysis.paired import __all__  # noqa: F401
