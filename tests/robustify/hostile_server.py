"""A loopback OpenAI-compatible server that attacks its client: the hostile-model tests.

:class:`HostileServer` is a :class:`~tests.robustify.fake_openai_server.FakeOpenAIServer`
whose chat answers (all of them, or those whose prompt contains ``when``) misbehave in
one of these modes:

``gzip_bomb``
    HTTP 200, ``Content-Encoding: gzip``: about 1 MB on the wire that inflates to
    ``bomb_bytes`` (1 GiB by default) of a completion whose content never ends.
``huge_body``
    HTTP 200, chunked, no ``Content-Length``: a completion whose content is
    ``huge_bytes`` (100 MB by default) long, sent 1 MiB at a time.
``drip``
    HTTP 200 with the headers at once, then the body one byte every ``drip_interval``
    seconds (0.5 by default): never idle for long, never done.
``echo_key``
    HTTP 200, a normal completion whose answer quotes the ``Authorization`` key.

With ``listing=True`` the ``GET /models`` listing (the preflight) misbehaves the same way
(``gzip_bomb`` and ``drip`` only). Every answer the server starts is counted in :attr:`HostileServer.served` per mode;
:attr:`HostileServer.drip_spans` records how long each drip connection stayed open.
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from typing import Any

from tests.robustify.fake_openai_server import FakeOpenAIServer, RecordedRequest

__all__ = ["HostileServer", "MODES", "gzip_bomb"]

MODES = ("gzip_bomb", "huge_body", "drip", "echo_key")

_BOMBS: dict[int, bytes] = {}


def _completion_prefix() -> bytes:
    return (b'{"id":"chatcmpl-hostile","object":"chat.completion","created":0,'
            b'"model":"hostile","choices":[{"index":0,"finish_reason":"stop",'
            b'"message":{"role":"assistant","content":"')


def gzip_bomb(size: int) -> bytes:
    """A gzip stream of a completion whose content is ``size`` bytes of ``A`` (cached)."""
    if size not in _BOMBS:
        packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        parts = [packer.compress(_completion_prefix())]
        block = b"A" * (1 << 20)
        for _ in range(size // len(block)):
            parts.append(packer.compress(block))
        parts.append(packer.compress(b'"}}]}'))
        parts.append(packer.flush())
        _BOMBS[size] = b"".join(parts)
    return _BOMBS[size]


class HostileServer(FakeOpenAIServer):
    """A fake OpenAI server whose chat answers misbehave in ``mode`` (see the module doc).

    Args:
        mode: One of :data:`MODES`.
        when: Only prompts containing this text get the hostile answer (default: all).
        bomb_bytes: Inflated size of the gzip bomb.
        huge_bytes: Content size of the huge body.
        drip_interval: Seconds between two bytes of a drip answer.
        listing: Make ``GET /models`` hostile too (``gzip_bomb`` and ``drip``).
        **kwargs: Passed to :class:`FakeOpenAIServer`.
    """

    def __init__(self, mode: str, *, when: str | None = None, bomb_bytes: int = 1 << 30,
                 huge_bytes: int = 100 * 1000 * 1000, drip_interval: float = 0.5,
                 listing: bool = False, **kwargs: Any) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
        super().__init__(**kwargs)
        self.mode = mode
        self.when = when
        self.bomb_bytes = bomb_bytes
        self.huge_bytes = huge_bytes
        self.drip_interval = drip_interval
        self.listing = listing
        self.served: dict[str, int] = {m: 0 for m in MODES}
        """Hostile answers started, per mode."""
        self.drip_spans: list[float] = []
        """Seconds from request to the client hanging up, per drip answer."""
        if mode == "gzip_bomb":
            gzip_bomb(bomb_bytes)  # build it before serving

    async def _dispatch(self, method: str, path: str, headers: dict[str, str], raw: bytes,
                        writer: asyncio.StreamWriter) -> bool:
        if not (self.listing and method == "GET" and path.endswith("/models")):
            return await super()._dispatch(method, path, headers, raw, writer)
        rec = RecordedRequest(index=-1, method=method, path=path, headers=headers, body=None,
                              started=time.monotonic(), fault=self.mode)
        self.served[self.mode] += 1
        try:
            if self.mode == "gzip_bomb":
                return await self._send_raw(writer, rec, 200, gzip_bomb(self.bomb_bytes),
                                            {"Content-Encoding": "gzip"})
            if self.mode == "drip":
                await self._drip(writer, rec)
                return False
        except ConnectionError:
            return False
        raise ValueError(f"listing=True supports gzip_bomb and drip, not {self.mode}")

    async def _completion(self, writer: asyncio.StreamWriter, rec: RecordedRequest,
                          body: Any) -> bool:
        messages = body.get("messages") if isinstance(body, dict) else None
        hostile = isinstance(messages, list) and (
            self.when is None or any(self.when in str(m.get("content", "")) for m in messages))
        if not hostile:
            return await super()._completion(writer, rec, body)
        self._stats.completions += 1
        self.served[self.mode] += 1
        rec.fault = self.mode
        try:
            if self.mode == "echo_key":
                key = rec.headers.get("authorization", "").removeprefix("Bearer ")
                payload = self._completion_body(body, messages)
                payload["choices"][0]["message"]["content"] = (
                    f"Sure. Your key is {key} and again: {key}.")
                return await self._send(writer, rec, 200, payload)
            if self.mode == "gzip_bomb":
                return await self._send_raw(writer, rec, 200, gzip_bomb(self.bomb_bytes),
                                            {"Content-Encoding": "gzip"})
            if self.mode == "huge_body":
                await self._huge(writer, rec)
                return False
            await self._drip(writer, rec)
            return False
        except ConnectionError:
            rec.finished = time.monotonic()
            return False

    async def _huge(self, writer: asyncio.StreamWriter, rec: RecordedRequest) -> None:
        head = ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        writer.write(head.encode("latin-1"))
        rec.status = 200

        def chunk(data: bytes) -> bytes:
            return f"{len(data):x}\r\n".encode() + data + b"\r\n"

        writer.write(chunk(_completion_prefix()))
        block = b"A" * (1 << 20)
        sent = 0
        while sent < self.huge_bytes:
            writer.write(chunk(block))
            sent += len(block)
            await writer.drain()
            if writer.is_closing():
                break
        writer.write(chunk(b'"}}]}') + b"0\r\n\r\n")
        await writer.drain()
        rec.finished = time.monotonic()

    async def _drip(self, writer: asyncio.StreamWriter, rec: RecordedRequest) -> None:
        data = json.dumps(self._completion_body({}, [{"role": "user", "content": "x"}])).encode()
        head = ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n")
        writer.write(head.encode("latin-1"))
        rec.status = 200
        started = time.monotonic()
        try:
            for i in range(len(data)):
                await asyncio.sleep(self.drip_interval)
                if writer.is_closing() or writer.transport.get_extra_info("socket") is None:
                    break
                writer.write(data[i:i + 1])
                await writer.drain()
        finally:
            rec.finished = time.monotonic()
            self.drip_spans.append(rec.finished - started)
