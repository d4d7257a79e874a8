"""Admission: how many turns, chat openings and stores the engine runs at once, and who goes
first when more are waiting.

Under load (a burst after a television appeal) people wait here, in arrival order, rather
than all progressing together and timing out on the database. A message screened as risky
does not wait behind them: it goes before everyone waiting, so someone in danger gets the
emergency guidance and an adviser's attention as fast as the service can give it, however
busy it is (docs/performance.md, hand-off under load)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class Admission:
    """At most `slots` holders at once. A freed slot goes to the longest-waiting urgent
    arrival if there is one, otherwise to the longest-waiting other arrival."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("admission needs at least one slot")
        self._free = slots
        # While any slot is free nobody waits: a released slot is handed straight to a waiter.
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._others: deque[asyncio.Future[None]] = deque()
        # The slot objects hold no state of their own, so each kind is made once: entering
        # one costs what entering an asyncio.Semaphore does (an asynccontextmanager: 3x).
        self._slot = _Slot(self, urgent=False)
        self._urgent_slot = _Slot(self, urgent=True)

    @property
    def waiting(self) -> int:
        return sum(not f.done() for f in (*self._urgent, *self._others))

    def slot(self, *, urgent: bool = False) -> _Slot:
        """`async with admission.slot(urgent=...)`: wait for a slot, hold it inside."""
        return self._urgent_slot if urgent else self._slot

    async def acquire(self, urgent: bool) -> None:
        if self._free > 0:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        line = self._urgent if urgent else self._others
        line.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # handed a slot just as it gave up: pass it on
            else:
                with contextlib.suppress(ValueError):  # already passed over as cancelled
                    line.remove(future)
            raise

    def release(self) -> None:
        for line in (self._urgent, self._others):
            while line:
                future = line.popleft()
                if not future.done():
                    future.set_result(None)
                    return
        self._free += 1


class _Slot:
    __slots__ = ("_admission", "_urgent")

    def __init__(self, admission: Admission, *, urgent: bool) -> None:
        self._admission = admission
        self._urgent = urgent

    async def __aenter__(self) -> None:
        await self._admission.acquire(self._urgent)

    async def __aexit__(self, *_exc: object) -> None:
        self._admission.release()
