"""Two turns of one conversation at once: what happens if a conversation's lock is lost (its
lease lapsed while Redis was out of reach, on two instances). The messages' own state fences
the turn's save: the second to save finds them answered, saves nothing and sends nothing. A
reply left unsent is claimed before it is sent again: two instances send it once between them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import update

from helpline.app import CONTENT, RETRY_UNANSWERED_AFTER, STORE
from helpline.domain import Delivery, Direction, InboundMessage, Reply, StoredMessage
from helpline.engine import UNSENT_CLAIM
from helpline.storage import SqlStore
from helpline.storage.models import MessageRow
from tests.support import Clock, FakeChannel, engine_of, running, settings_for


class LapsedLocks:
    """Locks whose lease has lapsed: every holder gets in."""

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        yield


async def test_two_turns_that_overlap_answer_a_message_once(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        engine, store = engine_of(app), app[STORE]
        engine.locks = LapsedLocks()
        accepted = await engine.accept(InboundMessage("test", "+447700900123", "Hello"))

        # Both turns read the waiting message before either saves.
        both_read = asyncio.Barrier(2)
        read = store.pending_turn

        async def pending_turn(conversation_id: str):  # type: ignore[no-untyped-def]
            found = await read(conversation_id)
            await both_read.wait()
            return found

        monkeypatch.setattr(store, "pending_turn", pending_turn)
        await asyncio.gather(
            engine.process(accepted.conversation_id), engine.process(accepted.conversation_id)
        )

        welcome = app[CONTENT].text("welcome.intro", "en")
        assert [m.reply.text for m in fake.sent].count(welcome) == 1
        transcript = await store.transcript(accepted.conversation_id)
        assert [m.text for m in transcript if m.direction == Direction.OUT].count(welcome) == 1
        (hello,) = [m for m in transcript if m.direction == Direction.IN]
        assert hello.status == Delivery.HANDLED

        # The conversation carries on from the turn that was saved.
        monkeypatch.setattr(store, "pending_turn", read)
        before = len(fake.sent)
        await engine.handle(InboundMessage("test", "+447700900123", "yes"))
        assert [m.reply.text for m in fake.sent[before:]].count(welcome) == 0
        assert len(fake.sent) > before


# -- replies left unsent -------------------------------------------------------------------
# A reply stored but not sent (its instance stopped between the two) is sent again by
# whichever instance finds it: at start, in housekeeping, at the conversation's next turn.
# Each claims it in the database first and sends only what it claimed, so two that find it
# at once (their locks keep no one out: a lapsed lease) send it once between them.

PHONE = "+447700900123"
LEFT = "Are you somewhere safe to talk?"


@contextlib.asynccontextmanager
async def two_instances(
    database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[tuple[web.Application, FakeChannel], tuple[web.Application, FakeChannel]]]:
    """Two instances over one database. Each has in-process locks of its own, so neither
    keeps the other out of a conversation: as two do whose Redis lock's lease has lapsed."""
    settings = settings_for(database_url, tmp_path)
    async with running(settings, clock=Clock()) as (a, fake_a, _):
        async with running(settings, clock=Clock()) as (b, fake_b, _):
            yield (a, fake_a), (b, fake_b)


async def _stored_at(store: SqlStore, reply: StoredMessage, at: datetime) -> None:
    """As if the reply had been stored, and claimed by the instance storing it, at `at`."""
    async with store.engine.begin() as conn:
        await conn.execute(
            update(MessageRow).where(MessageRow.id == reply.id).values(created_at=at, claimed_at=at)
        )


async def _left_unsent(app: web.Application, ago: timedelta) -> tuple[str, StoredMessage]:
    """A conversation with a reply an instance stored `ago` and died before sending."""
    store = app[STORE]
    accepted = await engine_of(app).handle(InboundMessage("test", PHONE, "hello"))
    conv = await store.conversation(accepted.conversation_id)
    (reply,) = await store.save_turn(conv, [], [Reply(LEFT)])
    await _stored_at(store, reply, datetime.now(UTC) - ago)
    return conv.id, reply


def _read_together(
    monkeypatch: pytest.MonkeyPatch, store: SqlStore, both_read: asyncio.Barrier
) -> None:
    """A conversation's unsent replies, read again under its lock, are read by both
    instances before either sends them."""
    read = store.undelivered

    async def undelivered(statuses: Any, **which: Any) -> list[StoredMessage]:
        found = await read(statuses, **which)
        if which.get("conversation_id") is not None:
            await both_read.wait()
        return found

    monkeypatch.setattr(store, "undelivered", undelivered)


def _said(*fakes: FakeChannel) -> int:
    return sum(fake.texts(PHONE).count(LEFT) for fake in fakes)


async def _status(store: SqlStore, conversation_id: str, message_id: int) -> Delivery:
    return {m.id: m.status for m in await store.transcript(conversation_id)}[message_id]


async def test_a_reply_left_unsent_goes_once_when_two_instances_send_it_again_at_once(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with two_instances(database_url, tmp_path) as ((a, fake_a), (b, fake_b)):
        conversation_id, reply = await _left_unsent(a, UNSENT_CLAIM + RETRY_UNANSWERED_AFTER)
        both_read = asyncio.Barrier(2)
        for app in (a, b):
            _read_together(monkeypatch, app[STORE], both_read)
        # Both instances' housekeeping at once.
        await asyncio.gather(
            *(engine_of(app).retry_unanswered(RETRY_UNANSWERED_AFTER) for app in (a, b))
        )
        await asyncio.gather(engine_of(a).drain(), engine_of(b).drain())
        assert _said(fake_a, fake_b) == 1
        assert await _status(a[STORE], conversation_id, reply.id) is Delivery.SENT


async def test_a_reply_left_unsent_goes_once_when_the_next_turn_and_housekeeping_meet(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with two_instances(database_url, tmp_path) as ((a, fake_a), (b, fake_b)):
        conversation_id, reply = await _left_unsent(a, UNSENT_CLAIM + RETRY_UNANSWERED_AFTER)
        both_read = asyncio.Barrier(2)
        _read_together(monkeypatch, b[STORE], both_read)
        turn_read = a[STORE].pending_turn

        async def pending_turn(conversation_id: str) -> Any:
            found = await turn_read(conversation_id)
            await both_read.wait()
            return found

        monkeypatch.setattr(a[STORE], "pending_turn", pending_turn)
        # The person writes again on one instance while the other's housekeeping runs.
        before = len(fake_a.sent)
        await asyncio.gather(
            engine_of(a).handle(InboundMessage("test", PHONE, "yes")),
            engine_of(b).retry_unanswered(RETRY_UNANSWERED_AFTER),
        )
        await asyncio.gather(engine_of(a).drain(), engine_of(b).drain())
        assert _said(fake_a, fake_b) == 1
        assert len(fake_a.sent) > before  # the new message was answered
        assert await _status(a[STORE], conversation_id, reply.id) is Delivery.SENT


@pytest.mark.redis
async def test_a_reply_whose_instance_died_while_sending_it_is_sent_once_its_claim_lapses(
    database_url: str, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    # Instances sharing Redis: the instance that claimed it may be another, still sending.
    clock = Clock()
    settings = settings_for(database_url, tmp_path, redis_url=redis_url, redis_prefix=redis_prefix)
    async with running(settings, clock=clock) as (app, fake, _):
        engine, store = engine_of(app), app[STORE]
        # Stored and claimed a while ago by an instance that may still be sending it.
        conversation_id, reply = await _left_unsent(app, UNSENT_CLAIM / 2)
        clock.now = datetime.now(UTC) + RETRY_UNANSWERED_AFTER  # housekeeping would take it
        await engine.retry_unanswered(RETRY_UNANSWERED_AFTER)
        await engine.recover()
        await engine.drain()
        assert _said(fake) == 0
        # It died: once the claim lapses, housekeeping sends the reply, and only once.
        await _stored_at(store, reply, datetime.now(UTC) - UNSENT_CLAIM)
        for _ in range(2):
            await engine.retry_unanswered(RETRY_UNANSWERED_AFTER)
            await engine.drain()
        assert _said(fake) == 1
        assert await _status(store, conversation_id, reply.id) is Delivery.SENT


async def test_a_reply_held_for_quiet_hours_is_released_once_by_two_instances_at_once(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with two_instances(database_url, tmp_path) as ((a, fake_a), (b, fake_b)):
        store = a[STORE]
        accepted = await engine_of(a).handle(InboundMessage("test", PHONE, "hello"))
        conv = await store.conversation(accepted.conversation_id)
        (held,) = await store.save_turn(conv, [], [Reply(LEFT)], status=Delivery.HELD)
        both_read = asyncio.Barrier(2)
        for app in (a, b):
            _read_together(monkeypatch, app[STORE], both_read)
        # Quiet hours have ended: both instances' housekeeping releases what waited.
        released = await asyncio.gather(*(engine_of(app).release_held() for app in (a, b)))
        assert sorted(released) == [0, 1]
        assert _said(fake_a, fake_b) == 1
        assert await _status(store, conv.id, held.id) is Delivery.SENT


async def test_the_only_instance_restarted_sends_at_once_what_its_last_run_left_claimed(
    sqlite_url: str, tmp_path: Path
) -> None:
    # SQLite and no Redis: one instance only. A reply its last run claimed and never sent
    # (killed while sending the 999 guidance, say) is nobody else's to send: it goes at the
    # start, not once the claim lapses, and once.
    settings = settings_for(sqlite_url, tmp_path)
    async with running(settings) as (app, _, _):
        conversation_id, reply = await _left_unsent(app, timedelta(seconds=5))
    async with running(settings) as (app, fake, _):
        engine = engine_of(app)
        for _ in range(2):
            await engine.recover()
            await engine.drain()
        assert _said(fake) == 1
        assert await _status(app[STORE], conversation_id, reply.id) is Delivery.SENT
