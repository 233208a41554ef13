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

Every call has a deadline (``timeout``, default :data:`DEFAULT_TIMEOUT` seconds). An
async callable is cancelled at the deadline. A sync one cannot be stopped from outside:
it is *abandoned*, its daemon thread left running with its result ignored, and the run
moves on (a later call gets a fresh thread; a daemon thread never holds the process
open at exit). Both count as a transient error (``call timed out after 60s``), retried
and then recorded on the row. Once more than :data:`MAX_ABANDONED` x concurrency
abandoned calls are still running, the backend stops with a
:class:`~robustify.models.base.FatalModelError`, so a callable that always hangs cannot
pile up threads without end.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import importlib
import inspect
import logging
import queue
import threading
from typing import Any, Callable

from perturbations.errors import ConfigError

from robustify.records import Completion, GenerationParams
from robustify.models.base import (BaseBackend, FatalModelError, ModelCallError,
                                   TransientModelError, deadline, one_line)
from robustify.models.answer_cap import DEFAULT_MAX_ANSWER_BYTES
from robustify.models.retry import RetryPolicy

__all__ = ["PythonCallableBackend", "load_callable", "messages_to_prompt", "DEFAULT_TIMEOUT",
           "MAX_ABANDONED"]

logger = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 8

DEFAULT_TIMEOUT = 60.0
"""Seconds one call may take before it counts as timed out (``math.inf``: no deadline)."""

MAX_ABANDONED = 2
"""Abandoned sync calls still running, per unit of concurrency, before the backend stops."""


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
        timeout: Seconds before one call counts as timed out (default 60; ``math.inf``
            for none). An async call is cancelled; a sync call keeps running in its
            daemon thread, but its answer is ignored.
        max_answer_bytes: Answers longer than this (UTF-8 bytes) are cut by the runner
            and flagged ``answer_capped`` (default 64 KiB).
        retry: Retry policy for :class:`TransientModelError` raised by the callable.
        label: Label in results (default ``python:<target>``).

    Raises:
        ConfigError: The callable cannot be imported.
    """

    kind = "python"

    def __init__(self, target: str | Callable[..., Any], *,
                 params: GenerationParams | None = None, concurrency: int | None = None,
                 timeout: float | None = None, retry: RetryPolicy | None = None,
                 label: str | None = None, max_answer_bytes: int | None = None) -> None:
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
        self.timeout = float(timeout) if timeout else DEFAULT_TIMEOUT
        if not self.timeout > 0:
            raise ConfigError(f"python model {self.target!r}: timeout must be a positive "
                              f"number of seconds, got {timeout!r}")
        if max_answer_bytes is not None and (isinstance(max_answer_bytes, bool)
                                             or not isinstance(max_answer_bytes, int)
                                             or max_answer_bytes < 1):
            raise ConfigError(f"python model {self.target!r}: max_answer_bytes must be a "
                              f"positive whole number, got {max_answer_bytes!r}")
        self.max_answer_bytes = max_answer_bytes or DEFAULT_MAX_ANSWER_BYTES
        self.retry = retry if retry is not None else RetryPolicy()
        self.label = label or f"python:{self.target}"
        self.is_async = _is_async(self.fn)
        self.prompt_mode, self.pass_params = _wants_prompt(self.fn)
        self._threads: _DaemonThreads | None = None
        self.abandoned = 0
        """Sync calls past their deadline whose thread is still running."""
        self._abandoned_lock = threading.Lock()

    def identity(self) -> dict[str, Any]:
        """Cache identity: the callable's import path and the parameters."""
        return {"kind": self.kind, "model": self.target, "params": self.params.to_dict()}

    def _pool(self) -> "_DaemonThreads":
        if self._threads is None:
            self._threads = _DaemonThreads("robustify-callable", self.max_concurrency)
        return self._threads

    async def _invoke(self, messages: list[dict[str, str]]) -> Completion:
        arg: Any = messages_to_prompt(messages) if self.prompt_mode else messages
        kwargs = {"params": self.params} if self.pass_params else {}
        future: concurrent.futures.Future[Any] | None = None
        try:
            if self.is_async:
                result = self.fn(arg, **kwargs)
            else:
                self._check_abandoned()
                future = self._pool().submit(functools.partial(self.fn, arg, **kwargs))
                result = asyncio.wrap_future(future)
            if inspect.isawaitable(result):
                result = await _within(result, self.timeout)
        except (TransientModelError, FatalModelError, ModelCallError):
            raise
        except (asyncio.TimeoutError, TimeoutError):
            if future is not None and not future.cancel():
                self._abandon(future)
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

    def _abandon(self, future: "concurrent.futures.Future[Any]") -> None:
        """Count a sync call left running past its deadline until its thread ends."""
        with self._abandoned_lock:
            self.abandoned += 1
        threads = self._threads
        if threads is not None:
            threads.stuck(+1)
        logger.warning("%s: a call passed its %gs timeout; its thread keeps running and its "
                       "answer will be ignored", self.label, self.timeout)

        def ended(_: Any) -> None:  # in the call's own thread, when it finally returns
            with self._abandoned_lock:
                self.abandoned -= 1
            if threads is not None:
                threads.stuck(-1)

        future.add_done_callback(ended)

    def _check_abandoned(self) -> None:
        limit = MAX_ABANDONED * self.max_concurrency
        if self.abandoned > limit:
            raise FatalModelError(f"{self.label}: {self.abandoned} calls passed the "
                                  f"{self.timeout:g}s timeout and never returned; stopping this "
                                  f"model", backend=self.label)

    def close(self) -> None:
        """Let the worker threads end (calls still running finish in the background)."""
        threads, self._threads = self._threads, None
        if threads is not None:
            threads.shutdown()

    def __repr__(self) -> str:
        return f"PythonCallableBackend({self.label!r}, max_concurrency={self.max_concurrency})"


async def _within(awaitable: Any, seconds: float) -> Any:
    """Await ``awaitable`` for at most ``seconds``, else cancel it and raise ``TimeoutError``."""
    async with deadline(seconds):
        return await awaitable


class _DaemonThreads:
    """A pool of daemon worker threads for sync callables.

    ``concurrent.futures.ThreadPoolExecutor`` joins its threads at interpreter exit, so
    one call that never returns would keep the process alive for good. Here every thread
    is a daemon, at most ``size`` threads run calls that still count, and a thread stuck
    in an abandoned call (:meth:`stuck`) does not count: a fresh one takes its place.
    """

    def __init__(self, prefix: str, size: int) -> None:
        self._prefix = prefix
        self._size = size
        self._stuck = 0
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._pending = 0
        self._alive = 0
        self.started = 0
        """Threads started so far."""

    def submit(self, fn: Callable[[], Any]) -> "concurrent.futures.Future[Any]":
        """Run ``fn()`` on an idle thread, a new one, or the first that frees up."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            self._pending += 1
            spawn = self._pending > self._idle and self._alive - self._stuck < self._size
            if spawn:
                self._alive += 1
                self.started += 1
        self._jobs.put((future, fn))
        if spawn:
            threading.Thread(target=self._work, daemon=True,
                             name=f"{self._prefix}-{self.started}").start()
        return future

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            job = self._jobs.get()
            with self._lock:
                self._idle -= 1
                if job is None:
                    self._alive -= 1
                    return
                self._pending -= 1
            future, fn = job
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:  # handed to the awaiting call
                    future.set_exception(exc)
            del job, future, fn

    def stuck(self, change: int) -> None:
        """Count threads held by abandoned calls (+1 when abandoned, -1 when they end)."""
        with self._lock:
            self._stuck += change

    def shutdown(self) -> None:
        """Ask every thread to end once it is idle (running calls are not interrupted)."""
        with self._lock:
            count = self._alive
        for _ in range(count):
            self._jobs.put(None)
