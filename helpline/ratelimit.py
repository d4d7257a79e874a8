"""Rate limits per contact (keyed hash) and per network address (hashed), in memory for one
process or in Redis for several. Fixed windows: simple, cheap and good enough against floods."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as redis
from redis.exceptions import RedisError

from helpline.errors import HelplineError
from helpline.redisbatch import Pipelined

log = logging.getLogger(__name__)


class RateLimited(HelplineError):
    """Too many messages from one contact or address in a short time."""


@dataclass(frozen=True)
class Limit:
    count: int
    seconds: int


def message_limits(per_minute: int) -> tuple[Limit, ...]:
    """A person typing fast sends a few messages a minute; a script sends hundreds."""
    return (Limit(per_minute, 60), Limit(per_minute * 15, 3600))


NEW_CHATS = (Limit(30, 600),)


class MemoryLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[tuple[str, int], tuple[int, int]] = {}

    async def allow(self, key: str, limits: tuple[Limit, ...]) -> bool:
        now = self._clock()
        allowed = True
        for limit in limits:
            window = int(now // limit.seconds)
            slot = (key, limit.seconds)
            start, count = self._windows.get(slot, (window, 0))
            if start != window:
                start, count = window, 0
            count += 1
            self._windows[slot] = (start, count)
            allowed = allowed and count <= limit.count
        if len(self._windows) > 100_000:
            self._forget_old(now)
        return allowed

    async def refund(self, key: str, limits: tuple[Limit, ...]) -> None:
        """Take back one count in the current windows (a message that turned out to be a
        redelivery, which costs the person nothing)."""
        now = self._clock()
        for limit in limits:
            slot = (key, limit.seconds)
            start, count = self._windows.get(slot, (None, 0))
            if start == int(now // limit.seconds) and count > 0:
                self._windows[slot] = (start, count - 1)

    def _forget_old(self, now: float) -> None:
        for (key, seconds), (start, _) in list(self._windows.items()):
            if start != int(now // seconds):
                del self._windows[(key, seconds)]


# Take one back from a window's count, only if the window still exists (a new window
# must not start below zero).
_REFUND = """
if redis.call('exists', KEYS[1]) == 1 and tonumber(redis.call('get', KEYS[1])) > 0 then
  return redis.call('decr', KEYS[1])
end
return 0
"""


class RedisLimiter:
    def __init__(self, client: redis.Redis, prefix: str = "helpline:") -> None:
        self._client = client
        self._prefix = prefix
        self._refund = client.register_script(_REFUND)
        # Other messages' counts in the same round trip (helpline/redisbatch.py).
        self._counted = Pipelined(client)

    def _name(self, key: str, limit: Limit, now: float) -> str:
        return f"{self._prefix}rate:{limit.seconds}:{int(now // limit.seconds)}:{key}"

    async def allow(self, key: str, limits: tuple[Limit, ...]) -> bool:
        now = time.time()
        commands: list[tuple[object, ...]] = []
        for limit in limits:
            name = self._name(key, limit, now)
            commands += [("INCRBY", name, 1), ("EXPIRE", name, limit.seconds + 1)]
        try:
            results = await self._counted.run(*commands)
        except (RedisError, OSError, TimeoutError):
            # Let through, never refused: a limit exists to stop floods, and refusing
            # everyone while Redis is down would lose every ordinary text and WhatsApp
            # message (their platforms do not deliver a refused webhook again). The message
            # is then stored as usual. No key in the log: it identifies the contact.
            log.warning("rate limit not checked: Redis did not answer", exc_info=True)
            return True
        counts = results[0::2]
        return all(int(c) <= limit.count for c, limit in zip(counts, limits, strict=True))

    async def refund(self, key: str, limits: tuple[Limit, ...]) -> None:
        """As MemoryLimiter.refund. Redis out of reach: nothing taken back (the count ends
        with its window)."""
        now = time.time()
        try:
            for limit in limits:
                await self._refund(keys=[self._name(key, limit, now)])
        except (RedisError, OSError, TimeoutError):
            log.warning("rate limit not refunded: Redis did not answer", exc_info=True)
