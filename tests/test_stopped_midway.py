"""An instance that stops in the middle of a turn (killed, or its machine gone) after the turn
was saved: what it had still to do is done by the next turn or by housekeeping, on any
instance. The stop is simulated by cancelling the turn where it waits (a send, the queue)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from helpline.app import RETRY_UNANSWERED_AFTER, STORE
from helpline.domain import Delivery, Owner
from helpline.engine import UNSENT_CLAIM
from helpline.storage import SqlStore
from helpline.storage.models import MessageRow
from tests.journey_support import Person
from tests.support import Clock, engine_of, running, settings_for


async def stopped_at(reached: asyncio.Event, doing: Awaitable[Any]) -> None:
    """Run `doing` until it reaches the point that sets `reached`, then stop it there."""
    task = asyncio.ensure_future(doing)
    await reached.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def never_returning(reached: asyncio.Event) -> Any:
    async def wait_forever(*_args: Any, **_kwargs: Any) -> Any:
        reached.set()
        await asyncio.Event().wait()

    return wait_forever


async def test_a_hand_off_asked_for_is_made_after_its_instance_stopped_before_making_it(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        engine = engine_of(app)
        person = Person(app, fake)
        await person.says("hello")
        await person.says("1")
        await person.says("someone I know is behaving abusively")

        # The turn asking for an adviser is saved; the instance stops while queueing it.
        reached = asyncio.Event()
        assert engine.handoffs is not None
        with monkeypatch.context() as patched:
            patched.setattr(engine.handoffs, "request", never_returning(reached))
            await stopped_at(reached, person.says("talk to someone"))
        assert (await person.conversation()).owner is Owner.BOT

        # Housekeeping (on this instance or any other) makes the hand-off it owed.
        before = len(fake.sent)
        assert await engine.retry_handoffs() == 1
        conv = await person.conversation()
        assert (conv.owner, conv.answers["queue"]) == (Owner.QUEUE, "family")
        assert [person.keys.key(m.reply.text) for m in fake.sent[before:]] == ["handoff.waiting"]
        assert await engine.retry_handoffs() == 0  # owed no longer


async def test_replies_an_instance_stopped_before_sending_go_before_the_next_answer(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        # What the welcome and the answer to "1" are, for someone whose turns all finish.
        other = Person(app, fake, address="+447700900999")
        welcome, answer = await other.says("hello"), await other.says("1")

        # The welcome is saved; the instance stops while sending it.
        person = Person(app, fake)
        reached = asyncio.Event()
        with monkeypatch.context() as patched:
            patched.setattr(fake, "send", never_returning(reached))
            await stopped_at(reached, person.says("hello"))

        # Their next message, once the stopped instance's claim on the welcome has lapsed
        # (it could have been only slow, and sending it), brings the welcome first, then its
        # own answer, in that order.
        await claims_lapse(app[STORE])
        assert await person.says("1") == welcome + answer


async def test_replies_an_instance_stopped_before_sending_go_once_its_claim_lapses(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    async with running(settings_for(database_url, tmp_path), clock=clock) as (app, fake, _):
        engine = engine_of(app)
        other = Person(app, fake, address="+447700900999")
        welcome, answer = await other.says("hello"), await other.says("1")
        person = Person(app, fake)
        reached = asyncio.Event()
        with monkeypatch.context() as patched:
            patched.setattr(fake, "send", never_returning(reached))
            await stopped_at(reached, person.says("hello"))

        # Writing again at once: the welcome is still claimed by the instance that stopped,
        # which no other can tell from one still sending it, so the answer goes alone.
        assert await person.says("1") == answer
        # Housekeeping sends the welcome once the claim lapses, and only once.
        clock.now = datetime.now(UTC) + RETRY_UNANSWERED_AFTER
        await claims_lapse(app[STORE])
        before = len(fake.sent)
        for _ in range(2):
            await engine.retry_unanswered(RETRY_UNANSWERED_AFTER)
            await engine.drain()
        assert [person.keys.key(m.reply.text) for m in fake.sent[before:]] == welcome


async def claims_lapse(store: SqlStore) -> None:
    """Time passes for the claims on replies not yet sent: each lapses."""
    async with store.engine.begin() as conn:
        await conn.execute(
            update(MessageRow)
            .where(MessageRow.status == Delivery.PENDING.value)
            .values(claimed_at=datetime.now(UTC) - UNSENT_CLAIM)
        )
