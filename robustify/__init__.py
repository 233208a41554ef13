"""robustify: how far does a model's benchmark score fall when real users type the questions?

The upper layer: data loading, model backends, the cached concurrent runner, scoring,
paired analysis, charts and reports. Items, variants and transforms come from the
lower package :mod:`perturbations` and are re-exported here.

Heavy modules (pandas, matplotlib, openai, llama.cpp) load on first use, so
``python -m robustify transforms`` starts quickly.
"""

from __future__ import annotations

from perturbations import (Item, Variant, parse_spec, perturb, perturb_items, register,
                           transform_names)
from perturbations.errors import (ConfigError, DataError, MissingDependencyError, RobustifyError,
                                  UnknownNameError)
from perturbations.lazy import lazy_exports
from perturbations.version import __version__

__all__ = [
    # one call
    "evaluate", "RunResult", "run_job", "JobConfig", "load_job", "calibrate",
    # step by step
    "load_items", "Item", "Variant", "perturb", "perturb_items", "parse_spec", "register",
    "transform_names", "parse_model_spec", "run_queries", "ResponseCache", "build_messages",
    "score_answer", "summarize", "model_overview", "write_report",
    # records and errors
    "GenerationParams", "Completion", "Score",
    "RobustifyError", "ConfigError", "DataError", "UnknownNameError", "MissingDependencyError",
    "__version__",
]

_LAZY = {
    "evaluate": "pipeline", "RunResult": "pipeline", "run_job": "pipeline",
    "calibrate": "calibration",
    "JobConfig": "pipeline", "load_job": "pipeline",
    "load_items": "data",
    "parse_model_spec": "models",
    "run_queries": "runner", "ResponseCache": "runner",
    "build_messages": "prompts",
    "score_answer": "scoring",
    "summarize": "analysis", "model_overview": "analysis",
    "write_report": "reporting",
    "GenerationParams": "records", "Completion": "records", "Score": "records",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
