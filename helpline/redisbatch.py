"""Redis commands from many coroutines sent together: while one pipeline is on its way, the
commands asked for meanwhile gather, and go in the next one (one round trip for all of
them). Under load a turn's live events and rate-limit counts cost a share of a round trip
each instead of one each (docs/performance.md); alone, a command waits for nothing.

A caller gets its own commands' results, in order, or the exception one of them raised; a
pipeline that fails as a whole (Redis out of reach) fails each of its callers with that
error. The commands of one caller go in one pipeline, in the order given, and callers' in
the order they asked."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as redis

from helpline.tasks import cancel_and_wait

Command = tuple[Any, ...]  # as redis-py's execute_command takes it: ("PUBLISH", channel, data)


class Pipelined:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._waiting: list[tuple[tuple[Command, ...], asyncio.Future[list[Any]]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def run(self, *commands: Command) -> list[Any]:
        """The results of these commands, sent with whatever else is waiting."""
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._waiting.append((commands, future))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send(), name="redis-pipelined")
        return await future

    async def close(self) -> None:
        if self._sender is not None:
            await cancel_and_wait(self._sender)

    async def _send(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    await self._send_batch(batch)
                except asyncio.CancelledError:
                    for _, future in batch:
                        future.cancel()
                    raise
        finally:
            self._sender = None
            for _, future in self._waiting:  # cancelled before they were sent
                future.cancel()
            self._waiting = []

    async def _send_batch(
        self, batch: list[tuple[tuple[Command, ...], asyncio.Future[list[Any]]]]
    ) -> None:
        pipe = self._client.pipeline(transaction=False)
        for commands, _ in batch:
            for command in commands:
                pipe.execute_command(*command)
        try:
            results = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # noqa: BLE001 - whatever it is, each caller hears it, none hangs
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        at = 0
        for commands, future in batch:
            mine = results[at : at + len(commands)]
            at += len(commands)
            if future.done():  # its caller was cancelled
                continue
            failed = next((r for r in mine if isinstance(r, Exception)), None)
            if failed is not None:
                future.set_exception(failed)
            else:
                future.set_result(mine)
