"""One thread for every llama.cpp computation in the process.

llama.cpp's CPU backend (as llama-cpp-python builds it, with OpenMP) runs each forward
pass as an OpenMP parallel region. libgomp gives every thread that opens such a region a
team of helper threads of its own and keeps it for the life of that thread. Once two
threads have done so (thread calibration in the caller's thread and then the batch
worker, or ``asyncio.to_thread``'s pool threads one after another), libgomp manages
more threads than there are CPUs, and from then on its barriers stop spinning after
about 100 iterations and put the waiting thread to sleep. A forward pass holds hundreds
of barriers, so every pass pays for futex sleeps and wake-ups. Measured on the default
job's prompts on 2 cores (same engine, same 2 threads, only the thread of one earlier
``llama_decode`` changed): 29.3 s instead of 21.0 s for 150 prompts, with 1.57 instead
of 1.97 cores busy.

So robustify runs all its llama.cpp work (the batched engines' steps, thread
calibration, one-at-a-time calls, log-likelihoods) on this module's single thread,
``robustify-llama``:

* :func:`call` / :func:`acall` / :func:`submit` run a function there (inline when
  already on it); such functions must not wait for other work on the llama thread;
* :func:`attach` registers an engine, an object with ``has_work()`` (called with
  :data:`CONDITION` held, so it must be cheap and must not block), ``step()`` (one
  step of its work) and ``abort(error)``; the thread runs queued functions first,
  then one step of each engine with work, and sleeps on :data:`CONDITION` when there
  is nothing to do. Callers that queue work for an engine notify :data:`CONDITION`.

An error in a function goes to its future; an error escaping an engine's step aborts
that engine (its requests fail with it) and the thread carries on with the others.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections import deque
from typing import Any, Callable, Protocol

__all__ = ["CONDITION", "Engine", "acall", "attach", "call", "detach", "on_llama_thread",
           "submit"]

logger = logging.getLogger(__name__)

CONDITION = threading.Condition()
"""Guards the task queue, the engines' request queues and wakes the llama thread."""

_TASKS: deque[tuple[Callable[..., Any], tuple, dict, concurrent.futures.Future]] = deque()
_ENGINES: list["Engine"] = []
_THREAD: threading.Thread | None = None


class Engine(Protocol):
    """What :func:`attach` needs of an engine."""

    def has_work(self) -> bool: ...

    def step(self) -> None: ...

    def abort(self, error: BaseException) -> None: ...


def on_llama_thread() -> bool:
    """True when the caller is the llama thread."""
    return threading.current_thread() is _THREAD


def submit(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> concurrent.futures.Future:
    """Queue ``fn(*args, **kwargs)`` for the llama thread; the future gives its result."""
    future: concurrent.futures.Future = concurrent.futures.Future()
    with CONDITION:
        _start()
        _TASKS.append((fn, args, kwargs, future))
        CONDITION.notify()
    return future


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` on the llama thread, waiting for its result."""
    if on_llama_thread():
        return fn(*args, **kwargs)
    return submit(fn, *args, **kwargs).result()


async def acall(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """:func:`call` without blocking the event loop."""
    return await asyncio.wrap_future(submit(fn, *args, **kwargs))


def attach(engine: Engine) -> None:
    """Give ``engine`` steps on the llama thread while its ``has_work()`` is true."""
    with CONDITION:
        _start()
        _ENGINES.append(engine)
        CONDITION.notify()


def detach(engine: Engine) -> None:
    """Stop stepping ``engine`` (no-op if it is not attached)."""
    with CONDITION:
        if engine in _ENGINES:
            _ENGINES.remove(engine)


def _start() -> None:
    """Start the thread (with :data:`CONDITION` held)."""
    global _THREAD
    if _THREAD is None or not _THREAD.is_alive():
        _THREAD = threading.Thread(target=_loop, name="robustify-llama", daemon=True)
        _THREAD.start()


def _loop() -> None:
    while True:
        with CONDITION:
            while not _TASKS and not any(engine.has_work() for engine in _ENGINES):
                CONDITION.wait()
            tasks = list(_TASKS)
            _TASKS.clear()
            busy = [engine for engine in _ENGINES if engine.has_work()]
        for fn, args, kwargs, future in tasks:
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # the caller gets it
                future.set_exception(exc)
            else:
                future.set_result(result)
        for engine in busy:
            try:
                engine.step()
            except BaseException as exc:  # e.g. MemoryError: this engine stops, others go on
                logger.exception("a local model engine stopped")
                detach(engine)
                engine.abort(exc)
