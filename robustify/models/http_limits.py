"""Bounded HTTP responses: a body-size limit counted on the decompressed bytes as they stream.

:class:`BoundedTransport` wraps an ``httpx2`` async transport (the one the ``openai``
client sends through). It asks servers for ``gzip`` or ``deflate`` only, decodes the body
itself, chunk by chunk, with ``zlib``'s ``max_length`` (so one compressed chunk never
inflates to more than :data:`DECODE_CHUNK` bytes at once), counts the decoded bytes, and
stops reading with :class:`ResponseTooLargeError` as soon as the count passes the limit.
The client above sees a plain, already-decoded body: its own decoder never runs, so a
gzip bomb costs at most the limit plus one chunk, not its inflated size.

An unknown or stacked ``Content-Encoding`` (``br``, ``gzip, gzip``) is refused rather
than decoded by an unbounded decoder.
"""

from __future__ import annotations

import zlib
from typing import Any, AsyncIterator, Iterator

import httpx2

from robustify.models.base import TransientModelError

__all__ = ["BoundedTransport", "ResponseTooLargeError", "BadEncodingError",
           "DEFAULT_MAX_RESPONSE_BYTES", "DECODE_CHUNK"]

DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024
"""Largest decoded response body accepted by default (4 MiB)."""

DECODE_CHUNK = 64 * 1024
"""Most bytes one decompression step may produce."""

_ACCEPT = "gzip, deflate"


class ResponseTooLargeError(TransientModelError):
    """The decoded body passed the limit; reading stopped there (retried like a 5xx)."""


class BadEncodingError(TransientModelError):
    """The body's ``Content-Encoding`` is not one we decode with a bound, or is corrupt."""


class _Inflater:
    """Incremental gzip/deflate decoder whose every step yields at most DECODE_CHUNK bytes."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        # gzip: wbits 16+15; deflate: zlib-wrapped, with raw deflate as the fallback
        # some servers send (as browsers and httpx accept both)
        self._wbits = 16 + zlib.MAX_WBITS if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS
        self._decoder = zlib.decompressobj(self._wbits)
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Decoded pieces of ``data`` (``b""`` at the end), each at most DECODE_CHUNK bytes."""
        while True:
            try:
                piece = self._decoder.decompress(data, DECODE_CHUNK)
            except zlib.error:
                if self._wbits == zlib.MAX_WBITS and not self._started:
                    self._wbits = -zlib.MAX_WBITS
                    self._decoder = zlib.decompressobj(self._wbits)
                    continue
                raise BadEncodingError(f"corrupt {self.encoding} response body") from None
            self._started = True
            if piece:
                yield piece
            data = self._decoder.unconsumed_tail
            # a full piece may leave output pending inside zlib even with no input left
            if self._decoder.eof or (not data and len(piece) < DECODE_CHUNK):
                return


class _BoundedStream(httpx2.AsyncByteStream):
    """The decoded body of one response, cut off past ``limit`` bytes."""

    def __init__(self, inner: Any, encoding: str, limit: int) -> None:
        self._inner = inner
        self._inflater = _Inflater(encoding) if encoding != "identity" else None
        self._limit = limit
        self.count = 0

    def _count(self, piece: bytes) -> bytes:
        self.count += len(piece)
        if self.count > self._limit:
            raise ResponseTooLargeError(
                f"response body larger than {self._limit:,} bytes (max_response_bytes); "
                f"stopped reading there")
        return piece

    async def __aiter__(self) -> AsyncIterator[bytes]:
        inflater = self._inflater
        async for raw in self._inner:
            if inflater is None:
                yield self._count(raw)
                continue
            for piece in inflater.feed(raw):
                yield self._count(piece)
        if inflater is not None:
            for piece in inflater.feed(b""):
                yield self._count(piece)

    async def aclose(self) -> None:
        await self._inner.aclose()


class BoundedTransport(httpx2.AsyncBaseTransport):
    """An async transport whose response bodies are decoded here, counted and bounded.

    Args:
        inner: The transport that talks to the network (e.g. ``httpx2.AsyncHTTPTransport``).
        max_bytes: Largest decoded body accepted.
    """

    def __init__(self, inner: httpx2.AsyncBaseTransport, max_bytes: int) -> None:
        self.inner = inner
        self.max_bytes = int(max_bytes)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        request.headers["Accept-Encoding"] = _ACCEPT
        response = await self.inner.handle_async_request(request)
        encoding = response.headers.get("content-encoding", "identity").strip().lower() or "identity"
        if encoding not in ("identity", "gzip", "x-gzip", "deflate"):
            await response.aclose()
            shown = encoding if len(encoding) <= 40 else encoding[:40] + "..."
            raise BadEncodingError(f"response Content-Encoding {shown!r} is not gzip or "
                                   f"deflate (asked for {_ACCEPT})")
        declared = response.headers.get("content-length")
        if encoding == "identity" and declared and declared.isdigit() and int(declared) > self.max_bytes:
            await response.aclose()
            raise ResponseTooLargeError(
                f"response body of {int(declared):,} bytes is larger than {self.max_bytes:,} "
                f"bytes (max_response_bytes); not read")
        headers = [(k, v) for k, v in response.headers.multi_items()
                   if k.lower() not in ("content-encoding", "content-length")]
        return httpx2.Response(status_code=response.status_code, headers=headers,
                               stream=_BoundedStream(response.stream, encoding, self.max_bytes),
                               request=request, extensions=response.extensions)

    async def aclose(self) -> None:
        await self.inner.aclose()
