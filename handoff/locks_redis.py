"""Per-conversation locks across processes, over redis-py's Lock (SET NX PX, token release).

The in-process twin is helpline.locks.MemoryLocks; both satisfy helpline.ports.Locks.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, RedisError

from helpline.errors import HelplineError

log = logging.getLogger(__name__)


class LockTimeout(HelplineError):
    """Waited longer than blocking_timeout for a conversation's lock."""


class LockUnavailable(HelplineError):
    """Redis could not be asked for a lock."""


class RedisLocks:
    """One Redis lock per key.

    `timeout` bounds how long a crashed holder can block a conversation; a turn must finish
    well within it. `blocking_timeout` bounds how long a waiter waits before LockTimeout.
    The caller creates and closes the client.
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "helpline:",
        timeout: float = 30.0,
        blocking_timeout: float = 60.0,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._timeout = timeout
        self._blocking_timeout = blocking_timeout

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._client.lock(
            self._prefix + "lock:" + key,
            timeout=self._timeout,
            blocking_timeout=self._blocking_timeout,
            # One Lock object per hold, used by one task: no thread-local token needed.
            thread_local=False,
        )
        try:
            acquired = await lock.acquire()
        except RedisError as exc:
            raise LockUnavailable("could not ask Redis for a conversation lock") from exc
        if not acquired:
            raise LockTimeout(f"no conversation lock within {self._blocking_timeout}s")
        try:
            yield
        finally:
            await self._release(lock)

    async def _release(self, lock: Lock) -> None:
        # Raising here would hide the body's own exception, or fail a turn that was saved.
        # The key is not logged: it may identify a conversation.
        try:
            await lock.release()
        except LockError:
            log.warning(
                "a conversation lock expired before its holder finished (timeout %ss); "
                "another holder may have overlapped",
                self._timeout,
            )
        except RedisError:
            log.warning(
                "could not release a conversation lock; it expires by itself", exc_info=True
            )
