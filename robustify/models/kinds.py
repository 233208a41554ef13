"""The built-in backend kinds: ``local:``, ``openai:`` and ``python:`` specs.

Each factory parses its spec form and builds its backend; the backend modules (and
openai, llama_cpp) are imported only when a backend is built. Other kinds register the
same way from their own packages (see :mod:`robustify.models.registry`).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit

from robustify.models.base import Backend, ModelSpec, check_base_url
from robustify.models.registry import invalid_spec, register_backend
from robustify.records import GenerationParams

__all__ = ["LocalKind", "OpenAIKind", "PythonKind"]

logger = logging.getLogger(__name__)


@register_backend("local")
class LocalKind:
    """``local:smollm2`` (the embedded SmolLM2) or ``local:/path/to/model.gguf``: llama.cpp in process."""

    forms = ("local:smollm2", "local:/path/to/model.gguf")
    options = ("n_ctx", "n_threads", "batch")

    @classmethod
    def split(cls, text: str, rest: str) -> ModelSpec:
        return ModelSpec(text, "local", rest)

    @classmethod
    def build(cls, spec: ModelSpec, *, params: GenerationParams, api_key_env: str | None,
              concurrency: int | None, timeout: float | None, **options: Any) -> Backend:
        from robustify.models.local import LocalBackend

        if api_key_env is not None:
            logger.debug("api_key_env is ignored for %s", spec.text)
        if concurrency is not None and "batch" not in options:
            # For an in-process model the calls in flight are the sequences decoded
            # together: --concurrency 1 (or a job file's concurrency: 1) is one at a time.
            options["batch"] = min(int(concurrency), 64)
        return LocalBackend(spec.model, params=params, **options)


@register_backend("openai")
class OpenAIKind:
    """``openai:MODEL`` (api.openai.com) or ``openai:MODEL@http://host:port/v1`` (any
    OpenAI-compatible server: vLLM, Ollama, llama.cpp's server, LM Studio)."""

    forms = ("openai:MODEL", "openai:MODEL@http://host:port/v1")
    options = ("preflight_timeout", "max_response_bytes", "max_answer_bytes")

    @classmethod
    def split(cls, text: str, rest: str) -> ModelSpec:
        # Model names may contain '@' (fine-tune ids), so split at the last '@' that
        # starts a URL.
        match = re.search(r"@(https?://\S+)$", rest)
        if match:
            model, base_url = rest[: match.start()].strip(), match.group(1).rstrip("/")
            if not model:
                raise invalid_spec(text, "missing model name before '@'")
            # never echo the URL: a user-info, query or fragment may hold a key
            check_base_url(base_url, model)
            parts = urlsplit(base_url)
            if not parts.hostname:
                raise invalid_spec(text, f"base URL {base_url!r} has no host")
            try:
                parts.port  # noqa: B018 - raises ValueError on a bad port
            except ValueError:
                raise invalid_spec(text, f"base URL {base_url!r} has an invalid port") from None
            return ModelSpec(text, "openai", model, base_url)
        if "@" in rest:
            # '@' may belong to a model name (claude-3@20240229), but 'host:port' or a
            # scheme other than http(s) after it is a mistyped base URL.
            after = rest.rsplit("@", 1)[1]
            if "://" in after or re.fullmatch(r"[\w.\-]+:\d+(/\S*)?", after):
                raise invalid_spec(text, "the base URL after '@' must start with http:// or https://")
        return ModelSpec(text, "openai", rest, None)

    @classmethod
    def build(cls, spec: ModelSpec, *, params: GenerationParams, api_key_env: str | None,
              concurrency: int | None, timeout: float | None, **options: Any) -> Backend:
        from robustify.models.openai_compat import OpenAICompatBackend

        return OpenAICompatBackend(spec.model, base_url=spec.base_url, params=params,
                                   api_key_env=api_key_env or "OPENAI_API_KEY",
                                   concurrency=concurrency, timeout=timeout, **options)


@register_backend("python")
class PythonKind:
    """``python:package.module:function``: any Python callable (sync or async) as a model."""

    forms = ("python:package.module:function",)
    options = ("max_answer_bytes",)

    @classmethod
    def split(cls, text: str, rest: str) -> ModelSpec:
        module, colon, func = rest.rpartition(":")
        if not colon or not module or not func:
            raise invalid_spec(text, "expected python:package.module:function")
        return ModelSpec(text, "python", rest)

    @classmethod
    def build(cls, spec: ModelSpec, *, params: GenerationParams, api_key_env: str | None,
              concurrency: int | None, timeout: float | None, **options: Any) -> Backend:
        from robustify.models.python_callable import PythonCallableBackend

        if api_key_env is not None:
            logger.debug("api_key_env is ignored for %s", spec.text)
        return PythonCallableBackend(spec.model, params=params, concurrency=concurrency,
                                     timeout=timeout, **options)
