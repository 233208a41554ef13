"""A loopback OpenAI-compatible HTTP server with latency and fault injection.

Used by the model, runner, reliability and performance tests, and by the benchmarks.
It speaks just enough HTTP/1.1 (keep-alive, ``Content-Length`` bodies) to serve the
``openai`` client: ``POST .../chat/completions`` and ``GET .../models``. It runs an
asyncio event loop in a background thread, so one instance serves thousands of
concurrent connections while the test thread drives the client.

Typical use::

    with FakeOpenAIServer(latency=0.05) as server:
        server.enqueue(Fault.rate_limit(retry_after=1), Fault.server_error(503))
        backend = parse_model_spec(f"openai:fake@{server.base_url}")
        ...
        assert server.completion_count == 3

Faults are chosen per chat request in this order: the first matching *rule*
(:meth:`FakeOpenAIServer.add_rule`, e.g. "every prompt containing BOOM gets a 500"),
then the *queue* (:meth:`FakeOpenAIServer.enqueue`, consumed one per request), then the
*random* fault (:meth:`FakeOpenAIServer.set_random_fault`, seeded). Every request is
recorded (:attr:`FakeOpenAIServer.requests`) with its messages, unless ``record=False``.

Run it standalone (for benchmarks that want the server in another process)::

    python -m tests.robustify.fake_openai_server --port 8765 --latency 0.25

``GET /_fake/stats`` then returns the request counters as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

__all__ = ["Fault", "RecordedRequest", "FakeOpenAIServer", "default_reply"]

logger = logging.getLogger(__name__)

_REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 413: "Payload Too Large",
    422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}

_FAULT_KINDS = ("status", "hang", "drop", "malformed", "empty_choices", "error_body", "delay")


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour. Build them with the class methods."""

    kind: str
    """One of ``status``, ``hang``, ``drop``, ``malformed``, ``empty_choices``,
    ``error_body``, ``delay``."""
    status: int = 200
    """HTTP status for ``status`` faults."""
    message: str = ""
    """Error message placed in the OpenAI-style error body."""
    retry_after: str | None = None
    """Value of the ``Retry-After`` header (seconds or an HTTP date), if any."""
    seconds: float = 0.0
    """How long a ``hang`` stalls before closing, or the extra wait of a ``delay``."""

    def __post_init__(self) -> None:
        if self.kind not in _FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {_FAULT_KINDS}")

    @classmethod
    def rate_limit(cls, retry_after: float | str | None = None,
                   message: str = "Rate limit reached for requests") -> "Fault":
        """HTTP 429, with a ``Retry-After`` header when ``retry_after`` is given."""
        header = None if retry_after is None else (
            retry_after if isinstance(retry_after, str) else f"{retry_after:g}")
        return cls("status", status=429, message=message, retry_after=header)

    @classmethod
    def server_error(cls, status: int = 500, message: str = "The server had an error") -> "Fault":
        """A 5xx answer (500, 502, 503 ...)."""
        return cls("status", status=status, message=message)

    @classmethod
    def http(cls, status: int, message: str = "") -> "Fault":
        """Any status with an OpenAI-style error body (401, 404, 400 ...)."""
        return cls("status", status=status,
                   message=message or _REASONS.get(status, f"HTTP {status}"))

    @classmethod
    def hang(cls, seconds: float = 30.0) -> "Fault":
        """Read the request, send nothing for ``seconds``, then close the connection."""
        return cls("hang", seconds=seconds)

    @classmethod
    def drop(cls) -> "Fault":
        """Close the connection right after reading the request (no response at all)."""
        return cls("drop")

    @classmethod
    def malformed_json(cls) -> "Fault":
        """HTTP 200 with ``application/json`` content that does not parse."""
        return cls("malformed")

    @classmethod
    def empty_choices(cls) -> "Fault":
        """HTTP 200 with a well-formed completion whose ``choices`` list is empty."""
        return cls("empty_choices")

    @classmethod
    def error_body(cls, message: str = "The model is overloaded") -> "Fault":
        """HTTP 200 whose JSON body is an ``{"error": ...}`` object instead of a completion."""
        return cls("error_body", message=message)

    @classmethod
    def delay(cls, seconds: float) -> "Fault":
        """A normal answer that arrives ``seconds`` later than the configured latency."""
        return cls("delay", seconds=seconds)


@dataclass
class RecordedRequest:
    """What the server saw for one request."""

    index: int
    """0-based arrival order over all requests."""
    method: str
    """HTTP method."""
    path: str
    """Request path, e.g. ``/v1/chat/completions``."""
    headers: dict[str, str]
    """Request headers, names lower-cased."""
    body: Any
    """Decoded JSON body (``None`` for GET or undecodable bodies)."""
    started: float
    """``time.monotonic()`` when the request was read."""
    fault: str | None = None
    """Kind of fault applied (``None`` for a normal answer)."""
    status: int | None = None
    """Status sent (``None`` when nothing was sent: drop, hang)."""
    finished: float | None = None
    """``time.monotonic()`` when the answer was written (or the connection closed)."""

    @property
    def messages(self) -> list[dict[str, Any]] | None:
        """The chat messages of a completion request."""
        if isinstance(self.body, dict):
            return self.body.get("messages")
        return None

    @property
    def prompt(self) -> str | None:
        """Content of the last user message (handy for set comparisons in tests)."""
        for message in reversed(self.messages or []):
            if message.get("role") == "user":
                return str(message.get("content"))
        return None


def default_reply(messages: Sequence[dict[str, Any]]) -> str:
    """Default answer: ``"echo: "`` plus the last user message."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return f"echo: {message.get('content')}"
    return "echo:"


@dataclass
class _Rule:
    fault: Fault
    when: Callable[[list[dict[str, Any]]], bool]
    remaining: int | None


@dataclass
class _Stats:
    requests: int = 0
    completions: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    faults: dict[str, int] = field(default_factory=dict)


class FakeOpenAIServer:
    """An OpenAI-compatible loopback server running in a background thread.

    Args:
        latency: Seconds before each chat answer (a float or a zero-argument callable).
        reply: Maps the request messages to the answer text (default :func:`default_reply`).
        model: Model id listed by ``GET /models``.
        require_key: If set, requests without ``Authorization: Bearer <require_key>``
            get an OpenAI-style 401 (which quotes a masked form of the wrong key).
        record: Keep a :class:`RecordedRequest` per request (turn off for huge benchmarks).
        host: Interface to bind; loopback by default.
        port: 0 picks a free port.
    """

    def __init__(self, *, latency: float | Callable[[], float] = 0.0,
                 reply: Callable[[list[dict[str, Any]]], str] | None = None,
                 model: str = "fake-model", require_key: str | None = None,
                 record: bool = True, host: str = "127.0.0.1", port: int = 0) -> None:
        self.latency = latency
        self.reply = reply or default_reply
        self.model = model
        self.require_key = require_key
        self.record = record
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._queue: list[Fault] = []
        self._rules: list[_Rule] = []
        self._random: tuple[Fault, float, random.Random] | None = None
        self._requests: list[RecordedRequest] = []
        self._stats = _Stats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> "FakeOpenAIServer":
        """Start serving in a background thread; returns once the port is bound."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="fake-openai-server", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._start_error is not None:
            raise RuntimeError(f"fake server failed to start: {self._start_error}")
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection (hanging ones included)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:  # loop already closed
            pass
        thread.join(10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, ``http://127.0.0.1:<port>/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    # ------------------------------------------------------------ fault control
    def enqueue(self, *faults: Fault) -> None:
        """Apply these faults, in order, to the next chat requests (one each)."""
        with self._lock:
            self._queue.extend(faults)

    def add_rule(self, fault: Fault, *, when: str | Callable[[list[dict[str, Any]]], bool],
                 times: int | None = None) -> None:
        """Apply ``fault`` to every chat request matching ``when``.

        Args:
            fault: The fault.
            when: A substring of any message content, or a predicate on the messages.
            times: Stop after this many applications (``None``: forever).
        """
        if isinstance(when, str):
            needle = when

            def predicate(messages: list[dict[str, Any]]) -> bool:
                return any(needle in str(m.get("content", "")) for m in messages)
        else:
            predicate = when
        with self._lock:
            self._rules.append(_Rule(fault, predicate, times))

    def set_random_fault(self, fault: Fault | None, probability: float = 0.0,
                         seed: int = 0) -> None:
        """Apply ``fault`` to each chat request with ``probability`` (seeded); ``None`` clears."""
        with self._lock:
            self._random = None if fault is None else (fault, probability, random.Random(seed))

    def clear_faults(self) -> None:
        """Forget queued, rule and random faults."""
        with self._lock:
            self._queue.clear()
            self._rules.clear()
            self._random = None

    def reset(self) -> None:
        """Clear faults, recorded requests and counters."""
        self.clear_faults()
        with self._lock:
            self._requests.clear()
            self._stats = _Stats()

    def _pick_fault(self, messages: list[dict[str, Any]]) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if rule.remaining == 0:
                    continue
                if rule.when(messages):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    return rule.fault
            if self._queue:
                return self._queue.pop(0)
            if self._random is not None:
                fault, probability, rng = self._random
                if rng.random() < probability:
                    return fault
        return None

    # ------------------------------------------------------------------ records
    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every recorded request, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def completion_requests(self) -> list[RecordedRequest]:
        """Recorded chat-completion requests only."""
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def prompts(self) -> list[str | None]:
        """Last user message of every recorded chat request, in arrival order."""
        return [r.prompt for r in self.completion_requests]

    @property
    def request_count(self) -> int:
        """Requests of any kind received."""
        return self._stats.requests

    @property
    def completion_count(self) -> int:
        """Chat-completion requests received (faulted ones included)."""
        return self._stats.completions

    @property
    def max_in_flight(self) -> int:
        """Highest number of chat requests being served at the same time."""
        return self._stats.max_in_flight

    def stats(self) -> dict[str, Any]:
        """Counters as a plain dict (also served at ``GET /_fake/stats``)."""
        s = self._stats
        return {"requests": s.requests, "completions": s.completions,
                "in_flight": s.in_flight, "max_in_flight": s.max_in_flight,
                "faults": dict(s.faults)}

    # ------------------------------------------------------------------ serving
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._server = loop.run_until_complete(asyncio.start_server(
                self._handle, self.host, self.port, backlog=8192, limit=2 ** 22))
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as exc:  # surfaced by start()
            self._start_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            for task in list(self._conns):
                task.cancel()
            if self._conns:
                loop.run_until_complete(asyncio.gather(*self._conns, return_exceptions=True))
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                try:
                    method, target, _version = lines[0].split(" ", 2)
                except ValueError:
                    return
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                try:
                    raw = await reader.readexactly(length) if length else b""
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                keep_alive = headers.get("connection", "").lower() != "close"
                keep_alive = await self._dispatch(method, target.split("?", 1)[0], headers,
                                                  raw, writer) and keep_alive
                if not keep_alive:
                    return
        except asyncio.CancelledError:
            pass
        finally:
            self._conns.discard(task)
            try:
                writer.close()
            except Exception:  # the peer may already be gone
                pass

    async def _dispatch(self, method: str, path: str, headers: dict[str, str], raw: bytes,
                        writer: asyncio.StreamWriter) -> bool:
        """Serve one request; returns False when the connection must be closed."""
        stats = self._stats
        stats.requests += 1
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        rec = RecordedRequest(index=stats.requests - 1, method=method, path=path,
                              headers=headers, body=body, started=time.monotonic())
        if self.record:
            with self._lock:
                self._requests.append(rec)

        if path == "/_fake/stats":
            return await self._send(writer, rec, 200, self.stats())
        if self.require_key is not None:
            auth = headers.get("authorization", "")
            if auth != f"Bearer {self.require_key}":
                given = auth.removeprefix("Bearer ")
                masked = f"{given[:3]}***{given[-4:]}" if len(given) > 8 else "***"
                return await self._send(writer, rec, 401, _error_body(
                    f"Incorrect API key provided: {masked}. You can find your API key at "
                    f"https://platform.openai.com/account/api-keys.", "invalid_request_error",
                    "invalid_api_key"))
        if method == "GET" and path.endswith("/models"):
            return await self._send(writer, rec, 200, {
                "object": "list",
                "data": [{"id": self.model, "object": "model", "created": 0,
                          "owned_by": "fake"}]})
        if method == "POST" and path.endswith("/chat/completions"):
            return await self._completion(writer, rec, body)
        return await self._send(writer, rec, 404, _error_body(
            f"Unknown request URL: {method} {path}", "invalid_request_error", "unknown_url"))

    async def _completion(self, writer: asyncio.StreamWriter, rec: RecordedRequest,
                          body: Any) -> bool:
        stats = self._stats
        stats.completions += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                return await self._send(writer, rec, 400, _error_body(
                    "'messages' is a required property", "invalid_request_error", None))
            messages = body["messages"]
            fault = self._pick_fault(messages)
            latency = self.latency() if callable(self.latency) else self.latency
            if fault is not None:
                rec.fault = fault.kind
                stats.faults[fault.kind] = stats.faults.get(fault.kind, 0) + 1
                if fault.kind == "delay":
                    latency += fault.seconds
            if latency > 0:
                await asyncio.sleep(latency)
            if fault is None or fault.kind == "delay":
                return await self._send(writer, rec, 200, self._completion_body(body, messages))
            if fault.kind == "status":
                extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                kind = "rate_limit_exceeded" if fault.status == 429 else (
                    "server_error" if fault.status >= 500 else "invalid_request_error")
                return await self._send(writer, rec, fault.status,
                                        _error_body(fault.message, kind, None), extra)
            if fault.kind == "hang":
                await asyncio.sleep(fault.seconds)
                rec.finished = time.monotonic()
                return False
            if fault.kind == "drop":
                rec.finished = time.monotonic()
                transport = writer.transport
                transport.abort()  # RST-like close: the client sees a dropped connection
                return False
            if fault.kind == "malformed":
                return await self._send_raw(writer, rec, 200,
                                            b'{"id": "chatcmpl-broken", "choices": [{"ind')
            if fault.kind == "empty_choices":
                payload = self._completion_body(body, messages)
                payload["choices"] = []
                return await self._send(writer, rec, 200, payload)
            if fault.kind == "error_body":
                return await self._send(writer, rec, 200,
                                        _error_body(fault.message, "server_error", None))
            raise AssertionError(fault.kind)
        finally:
            stats.in_flight -= 1

    def _completion_body(self, body: dict[str, Any], messages: list[dict[str, Any]]
                         ) -> dict[str, Any]:
        text = self.reply(messages)
        prompt_chars = sum(len(str(m.get("content", ""))) for m in messages)
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", self.model),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": max(1, prompt_chars // 4),
                      "completion_tokens": max(1, len(text) // 4),
                      "total_tokens": max(1, prompt_chars // 4) + max(1, len(text) // 4)},
        }

    async def _send(self, writer: asyncio.StreamWriter, rec: RecordedRequest, status: int,
                    payload: Any, headers: dict[str, str] | None = None) -> bool:
        return await self._send_raw(writer, rec, status, json.dumps(payload).encode(), headers)

    async def _send_raw(self, writer: asyncio.StreamWriter, rec: RecordedRequest, status: int,
                        data: bytes, headers: dict[str, str] | None = None) -> bool:
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
                "Content-Type: application/json",
                f"Content-Length: {len(data)}",
                "Connection: keep-alive"]
        for name, value in (headers or {}).items():
            head.append(f"{name}: {value}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
        rec.status = status
        rec.finished = time.monotonic()
        try:
            await writer.drain()
        except ConnectionError:
            return False
        return True


def _error_body(message: str, kind: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until interrupted; prints the base URL on stdout (first line)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--record", action="store_true", help="keep every request in memory")
    args = parser.parse_args(argv)
    serve_until_killed(FakeOpenAIServer(latency=args.latency, host=args.host, port=args.port,
                                        record=args.record))


def serve_until_killed(server: "FakeOpenAIServer") -> None:
    """Start ``server``, print its base URL on stdout (first line) and serve until interrupted."""
    server.start()
    print(server.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
