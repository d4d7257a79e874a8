"""A redelivered message (a platform trying again, or one webhook reaching two instances) is
handled once, and costs the person nothing against their rate limit."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as redis

from helpline.app import ENGINE, STORE
from helpline.domain import InboundMessage
from helpline.errors import DuplicateMessage
from helpline.ratelimit import Limit, MemoryLimiter, RateLimited, RedisLimiter
from tests.support import running, settings_for

PHONE = "+447700900321"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> tuple[str, str] | None:
    """None for the in-process limiter, (url, prefix) for the Redis one."""
    if request.param == "memory":
        return None
    return request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")


async def test_every_message_delivered_twice_is_stored_once_and_counted_once(
    backend: tuple[str, str] | None, sqlite_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(backend[0]) if backend else None
    try:
        async with running(settings_for(sqlite_url, tmp_path)) as (app, _fake, _):
            engine = app[ENGINE]
            if client is not None and backend is not None:
                engine.limiter = RedisLimiter(client, backend[1])
            per_minute = engine.message_limits[0].count  # 20 by default

            # Each of the person's messages arrives twice: the second copy is a duplicate.
            for n in range(per_minute):
                msg = InboundMessage("test", PHONE, f"message {n}", external_id=f"SM{n:032d}")
                await engine.accept(msg)
                with pytest.raises(DuplicateMessage):
                    await engine.accept(msg)

            conv = await app[STORE].open_conversation(engine.privacy.contact_key("test", PHONE))
            assert conv is not None
            stored = await app[STORE].pending_inbound(conv.id)
            # (Those after the first are stored sealed until their turn: none is answered.)
            assert [m.external_id for m in stored] == [f"SM{n:032d}" for n in range(per_minute)]

            # The limit itself still holds: one more message this minute is refused.
            with pytest.raises(RateLimited):
                await engine.accept(InboundMessage("test", PHONE, "one too many"))
    finally:
        if client is not None:
            await client.aclose()


async def test_a_refund_never_takes_a_window_below_zero(backend: tuple[str, str] | None) -> None:
    client = redis.Redis.from_url(backend[0]) if backend else None
    limiter = RedisLimiter(client, backend[1]) if client and backend else MemoryLimiter()
    try:
        limits = (Limit(2, 60),)
        await limiter.refund("contact", limits)  # nothing counted yet: nothing to take back
        results = [await limiter.allow("contact", limits) for _ in range(3)]
        assert results == [True, True, False]
    finally:
        if client is not None:
            await client.aclose()
