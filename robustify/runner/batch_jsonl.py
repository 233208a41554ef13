"""The OpenAI Batch API's file formats: request lines out, answer lines back, and the options.

A request line is ``{"custom_id", "method": "POST", "url": "/v1/chat/completions",
"body": {...}}``. The body is the one the backend itself would send for the same
messages (model, chat and generation parameters, the per-item request entry applied,
see :mod:`robustify.models.requests`), and ``custom_id`` is the response-cache key of
that prompt, so an answer read back lands exactly where a normal call would have put
it. No line ever holds a key: the body has none, and the key travels only in the HTTP
header of the upload.

An answer line (output or error file) carries ``custom_id`` and either a response
(``status_code`` and the chat completion ``body``) or an ``error``; the completion is
parsed by the backend's own code, so text, token counts and finish reason are those of
a normal call, and a key the server echoes is scrubbed the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from types import SimpleNamespace
from typing import Any, Mapping

from perturbations.errors import ConfigError

from robustify.models.base import one_line
from robustify.models.requests import split_request
from robustify.records import Completion

__all__ = ["BatchOptions", "batch_options", "is_batchable", "request_line", "read_answer",
           "MAX_REQUESTS", "MAX_BYTES", "ENDPOINT"]

MAX_REQUESTS = 50_000
"""Requests per input file the API accepts."""
MAX_BYTES = 200 * 1024 * 1024
"""Bytes per input file the API accepts (200 MB)."""
ENDPOINT = "/v1/chat/completions"


@dataclass(frozen=True)
class BatchOptions:
    """How batches are cut and polled (job file ``batch: {...}``; ``batch: true`` = defaults)."""

    max_requests: int = MAX_REQUESTS
    """Requests per batch (input file)."""
    max_bytes: int = MAX_BYTES
    """Bytes per input file."""
    poll_first: float = 5.0
    """Seconds before the first status check."""
    poll_max: float = 60.0
    """Longest wait between status checks (the wait grows by half each time)."""
    completion_window: str = "24h"
    """The window asked for; the API offers ``24h``."""

    def check(self, where: str = "") -> "BatchOptions":
        """Raise :class:`ConfigError` naming the key when a value is out of range."""
        for name in ("max_requests", "max_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{where}batch.{name} must be a positive whole number, "
                                  f"got {value!r}")
        for name in ("poll_first", "poll_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"{where}batch.{name} must be a positive number of "
                                  f"seconds, got {value!r}")
        if not isinstance(self.completion_window, str) or not self.completion_window:
            raise ConfigError(f"{where}batch.completion_window must be text such as '24h'")
        return self


_OPTION_NAMES = tuple(f.name for f in fields(BatchOptions))


def batch_options(value: Any, where: str = "") -> BatchOptions | None:
    """``True``/``False``/``None`` or a mapping of :class:`BatchOptions` fields -> options.

    Args:
        where: Prefix of error lines (``"job.yaml: key 'batch': "``).

    Raises:
        ConfigError: Another type, an unknown key or a bad value.
    """
    if value is None or value is False:
        return None
    if value is True:
        return BatchOptions()
    if isinstance(value, BatchOptions):
        return value.check(where)
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}batch must be true, false or a mapping of "
                          f"{', '.join(_OPTION_NAMES)}; got {value!r}")
    unknown = sorted(set(map(str, value)) - set(_OPTION_NAMES))
    if unknown:
        raise ConfigError(f"{where}unknown key batch.{unknown[0]} (known: "
                          f"{', '.join(_OPTION_NAMES)})")
    return BatchOptions(**{str(k): v for k, v in value.items()}).check(where)


def is_batchable(backend: Any) -> bool:
    """Whether the Batch API can answer for ``backend`` (an ``openai:`` chat backend)."""
    return (getattr(backend, "kind", None) == "openai"
            and isinstance(getattr(backend, "base_url", None), str)
            and isinstance(getattr(backend, "model", None), str)
            and hasattr(backend, "api_key_env")
            and hasattr(type(getattr(backend, "inner", backend)), "_request_kwargs"))


def _request_kwargs(backend: Any, params: Any) -> dict[str, Any]:
    """The generation fields of the body, built by the backend class's own code."""
    build = getattr(type(getattr(backend, "inner", backend)), "_request_kwargs", None)
    if build is None:
        raise ConfigError(f"model {backend.label!r} cannot build batch requests")
    return dict(build(params))


def request_line(backend: Any, key: str, messages: list[dict[str, str]]) -> bytes:
    """One JSONL request line (with its newline) for ``messages`` keyed ``key``.

    Raises:
        ConfigError: A log-likelihood request (the Batch API only writes answers).
    """
    chat, request = split_request(messages)
    if request.get("options"):
        raise ConfigError(f"model {backend.label!r}: the Batch API cannot rate options "
                          f"(loglik scoring); use --scoring-mode generate with --batch")
    params_for = getattr(backend, "params_for", None)
    params = params_for(request) if params_for is not None else backend.params
    body = {"model": backend.model, "messages": chat, **_request_kwargs(backend, params)}
    line = {"custom_id": key, "method": "POST", "url": ENDPOINT, "body": body}
    return json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def read_answer(backend: Any, obj: Mapping[str, Any]
                ) -> tuple[str, Completion | None, str | None]:
    """``(custom_id, completion, error)`` of one output or error line; one of the two is set.

    The completion is parsed by the backend's own response code (scrubbed of its key).
    """
    custom_id = str(obj.get("custom_id") or "")
    secrets = backend._secrets() if hasattr(backend, "_secrets") else ()
    response = obj.get("response") or {}
    status = response.get("status_code") if isinstance(response, Mapping) else None
    body = response.get("body") if isinstance(response, Mapping) else None
    error = obj.get("error")
    if status == 200 and isinstance(body, Mapping) and not error:
        try:
            completion = backend._completion(_attributes(body))
        except Exception as exc:  # a malformed answer is this row's failure, like a call's
            return custom_id, None, one_line(f"batch answer unusable: {exc}", secrets=secrets)
        return custom_id, completion, None
    message = None
    if isinstance(error, Mapping):
        code = error.get("code")
        message = error.get("message") or code
        if code and message != code:
            message = f"{code}: {message}"
    elif error:
        message = str(error)
    if message is None and isinstance(body, Mapping):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, Mapping) else inner
    text = f"batch request failed (HTTP {status}): {message}" if status else \
        f"batch request failed: {message or 'no answer'}"
    return custom_id, None, one_line(text, secrets=secrets)



def _attributes(value: Any) -> Any:
    """JSON -> nested namespaces: what the backend's response code reads by attribute.

    A tenth of the cost of building the SDK's models, which dominated reading back
    (``benchmarks/batch_api.py``).
    """
    if isinstance(value, Mapping):
        return SimpleNamespace(**{str(k): _attributes(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_attributes(v) for v in value]
    return value
