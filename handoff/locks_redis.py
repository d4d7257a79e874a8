"""Per-conversation locks across processes, over redis-py's Lock (SET NX PX, token release).

The in-process twin is helpline.locks.MemoryLocks; both satisfy helpline.ports.Locks.
"""

from __future__ import annotations

import asyncio
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


class _Renewal:
    """What a lock's renewal task and its holder share."""

    __slots__ = ("done", "in_flight")

    def __init__(self) -> None:
        self.done = False  # the holder has finished: renew no more
        self.in_flight = False  # a renewal command is on the wire


class RedisLocks:
    """One Redis lock per key, held as a short lease that its holder renews while it works.

    `timeout` is the lease: how long a crashed (killed) holder can block a conversation.
    A live holder renews it every third of the lease, so a slow turn (a slow SMS gateway)
    never loses the lock. `blocking_timeout` bounds how long a waiter waits before
    LockTimeout. The caller creates and closes the client.

    A renewal is cancelled only while it sleeps, never while its command is on the wire:
    redis-py can swallow a cancellation that lands then, and a renewal cancelled that way
    went on renewing for ever while the turn waited for it to end, so the conversation's
    next message never got the lock (tests/test_locks_contract.py).
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "helpline:",
        timeout: float = 6.0,
        blocking_timeout: float = 60.0,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._timeout = timeout
        self._blocking_timeout = blocking_timeout
        # Renewals told to stop that are finishing a command in flight: kept until they end.
        self._stopping: set[asyncio.Task[None]] = set()

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
        renewal = _Renewal()
        renewing = asyncio.create_task(self._renew(lock, renewal))
        try:
            yield
        finally:
            renewal.done = True
            if not renewal.in_flight:
                renewing.cancel()  # asleep (or not started): a cancellation it cannot miss
            elif not renewing.done():
                # Not awaited: it stops after its one command. If that lands after the
                # release below, it finds the lock not ours and changes nothing.
                self._stopping.add(renewing)
                renewing.add_done_callback(self._stopping.discard)
            await self._release(lock)

    async def _renew(self, lock: Lock, renewal: _Renewal) -> None:
        """Renew the lease every third of it. When Redis does not answer (a blip, a
        fail-over), try again every tenth of a lease for as long as the lease lasts: giving up
        at the first failure let the lease lapse while the turn was still working, and
        another instance's turn of the same conversation ran beside it."""
        loop = asyncio.get_running_loop()
        lapses_at = loop.time() + self._timeout
        pause = self._timeout / 3
        while not renewal.done:
            await asyncio.sleep(pause)
            renewal.in_flight = True
            try:
                await lock.reacquire()
            except LockError:
                # Not ours any more (the lease ran out while Redis was away): nothing to renew.
                if not renewal.done:
                    log.error(
                        "a conversation lock was lost while its turn was working; another "
                        "holder may overlap it"
                    )
                return
            except RedisError:
                if renewal.done:
                    return
                if loop.time() >= lapses_at:
                    log.error(
                        "could not renew a conversation lock before its lease ran out; "
                        "another holder may overlap it",
                        exc_info=True,
                    )
                    return
                log.warning("could not renew a conversation lock; trying again", exc_info=True)
                pause = self._timeout / 10
                continue
            finally:
                renewal.in_flight = False
            lapses_at = loop.time() + self._timeout
            pause = self._timeout / 3

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
