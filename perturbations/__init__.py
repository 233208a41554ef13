"""perturbations: seeded, severity-graded rewrites of benchmark items.

The lower layer of robustify. It knows items, variants and transforms, and nothing
about models, pandas or charts.

>>> from perturbations import Item, perturb
>>> item = Item(id="q1", input="How many legs does a spider have?", target="8")
>>> v = perturb(item, "typos@high", seed=0)
>>> v.item.target, v.spec, v.changed
('8', 'typos@0.8', True)
"""

from __future__ import annotations

from .base import Option, TextTransform, Transform
from .engine import MAX_REDRAWS, expand_specs, perturb, perturb_items, variant_rng
from .errors import ConfigError, DataError, MissingDependencyError, RobustifyError, UnknownNameError
from .guard import POLICY_KEEPS, Violation, check_variant
from .records import (CLEAN, GUARD_STATES, LABEL_POLICIES, TASK_KINDS, Item, Variant,
                      answer_strings, choice_letter)
from .registry import ENTRY_POINT_GROUP, all_transforms, get_transform, register, transform_names
from .spec import SEVERITY_PRESETS, TransformSpec, parse_severity, parse_spec, parse_spec_list
from .tally import VariantTally
from .version import __version__

__all__ = [
    "Item", "Variant", "CLEAN", "TASK_KINDS", "LABEL_POLICIES", "GUARD_STATES", "choice_letter",
    "answer_strings",
    "Transform", "TextTransform", "Option",
    "register", "get_transform", "transform_names", "all_transforms", "ENTRY_POINT_GROUP",
    "TransformSpec", "parse_spec", "parse_spec_list", "parse_severity", "SEVERITY_PRESETS",
    "perturb", "perturb_items", "expand_specs", "variant_rng", "MAX_REDRAWS",
    "check_variant", "Violation", "POLICY_KEEPS", "VariantTally",
    "RobustifyError", "ConfigError", "DataError", "UnknownNameError", "MissingDependencyError",
    "__version__",
]
