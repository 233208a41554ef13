"""One model served by several OpenAI-compatible endpoints (vLLM, TGI or SGLang replicas).

``openai:NAME@URL1,URL2`` on the command line, ``base_urls: [URL1, URL2]`` under a model
in a job file, or ``parse_model_spec("openai:NAME", base_urls=[...])`` in Python build a
:class:`FleetBackend`. Each URL gets its own
:class:`~robustify.models.openai_compat.OpenAICompatBackend` (the same client, transport,
limits and error mapping as a single endpoint, its retries off); a shared
:class:`~robustify.models.fleet_pool.EndpointPool` sends each call to the healthy
endpoint with the fewest requests in flight, at most ``endpoint_concurrency`` on each.

Failures: an attempt that fails on one endpoint (refused or dropped connection, 5xx,
timeout, garbled body) is sent at once to another endpoint; the endpoint is drained
(see :mod:`~robustify.models.fleet_pool`) and probed again later with backoff. When no
other endpoint is up, the model's :class:`~robustify.models.retry.RetryPolicy` waits and
tries again, so a call is lost only when the whole fleet stays down past the retry
budget (then its rows carry the error and a re-run asks them again). 401/403/404 stop
the model, as for one endpoint.

Cache identity: ``{"kind": "openai", "model": NAME, "params": ...}``, without any URL,
so replicas share answers and a fleet can grow or shrink between runs without asking
again. ``replica_identity=True`` adds the sorted URL list, for fleets whose replicas
differ (another build, quantisation or GPU kind).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any, Awaitable, Callable, Sequence, TypeVar

from perturbations.errors import ConfigError

from robustify.models.base import (BaseBackend, ConnectionFailedError, FatalModelError,
                                   TransientModelError)
from robustify.models.fleet_pool import SLOW_FACTOR, Endpoint, EndpointPool
from robustify.models.openai_compat import DEFAULT_CONCURRENCY, OpenAICompatBackend
from robustify.models.retry import RetryExhaustedError, RetryPolicy
from robustify.records import Completion, GenerationParams

__all__ = ["FleetBackend", "FLEET_OPTIONS"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

FLEET_OPTIONS = ("base_urls", "endpoint_concurrency", "replica_identity", "slow_factor")
"""Backend options that only apply to several endpoints."""


class FleetBackend(BaseBackend):
    """Chat completions spread over several base URLs serving the same model.

    Args:
        model: Model name sent in each request.
        base_urls: The endpoints (already checked: http(s), a host, no credential).
        api_key_env: Variable holding the key (the same key for every endpoint; not
            needed when every endpoint is on loopback).
        params: Generation parameters.
        concurrency: Calls in flight for the whole model (default
            ``endpoint_concurrency x len(base_urls)``).
        endpoint_concurrency: Most calls in flight on one endpoint (default: the total
            spread evenly when ``concurrency`` is given, else 16).
        replica_identity: Put the URL list in the cache identity.
        slow_factor: Drain an endpoint this many times slower than the others.
        retry: The model's retry policy (waits when no endpoint is up).
        label: Label in results (default ``openai:MODEL@URL1,URL2``).
        timeout, preflight_timeout, max_response_bytes, max_answer_bytes: As for
            :class:`~robustify.models.openai_compat.OpenAICompatBackend`, per endpoint.
    """

    kind = "openai"

    def __init__(self, model: str, *, base_urls: Sequence[str],
                 api_key_env: str = "OPENAI_API_KEY", params: GenerationParams | None = None,
                 concurrency: int | None = None, endpoint_concurrency: int | None = None,
                 replica_identity: bool = False, slow_factor: float | None = None,
                 retry: RetryPolicy | None = None, label: str | None = None,
                 timeout: float | None = None, preflight_timeout: float = 5.0,
                 max_response_bytes: int | None = None, max_answer_bytes: int | None = None,
                 pool: EndpointPool | None = None) -> None:
        urls = [str(u).rstrip("/") for u in base_urls]
        if not urls:
            raise ConfigError(f"model openai:{model}: base_urls is empty; give at least one URL")
        self.model = model
        self.base_urls = tuple(urls)
        self.params = params if params is not None else GenerationParams()
        self.label = label or f"openai:{model}@{','.join(urls)}"
        if not isinstance(replica_identity, bool):
            raise ConfigError(f"model {self.label!r}: replica_identity must be true or false, "
                              f"got {replica_identity!r}")
        self.replica_identity = replica_identity
        per = _positive(endpoint_concurrency, "endpoint_concurrency", self.label)
        if per is None:
            per = math.ceil(concurrency / len(urls)) if concurrency else DEFAULT_CONCURRENCY
        self.endpoint_concurrency = per
        self.max_concurrency = int(concurrency or per * len(urls))
        factor = SLOW_FACTOR if slow_factor is None else slow_factor
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) \
                or not math.isfinite(factor) or factor <= 1:
            raise ConfigError(f"model {self.label!r}: slow_factor must be a number above 1, "
                              f"got {slow_factor!r}")
        self.retry = retry if retry is not None else RetryPolicy()
        self._settings = dict(api_key_env=api_key_env, timeout=timeout,
                              preflight_timeout=preflight_timeout,
                              max_response_bytes=max_response_bytes,
                              max_answer_bytes=max_answer_bytes)
        self.endpoints = [OpenAICompatBackend(model, base_url=url, params=self.params,
                                              concurrency=per, retry=RetryPolicy.none(),
                                              label=self.label, **self._settings)
                          for url in urls]
        first = self.endpoints[0]
        self.api_key_env = first.api_key_env
        self.timeout = first.timeout
        self.max_answer_bytes = first.max_answer_bytes
        self.pool = pool if pool is not None else EndpointPool(urls, per, slow_factor=factor)

    def identity(self) -> dict[str, Any]:
        """Model name and parameters; the URLs only with ``replica_identity``."""
        identity: dict[str, Any] = {"kind": self.kind, "model": self.model,
                                    "params": self.params.to_dict()}
        if self.replica_identity:
            identity["base_urls"] = sorted(self.base_urls)
        return identity

    def with_params(self, params: GenerationParams) -> "FleetBackend":
        """The same fleet (endpoints, health, counters) asked with other parameters."""
        return FleetBackend(self.model, base_urls=self.base_urls, params=params,
                            concurrency=self.max_concurrency,
                            endpoint_concurrency=self.endpoint_concurrency,
                            replica_identity=self.replica_identity, retry=self.retry,
                            label=self.label, pool=self.pool, **self._settings)

    def endpoint_facts(self) -> list[dict[str, Any]]:
        """Per endpoint: URL, calls answered, failed attempts, drains, final state."""
        return self.pool.facts()

    # ------------------------------------------------------------------ calls
    async def agenerate(self, messages: list[dict[str, str]]) -> Completion:
        """Answer on the least busy healthy endpoint, failing over to the others."""
        return await self.retry.call(
            lambda: self._route(lambda backend: backend.attempt(messages)), what=self.label)

    async def aloglik(self, messages: list[dict[str, str]], options: Sequence[str]
                      ) -> list[float]:
        """Option log-likelihoods (``/completions`` echo) on one endpoint, with failover."""
        from robustify.models.loglik_openai import aloglik

        return await self.retry.call(
            lambda: self._route(lambda backend: aloglik(backend, messages, options)),
            what=self.label)

    async def _route(self, call: Callable[[OpenAICompatBackend], Awaitable[T]]) -> T:
        """One fleet attempt: an endpoint, then every other up endpoint on failure."""
        pool = self.pool
        tried: set[int] = set()
        last: TransientModelError | None = None
        while len(tried) < len(self.endpoints):
            ep = await pool.acquire(frozenset(tried))
            if ep is None or ep.index in tried:
                if ep is not None:
                    pool.release(ep, busy=True)
                break
            started = time.perf_counter()
            try:
                result = await call(self.endpoints[ep.index])
            except BaseException as exc:  # noqa: BLE001 - every outcome frees the slot
                error = exc.last if isinstance(exc, RetryExhaustedError) else exc
                self._failed(ep, error)
                if not isinstance(error, TransientModelError):
                    raise
                if error.status == 429:
                    raise error from None  # busy, not sick: the retry policy waits
                last = error
                tried.add(ep.index)
                continue
            pool.release(ep, latency=time.perf_counter() - started)
            return result
        assert last is not None
        raise last

    def _failed(self, ep: Endpoint, error: BaseException) -> None:
        pool = self.pool
        if not isinstance(error, TransientModelError):
            # cancelled, a 400 or a fatal status: not the endpoint's health
            pool.release(ep, busy=True)
            return
        if error.status == 429:
            pool.release(ep, busy=True)
            return
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        dead = isinstance(error, ConnectionFailedError)
        pool.release(ep, failure=reason, dead=dead)
        logger.debug("%s: %s failed (%s)", self.label, ep.url, reason)

    # -------------------------------------------------------------- preflight
    async def check(self) -> None:
        """``GET /models`` on every endpoint; unreachable ones start drained.

        Raises:
            FatalModelError: A 401/403 anywhere, or no endpoint answering.
        """
        results = await asyncio.gather(*(b.check() for b in self.endpoints),
                                       return_exceptions=True)
        down = []
        for ep, result in zip(self.pool.endpoints, results):
            if isinstance(result, FatalModelError) and result.status in (401, 403):
                raise result
            if isinstance(result, BaseException):
                down.append((ep, result))
        if len(down) == len(self.endpoints):
            raise down[0][1]
        for ep, error in down:
            logger.warning("%s: endpoint %s did not answer its check (%s); it starts "
                           "drained and is probed later", self.label, ep.url, error)
            self.pool.drain(ep, "did not answer GET /models before the run")

    async def aclose(self) -> None:
        """Close every endpoint's HTTP client."""
        for backend in self.endpoints:
            await backend.aclose()

    def close(self) -> None:
        """Drop every endpoint's client."""
        for backend in self.endpoints:
            backend.close()

    def __repr__(self) -> str:
        return (f"FleetBackend(model={self.model!r}, endpoints={len(self.endpoints)}, "
                f"endpoint_concurrency={self.endpoint_concurrency}, "
                f"max_concurrency={self.max_concurrency})")


def _positive(value: Any, name: str, label: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"model {label!r}: {name} must be a positive whole number, "
                          f"got {value!r}")
    return value
