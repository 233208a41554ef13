"""Backend for OpenAI and any OpenAI-compatible chat server (vLLM, Ollama, llama.cpp, LM Studio).

One ``openai.AsyncOpenAI`` client per event loop, with the SDK's own retries off
(``max_retries=0``: :mod:`robustify.models.retry` decides) and one HTTP connection pool
sized to :attr:`OpenAICompatBackend.max_concurrency`. The API key is read from the
environment variable named by ``api_key_env`` when a client is made; the backend object
keeps only the variable name, so the key never reaches identities, caches, results,
manifests or ``repr``. Server messages are scrubbed of the key before they are recorded.

Requests go through the client's generic ``post("/chat/completions", ...)`` (the SDK's
documented way to call any endpoint) with the same body, headers and response type as
``chat.completions.create``. ``create`` first walks the whole request through the SDK's
TypedDict transformer, which was about 40% of the client's CPU per call here (see
``docs/performance.md``); our messages are plain ``{"role", "content"}`` string dicts,
for which that walk changes nothing. If the installed SDK lacks what this needs, the
backend falls back to ``create``.

Every response is bounded (``docs/reliability.md``, "Hostile models"): ``timeout`` is a
total deadline per attempt (connect, wait and the whole body; a server that drips one
byte at a time is cut at the deadline, not kept alive by each byte), and the body is
decoded and counted as it streams (:mod:`robustify.models.http_limits`), so a gzip bomb
or a huge body stops at ``max_response_bytes``. Both are transient errors: retried, then
recorded on the row. A key the server echoes in an answer is replaced by
``[redacted key]`` before the answer leaves the backend (so before the cache).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

import httpx2
import openai

from perturbations.errors import ConfigError

from robustify._secrets import scrub
from robustify.records import Completion, GenerationParams
from robustify.models.base import (BaseBackend, ConnectionFailedError, FatalModelError,
                                   TransientModelError, check_base_url, deadline,
                                   is_loopback_url, one_line)
from robustify.models.answer_cap import DEFAULT_MAX_ANSWER_BYTES
from robustify.models.http_pool import PoolShards
from robustify.models.http_limits import DEFAULT_MAX_RESPONSE_BYTES, BoundedTransport
from robustify.models.retry import RetryPolicy, error_for_status, parse_retry_after

__all__ = ["OpenAICompatBackend", "DEFAULT_BASE_URL", "LOOPBACK_PLACEHOLDER_KEY"]

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
"""Base URL of ``openai:MODEL`` specs without ``@URL``."""

LOOPBACK_PLACEHOLDER_KEY = "not-needed"
"""Sent as the key to loopback servers when the key variable is unset."""

DEFAULT_CONCURRENCY = 16
ADAPTIVE_CEILING = 512
"""Most calls in flight the runner's adaptive concurrency may reach (no fixed concurrency)."""
DEFAULT_TIMEOUT = 60.0
"""Seconds one attempt may take in total, body included."""


def _post_route() -> tuple[Any, dict[str, Any]] | None:
    """``(ChatCompletion, request options)`` for ``client.post``, or None to use ``create``.

    Newer SDKs pick the auth header per request from ``options["security"]`` (what
    ``create`` passes as ``security={"bearer_auth": True}``); older ones always send it.
    """
    try:
        import inspect

        from openai._base_client import make_request_options
        from openai.types.chat import ChatCompletion
    except ImportError:  # pragma: no cover - an SDK laid out differently
        return None
    try:
        takes_security = "security" in inspect.signature(make_request_options).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return None
    options = make_request_options(security={"bearer_auth": True}) if takes_security else {}
    return ChatCompletion, dict(options)


_POST_ROUTE = _post_route()


class OpenAICompatBackend(BaseBackend):
    """Chat completions through the ``openai`` client.

    Args:
        model: Model name sent in each request.
        base_url: Server base URL (default :data:`DEFAULT_BASE_URL`).
        api_key_env: Name of the environment variable holding the key.
        params: Generation parameters.
        concurrency: Calls in flight; also the connection-pool size. ``None``: adaptive
            (the runner starts at 16 and moves between 1 and :data:`ADAPTIVE_CEILING`,
            ``docs/performance.md``).
        timeout: Total deadline of one attempt in seconds, connecting and reading the
            whole body included (default 60; not an idle timeout).
        max_response_bytes: Largest response body accepted, counted after decompression
            while it streams (default 4 MiB).
        max_answer_bytes: Answers longer than this (UTF-8 bytes) are cut by the runner
            and flagged ``answer_capped`` (default 64 KiB).
        retry: Retry policy (default :class:`RetryPolicy`).
        label: Label in results (default ``openai:MODEL[@URL]``).
        preflight_timeout: Timeout of :meth:`check` (``GET /models``).

    Raises:
        ConfigError: The key variable is unset and the server is not on loopback.
    """

    kind = "openai"

    def __init__(self, model: str, *, base_url: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", params: GenerationParams | None = None,
                 concurrency: int | None = None, timeout: float | None = None,
                 retry: RetryPolicy | None = None, label: str | None = None,
                 preflight_timeout: float = 5.0, max_response_bytes: int | None = None,
                 max_answer_bytes: int | None = None) -> None:
        self.model = model
        if base_url:
            check_base_url(base_url, model)
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.api_key_env = api_key_env
        self.params = params if params is not None else GenerationParams()
        self.max_concurrency = int(concurrency or DEFAULT_CONCURRENCY)
        self.adaptive_concurrency = concurrency is None
        self.concurrency_ceiling = ADAPTIVE_CEILING if concurrency is None else self.max_concurrency
        self.timeout = float(timeout or DEFAULT_TIMEOUT)
        self.max_response_bytes = _positive_int(max_response_bytes, DEFAULT_MAX_RESPONSE_BYTES,
                                                "max_response_bytes", model)
        self.max_answer_bytes = _positive_int(max_answer_bytes, DEFAULT_MAX_ANSWER_BYTES,
                                              "max_answer_bytes", model)
        self.retry = retry if retry is not None else RetryPolicy()
        self.preflight_timeout = preflight_timeout
        default_label = f"openai:{model}" + (f"@{self.base_url}" if base_url else "")
        self.label = label or default_label
        self.loopback = is_loopback_url(self.base_url)
        if not api_key_env or not api_key_env.replace("_", "").isalnum():
            raise ConfigError(f"model {self.label!r}: api_key_env must be an environment "
                              f"variable name, got {api_key_env!r}")
        if not os.environ.get(api_key_env) and not self.loopback:
            raise ConfigError(f"model {self.label!r}: environment variable {api_key_env} is not "
                              f"set; it must hold the API key for {self.base_url}")
        self._kwargs = self._request_kwargs(self.params)
        self._route = _POST_ROUTE
        self._client: Any = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    @staticmethod
    def _request_kwargs(params: GenerationParams) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"temperature": params.temperature,
                                  "max_tokens": params.max_tokens}
        if params.seed is not None:
            kwargs["seed"] = params.seed
        if params.stop:
            kwargs["stop"] = list(params.stop)
        if params.top_p is not None:
            kwargs["top_p"] = params.top_p
        # backend-specific fields (llama.cpp's repeat_penalty ...) travel in the JSON body
        # itself; the create() path below wraps them back into extra_body
        kwargs.update(params.extra)
        return kwargs

    def identity(self) -> dict[str, Any]:
        """Cache identity: kind, model, base URL and parameters (the key is never included)."""
        return {"kind": self.kind, "model": self.model, "base_url": self.base_url,
                "params": self.params.to_dict()}

    # ----------------------------------------------------------------- clients
    def _api_key(self) -> str:
        key = os.environ.get(self.api_key_env)
        if key:
            return key
        if self.loopback:
            return LOOPBACK_PLACEHOLDER_KEY
        raise FatalModelError(f"environment variable {self.api_key_env} is not set; it must "
                              f"hold the API key for {self.base_url}", backend=self.label)

    def _secrets(self) -> tuple[str | None, ...]:
        return (os.environ.get(self.api_key_env),)

    def _make_client(self, *, timeout: float, pool: int) -> Any:
        limits = httpx2.Limits(max_connections=pool, max_keepalive_connections=pool,
                               keepalive_expiry=30.0)
        http_timeout = httpx2.Timeout(timeout, connect=min(timeout, 10.0))
        transport = BoundedTransport(PoolShards(limits), self.max_response_bytes)
        http_client = openai.DefaultAsyncHttpxClient(timeout=http_timeout, transport=transport)
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=self._api_key(),
                                  max_retries=0, timeout=http_timeout, http_client=http_client)

    def _client_for_running_loop(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            # Connection pools belong to the loop that opened them; a new loop (a second
            # run_queries call) gets a fresh client.
            self._client = self._make_client(timeout=self.timeout, pool=self.concurrency_ceiling)
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client of the running loop; the backend stays usable."""
        client, self._client, self._client_loop = self._client, None, None
        if client is not None:
            try:
                await client.close()
            except Exception as exc:  # closing must never mask the run's outcome
                logger.debug("closing the openai client failed: %s", exc)

    def close(self) -> None:
        """Drop the client; connections are closed with their event loop."""
        self._client = None
        self._client_loop = None

    # ------------------------------------------------------------------- calls
    async def agenerate(self, messages: list[dict[str, str]]) -> Completion:
        """Send one chat request, retrying transient failures under :attr:`retry`.

        Raises:
            FatalModelError: 401/403/404 (stop using this backend).
            ModelCallError: Other 4xx, or retries exhausted
                (:class:`~robustify.models.retry.RetryExhaustedError`).
        """
        loop_client = self._client
        if loop_client is None or self._client_loop is not asyncio.get_running_loop():
            loop_client = self._client_for_running_loop()
        client = loop_client
        return await self.retry.call(lambda: self._once(client, messages), what=self.label)

    async def attempt(self, messages: list[dict[str, str]]) -> Completion:
        """One attempt, no retry (a fleet retries on another endpoint).

        Raises:
            TransientModelError: Worth retrying (:class:`ConnectionFailedError` when the
                connection itself failed).
            FatalModelError, ModelCallError: As :meth:`agenerate`.
        """
        client = self._client
        if client is None or self._client_loop is not asyncio.get_running_loop():
            client = self._client_for_running_loop()
        return await self._once(client, messages)

    async def _request(self, client: Any, messages: list[dict[str, str]]) -> Any:
        route = self._route
        if route is None:
            standard = {k: v for k, v in self._kwargs.items() if k not in self.params.extra}
            extra = {k: self._kwargs[k] for k in self.params.extra}
            return await client.chat.completions.create(
                model=self.model, messages=messages, **standard,
                **({"extra_body": extra} if extra else {}))
        cast_to, options = route
        return await client.post("/chat/completions",
                                 body={"model": self.model, "messages": messages,
                                       **self._kwargs},
                                 cast_to=cast_to, options=options)

    async def _once(self, client: Any, messages: list[dict[str, str]]) -> Completion:
        try:
            async with deadline(self.timeout):
                response = await self._request(client, messages)
        except TimeoutError:
            raise TransientModelError(f"request timed out after {self.timeout:g}s (deadline of "
                                      f"the whole attempt, body included)") from None
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from None
        except openai.APITimeoutError:
            raise TransientModelError(f"request timed out after {self.timeout:g}s") from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc.__context__
            detail = one_line(cause, limit=120, secrets=self._secrets()) if cause else ""
            raise ConnectionFailedError(f"connection error to {self.base_url}"
                                        + (f": {detail}" if detail else "")) from None
        except openai.APIResponseValidationError as exc:
            raise TransientModelError(f"invalid response: {one_line(exc, limit=120)}") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise TransientModelError("malformed JSON in the response body") from None
        return self._completion(response)

    def _completion(self, response: Any) -> Completion:
        choices = getattr(response, "choices", None)
        if not choices:
            extra = getattr(response, "model_extra", None) or {}
            error = extra.get("error") if isinstance(extra, dict) else None
            if error:
                message = error.get("message") if isinstance(error, dict) else error
                raise TransientModelError("server answered 200 with an error body: "
                                          + one_line(message, limit=200, secrets=self._secrets()))
            raise TransientModelError("response has no choices")
        message = getattr(choices[0], "message", None)
        if message is None:
            raise TransientModelError("response choice has no message")
        text = message.content
        if text is None:
            # A refusal or a tool call carries no content; record what the model said.
            text = getattr(message, "refusal", None) or ""
        if not isinstance(text, str):
            raise TransientModelError("response message content is not text")
        text = scrub(text, self._secrets())
        usage = getattr(response, "usage", None)
        return Completion(text=text,
                          tokens_in=getattr(usage, "prompt_tokens", None) if usage else None,
                          tokens_out=getattr(usage, "completion_tokens", None) if usage else None,
                          finish_reason=getattr(choices[0], "finish_reason", None))

    def _status_error(self, exc: Any) -> Exception:
        body = exc.body
        message: Any = None
        if isinstance(body, dict):
            inner = body.get("error", body)
            message = inner.get("message") if isinstance(inner, dict) else inner
        if not message:
            message = getattr(exc, "message", "") or ""
            prefix = f"Error code: {exc.status_code} - "
            if isinstance(message, str) and message.startswith(prefix):
                message = message[len(prefix):]
        text = one_line(message, limit=240, secrets=self._secrets())
        retry_after = parse_retry_after(exc.response.headers) if exc.response is not None else None
        error = error_for_status(exc.status_code, text, retry_after=retry_after,
                                 backend=self.label)
        if isinstance(error, FatalModelError):
            error = FatalModelError(f"{self.label}: {error}", backend=self.label,
                                    status=exc.status_code)
        return error

    # --------------------------------------------------------------- preflight
    async def check(self) -> None:
        """``GET /models`` with a short timeout: is the server reachable and the key accepted?

        A server without a model listing (404/405) passes; a model missing from the
        listing only logs a warning (local servers often list a file name instead).

        Raises:
            FatalModelError: Unreachable server, timeout, 401 or 403.
        """
        client = self._make_client(timeout=self.preflight_timeout, pool=1)
        try:
            async with deadline(self.preflight_timeout):
                page = await client.models.list()
        except TimeoutError:
            raise FatalModelError(f"{self.label}: {self.base_url} did not answer GET /models "
                                  f"within {self.preflight_timeout:g}s", backend=self.label) from None
        except TransientModelError as exc:  # an oversized or oddly encoded listing
            logger.info("%s: GET /models: %s; skipping the model check", self.label, exc)
            return
        except openai.APIStatusError as exc:
            if exc.status_code in (401, 403):
                raise self._status_error(exc) from None
            logger.info("%s: GET /models answered HTTP %s; skipping the model check",
                        self.label, exc.status_code)
            return
        except openai.APITimeoutError:
            raise FatalModelError(f"{self.label}: {self.base_url} did not answer GET /models "
                                  f"within {self.preflight_timeout:g}s", backend=self.label) from None
        except openai.APIConnectionError:
            raise FatalModelError(f"{self.label}: cannot connect to {self.base_url}; is the "
                                  f"server running?", backend=self.label) from None
        except (ValueError, openai.APIResponseValidationError):
            logger.info("%s: GET /models returned an unexpected body; skipping the model check",
                        self.label)
            return
        finally:
            try:
                await client.close()
            except Exception:  # pragma: no cover - best effort
                pass
        ids = [getattr(m, "id", None) for m in getattr(page, "data", None) or []]
        if ids and self.model not in ids:
            shown = ", ".join(str(i) for i in ids[:5]) + (" ..." if len(ids) > 5 else "")
            logger.warning("%s: model %r is not listed by %s (it lists: %s)", self.label,
                           self.model, self.base_url, shown)

    def __repr__(self) -> str:
        return (f"OpenAICompatBackend(model={self.model!r}, base_url={self.base_url!r}, "
                f"api_key_env={self.api_key_env!r}, max_concurrency={self.max_concurrency})")



def _positive_int(value: Any, default: int, name: str, model: str) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"model {model!r}: {name} must be a positive whole number of "
                          f"bytes, got {value!r}")
    return value
