"""Live events between processes: in memory for one process, Redis pub/sub for several.

Events are wake-ups and live updates; anything that must not be lost is in the database first.
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

from helpline.tasks import cancel_and_wait

log = logging.getLogger(__name__)

_QUEUE_LIMIT = 1000  # a subscriber that falls this far behind loses its oldest events


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
    """One pattern subscription per process (TECH-NOTES), fanned out locally."""

    def __init__(self, client: redis.Redis, prefix: str = "helpline:") -> None:
        self._client = client
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

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        await self._client.publish(self._channel_prefix + topic, json.dumps(event))

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
                await asyncio.sleep(1)

    async def _listen_once(self) -> None:
        pubsub = self._client.pubsub()
        try:
            await pubsub.psubscribe(self._channel_prefix + "*")
            self._ready.set()
            cut = len(self._channel_prefix)
            while True:
                # Blocks inside the socket read; no spinning (TECH-NOTES).
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                if message is None or message.get("type") != "pmessage":
                    continue
                channel = message["channel"]
                topic = (channel.decode() if isinstance(channel, bytes) else channel)[cut:]
                self._local.deliver_local(topic, json.loads(message["data"]))
        finally:
            await pubsub.aclose()
