"""Connection pools in shards, so a request costs the same at 256 connections as at 16.

httpcore's pool walks every connection it holds each time a request arrives and each
time a response is closed (closed? expired? idle? available?). At 256 connections those
walks were most of the client's CPU: a hand-written ``AsyncOpenAI`` loop against a
loopback server with 0.25 s latency made 6,000 calls in 15.0 s on two cores, where the
latency allows 5.9 s. :class:`PoolShards` splits the connections over several pools of
at most :data:`SHARD_SIZE` and sends each request to the shard with the fewest requests
in flight: the same 6,000 calls took 9.0 s. The connection limit stays the same in
total, and with no more requests in flight than connections (the runner's bound) the
least-loaded shard always has a free one.
"""

from __future__ import annotations

import ssl
from typing import Any, AsyncIterator

import httpx2

__all__ = ["PoolShards", "SHARD_SIZE"]

SHARD_SIZE = 16
"""Most connections per shard."""


class _Release(httpx2.AsyncByteStream):
    """A response body that gives its shard's slot back when it is closed."""

    def __init__(self, inner: Any, shards: "PoolShards", index: int) -> None:
        self._inner = inner
        self._shards = shards
        self._index = index
        self._open = True

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if self._open:
                self._open = False
                self._shards.load[self._index] -= 1


class PoolShards(httpx2.AsyncBaseTransport):
    """Several ``httpx2.AsyncHTTPTransport`` pools behind one transport.

    Args:
        limits: The limits of the whole (``max_connections`` and
            ``max_keepalive_connections`` are split over the shards; ``None`` means
            one unbounded pool).
        shard_size: Most connections per shard.
        **options: Passed to every ``AsyncHTTPTransport`` (``verify``, ``proxy`` ...).
    """

    def __init__(self, limits: httpx2.Limits, *, shard_size: int = SHARD_SIZE,
                 **options: Any) -> None:
        total = limits.max_connections
        count = 1 if total is None else max(1, -(-total // max(1, shard_size)))
        if count > 1 and not isinstance(options.get("verify", True), ssl.SSLContext):
            # one TLS context for all shards: loading the CA bundle costs 20 ms each
            options["verify"] = httpx2.create_ssl_context(verify=options.get("verify", True),
                                                          cert=options.pop("cert", None),
                                                          trust_env=options.get("trust_env",
                                                                                True))
        self.shards = [httpx2.AsyncHTTPTransport(limits=_share(limits, count, i), **options)
                       for i in range(count)]
        self.load = [0] * count
        """Requests in flight per shard (sent and not yet closed)."""

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        load = self.load
        index = load.index(min(load)) if len(load) > 1 else 0
        load[index] += 1
        try:
            response = await self.shards[index].handle_async_request(request)
        except BaseException:
            load[index] -= 1
            raise
        return httpx2.Response(status_code=response.status_code, headers=response.headers,
                               stream=_Release(response.stream, self, index),
                               request=request, extensions=response.extensions)

    async def aclose(self) -> None:
        for shard in self.shards:
            await shard.aclose()


def _share(limits: httpx2.Limits, count: int, index: int) -> httpx2.Limits:
    """Shard ``index``'s part of ``limits``: the totals split as evenly as they go."""
    def part(value: int | None) -> int | None:
        if value is None:
            return None
        return value // count + (1 if index < value % count else 0)

    return httpx2.Limits(max_connections=part(limits.max_connections),
                         max_keepalive_connections=part(limits.max_keepalive_connections),
                         keepalive_expiry=limits.keepalive_expiry)
