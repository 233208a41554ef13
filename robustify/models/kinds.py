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

from perturbations.errors import ConfigError

from robustify.models.base import Backend, ModelSpec, check_base_url
from robustify.models.registry import invalid_spec, register_backend
from robustify.records import GenerationParams

__all__ = ["LocalKind", "OpenAIKind", "PythonKind", "check_base_urls"]

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
    """``openai:MODEL`` (api.openai.com), ``openai:MODEL@http://host:port/v1`` (any
    OpenAI-compatible server: vLLM, Ollama, llama.cpp's server, LM Studio) or
    ``openai:MODEL@URL1,URL2`` (several endpoints serving one model: a fleet)."""

    forms = ("openai:MODEL", "openai:MODEL@http://host:port/v1", "openai:MODEL@URL1,URL2")
    options = ("preflight_timeout", "max_response_bytes", "max_answer_bytes",
               "base_urls", "endpoint_concurrency", "replica_identity", "slow_factor")

    @classmethod
    def split(cls, text: str, rest: str) -> ModelSpec:
        # Model names may contain '@' (fine-tune ids), so split at the last '@' that
        # starts a URL.
        match = re.search(r"@(https?://\S+)$", rest)
        if match:
            model = rest[: match.start()].strip()
            if not model:
                raise invalid_spec(text, "missing model name before '@'")
            urls = check_base_urls(text, model, match.group(1).split(","))
            if len(urls) > 1:
                return ModelSpec(text, "openai", model, urls[0], tuple(urls))
            return ModelSpec(text, "openai", model, urls[0])
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
        fleet = {k: options.pop(k) for k in ("base_urls", "endpoint_concurrency",
                                             "replica_identity", "slow_factor")
                 if k in options}
        urls = fleet.pop("base_urls", None)
        if urls is not None:
            if spec.base_url:
                raise ConfigError(f"model {spec.text!r}: give the base URLs once, in the spec "
                                  f"(@URL1,URL2) or in base_urls, not both")
            if isinstance(urls, str) or not isinstance(urls, (list, tuple)):
                raise ConfigError(f"model {spec.text!r}: base_urls must be a list of URLs")
            urls = check_base_urls(spec.text, spec.model, list(urls))
        elif spec.base_urls:
            urls = list(spec.base_urls)
        if urls is None:
            if fleet:
                raise ConfigError(f"model {spec.text!r}: {', '.join(sorted(fleet))} only "
                                  f"apply to several endpoints (base_urls or @URL1,URL2)")
            from robustify.models.openai_compat import OpenAICompatBackend

            return OpenAICompatBackend(spec.model, base_url=spec.base_url, params=params,
                                       api_key_env=api_key_env or "OPENAI_API_KEY",
                                       concurrency=concurrency, timeout=timeout, **options)
        from robustify.models.fleet import FleetBackend

        return FleetBackend(spec.model, base_urls=urls, params=params,
                            api_key_env=api_key_env or "OPENAI_API_KEY",
                            concurrency=concurrency, timeout=timeout, **fleet, **options)


def check_base_urls(text: str, model: str, urls: list[Any]) -> list[str]:
    """Check each base URL of a spec (http(s), a host, a valid port, no credential).

    Raises:
        ConfigError: One line naming the spec and the URL's position, never a
            credential it may carry.
    """
    for raw in urls:  # never echo the spec before every URL is known to carry no key
        if isinstance(raw, str) and raw.strip():
            check_base_url(raw.strip(), model)
    out: list[str] = []
    for position, raw in enumerate(urls, 1):
        where = f"base URL {position}" if len(urls) > 1 else "base URL"
        if not isinstance(raw, str) or not raw.strip():
            raise invalid_spec(text, f"{where} is empty")
        url = raw.strip().rstrip("/")
        if not re.match(r"https?://", url):
            raise invalid_spec(text, f"{where} must start with http:// or https://")
        parts = urlsplit(url)
        if not parts.hostname:
            raise invalid_spec(text, f"{where} {url!r} has no host")
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise invalid_spec(text, f"{where} {url!r} has an invalid port") from None
        if url in out:
            raise invalid_spec(text, f"{where} {url!r} is listed twice")
        out.append(url)
    return out


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
