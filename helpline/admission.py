"""Admission: how many turns, chat openings and stores the engine runs at once, and who goes
first when more are waiting (a risky message, before everyone)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class Admission:
    """At most `slots` holders at once. A freed slot goes to the longest-waiting urgent
    arrival if there is one, otherwise to the longest-waiting other arrival.

    Under load (a burst after a television appeal) people wait here, in arrival order, rather
    than all progressing together and timing out on the database. A message screened as
    risky does not wait behind them: someone in danger gets the emergency guidance and an
    adviser's attention as fast as the service can give it, however busy it is. A turn
    already waiting for the conversation a risky message arrives in is moved up too
    (`promote`), since that turn is the one that will answer it."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("admission needs at least one slot")
        self._free = slots
        # While any slot is free nobody waits: a released slot is handed straight to a waiter.
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._others: deque[asyncio.Future[None]] = deque()
        self._by_key: dict[str, asyncio.Future[None]] = {}
        # Slots without a key hold no state of their own, so each kind is made once: entering
        # one costs what entering an asyncio.Semaphore does (an asynccontextmanager: 3x).
        self._slot = _Slot(self, urgent=False)
        self._urgent_slot = _Slot(self, urgent=True)

    @property
    def waiting(self) -> int:
        return sum(not f.done() for f in (*self._urgent, *self._others))

    def slot(self, *, urgent: bool = False, key: str | None = None) -> _Slot:
        """`async with admission.slot(...)`: wait for a slot, hold it inside. A waiter with
        a `key` (a conversation) can be moved up by `promote(key)`."""
        if key is not None:
            return _Slot(self, urgent=urgent, key=key)
        return self._urgent_slot if urgent else self._slot

    def promote(self, key: str) -> None:
        """Move the waiter with this key, if it waits in the ordinary line, to the end of the
        urgent line."""
        future = self._by_key.get(key)
        if future is None or future.done() or future not in self._others:
            return
        self._others.remove(future)
        self._urgent.append(future)

    async def acquire(self, urgent: bool, key: str | None = None) -> None:
        if self._free > 0:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        line = self._urgent if urgent else self._others
        line.append(future)
        if key is not None:
            self._by_key[key] = future
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # handed a slot just as it gave up: pass it on
            else:
                for waiting in (self._urgent, self._others):
                    with contextlib.suppress(ValueError):  # passed over as cancelled, or moved
                        waiting.remove(future)
            raise
        finally:
            if key is not None and self._by_key.get(key) is future:
                del self._by_key[key]

    def release(self) -> None:
        for line in (self._urgent, self._others):
            while line:
                future = line.popleft()
                if not future.done():
                    future.set_result(None)
                    return
        self._free += 1


class _Slot:
    __slots__ = ("_admission", "_key", "_urgent")

    def __init__(self, admission: Admission, *, urgent: bool, key: str | None = None) -> None:
        self._admission = admission
        self._urgent = urgent
        self._key = key

    async def __aenter__(self) -> None:
        await self._admission.acquire(self._urgent, self._key)

    async def __aexit__(self, *_exc: object) -> None:
        self._admission.release()
