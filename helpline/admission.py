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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


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

    @property
    def waiting(self) -> int:
        return sum(not f.done() for f in (*self._urgent, *self._others))

    @asynccontextmanager
    async def slot(self, *, urgent: bool = False) -> AsyncIterator[None]:
        await self._acquire(urgent)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, urgent: bool) -> None:
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
                self._release()  # handed a slot just as it gave up: pass it on
            else:
                with contextlib.suppress(ValueError):  # already passed over as cancelled
                    line.remove(future)
            raise

    def _release(self) -> None:
        for line in (self._urgent, self._others):
            while line:
                future = line.popleft()
                if not future.done():
                    future.set_result(None)
                    return
        self._free += 1
