"""Live events between processes: in memory for one process, Redis pub/sub for several.

Events are wake-ups and live updates; anything that must not be lost is in the database first.
Where events may have been lost (the Redis subscription was renewed), every subscriber is sent
a RESYNC event, so that it reads again from the database what it shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as redis

from helpline.ports import RESYNC
from helpline.redisbatch import Pipelined
from helpline.tasks import cancel_and_wait

log = logging.getLogger(__name__)

_QUEUE_LIMIT = 1000  # a subscriber that falls this far behind loses its oldest events
# A subscription quiet this long is asked for a PONG; no answer within as long again, and it
# is taken for dead (a network that drops packets without a reset) and renewed.
HEALTH_CHECK_SECONDS = 10.0
RESUBSCRIBE_SECONDS = 1.0  # the pause before subscribing again after a failure
_PING = "helpline-hub"


class _Subscription:
    def __init__(self, topics: tuple[str, ...]) -> None:
        self.topics = topics
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(_QUEUE_LIMIT)

    def offer(self, event: dict[str, Any]) -> None:
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(event)

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            yield await self.queue.get()


class MemoryHub:
    """Fan-out within one process."""

    def __init__(self) -> None:
        self._subs: dict[str, set[_Subscription]] = defaultdict(set)

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        self.deliver_local(topic, event)

    def deliver_local(self, topic: str, event: dict[str, Any]) -> None:
        for sub in list(self._subs.get(topic, ())):
            sub.offer(event)

    def resync(self) -> None:
        """Tell every subscription, once each, that events may have been lost."""
        for sub in {sub for subs in self._subs.values() for sub in subs}:
            sub.offer({"type": RESYNC})

    @contextlib.asynccontextmanager
    async def subscribe(self, *topics: str) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        sub = _Subscription(topics)
        for topic in topics:
            self._subs[topic].add(sub)
        try:
            yield sub.__aiter__()
        finally:
            for topic in topics:
                self._subs[topic].discard(sub)
                if not self._subs[topic]:
                    del self._subs[topic]

    def topics(self) -> set[str]:
        return set(self._subs)


class RedisHub:
    """One pattern subscription per process (TECH-NOTES), fanned out locally.

    Whenever Redis confirms the subscription again (after a failure, or a reconnection inside
    redis-py), whatever was published in between never reached this process: every local
    subscriber gets a RESYNC event then. A subscription that goes quiet is pinged, so one that
    died without a reset (a network fault, a NAT dropping the connection) is noticed and
    renewed instead of waiting for ever."""

    def __init__(self, client: redis.Redis, prefix: str = "helpline:") -> None:
        self._client = client
        self._sent = Pipelined(client)  # a turn's events, and other turns', in one round trip
        self._channel_prefix = f"{prefix}hub:"
        self._local = MemoryHub()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="redis-hub")
        await asyncio.wait_for(self._ready.wait(), timeout=10)

    async def stop(self) -> None:
        if self._task:
            await cancel_and_wait(self._task)
        await self._sent.close()

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        """Through Redis to every process. With Redis out of reach, still to this process's
        own subscribers (a page connected here gets its guidance now, not when Redis is
        back; the other processes' subscribers catch up with RESYNC once it is); raised only
        when nobody here was listening for it, so the caller knows it did not go."""
        try:
            await self._sent.run(("PUBLISH", self._channel_prefix + topic, json.dumps(event)))
        except (redis.RedisError, OSError):
            if topic not in self._local.topics():
                raise
            log.warning("Redis out of reach: a live event went to this process only")
            self._local.deliver_local(topic, event)

    def subscribe(
        self, *topics: str
    ) -> contextlib.AbstractAsyncContextManager[AsyncIterator[dict[str, Any]]]:
        return self._local.subscribe(*topics)

    async def _listen(self) -> None:
        while True:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except (redis.RedisError, OSError):
                log.warning("hub subscription lost; reconnecting", exc_info=True)
                await asyncio.sleep(RESUBSCRIBE_SECONDS)

    async def _listen_once(self) -> None:
        pubsub = self._client.pubsub()
        loop = asyncio.get_running_loop()
        try:
            await pubsub.psubscribe(self._channel_prefix + "*")
            heard = loop.time()
            pinged = False
            while True:
                # Waits in the socket read, never spins (TECH-NOTES), but not for ever: a
                # quiet spell is a chance to check that the subscription is still there.
                message = await pubsub.get_message(timeout=HEALTH_CHECK_SECONDS)
                if message is not None:
                    heard, pinged = loop.time(), False
                    self._received(message)
                elif loop.time() - heard >= 2 * HEALTH_CHECK_SECONDS:
                    raise redis.ConnectionError("the hub's subscription stopped answering")
                elif loop.time() - heard >= HEALTH_CHECK_SECONDS and not pinged:
                    # Our own PONG: redis-py swallows the answer to its own health check.
                    await pubsub.ping(_PING)
                    pinged = True
        finally:
            await pubsub.aclose()

    def _received(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "psubscribe":
            # Redis has the subscription from here on; anything published since the last
            # one (if any) is lost to this process: subscribers read afresh.
            if self._ready.is_set():
                log.warning("hub subscribed again; live pages and consoles catch up")
                self._local.resync()
            self._ready.set()
        elif kind == "pmessage":
            channel = message["channel"]
            topic = (channel.decode() if isinstance(channel, bytes) else channel)[
                len(self._channel_prefix) :
            ]
            self._local.deliver_local(topic, json.loads(message["data"]))
