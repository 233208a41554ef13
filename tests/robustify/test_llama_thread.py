"""robustify.models.llama_thread: every llama.cpp computation on one thread.

Why it matters (module docstring): libgomp throttles its barriers once two threads have
run OpenMP regions, which cost the batched default job 1.4x its wall time. The first
tests drive the thread with plain functions; the last one checks, on the real SmolLM2,
that calibration, batched and one-at-a-time generation and log-likelihoods all call
``llama_decode`` from that thread alone.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from robustify.models import llama_thread


def test_call_runs_on_the_llama_thread_and_returns_its_result() -> None:
    assert not llama_thread.on_llama_thread()
    name = llama_thread.call(lambda: threading.current_thread().name)
    assert name == "robustify-llama"
    assert llama_thread.call(lambda a, b=0: a * b, 6, b=7) == 42


def test_errors_reach_the_caller_and_the_thread_carries_on() -> None:
    def boom() -> None:
        raise ValueError("bad prompt")
    with pytest.raises(ValueError, match="bad prompt"):
        llama_thread.call(boom)
    assert llama_thread.call(lambda: 1) == 1


def test_a_call_from_the_llama_thread_runs_inline() -> None:
    """A function on the llama thread that calls another must not wait for itself."""
    def outer() -> tuple[bool, str]:
        return llama_thread.call(lambda: (llama_thread.on_llama_thread(),
                                          threading.current_thread().name))
    assert llama_thread.call(outer) == (True, "robustify-llama")


def test_acall_does_not_block_the_event_loop() -> None:
    release = threading.Event()

    async def main() -> list[Any]:
        slow = asyncio.ensure_future(llama_thread.acall(release.wait, 10))
        await asyncio.sleep(0.05)
        assert not slow.done()  # the loop is free while the thread works
        release.set()
        return [await slow, await llama_thread.acall(sum, [1, 2, 3])]
    assert asyncio.run(main()) == [True, 6]


class _Counter:
    """An engine doing ``todo`` steps; ``fatal`` makes its step raise."""

    def __init__(self, todo: int, fatal: BaseException | None = None) -> None:
        self.todo, self.fatal, self.threads = todo, fatal, set()
        self.aborted: BaseException | None = None
        self.done = threading.Event()

    def has_work(self) -> bool:
        return self.todo > 0 and self.aborted is None

    def step(self) -> None:
        self.threads.add(threading.current_thread().name)
        if self.fatal is not None:
            raise self.fatal
        self.todo -= 1
        if not self.todo:
            self.done.set()

    def abort(self, error: BaseException) -> None:
        self.aborted = error
        self.done.set()


def test_engines_are_stepped_until_done_and_a_broken_one_is_dropped() -> None:
    good, broken = _Counter(5), _Counter(3, fatal=MemoryError("out of memory"))
    llama_thread.attach(broken)
    llama_thread.attach(good)
    try:
        assert good.done.wait(10) and broken.done.wait(10)
        assert good.todo == 0 and good.aborted is None
        assert isinstance(broken.aborted, MemoryError) and broken.todo == 3
        assert good.threads == broken.threads == {"robustify-llama"}
        with llama_thread.CONDITION:
            assert broken not in llama_thread._ENGINES
        assert llama_thread.call(lambda: "still serving") == "still serving"
    finally:
        llama_thread.detach(good)
        llama_thread.detach(broken)


@pytest.mark.usefixtures("local_model_path")
def test_every_llama_decode_runs_on_the_llama_thread(monkeypatch: pytest.MonkeyPatch,
                                                     local_model_path: Path) -> None:
    import llama_cpp

    from robustify.models.local import SEQ_CELLS, LocalBackend, _exact_call
    from robustify.models.local_batch import BatchEngine
    from robustify.models.loglik_local import aloglik, loglik

    threads: list[str] = []
    real = llama_cpp.llama_cpp.llama_decode

    def spy(ctx: Any, batch: Any) -> int:
        threads.append(threading.current_thread().name)
        return real(ctx, batch)
    monkeypatch.setattr(llama_cpp.llama_cpp, "llama_decode", spy)

    messages = [{"role": "user", "content": "What is the capital of France?"}]
    single = LocalBackend("smollm2", n_threads=1, batch=1)
    llm, lock = single._model()
    # n_threads=None: the engine measures its thread count (fresh key: not cached)
    engine = BatchEngine(llm, n_seq=2, n_ctx=single.n_ctx, n_threads=None,
                         seq_cells=SEQ_CELLS, fallback=_exact_call(llm, lock),
                         cores=2, key=f"test-{id(threads)}")
    try:
        calibration = len(threads)
        batched = engine.submit(messages, single._kwargs).result(timeout=120)
    finally:
        engine.close()
    text = single.generate(messages).text

    async def both() -> tuple[Any, Any]:
        return (await single.agenerate(messages),
                await aloglik(single, messages, [" Paris", " Rome"]))
    agen, alog = asyncio.run(both())
    log = loglik(single, messages, [" Paris", " Rome"])
    assert calibration > 0 and len(threads) > calibration + 3
    assert set(threads) == {"robustify-llama"}
    assert batched[0] == text == agen.text and text.strip()
    assert log == alog and log[0] > log[1]
