"""Stopping background loops: a cancellation a library swallows must not hang a shutdown."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from helpline.tasks import cancel_and_wait


async def test_a_loop_whose_library_swallowed_the_cancellation_still_stops() -> None:
    async def call_that_swallows_one_cancellation() -> None:
        # What redis-py can do when the cancellation lands as its answer arrives.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.01)

    async def loop() -> None:
        while True:
            await call_that_swallows_one_cancellation()
            await asyncio.sleep(0.01)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.005)  # inside the first call
    async with asyncio.timeout(2):
        await cancel_and_wait(task)
    assert task.cancelled()


async def test_what_the_task_failed_with_is_raised() -> None:
    async def fails() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise RuntimeError("cleaning up failed") from None

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="cleaning up failed"):
        await cancel_and_wait(task)


async def test_a_finished_task_is_left_as_it_was() -> None:
    task = asyncio.create_task(asyncio.sleep(0, result=7))
    await task
    await cancel_and_wait(task)
    assert task.result() == 7


async def test_several_tasks_all_end_and_the_first_failure_is_raised() -> None:
    async def swallows_once() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)
        await asyncio.sleep(10)

    async def fails() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise RuntimeError("cleaning up failed") from None

    tasks = [asyncio.create_task(swallows_once()), asyncio.create_task(fails())]
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="cleaning up failed"):
        async with asyncio.timeout(2):
            await cancel_and_wait(*tasks)
    assert all(task.done() for task in tasks)
