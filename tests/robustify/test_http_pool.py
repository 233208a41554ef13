"""Connection pools in shards: the split, the routing, the slots given back.

Against the real loopback OpenAI-compatible server of the other runner tests, through
the real ``openai`` client and the backend that uses the shards.
"""

from __future__ import annotations

import asyncio
import random

import httpx2
import openai
import pytest

from robustify.models import RetryPolicy, parse_model_spec
from robustify.models.http_pool import PoolShards
from tests.robustify.fake_openai_server import FakeOpenAIServer, Fault


@pytest.mark.parametrize("total,size,shards", [(256, 16, 16), (100, 16, 7), (64, 16, 4),
                                               (5, 16, 1), (17, 16, 2)])
def test_the_limits_are_split_exactly(total: int, size: int, shards: int) -> None:
    pool = PoolShards(httpx2.Limits(max_connections=total, max_keepalive_connections=total,
                                    keepalive_expiry=7.0), shard_size=size)
    assert len(pool.shards) == shards
    parts = [s._pool._max_connections for s in pool.shards]
    assert sum(parts) == total and max(parts) - min(parts) <= 1 and max(parts) <= size
    assert sum(s._pool._max_keepalive_connections for s in pool.shards) == total
    assert {s._pool._keepalive_expiry for s in pool.shards} == {7.0}
    # one TLS context for all (each costs a read of the CA bundle)
    assert len({id(s._pool._ssl_context) for s in pool.shards}) == 1


def test_requests_spread_over_the_shards_and_every_slot_comes_back(
        fake_server_factory) -> None:
    server: FakeOpenAIServer = fake_server_factory(latency=0.05)
    pool = PoolShards(httpx2.Limits(max_connections=32, max_keepalive_connections=32),
                      shard_size=8)

    async def main() -> list[str]:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0,
                                    http_client=openai.DefaultAsyncHttpxClient(transport=pool))
        gate = asyncio.Semaphore(32)

        async def one(i: int) -> str:
            async with gate:
                reply = await client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": f"question {i}"}])
                return reply.choices[0].message.content or ""
        try:
            return await asyncio.gather(*(one(i) for i in range(200)))
        finally:
            await client.close()

    answers = asyncio.run(main())
    assert answers == [f"echo: question {i}" for i in range(200)]
    assert pool.load == [0, 0, 0, 0]  # every response closed gave its slot back
    assert server.max_in_flight == 32  # the whole limit was used, not one shard's


def test_failed_requests_give_their_slot_back(fake_server_factory) -> None:
    server: FakeOpenAIServer = fake_server_factory()
    server.add_rule(Fault.server_error(503), when="bad")
    server.add_rule(Fault.http(400, "rejected"), when="worse")
    backend = parse_model_spec(f"openai:m@{server.base_url}", concurrency=20,
                               retry=RetryPolicy(max_attempts=2, time_scale=0.001,
                                                 rng=random.Random(0)))

    async def main() -> list[object]:
        prompts = [[{"role": "user", "content": text}]
                   for text in ["good", "bad", "worse"] * 10]
        return await asyncio.gather(*(backend.agenerate(p) for p in prompts),
                                    return_exceptions=True)

    results = asyncio.run(main())
    assert [type(r).__name__ for r in results[:3]] == ["Completion", "RetryExhaustedError",
                                                       "ModelCallError"]
    transport = backend._client._client._transport  # openai -> httpx2 -> ours
    shards = transport.inner
    assert isinstance(shards, PoolShards) and len(shards.shards) == 2
    assert shards.load == [0, 0]
    backend.close()
