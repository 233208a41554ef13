"""Model backends: OpenAI-compatible servers, in-process GGUF models, Python callables.

Build one from a spec string with :func:`parse_model_spec`::

    >>> from robustify.models import parse_model_spec
    >>> backend = parse_model_spec("python:robustify.models.python_callable:messages_to_prompt")
    >>> backend.kind, backend.max_concurrency
    ('python', 8)

Kinds are registered (:mod:`.registry`; built-ins in :mod:`.kinds`; plugins through the
entry-point group ``robustify.backends``). The backend modules import their heavy
dependencies (openai, llama_cpp) only when a backend of that kind is built.
"""

from __future__ import annotations

from typing import Any

from robustify.models.base import (DEFAULT_MODEL_SPEC, Backend, BaseBackend, FatalModelError,
                                   ModelCallError, ModelSpec, TransientModelError,
                                   is_loopback_url, one_line)
from robustify.models.registry import (BACKENDS, accepted_spec_forms, parse_model_spec,
                                       register_backend, split_model_spec)
from robustify.models.retry import RetryExhaustedError, RetryPolicy, parse_retry_after

__all__ = [
    "Backend",
    "BaseBackend",
    "ModelSpec",
    "FatalModelError",
    "TransientModelError",
    "ModelCallError",
    "RetryExhaustedError",
    "RetryPolicy",
    "parse_model_spec",
    "split_model_spec",
    "parse_retry_after",
    "is_loopback_url",
    "one_line",
    "DEFAULT_MODEL_SPEC",
    "accepted_spec_forms",
    "register_backend",
    "BACKENDS",
    "OpenAICompatBackend",
    "LocalBackend",
    "PythonCallableBackend",
]

_LAZY = {
    "OpenAICompatBackend": "robustify.models.openai_compat",
    "LocalBackend": "robustify.models.local",
    "PythonCallableBackend": "robustify.models.python_callable",
}


def __getattr__(name: str) -> Any:
    # Importing openai costs about a second; load a backend module only when asked.
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name], __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
