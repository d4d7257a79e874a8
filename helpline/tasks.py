"""Stopping background tasks that may be inside a library call."""

from __future__ import annotations

import asyncio
from typing import Any

# How long a cancelled task is given before it is cancelled again.
RETRY_SECONDS = 0.05


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has ended; raise what it raised, if not cancelled.

    redis-py can swallow a cancellation that lands while a command is on the wire: the call
    returns normally and a loop around it carries on, so a plain `cancel(); await task`
    can wait for ever (a shutdown that never ends). A task still running is cancelled again
    until it ends."""
    try:
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=RETRY_SECONDS)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not task.cancelled():
        task.result()
