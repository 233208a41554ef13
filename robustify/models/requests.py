"""Per-item requests: task-kind generation parameters and log-likelihood choices.

A backend answers chat messages with one set of generation parameters. Two things
need more per item: a task kind that gets other parameters (a longer answer budget for
arithmetic, see :data:`robustify.prompts.TASK_GENERATION`) and log-likelihood scoring,
where the model is not asked to write but to rate each option of the item.

Both travel as one last entry of the messages, ``{"role": REQUEST_ROLE, "content":
<canonical JSON>}``, which :class:`RequestBackend` takes off before the inner backend
sees the chat. Because the entry is part of the messages, the response cache key
covers it: the effective parameters, the scoring mode, the options and the length
normalisation are all in the key, and messages without the entry (every task kind that
keeps the model's parameters, in generate mode) key exactly as before.

Entry fields (all optional): ``defaults`` (parameters of the task kind, given way to by
what the user set for the model), ``params`` (parameters that win over everything, from
a job file's ``generation`` section), ``options`` (the continuations to rate) and
``normalize`` (pick by log-likelihood per character, lm-eval's ``acc_norm``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any, Awaitable, Callable, Mapping, Sequence

from perturbations.errors import ConfigError

from robustify.models.base import BaseBackend, ModelCallError
from robustify.records import Completion, GenerationParams

__all__ = ["REQUEST_ROLE", "add_request", "split_request", "RequestBackend",
           "loglik_function", "pick_option"]

logger = logging.getLogger(__name__)

REQUEST_ROLE = "robustify.request"
"""Role of the message entry that carries the per-item request (never sent to a model)."""

Loglik = Callable[[list[dict[str, str]], Sequence[str]], Awaitable[list[float]]]
_PARAM_FIELDS = frozenset(f.name for f in dataclasses.fields(GenerationParams))


def add_request(messages: list[dict[str, str]], **request: Any) -> list[dict[str, str]]:
    """Append the request entry (left out when every field is empty)."""
    fields = {k: v for k, v in request.items() if v}
    if not fields:
        return messages
    content = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return [*messages, {"role": REQUEST_ROLE, "content": content}]


def split_request(messages: list[dict[str, str]]
                  ) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """``(chat messages, request fields)``; the fields are empty without an entry."""
    if messages and messages[-1].get("role") == REQUEST_ROLE:
        return messages[:-1], json.loads(messages[-1]["content"])
    return messages, {}


def pick_option(logliks: Sequence[float], options: Sequence[str], *,
                normalize: bool = False) -> int:
    """Index of the best option: the highest summed log-probability (first on ties).

    With ``normalize`` each sum is divided by the option's length in characters, so
    long options are not punished for being long (lm-eval's ``acc_norm``).
    """
    if len(logliks) != len(options) or not options:
        raise ModelCallError(f"expected {len(options)} log-likelihoods, got {len(logliks)}")
    values = [ll / max(1, len(option)) if normalize else ll
              for ll, option in zip(logliks, options)]
    return max(range(len(values)), key=lambda i: (values[i], -i))


def loglik_function(backend: Any) -> Loglik | None:
    """How to rate continuations with ``backend``, or ``None`` if it cannot.

    A backend's own ``aloglik(messages, continuations)`` method comes first; the
    built-in local (llama.cpp) and OpenAI-compatible backends get theirs from
    :mod:`robustify.models.loglik_local` and :mod:`robustify.models.loglik_openai`.
    """
    own = getattr(backend, "aloglik", None)
    if callable(own):
        return own
    kind = getattr(backend, "kind", None)
    if kind == "local" and hasattr(backend, "_model"):
        from robustify.models.loglik_local import aloglik as local

        return lambda messages, options: local(backend, messages, options)
    if kind == "openai" and hasattr(backend, "base_url"):
        from robustify.models.loglik_openai import aloglik as remote

        return lambda messages, options: remote(backend, messages, options)
    return None


class RequestBackend(BaseBackend):
    """A backend that honours per-item requests (see the module docstring).

    Args:
        inner: The model backend; label, kind, concurrency and identity are its own.
        make: ``GenerationParams -> backend`` building the same model with other
            parameters (for task kinds with their own parameters); each set is built
            once. ``None``: requests with parameters are refused.
        pinned: Parameter names the user set for this model: task-kind defaults leave
            them alone. They join the identity (so the cache tells such a run apart
            from one where the task-kind default applied).
        scoring: ``"generate"`` or ``"loglik"`` (recorded in the manifest).

    Raises:
        ConfigError: ``scoring="loglik"`` with a backend that cannot rate continuations
            (checked here, before any call).
    """

    def __init__(self, inner: Any, *, make: Callable[[GenerationParams], Any] | None = None,
                 pinned: Sequence[str] = (), scoring: str = "generate") -> None:
        self.inner = inner
        self.label = inner.label
        self.kind = inner.kind
        self.params = inner.params
        self.max_concurrency = inner.max_concurrency
        self.pinned = tuple(sorted(set(pinned)))
        self.scoring = scoring
        self._make = make
        self._variants: dict[str, Any] = {}
        self._loglik = loglik_function(inner)
        if scoring == "loglik" and self._loglik is None:
            raise ConfigError(f"model {self.label!r} cannot give token log-probabilities, so "
                              f"--scoring-mode loglik cannot score with it (use generate)")

    def __getattr__(self, name: str) -> Any:
        # what the wrapper does not define is the inner backend's (model, base_url ...)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def retry(self) -> Any:
        """The inner backend's retry policy; setting it sets it on every built variant too."""
        return getattr(self.inner, "retry")

    @retry.setter
    def retry(self, policy: Any) -> None:
        for backend in (self.inner, *self._variants.values()):
            backend.retry = policy

    def identity(self) -> dict[str, Any]:
        """The inner identity, plus the pinned parameter names when there are any."""
        identity = dict(self.inner.identity())
        if self.pinned:
            identity["pinned"] = list(self.pinned)
        return identity

    def params_for(self, request: Mapping[str, Any]) -> GenerationParams:
        """The generation parameters a request asks for."""
        changes = {k: v for k, v in (request.get("defaults") or {}).items()
                   if k not in self.pinned}
        changes.update(request.get("params") or {})
        unknown = set(changes) - _PARAM_FIELDS
        if unknown:
            raise ConfigError(f"unknown generation parameter {sorted(unknown)[0]!r}")
        if "stop" in changes and changes["stop"] is not None:
            changes["stop"] = tuple(changes["stop"])
        return dataclasses.replace(self.inner.params, **changes)

    def _backend_for(self, request: Mapping[str, Any]) -> Any:
        params = self.params_for(request)
        if params == self.inner.params:
            return self.inner
        key = json.dumps(params.to_dict(), sort_keys=True, default=str)
        backend = self._variants.get(key)
        if backend is None:
            if self._make is None:
                raise ConfigError(f"model {self.label!r}: cannot change its generation "
                                  f"parameters per task kind")
            derive = getattr(self.inner, "with_params", None)  # a fleet shares its endpoints
            backend = self._variants[key] = derive(params) if callable(derive) else self._make(params)
            if hasattr(self.inner, "retry"):  # the same policy as the model's own calls
                backend.retry = self.inner.retry
        return backend

    async def agenerate(self, messages: list[dict[str, str]]) -> Completion:
        """Answer the chat, or rate the options and answer with the best one."""
        chat, request = split_request(messages)
        options = request.get("options")
        if options:
            if self._loglik is None:
                raise ConfigError(f"model {self.label!r} cannot give token log-probabilities")
            logliks = await self._loglik(chat, list(options))
            best = pick_option(logliks, options, normalize=bool(request.get("normalize")))
            return Completion(text=options[best])
        return await self._backend_for(request).agenerate(chat)

    async def check(self) -> None:
        check = getattr(self.inner, "check", None)
        if check is not None:
            await check()

    def preflight(self) -> None:
        preflight = getattr(self.inner, "preflight", None)
        if preflight is not None:
            preflight()

    async def aclose(self) -> None:
        for backend in (self.inner, *self._variants.values()):
            aclose = getattr(backend, "aclose", None)
            if aclose is not None:
                await aclose()

    def close(self) -> None:
        for backend in (self.inner, *self._variants.values()):
            backend.close()

    def __repr__(self) -> str:
        return f"RequestBackend({self.inner!r}, scoring={self.scoring!r})"
