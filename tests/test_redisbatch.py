"""Redis commands sent together (helpline/redisbatch.py): every caller gets its own results,
in the order it asked, and a failure reaches the callers it concerns, against a real Redis."""

from __future__ import annotations

import asyncio
import socket

import pytest
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from helpline.redisbatch import Pipelined

pytestmark = pytest.mark.redis


async def test_callers_at_once_each_get_their_own_results_in_order(
    redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    sent = Pipelined(client)
    try:

        async def caller(n: int) -> list[object]:
            key = f"{redis_prefix}count:{n}"
            return await sent.run(("INCRBY", key, n), ("INCRBY", key, 1), ("GET", key))

        results = await asyncio.gather(*(caller(n) for n in range(1, 201)))
        assert results == [[n, n + 1, str(n + 1).encode()] for n in range(1, 201)]
        # Callers' commands reach Redis in the order they asked, one caller's in its order.
        listed = f"{redis_prefix}list"
        await asyncio.gather(
            *(sent.run(("RPUSH", listed, f"{n}a"), ("RPUSH", listed, f"{n}b")) for n in range(50))
        )
        got = [x.decode() for x in await client.lrange(listed, 0, -1)]
        assert got == [f"{n}{part}" for n in range(50) for part in "ab"]
    finally:
        await sent.close()
        await client.aclose()


async def test_a_command_that_fails_fails_its_caller_only(
    redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    sent = Pipelined(client)
    try:
        await client.set(f"{redis_prefix}word", "not a number")
        good, bad, other = await asyncio.gather(
            sent.run(("INCRBY", f"{redis_prefix}a", 1)),
            sent.run(("INCRBY", f"{redis_prefix}word", 1), ("INCRBY", f"{redis_prefix}b", 1)),
            sent.run(("INCRBY", f"{redis_prefix}c", 5)),
            return_exceptions=True,
        )
        assert good == [1]
        assert isinstance(bad, ResponseError)
        assert other == [5]
        # Later callers are not stuck behind the failure.
        assert await sent.run(("INCRBY", f"{redis_prefix}a", 1)) == [2]
    finally:
        await sent.close()
        await client.aclose()


async def test_redis_out_of_reach_fails_every_caller_and_hangs_none() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = redis.Redis(
        host="127.0.0.1", port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    sent = Pipelined(client)
    try:
        results = await asyncio.wait_for(
            asyncio.gather(
                *(sent.run(("PUBLISH", "x", str(n))) for n in range(10)), return_exceptions=True
            ),
            timeout=10,
        )
        assert all(isinstance(r, RedisConnectionError) for r in results), results
    finally:
        await sent.close()
        await client.aclose()
