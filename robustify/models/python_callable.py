"""Backend wrapping a plain Python callable: ``python:package.module:function``.

The callable receives the chat messages (a list of ``{"role", "content"}`` dicts), or a
single prompt string when its first parameter is named ``prompt`` or annotated ``str``
(the message contents joined by blank lines). If it has a parameter named ``params`` it
also receives the :class:`~robustify.records.GenerationParams`. It returns a ``str`` or a
:class:`~robustify.records.Completion`. Async callables are awaited; sync ones run in a
thread pool bounded by :attr:`PythonCallableBackend.max_concurrency`.

Raising :class:`~robustify.models.base.TransientModelError` asks for a retry and
:class:`~robustify.models.base.FatalModelError` stops the backend; any other exception
fails that one item.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import importlib
import inspect
import logging
from typing import Any, Callable

from perturbations.errors import ConfigError

from robustify.records import Completion, GenerationParams
from robustify.models.base import BaseBackend, FatalModelError, ModelCallError, TransientModelError, one_line
from robustify.models.retry import RetryPolicy

__all__ = ["PythonCallableBackend", "load_callable", "messages_to_prompt"]

logger = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 8


def load_callable(target: str) -> Callable[..., Any]:
    """Import ``package.module:function`` (the part after ``:`` may be dotted: ``mod:Cls.meth``).

    Raises:
        ConfigError: The module cannot be imported or has no such attribute.
    """
    module_name, sep, attr_path = target.rpartition(":")
    if not sep or not module_name or not attr_path:
        raise ConfigError(f"python model {target!r}: expected package.module:function")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"python model {target!r}: cannot import module {module_name!r} "
                          f"({one_line(exc, limit=160)})") from None
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"python model {target!r}: module {module_name!r} has no "
                              f"attribute {attr_path!r}") from None
    if not callable(obj):
        raise ConfigError(f"python model {target!r}: {attr_path!r} is not callable")
    return obj


def messages_to_prompt(messages: list[dict[str, str]]) -> str:
    """Join message contents with blank lines (the form prompt-string callables receive)."""
    return "\n\n".join(str(m.get("content", "")) for m in messages)


def _wants_prompt(fn: Callable[..., Any]) -> tuple[bool, bool]:
    """Return (first parameter takes a prompt string, accepts ``params``)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return False, False
    positional = [p for p in signature.parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    takes_params = "params" in signature.parameters
    if not positional:
        return False, takes_params
    first = positional[0]
    annotation = first.annotation
    # With `from __future__ import annotations` the annotation is the string "str".
    is_str = annotation is str or (isinstance(annotation, str) and annotation.strip() == "str")
    return first.name == "prompt" or is_str, takes_params


def _is_async(fn: Callable[..., Any]) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)
    return call is not None and inspect.iscoroutinefunction(call)


class PythonCallableBackend(BaseBackend):
    """A Python function as a model.

    Args:
        target: ``package.module:function`` or the callable itself.
        params: Generation parameters (passed on if the callable takes ``params``).
        concurrency: Calls in flight; also the size of the thread pool for sync callables.
        timeout: Seconds before one call counts as failed (a sync call keeps running in
            its thread, but its answer is discarded).
        retry: Retry policy for :class:`TransientModelError` raised by the callable.
        label: Label in results (default ``python:<target>``).

    Raises:
        ConfigError: The callable cannot be imported.
    """

    kind = "python"

    def __init__(self, target: str | Callable[..., Any], *,
                 params: GenerationParams | None = None, concurrency: int | None = None,
                 timeout: float | None = None, retry: RetryPolicy | None = None,
                 label: str | None = None) -> None:
        if isinstance(target, str):
            self.target = target
            self.fn = load_callable(target)
        elif callable(target):
            self.fn = target
            module = getattr(target, "__module__", None) or "<unknown>"
            self.target = f"{module}:{getattr(target, '__qualname__', type(target).__name__)}"
        else:
            raise ConfigError(f"python model: expected 'package.module:function' or a "
                              f"callable, got {type(target).__name__}")
        self.params = params if params is not None else GenerationParams()
        self.max_concurrency = int(concurrency or DEFAULT_CONCURRENCY)
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self.label = label or f"python:{self.target}"
        self.is_async = _is_async(self.fn)
        self.prompt_mode, self.pass_params = _wants_prompt(self.fn)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    def identity(self) -> dict[str, Any]:
        """Cache identity: the callable's import path and the parameters."""
        return {"kind": self.kind, "model": self.target, "params": self.params.to_dict()}

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.max_concurrency, thread_name_prefix="robustify-callable")
        return self._executor

    async def _invoke(self, messages: list[dict[str, str]]) -> Completion:
        arg: Any = messages_to_prompt(messages) if self.prompt_mode else messages
        kwargs = {"params": self.params} if self.pass_params else {}
        try:
            if self.is_async:
                result = self.fn(arg, **kwargs)
            else:
                loop = asyncio.get_running_loop()
                result = loop.run_in_executor(self._pool(), functools.partial(self.fn, arg, **kwargs))
            if inspect.isawaitable(result):
                result = (await asyncio.wait_for(result, self.timeout) if self.timeout
                          else await result)
        except (TransientModelError, FatalModelError, ModelCallError):
            raise
        except asyncio.TimeoutError:
            raise TransientModelError(f"call timed out after {self.timeout:g}s") from None
        except Exception as exc:
            raise ModelCallError(f"{type(exc).__name__}: {one_line(exc, limit=240)}") from exc
        if isinstance(result, Completion):
            if not isinstance(result.text, str):
                raise ModelCallError(f"{self.target} returned a Completion whose text is "
                                     f"{type(result.text).__name__}, not str")
            return result
        if isinstance(result, str):
            return Completion(text=result)
        raise ModelCallError(f"{self.target} returned {type(result).__name__}; "
                             f"expected str or Completion")

    async def agenerate(self, messages: list[dict[str, str]]) -> Completion:
        """Call the function (awaited, or in the thread pool), retrying transient errors."""
        return await self.retry.call(lambda: self._invoke(messages), what=self.label)

    def close(self) -> None:
        """Shut the thread pool down (running calls finish in the background)."""
        pool, self._executor = self._executor, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def __repr__(self) -> str:
        return f"PythonCallableBackend({self.label!r}, max_concurrency={self.max_concurrency})"
