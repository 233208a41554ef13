"""The backend protocol, the model-call errors and model spec strings.

A backend answers one chat prompt at a time (:meth:`Backend.agenerate`); the runner
owns concurrency, caching and bookkeeping. Model specs are short strings::

    local:smollm2                      the embedded SmolLM2-135M-Instruct (the default)
    local:/path/to/model.gguf          any GGUF file, in process through llama-cpp-python
    openai:gpt-4o-mini                 api.openai.com, key from OPENAI_API_KEY
    openai:NAME@http://127.0.0.1:8080/v1   any OpenAI-compatible server
    openai:NAME@http://a:8000/v1,http://b:8000/v1   several endpoints serving one model
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
import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from perturbations.errors import ConfigError, RobustifyError

from robustify._secrets import mask, url_credentials
from robustify.records import Completion, GenerationParams

__all__ = [
    "Backend",
    "BaseBackend",
    "ModelSpec",
    "FatalModelError",
    "TransientModelError",
    "ConnectionFailedError",
    "ModelCallError",
    "DEFAULT_MODEL_SPEC",
    "one_line",
    "is_loopback_url",
    "check_base_url",
    "deadline",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL_SPEC = "local:smollm2"
"""The model used when none is given."""



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


class ConnectionFailedError(TransientModelError):
    """The connection to the server failed (refused, reset, dropped): retried; a fleet
    drains that endpoint at once (:mod:`robustify.models.fleet`)."""


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


def check_base_url(url: str, model: str) -> None:
    """Refuse a base URL that carries a credential, without repeating the URL.

    A user name or password, a fragment, or a query parameter named like a credential or
    holding a key-shaped value (see :func:`robustify._secrets.url_credentials`): URLs are
    written into labels, manifests and reports, so a key there would be written too.

    Raises:
        ConfigError: One line naming the model and what was found, never the value.
    """
    where = url_credentials(url)
    if where is not None:
        raise ConfigError(f"model spec openai:{model}@...: the base URL carries a credential "
                          f"({where}); put the key in an environment variable and name it "
                          f"with --api-key-env")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec string (no backend built, no environment read)."""

    text: str
    """The spec as given (stripped); becomes the backend label."""
    kind: str
    """The registered backend kind: ``local`` | ``openai`` | ``python`` | a plugin's."""
    model: str
    """``smollm2``, a GGUF path, a model name, or ``package.module:function``."""
    base_url: str | None = None
    """OpenAI-compatible base URL for ``openai:`` specs (``None``: api.openai.com)."""
    base_urls: tuple[str, ...] = ()
    """Every base URL of a fleet spec (``openai:NAME@URL1,URL2``); empty for one URL."""


def deadline(seconds: float) -> Any:
    """``async with deadline(s):`` cancel the block after ``s`` seconds, raising ``TimeoutError``.

    ``asyncio.timeout`` where it exists (3.11+: no extra task, so cheap on every call),
    else an equivalent for 3.10. An infinite ``seconds`` never fires.
    """
    if math.isinf(seconds):
        seconds_or_none: float | None = None
    else:
        seconds_or_none = seconds
    timeout = getattr(asyncio, "timeout", None)
    if timeout is not None:
        return timeout(seconds_or_none)
    return _WaitForDeadline(seconds)  # pragma: no cover - Python 3.10


class _WaitForDeadline:  # pragma: no cover - Python 3.10 has no asyncio.timeout
    """A minimal ``asyncio.timeout`` for 3.10: cancels the current task at the deadline."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self.handle: Any = None

    async def __aenter__(self) -> "_WaitForDeadline":
        task = asyncio.current_task()
        assert task is not None

        def fire() -> None:
            self.expired = True
            task.cancel()

        if not math.isinf(self.seconds):
            self.handle = asyncio.get_running_loop().call_later(self.seconds, fire)
        return self

    async def __aexit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        if self.handle is not None:
            self.handle.cancel()
        if self.expired and kind is asyncio.CancelledError:
            raise TimeoutError from None
        return False
