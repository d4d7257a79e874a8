"""Carrying a conversation to another channel with a code word: same journey, same queue
place, same adviser; the code works once, for a day, and only its keyed hash is kept."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from helpline.app import CONTENT, ROUTING, STORE
from helpline.domain import InboundMessage, Owner
from helpline.engine import Engine
from helpline.ports import Priority
from helpline.privacy import Privacy
from tests.support import (
    SECRET,
    Clock,
    FakeChannel,
    QueueThatCannotEnqueue,
    engine_of,
    running,
    settings_for,
)

PHONE = "+447700900123"
CHAT = "4242424242"
TUESDAY_NOON = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # London noon
CODE = re.compile(r"\b([A-Z0-9]{4}-[A-Z0-9]{4})\b")


async def _handle(engine: Engine, message: InboundMessage) -> None:
    """Handle a message and whatever it sets going (a carry-over runs after the turn)."""
    await engine.handle(message)
    await engine.drain()


@asynccontextmanager
async def _two_channels(
    database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Any, FakeChannel, FakeChannel]]:
    """The service with the test channel (a phone) and "other" (a chat), each recording what
    it was given to send."""
    async with running(settings_for(database_url, tmp_path), clock=Clock(TUESDAY_NOON)) as (
        app,
        sms,
        _,
    ):
        other = FakeChannel("other")
        engine_of(app).senders["other"] = other
        yield app, sms, other


async def _danger_there_with_the_queue_down(app: Any) -> QueueThatCannotEnqueue:
    """On "other", before any code word: hello, then danger while the queue cannot be
    reached (the hand-off danger asks for is owed there). The queue is left down."""
    routing, engine = app[ROUTING], engine_of(app)
    queue = QueueThatCannotEnqueue(routing.queue)
    routing.queue = queue
    await _handle(engine, InboundMessage("other", CHAT, "hello"))
    await _handle(engine, InboundMessage("other", CHAT, "he has a knife"))
    return queue


def _code(texts: list[str]) -> str:
    found = CODE.search(texts[-1])
    assert found, texts[-1]
    return found.group(1)


async def test_a_person_carries_their_journey_to_another_channel_with_a_code_word(
    database_url: str, tmp_path: Path
) -> None:
    async with _two_channels(database_url, tmp_path) as (app, sms, other):
        engine, store = engine_of(app), app[STORE]
        for said in ("hi", "1", "1"):  # safe to talk, then "my own behaviour"
            await _handle(engine, InboundMessage("test", PHONE, said))
        question = sms.texts()[-1]
        before = await store.conversation(
            (await store.open_conversation(Privacy(SECRET).contact_key("test", PHONE))).id
        )
        await _handle(engine, InboundMessage("test", PHONE, "code word"))
        code = _code(sms.texts())

        await _handle(engine, InboundMessage("other", CHAT, f"continue {code.lower()}"))

        # Told they are back, then asked the same question they were last asked.
        said_there = other.texts()
        assert said_there[0] == app[CONTENT].text("handover.joined", "en")
        assert said_there[-1] == question
        after = await store.open_conversation(Privacy(SECRET).contact_key("other", CHAT))
        assert after is not None and after.id == before.id
        assert (after.reference, after.flow, after.state) == (
            before.reference,
            before.flow,
            before.state,
        )
        assert after.channel == "other"
        assert await store.open_conversation(Privacy(SECRET).contact_key("test", PHONE)) is None
        # The whole story is in one transcript, with a line for the adviser.
        transcript = [m.text for m in await store.transcript(before.id)]
        assert "code word" in transcript and f"continue {code.lower()}" in transcript
        # The code was sent but never kept: the transcript has a stand-in in its place.
        assert app[CONTENT].text("handover.code_kept", "en") in transcript
        assert not any(code in t for t in transcript if not t.startswith("continue"))
        assert any("carried this conversation on by other" in t for t in transcript)

        # From now on replies go to the new channel only.
        sent_before = len(sms.sent)
        await _handle(engine, InboundMessage("other", CHAT, "menu"))
        assert len(sms.sent) == sent_before
        assert len(other.texts()) > len(said_there)


async def test_someone_a_programme_holds_is_told_of_the_programme_not_an_adviser_after_moving(
    database_url: str, tmp_path: Path
) -> None:
    async with _two_channels(database_url, tmp_path) as (app, sms, other):
        engine, store, routing = engine_of(app), app[STORE], app[ROUTING]
        await _handle(engine, InboundMessage("test", PHONE, "hi"))
        await _handle(engine, InboundMessage("test", PHONE, "talk to someone"))
        conv = await store.open_conversation(Privacy(SECRET).contact_key("test", PHONE))
        assert conv is not None
        await routing.claim(conv.id, "pat", 3, programme=True)
        await _handle(engine, InboundMessage("test", PHONE, "code word"))
        await _handle(engine, InboundMessage("other", CHAT, f"continue {_code(sms.texts())}"))

        t = app[CONTENT].text
        told = other.texts()
        assert told == [t("handover.joined", "en"), t("programme.held_with_adviser", "en")]
        assert not [said for said in told if "adviser" in said.lower()]


async def test_an_adviser_conversation_follows_the_person(
    database_url: str, tmp_path: Path
) -> None:
    async with _two_channels(database_url, tmp_path) as (app, sms, other):
        engine, store, routing = engine_of(app), app[STORE], app[ROUTING]
        await _handle(engine, InboundMessage("test", PHONE, "hi"))
        await _handle(engine, InboundMessage("test", PHONE, "talk to someone"))
        conv = await store.open_conversation(Privacy(SECRET).contact_key("test", PHONE))
        assert conv is not None and conv.owner is Owner.QUEUE
        await routing.claim(conv.id, "alex", 3)
        await _handle(engine, InboundMessage("test", PHONE, "code word"))
        code = _code(sms.texts())

        # The new channel may already have greeted them: the code word still carries them over.
        await _handle(engine, InboundMessage("other", CHAT, "hello"))
        await _handle(engine, InboundMessage("other", CHAT, f"continue {code}"))

        t = app[CONTENT].text
        assert other.texts()[-2:] == [t("handover.joined", "en"), t("handoff.with_adviser", "en")]

        await routing.say(conv.id, "alex", "Thanks for moving over. How are you doing?")
        assert other.texts()[-1] == "Thanks for moving over. How are you doing?"
        assert "Thanks for moving over" not in " ".join(sms.texts())


@pytest.mark.parametrize("queue_back", ["before continuing", "after"])
async def test_danger_said_on_the_new_channel_first_is_carried_with_the_conversation(
    database_url: str, tmp_path: Path, queue_back: str
) -> None:
    # On the new channel they say they are in danger before they type the code word, while
    # the queue cannot be reached: the hand-off danger asked for is owed there. Continuing
    # closes that arrival; the conversation it takes over now carries the danger (what the
    # advisers will see) and the owed hand-off: made at once if the queue is back by then,
    # else by housekeeping once it is.
    async with _two_channels(database_url, tmp_path) as (app, sms, other):
        engine, store, content, routing = engine_of(app), app[STORE], app[CONTENT], app[ROUTING]
        await _handle(engine, InboundMessage("test", PHONE, "hi"))
        await _handle(engine, InboundMessage("test", PHONE, "code word"))
        code = _code(sms.texts())
        before = await store.open_conversation(Privacy(SECRET).contact_key("test", PHONE))
        assert before is not None and before.risk_level == "none"

        queue = await _danger_there_with_the_queue_down(app)
        assert content.text("risk.immediate", "en") in other.texts()
        arrival = await store.open_conversation(Privacy(SECRET).contact_key("other", CHAT))
        assert arrival is not None and arrival.risk_level == "immediate"
        queue.down = queue_back == "after"
        await _handle(engine, InboundMessage("other", CHAT, f"continue {code}"))

        carried = await store.conversation(before.id)
        assert carried.channel == "other" and carried.risk_level == "immediate"
        assert carried.answers["_risk_reasons"] == arrival.answers["_risk_reasons"]
        assert (await store.conversation(arrival.id)).closed
        if queue_back == "after":
            assert carried.owner is Owner.BOT
            queue.down = False
            assert await engine.retry_handoffs() == 1  # housekeeping, on any instance
        else:
            assert carried.owner is Owner.QUEUE  # at once: nobody had to wait for housekeeping
        entries = await routing.queue.waiting()
        assert [(e.conversation_id, e.priority) for e in entries] == [
            (before.id, Priority.IMMEDIATE)
        ]
        waiting = content.text("handoff.waiting", "en", position=1, minutes=8)[:40]
        assert other.texts()[-1].startswith(waiting)


async def test_danger_said_on_the_new_channel_raises_a_waiting_conversations_place(
    database_url: str, tmp_path: Path
) -> None:
    # Already waiting for an adviser when they move: the danger they said on the new channel
    # (before the code word, while the queue was down there) moves them up the queue.
    async with _two_channels(database_url, tmp_path) as (app, sms, other):
        engine, store, routing = engine_of(app), app[STORE], app[ROUTING]
        await _handle(engine, InboundMessage("test", PHONE, "hi"))
        await _handle(engine, InboundMessage("test", PHONE, "talk to someone"))
        await _handle(engine, InboundMessage("test", PHONE, "code word"))
        code = _code(sms.texts())
        queued = await store.open_conversation(Privacy(SECRET).contact_key("test", PHONE))
        assert queued is not None and queued.owner is Owner.QUEUE
        assert [e.priority for e in await routing.queue.waiting()] == [Priority.NORMAL]

        queue = await _danger_there_with_the_queue_down(app)
        queue.down = False
        await _handle(engine, InboundMessage("other", CHAT, f"continue {code}"))

        carried = await store.conversation(queued.id)
        assert (carried.channel, carried.owner, carried.risk_level) == (
            "other",
            Owner.QUEUE,
            "immediate",
        )
        entries = await routing.queue.waiting()
        assert [(e.conversation_id, e.priority) for e in entries] == [
            (queued.id, Priority.IMMEDIATE)
        ]


async def test_a_code_word_works_once_and_for_a_day(database_url: str, tmp_path: Path) -> None:
    clock = Clock(TUESDAY_NOON)
    async with running(settings_for(database_url, tmp_path), clock=clock) as (app, sms, _):
        other = FakeChannel("other")
        engine_of(app).senders["other"] = other
        engine, store = engine_of(app), app[STORE]
        unknown = app[CONTENT].text("handover.unknown", "en")
        await _handle(engine, InboundMessage("test", PHONE, "hi"))
        await _handle(engine, InboundMessage("test", PHONE, "code word"))
        stale = _code(sms.texts())
        clock.now += timedelta(hours=24, minutes=1)
        await _handle(engine, InboundMessage("other", CHAT, f"continue {stale}"))
        assert other.texts()[-1] == unknown

        await _handle(engine, InboundMessage("test", PHONE, "code word"))
        fresh = _code(sms.texts())
        await _handle(engine, InboundMessage("other", "555", f"continue {fresh}"))
        assert app[CONTENT].text("handover.joined", "en") in other.texts("555")
        await _handle(engine, InboundMessage("other", CHAT, f"continue {fresh}"))
        assert other.texts(CHAT)[-1] == unknown
        # A made-up code is refused the same way, and nothing but hashes is kept.
        await _handle(engine, InboundMessage("other", CHAT, "continue ABCD-EFGH"))
        assert other.texts(CHAT)[-1] == unknown
        await _handle(engine, InboundMessage("test", "+447700900999", "code word"))
        kept = _code(sms.texts("+447700900999"))
        async with store.session() as session:
            hashes = list(await session.scalars(text("SELECT code_hash FROM handover_codes")))
        assert hashes == [Privacy(SECRET).code_hash(kept)]
        assert kept.replace("-", "") not in hashes[0].upper()


async def test_two_conversations_carried_into_each_other_at_once_do_not_stall(
    database_url: str, tmp_path: Path
) -> None:
    async with _two_channels(database_url, tmp_path) as (app, sms, other):
        engine = engine_of(app)
        await _handle(engine, InboundMessage("test", PHONE, "hi"))
        await _handle(engine, InboundMessage("other", CHAT, "hi"))
        await _handle(engine, InboundMessage("test", PHONE, "code word"))
        await _handle(engine, InboundMessage("other", CHAT, "code word"))
        to_other, to_sms = _code(sms.texts()), _code(other.texts())
        # Each side sends the other's code at the same moment.
        await asyncio.wait_for(
            asyncio.gather(
                engine.handle(InboundMessage("test", PHONE, f"continue {to_sms}")),
                engine.handle(InboundMessage("other", CHAT, f"continue {to_other}")),
            ),
            timeout=20,
        )
        await asyncio.wait_for(engine.drain(), timeout=20)
        # Whatever order they ran in, both people still get answers afterwards.
        for channel, address, fake in (("test", PHONE, sms), ("other", CHAT, other)):
            before = len(fake.texts(address))
            await asyncio.wait_for(
                _handle(engine, InboundMessage(channel, address, "menu")), timeout=20
            )
            assert len(fake.texts(address)) > before


async def test_what_was_attached_to_the_arrival_is_kept(database_url: str, tmp_path: Path) -> None:
    async with _two_channels(database_url, tmp_path) as (app, sms, other):
        engine, store = engine_of(app), app[STORE]
        await _handle(engine, InboundMessage("test", PHONE, "hi"))
        await _handle(engine, InboundMessage("test", PHONE, "code word"))
        code = _code(sms.texts())
        await _handle(engine, InboundMessage("other", CHAT, "hi"))
        arrival = await store.open_conversation(Privacy(SECRET).contact_key("other", CHAT))
        assert arrival is not None
        await _handle(engine, InboundMessage("other", CHAT, f"continue {code}"))
        # The arrival is closed, not deleted, so rows that point at it (a call-back, a
        # referral) are not swept away with it.
        closed = await store.conversation(arrival.id)
        assert closed.closed
