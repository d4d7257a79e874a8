"""Stopping background tasks: ones that may be inside a library call, and loops that wait
between rounds."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

# How long a cancelled task is given before it is cancelled again.
RETRY_SECONDS = 0.05


async def cancel_and_wait(*tasks: asyncio.Task[Any]) -> None:
    """Cancel `tasks` and wait until every one has ended; then raise what the first that
    failed raised (other than its cancellation), if any did.

    redis-py can swallow a cancellation that lands while a command is on the wire: the call
    returns normally and a loop around it carries on, so a plain `cancel(); await task`
    can wait for ever (a shutdown that never ends). A task still running is cancelled again
    until it ends."""
    try:
        while running := [task for task in tasks if not task.done()]:
            for task in running:
                task.cancel()
            await asyncio.wait(running, timeout=RETRY_SECONDS)
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        raise
    for task in tasks:
        if not task.cancelled():
            task.result()


async def stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds`, or less if `stop` is set meanwhile; whether it is set. For a loop that
    waits between rounds: asked to stop, it ends at once, and never in the middle of a round."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
    return stop.is_set()
