"""The answer to "what number should we call?" typed after danger has queued the person at
that question: never in clear for the queue, the adviser or the database, whoever made the
hand-off (at once, or once they had stopped typing); words about danger still reach the
adviser."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from helpline.app import CONTENT, ENGINE, ROUTING, STORE
from helpline.domain import InboundMessage, Owner
from helpline.ports import Priority
from tests.support import Clock, QueueThatCannotEnqueue, running, settings_for
from tests.test_callbacks import _leaks, _noon, _raw, _record_hub

PERSON = "+447700900456"
TYPED = "07700 900987"  # the number they type (Ofcom's drama range)
SECRETS = (TYPED, "07700900987", "900987")
TO_THE_NUMBER = ("hi", "1", "1", "1", "2", "call me back", "weekday mornings")


class Someone:
    """One person on the test channel, their messages dated by the app's clock."""

    def __init__(self, app: Any, clock: Clock) -> None:
        self.app, self.clock = app, clock
        self.conversation_id = ""

    async def says(self, text: str) -> None:
        message = InboundMessage("test", PERSON, text, received_at=self.clock.now)
        self.conversation_id = (await self.app[ENGINE].handle(message)).conversation_id

    async def sends_together(self, *texts: str) -> None:
        """Messages that all arrive before the first is handled."""
        engine = self.app[ENGINE]
        for text in texts:
            message = InboundMessage("test", PERSON, text, received_at=self.clock.now)
            self.conversation_id = (await engine.accept(message)).conversation_id
        await engine.process(self.conversation_id)

    async def at_the_number_question(self) -> None:
        for said in TO_THE_NUMBER:
            await self.says(said)
        conv = await self.app[STORE].conversation(self.conversation_id)
        assert (conv.flow, conv.state) == ("own", "callback_number")

    async def transcript(self) -> list[str]:
        return [m.text for m in await self.app[STORE].transcript(self.conversation_id)]


async def _nothing_in_clear(app: Any, events: list[tuple[str, dict[str, Any]]]) -> None:
    """No trace of the number in the database, the live events, or a call-back."""
    everything = await _raw(app, "SELECT * FROM messages") + await _raw(
        app, "SELECT * FROM conversations"
    )
    assert not _leaks(everything, *SECRETS)
    assert not _leaks(events, *SECRETS)
    assert await _raw(app, "SELECT id FROM callbacks") == []


async def test_a_number_typed_after_the_owed_hand_off_at_the_number_question_stays_sealed(
    database_url: str, tmp_path: Path
) -> None:
    # Danger at "what number should we call?" with the queue refusing: the hand-off waits
    # while they may be typing the number, then, two quiet minutes on, is made for safety.
    # The number they then type used to reach the queue and the adviser as written.
    clock = Clock(_noon())
    async with running(settings_for(database_url, tmp_path), clock=clock) as (app, fake, _):
        engine, routing, content = app[ENGINE], app[ROUTING], app[CONTENT]
        await engine.stop_retries()  # housekeeping's turn, below
        person = Someone(app, clock)
        await person.at_the_number_question()
        queue = QueueThatCannotEnqueue(routing.queue)
        routing.queue = queue
        await person.says("he has a knife")
        assert fake.texts()[-1] == content.text("handoff.unavailable", "en")
        queue.down = False
        clock.now += timedelta(minutes=3)
        assert await engine.retry_handoffs() == 1
        entries = await routing.queue.waiting()
        assert [(e.conversation_id, e.priority) for e in entries] == [
            (person.conversation_id, Priority.IMMEDIATE)
        ]
        events = _record_hub(app)
        clock.now += timedelta(seconds=20)
        await person.says(TYPED)
        transcript = await person.transcript()
        assert TYPED not in transcript
        assert content.text("own.callback_number_given", "en") in transcript
        # They are told it was not kept (no call-back booked), and still queued; advisers
        # read that in a note, and see it live.
        assert fake.texts()[-1] == content.text("handoff.number_not_kept", "en")
        assert content.text("note.number_not_kept", "en") in transcript
        shown = [e["text"] for _topic, e in events if e.get("type") == "message"]
        assert content.text("note.number_not_kept", "en") in shown
        assert (await app[STORE].conversation(person.conversation_id)).owner is Owner.QUEUE
        # Words that answer nothing there are for the adviser, as written.
        await person.says("ok I'll wait here")
        assert "ok I'll wait here" in await person.transcript()
        # With an adviser: danger typed with the number is shown, less the number.
        await routing.claim(person.conversation_id, "sam", capacity=2)
        await person.says(f"he's back with the knife, call me on {TYPED}")
        assert "he's back with the knife, call me on …" in await person.transcript()
        shown = [e["text"] for _topic, e in events if e.get("type") == "message"]
        assert "he's back with the knife, call me on …" in shown
        assert content.text("own.callback_number_given", "en") in shown
        await _nothing_in_clear(app, events)


@pytest.mark.parametrize("together", [False, True])
async def test_a_number_typed_after_danger_at_the_number_question_stays_sealed(
    database_url: str, tmp_path: Path, together: bool
) -> None:
    # Danger at the number question, the queue answering: queued at once. The number may
    # come next, or in a text sent with the danger before either was handled.
    clock = Clock(_noon())
    async with running(settings_for(database_url, tmp_path), clock=clock) as (app, fake, _):
        content = app[CONTENT]
        person = Someone(app, clock)
        await person.at_the_number_question()
        events = _record_hub(app)
        if together:
            await person.sends_together("he has a knife, he's here", TYPED)
        else:
            await person.says("he has a knife, he's here")
            await person.says(TYPED)
            assert fake.texts()[-1] == content.text("handoff.number_not_kept", "en")
        conv = await app[STORE].conversation(person.conversation_id)
        assert conv.owner is Owner.QUEUE
        transcript = await person.transcript()
        assert "he has a knife, he's here" in transcript
        assert content.text("own.callback_number_given", "en") in transcript
        await _nothing_in_clear(app, events)


async def test_a_number_typed_long_after_the_hand_off_is_an_ordinary_message(
    sqlite_url: str, tmp_path: Path
) -> None:
    # The question lapses: later, a number is something said to the adviser, and the
    # transcript keeps what anyone types to an adviser (docs/privacy.md).
    clock = Clock(_noon())
    async with running(settings_for(sqlite_url, tmp_path), clock=clock) as (app, fake, _):
        person = Someone(app, clock)
        await person.at_the_number_question()
        await person.says("he has a knife, he's here")
        await app[ROUTING].claim(person.conversation_id, "sam", capacity=2)
        clock.now += timedelta(minutes=30)
        await person.says(f"my work number is {TYPED}")
        assert (await person.transcript())[-1] == f"my work number is {TYPED}"


async def test_a_postcode_typed_after_danger_at_the_area_question_is_left_out(
    sqlite_url: str, tmp_path: Path
) -> None:
    # The area question keeps a postcode out of the transcript, as the number question keeps
    # the number: after danger there, the same while the answer may still come.
    clock = Clock(_noon())
    async with running(settings_for(sqlite_url, tmp_path), clock=clock) as (app, _fake, _):
        engine = app[ENGINE]
        person = Someone(app, clock)
        for said in ("hello", "1", "1", "my ex", "no", "a programme near me", "hello again"):
            await person.says(said)
        conv = await app[STORE].conversation(person.conversation_id)
        assert engine.runner.private(conv.flow, conv.state), "not at the area question"
        await person.says("he has a knife, he's here")
        assert (await app[STORE].conversation(person.conversation_id)).owner is Owner.QUEUE
        await person.says("I'm near CF10 3AT")
        transcript = await person.transcript()
        assert "I'm near …" in transcript
        assert not any("CF10 3AT" in t for t in transcript)


async def test_out_of_hours_a_number_typed_after_danger_at_the_number_question_stays_sealed(
    database_url: str, tmp_path: Path
) -> None:
    # Out of hours the queue's "we're closed" message moves the journey to its offer (leave
    # a message, or a call-back): the number typed next is still kept out.
    clock = Clock(_noon(line_open=False))
    async with running(settings_for(database_url, tmp_path), clock=clock) as (app, fake, _):
        content = app[CONTENT]
        person = Someone(app, clock)
        await person.at_the_number_question()
        events = _record_hub(app)
        await person.says("he has a knife, he's here")
        conv = await app[STORE].conversation(person.conversation_id)
        assert conv.owner is Owner.QUEUE and (conv.flow, conv.state) == ("own", "closed_offer")
        await person.says(TYPED)
        transcript = await person.transcript()
        assert content.text("own.callback_number_given", "en") in transcript
        assert fake.texts()[-1] == content.text("handoff.number_not_kept", "en")
        await _nothing_in_clear(app, events)


async def test_without_danger_words_for_the_adviser_are_readable_before_their_turn(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Only danger's hand-off cuts a question short: queued by asking for an adviser at the
    # area question, what they write is stored as written at once (a console or a page that
    # reloads before the message's turn reads it as it is, not sealed).
    clock = Clock(_noon())
    async with running(settings_for(sqlite_url, tmp_path), clock=clock) as (app, _fake, _):
        engine, store = app[ENGINE], app[STORE]
        person = Someone(app, clock)
        for said in ("hello", "1", "1", "my ex", "no", "a programme near me", "hello again"):
            await person.says(said)
        await person.says("talk to someone")
        conv = await store.conversation(person.conversation_id)
        assert conv.owner is Owner.QUEUE
        assert engine.runner.private(conv.flow, conv.state), "not at the area question"
        await engine.accept(InboundMessage("test", PERSON, "are you there?"))
        assert (await person.transcript())[-1] == "are you there?"
