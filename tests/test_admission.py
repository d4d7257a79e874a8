"""Admission: a bounded number of turns at once, in arrival order, except that a message
screened as risky goes before everyone waiting."""

from __future__ import annotations

import asyncio

import pytest

from helpline.admission import Admission


async def _arrive(admission: Admission, name: str, order: list[str], *, urgent: bool) -> None:
    async with admission.slot(urgent=urgent):
        order.append(name)
        await asyncio.sleep(0)


async def _until_waiting(admission: Admission, n: int) -> None:
    async with asyncio.timeout(5):
        while admission.waiting < n:
            await asyncio.sleep(0)


async def test_a_risky_arrival_goes_before_everyone_already_waiting() -> None:
    admission = Admission(1)
    order: list[str] = []
    async with admission.slot():
        waiting = [
            asyncio.create_task(_arrive(admission, name, order, urgent=name.startswith("risk")))
            for name in ("first", "second", "risk one", "third", "risk two")
        ]
        await _until_waiting(admission, len(waiting))
    await asyncio.gather(*waiting)
    assert order == ["risk one", "risk two", "first", "second", "third"]


async def test_someone_who_gives_up_waiting_holds_no_place() -> None:
    admission = Admission(1)
    order: list[str] = []
    async with admission.slot():
        gives_up = asyncio.create_task(_arrive(admission, "gave up", order, urgent=False))
        stays = asyncio.create_task(_arrive(admission, "stayed", order, urgent=False))
        await _until_waiting(admission, 2)
        gives_up.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gives_up
    async with asyncio.timeout(5):
        await stays
    assert order == ["stayed"]
    # Both slots' worth of work is done and the one slot is free again.
    async with asyncio.timeout(5), admission.slot():
        pass


async def test_a_slot_handed_to_someone_giving_up_passes_to_the_next() -> None:
    admission = Admission(1)
    order: list[str] = []
    holder = admission.slot()
    await holder.__aenter__()
    gives_up = asyncio.create_task(_arrive(admission, "gave up", order, urgent=False))
    stays = asyncio.create_task(_arrive(admission, "stayed", order, urgent=False))
    await _until_waiting(admission, 2)
    await holder.__aexit__(None, None, None)  # hands the slot to "gave up"...
    gives_up.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await gives_up
    async with asyncio.timeout(5):
        await stays
    assert order == ["stayed"]


async def test_a_turn_waiting_for_a_conversation_a_risky_message_reaches_is_moved_up() -> None:
    admission = Admission(1)
    order: list[str] = []

    async def turn(name: str, key: str) -> None:
        async with admission.slot(key=key):
            order.append(name)

    async with admission.slot():
        waiting = [asyncio.create_task(turn(name, name)) for name in ("a", "b", "c")]
        await _until_waiting(admission, 3)
        admission.promote("c")
        admission.promote("nobody waiting")
    await asyncio.gather(*waiting)
    assert order == ["c", "a", "b"]


def test_admission_needs_a_slot() -> None:
    with pytest.raises(ValueError):
        Admission(0)
