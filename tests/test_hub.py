"""Live events through Redis when the subscription fails: subscribers are told to read afresh,
and a subscription that dies without a word (no reset, no error) is noticed."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as redis

from helpline import hub
from helpline.hub import RedisHub
from helpline.ports import RESYNC

pytestmark = pytest.mark.redis


class Blackhole:
    """A loopback TCP relay to Redis that can go silent: `freeze()` makes the connections
    open so far drop everything both ways without closing, as a network fault or a NAT that
    forgot the connection does; connections made afterwards pass normally."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.frozen: set[int] = set()
        self.opened = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: list[asyncio.StreamWriter] = []

    async def _pipe(self, n: int, reader: asyncio.StreamReader, writer: Any) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if n not in self.frozen:
                    writer.write(data)
                    await writer.drain()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.opened += 1
        n = self.opened
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, up_writer]
        for pipe in (self._pipe(n, reader, up_writer), self._pipe(n, up_reader, writer)):
            task = asyncio.create_task(pipe)
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def freeze(self) -> None:
        self.frozen.update(range(1, self.opened + 1))

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            server.close()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            for writer in self.writers:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
            await server.wait_closed()


async def test_a_subscription_that_goes_silent_is_renewed_and_subscribers_catch_up(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub, "HEALTH_CHECK_SECONDS", 0.2)
    monkeypatch.setattr(hub, "RESUBSCRIBE_SECONDS", 0.05)
    relay = Blackhole("127.0.0.1", 6379)
    async with relay.serving() as through:
        # As the app makes it (helpline/app.py), through the relay.
        client = redis.Redis.from_url(
            through, socket_timeout=5, health_check_interval=1, client_name=f"{redis_prefix}hub"
        )
        publisher = redis.Redis.from_url(redis_url)
        live = RedisHub(client, redis_prefix)
        await live.start()
        try:
            async with live.subscribe("t") as events:
                received = aiter(events)
                relay.freeze()
                # Published into the silence: lost to this hub (Redis's socket to it still
                # looks open to Redis). Its subscribers must be told once it is back.
                await publisher.publish(f"{redis_prefix}hub:t", '{"n": 1}')
                async with asyncio.timeout(5):
                    assert await anext(received) == {"type": RESYNC}
                await live.publish("t", {"n": 2})
                async with asyncio.timeout(5):
                    assert await anext(received) == {"n": 2}
        finally:
            await live.stop()
            await client.aclose()
            await publisher.aclose()


async def test_with_redis_out_of_reach_an_event_still_reaches_this_process_s_subscribers(
    redis_prefix: str,
) -> None:
    # The guidance for someone in danger on a page connected here waited for Redis to come
    # back (half a minute, or more), although page and service share this process.
    with socket.socket() as s:  # a port nothing listens on: Redis out of reach
        s.bind(("127.0.0.1", 0))
        nowhere = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    client = redis.Redis.from_url(nowhere, socket_timeout=1, socket_connect_timeout=1)
    live = RedisHub(client, redis_prefix)  # not started: it cannot subscribe either
    try:
        async with live.subscribe("chat:here") as events:
            await live.publish("chat:here", {"n": 1})
            async with asyncio.timeout(1):
                assert await anext(aiter(events)) == {"n": 1}
        # Nobody here to give it to: the caller is told it did not go (and keeps it).
        with pytest.raises((redis.RedisError, OSError)):
            await live.publish("chat:elsewhere", {"n": 2})
    finally:
        await client.aclose()
