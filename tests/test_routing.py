"""Handing a conversation to a human and back, quiet hours, idle close, retention, erasure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from helpline import app as app_module
from helpline import engine as engine_module
from helpline.app import CONTENT, ENGINE, ROUTING, STORE
from helpline.domain import InboundMessage, Owner
from helpline.errors import Forbidden, HelplineError, JustWritten, NotFound, QueueError
from helpline.ports import Priority
from helpline.routing import UNJOINED_AFTER
from tests.journey_support import Person, content_copy, with_test_programme
from tests.support import (
    OPEN_NOON,
    Clock,
    QueueThatCannotEnqueue,
    running,
    settings_for,
    wait_for,
)

PERSON = "+447700900456"
OTHER = "+447700900789"

# A winter night still to come (GMT, so 23:30 UTC is 23:30 in London): a fixed date became a
# past one, earlier than the messages' real arrival times, and the tests failed from then on.
_WINTER = datetime.now(UTC).year + 1


async def _to_queue(app, address: str = PERSON) -> str:  # type: ignore[no-untyped-def]
    engine = app[ENGINE]
    await engine.handle(InboundMessage("test", address, "hello"))
    accepted = await engine.handle(InboundMessage("test", address, "talk to someone"))
    return accepted.conversation_id


async def test_asking_for_an_adviser_queues_the_conversation_and_says_how_long(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        conv_id = await _to_queue(app)
        conv = await app[STORE].conversation(conv_id)
        assert conv.owner is Owner.QUEUE
        waiting = await app[ROUTING].queue.waiting()
        assert [e.conversation_id for e in waiting] == [conv_id]
        expected = app[CONTENT].text("handoff.waiting", "en", position=1, minutes=8)
        assert fake.texts()[-1] == expected


async def test_while_queued_the_bot_only_acknowledges_now_and_then_and_position_cancel_work(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        content = app[CONTENT]
        await _to_queue(app)
        await app[ENGINE].handle(InboundMessage("test", PERSON, "1"))
        assert fake.texts()[-1] == content.text("handoff.waiting_ack", "en")
        before = len(fake.sent)
        await app[ENGINE].handle(InboundMessage("test", PERSON, "2"))
        assert len(fake.sent) == before, "the bot answered every message while queued"
        if "cmd_position" in content.keywords:
            await app[ENGINE].handle(InboundMessage("test", PERSON, "position"))
            assert fake.texts()[-1].startswith(
                content.text("handoff.waiting", "en", position=1, minutes=8)[:30]
            )
        if "cmd_cancel" in content.keywords:
            await app[ENGINE].handle(InboundMessage("test", PERSON, "cancel"))
            assert content.text("handoff.cancelled", "en") in fake.texts()
            assert await app[ROUTING].queue.waiting() == []


async def test_an_adviser_takes_over_talks_and_hands_back_to_the_bot(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        content, routing, engine = app[CONTENT], app[ROUTING], app[ENGINE]
        conv_id = await _to_queue(app)
        await routing.claim(conv_id, "sam", capacity=2)
        assert fake.texts()[-1] == content.text("handoff.joined", "en")
        await routing.say(conv_id, "sam", "Hello, I'm here to listen.")
        assert fake.texts()[-1] == "Hello, I'm here to listen."

        before = len(fake.sent)
        await engine.handle(InboundMessage("test", PERSON, "menu"))
        assert len(fake.sent) == before, "the bot spoke over the adviser"

        with pytest.raises(Forbidden):
            await routing.say(conv_id, "alex", "not my conversation")

        await routing.end(conv_id, "sam", "signposted")
        assert fake.texts()[-1] == content.text("handoff.ended", "en")
        # The bot is back, where the adviser left it: at the choice of who is writing.
        await engine.handle(InboundMessage("test", PERSON, "1"))
        assert content.text("own.start", "en") in fake.texts()[-2:]

        transcript = [m.text for m in await app[STORE].transcript(conv_id)]
        assert content.text("event.claimed", "en", adviser="sam") in transcript
        assert content.text("event.ended", "en", adviser="sam", outcome="signposted") in transcript


async def test_the_in_process_queue_is_rebuilt_from_the_database_after_a_restart(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = settings_for(sqlite_url, tmp_path)
    async with running(settings) as (app, _fake, _):
        first = await _to_queue(app, PERSON)
        second = await _to_queue(app, OTHER)
        await app[ROUTING].claim(first, "sam", capacity=1)
    async with running(settings) as (app, _fake, _):
        queue = app[ROUTING].queue
        assert [e.conversation_id for e in await queue.waiting()] == [second]
        assert await queue.claims() == {first: "sam"}


async def test_adviser_messages_wait_for_the_end_of_quiet_hours(
    sqlite_url: str, tmp_path: Path
) -> None:
    # 23:30 in London in winter (GMT): inside a 22:00-08:00 quiet window.
    clock = Clock(datetime(_WINTER, 12, 1, 23, 30, tzinfo=UTC))
    async with running(settings_for(sqlite_url, tmp_path), clock=clock) as (app, fake, _):
        conv_id = await _to_queue(app)
        conv = await app[STORE].conversation(conv_id)
        await app[STORE].update_contact_settings(
            conv.contact_key, quiet_hours={"start": "22:00", "end": "08:00"}
        )
        await app[ROUTING].claim(conv_id, "sam", capacity=1)
        await app[ROUTING].say(conv_id, "sam", "Is now a good time?")
        assert "Is now a good time?" not in fake.texts()

        assert await app[ENGINE].release_held() == 0  # still quiet
        clock.now = datetime(_WINTER, 12, 2, 8, 5, tzinfo=UTC)
        assert await app[ENGINE].release_held() == 1
        assert fake.texts()[-2:] == [
            app[CONTENT].text("handoff.joined", "en"),
            "Is now a good time?",
        ]


async def test_a_quiet_bot_conversation_is_closed_and_the_next_message_starts_afresh(
    sqlite_url: str, tmp_path: Path
) -> None:
    clock = Clock(datetime.now(UTC))
    async with running(settings_for(sqlite_url, tmp_path), clock=clock) as (app, fake, _):
        engine, store = app[ENGINE], app[STORE]
        first = (await engine.handle(InboundMessage("test", PERSON, "hello"))).conversation_id
        assert await engine.close_idle(timedelta(minutes=30)) == 0
        clock.now += timedelta(minutes=31)
        assert await engine.close_idle(timedelta(minutes=30)) == 1
        assert (await store.conversation(first)).closed
        second = (await engine.handle(InboundMessage("test", PERSON, "hello"))).conversation_id
        assert second != first
        assert fake.texts().count(app[CONTENT].text("welcome.intro", "en")) == 2


async def test_a_quiet_conversation_someone_has_just_written_in_is_not_closed(
    sqlite_url: str, tmp_path: Path
) -> None:
    # The idle close lists quiet conversations, then closes each under its lock. Someone
    # quiet for half an hour writes meanwhile: their message was answered inside a closed
    # conversation, and the hand-off owed after danger (the queue down for a moment) was
    # dropped, closed, with nobody ever queued for them.
    clock = Clock(datetime.now(UTC))
    async with running(settings_for(sqlite_url, tmp_path), clock=clock) as (app, fake, _):
        engine, store, routing = app[ENGINE], app[STORE], app[ROUTING]
        cid = (await engine.handle(InboundMessage("test", PERSON, "hello"))).conversation_id
        clock.now += timedelta(minutes=31)
        # Written, stored, not yet answered: not closed under them.
        await engine.accept(InboundMessage("test", PERSON, "1"))
        assert await engine.close_idle(timedelta(minutes=30)) == 0
        await engine.process(cid)
        assert not (await store.conversation(cid)).closed

        # Danger while the queue cannot take them: the hand-off is owed, so not closed.
        clock.now += timedelta(minutes=31)
        routing.queue = flaky = QueueThatCannotEnqueue(routing.queue)
        await engine.handle(InboundMessage("test", PERSON, "he's back and he has a knife"))
        assert app[CONTENT].text("risk.immediate", "en") in fake.texts()
        assert await engine.close_idle(timedelta(minutes=30)) == 0
        flaky.down = False
        await engine.stop_retries()
        assert await engine.retry_handoffs() == 1
        conv = await store.conversation(cid)
        assert not conv.closed and conv.owner is Owner.QUEUE
        assert cid in [e.conversation_id for e in await routing.queue.waiting()]


async def test_an_adviser_cannot_end_as_the_person_writes_unread(
    sqlite_url: str, tmp_path: Path
) -> None:
    # The person typed "1" to the adviser as the adviser pressed End: after the end the
    # conversation was back at "who is this for?", so "1" was taken as "my own behaviour"
    # and the journey began, and the adviser never saw the message.
    async with running(settings_for(sqlite_url, tmp_path), clock=Clock(OPEN_NOON)) as (
        app,
        fake,
        _,
    ):
        engine, routing, store = app[ENGINE], app[ROUTING], app[STORE]
        cid = await _to_queue(app)
        await routing.claim(cid, "alex", 3)
        await engine.accept(InboundMessage("test", PERSON, "1"))
        with pytest.raises(JustWritten):
            await routing.end(cid, "alex", "signposted")
        conv = await store.conversation(cid)
        assert conv.owner is Owner.ADVISER and conv.adviser == "alex"
        await engine.process(cid)  # read by the adviser, not by the journey
        assert (await store.conversation(cid)).flow != "own"
        await routing.end(cid, "alex", "signposted")
        assert (await store.conversation(cid)).owner is Owner.BOT


async def test_retention_deletes_old_transcripts_and_addresses(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, _fake, _):
        store = app[STORE]
        conv_id = (
            await app[ENGINE].handle(InboundMessage("test", PERSON, "hello"))
        ).conversation_id
        kept = await store.purge(datetime.now(UTC) - timedelta(days=30))
        assert kept["conversations"] == 0
        counts = await store.purge(datetime.now(UTC) + timedelta(minutes=1))
        assert counts["conversations"] == 1 and counts["messages"] >= 2
        with pytest.raises(NotFound):
            await store.conversation(conv_id)


async def test_delete_my_data_erases_after_confirming_and_says_what_went(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        content, engine, store = app[CONTENT], app[ENGINE], app[STORE]
        conv_id = (await engine.handle(InboundMessage("test", PERSON, "hello"))).conversation_id
        await engine.handle(InboundMessage("test", PERSON, "delete my data"))
        assert fake.texts()[-1] == content.text("erase.confirm", "en")
        await engine.handle(InboundMessage("test", PERSON, "yes"))
        assert fake.texts()[-1].startswith(
            content.text("erase.done", "en", conversations=1, messages=0)[:20]
        )
        with pytest.raises(NotFound):
            await store.conversation(conv_id)
        assert await store.sealed_address(conv_id) is None


async def test_danger_while_waiting_for_a_programme_moves_them_to_the_helpline_advisers(
    database_url: str, tmp_path: Path
) -> None:
    # After a consented referral they wait in the programme's queue, which only its staff
    # take from, and they may be closed: danger written there must reach the helpline.
    root = content_copy(tmp_path)
    with_test_programme(root)
    settings = settings_for(database_url, tmp_path, content_dir=root)
    async with running(settings) as (app, fake, _):
        person = Person(app, fake)
        for said in ("hello", "1", "1", "my ex", "no", "a programme near me", "NP20 1"):
            await person.says(said)
        await person.says("refer me")
        await person.says("yes")
        conv = await person.conversation()
        assert (conv.owner, conv.answers["queue"]) == (
            Owner.QUEUE,
            "programme:gwent-community-programme",
        )
        assert "risk.suicide" in await person.says("I'm going to kill myself tonight")
        conv = await person.conversation()
        assert (conv.owner, conv.answers["queue"]) == (Owner.QUEUE, "helpline")
        entries = await app[ROUTING].queue.waiting(["helpline"])
        assert [(e.conversation_id, e.priority) for e in entries] == [(conv.id, Priority.SUICIDE)]
        assert [h.queue for h in await app[STORE].open_handoffs()] == ["helpline"]


class QueueThatCannotRemove:
    """The app's real queue, except that removing from it fails as a queue that has lost
    Redis does."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue

    def __getattr__(self, name: str) -> Any:
        return getattr(self.queue, name)

    async def remove(self, conversation_id: str) -> None:
        raise QueueError("the routing queue is unavailable")


async def test_delete_my_data_while_queued_erases_even_when_the_queue_cannot_be_reached(
    database_url: str, tmp_path: Path
) -> None:
    # Waiting for an adviser, they ask to delete everything, and Redis is down at that
    # moment: the erasure used to be dropped silently, with no reply and nothing retried.
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        content, engine, store, routing = app[CONTENT], app[ENGINE], app[STORE], app[ROUTING]
        for said in ("hello", "adviser", "delete my data"):
            accepted = await engine.handle(InboundMessage("test", PERSON, said))
        assert (await store.conversation(accepted.conversation_id)).owner is Owner.QUEUE
        routing.queue = QueueThatCannotRemove(routing.queue)
        await engine.handle(InboundMessage("test", PERSON, "yes"))
        assert fake.texts()[-1].startswith(
            content.text("erase.done", "en", conversations=1, messages=0)[:20]
        )
        with pytest.raises(NotFound):
            await store.conversation(accepted.conversation_id)
        assert await store.transcript(accepted.conversation_id) == []


async def test_urgent_priority_goes_ahead_of_earlier_normal_requests(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, _fake, _):
        normal = await _to_queue(app, OTHER)
        store, routing = app[STORE], app[ROUTING]
        urgent_conv = (
            await app[ENGINE].handle(InboundMessage("test", PERSON, "hi"))
        ).conversation_id
        conv = await store.conversation(urgent_conv)
        conv.risk_level = "suicide"
        await routing.request(conv, "helpline", "test")
        waiting = await routing.queue.waiting()
        assert [e.conversation_id for e in waiting] == [urgent_conv, normal]
        assert waiting[0].priority is Priority.SUICIDE


async def test_out_of_hours_the_opening_time_is_told_in_the_person_s_language(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Sunday 29 November 2026, 20:00 in London: closed until Monday 09:00 (content/hours.yaml).
    clock = Clock(datetime(2026, 11, 29, 20, 0, tzinfo=UTC))
    async with running(settings_for(sqlite_url, tmp_path), clock=clock) as (app, fake, _):
        engine, content = app[ENGINE], app[CONTENT]
        await engine.handle(InboundMessage("test", "+447700900301", "hi"))
        await engine.handle(InboundMessage("test", "+447700900301", "talk to someone"))
        english = content.text("handoff.closed", "en", opens="Monday 30 November, 09:00")
        assert english in fake.texts("+447700900301")
        await engine.handle(InboundMessage("test", "+447700900302", "Cymraeg"))
        await engine.handle(InboundMessage("test", "+447700900302", "siarad a rhywun"))
        welsh = content.text("handoff.closed", "cy", opens="Dydd Llun 30 Tachwedd, 09:00")
        assert welsh in fake.texts("+447700900302")


async def test_a_line_closed_until_further_notice_still_takes_the_person_in(
    sqlite_url: str, tmp_path: Path
) -> None:
    import yaml

    from tests.journey_support import content_copy

    # Closed every day for longer than anyone can see ahead (a line paused indefinitely).
    root = content_copy(tmp_path)
    hours = yaml.safe_load((root / "hours.yaml").read_text(encoding="utf-8"))
    start = datetime(2026, 11, 24, tzinfo=UTC).date()
    hours["closures"] = [
        {"date": (start + timedelta(days=n)).isoformat(), "queues": ["helpline"], "name": "paused"}
        for n in range(500)
    ]
    (root / "hours.yaml").write_text(yaml.safe_dump(hours), encoding="utf-8")
    settings = settings_for(sqlite_url, tmp_path, content_dir=root)
    clock = Clock(datetime(2026, 11, 24, 12, 0, tzinfo=UTC))
    async with running(settings, clock=clock) as (app, fake, _):
        engine = app[ENGINE]
        await engine.handle(InboundMessage("test", "+447700900303", "hi"))
        await engine.handle(InboundMessage("test", "+447700900303", "talk to someone"))
        told = "\n".join(fake.texts("+447700900303"))
        assert app[CONTENT].text("handoff.closed_unknown", "en") in told
        key = engine.privacy.contact_key("test", "+447700900303")
        conv = await app[STORE].open_conversation(key)
        assert conv is not None and conv.owner is Owner.QUEUE


async def test_an_adviser_claiming_just_as_the_person_cancels_does_not_take_the_conversation(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        content, routing, engine = app[CONTENT], app[ROUTING], app[ENGINE]
        conv_id = await _to_queue(app)
        claim = routing.queue.claim

        async def claim_as_the_person_cancels(conversation_id: str, adviser: str, cap: int):  # type: ignore[no-untyped-def]
            # The person's "cancel" is handled between the queue's claim and the join.
            entry = await claim(conversation_id, adviser, cap)
            await engine.handle(InboundMessage("test", PERSON, "cancel"))
            return entry

        monkeypatch.setattr(routing.queue, "claim", claim_as_the_person_cancels)
        with pytest.raises(QueueError):
            await routing.claim(conv_id, "sam", capacity=2)
        conv = await app[STORE].conversation(conv_id)
        assert (conv.owner, conv.adviser) == (Owner.BOT, None)
        assert content.text("handoff.joined", "en") not in fake.texts()
        assert await routing.queue.claims() == {}
        assert await routing.queue.waiting() == []


async def test_a_claim_that_fails_half_way_leaves_the_conversation_waiting_for_the_next_adviser(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        content, routing, store = app[CONTENT], app[ROUTING], app[STORE]
        conv_id = await _to_queue(app)
        save_turn = store.save_turn

        async def fails(*args: object, **kwargs: object) -> None:
            raise HelplineError("the database went away")

        monkeypatch.setattr(store, "save_turn", fails)
        with pytest.raises(HelplineError):
            await routing.claim(conv_id, "sam", capacity=2)
        monkeypatch.setattr(store, "save_turn", save_turn)
        assert [e.conversation_id for e in await routing.queue.waiting()] == [conv_id]
        assert await routing.queue.claims() == {}
        await routing.claim(conv_id, "alex", capacity=2)
        assert (await store.conversation(conv_id)).adviser == "alex"
        assert fake.texts()[-1] == content.text("handoff.joined", "en")


async def test_released_or_transferred_the_conversation_waits_even_if_the_queue_had_lost_it(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, _fake, _):
        routing = app[ROUTING]
        first, second = await _to_queue(app, PERSON), await _to_queue(app, OTHER)
        for conv_id in (first, second):
            await routing.claim(conv_id, "sam", capacity=2)
            await routing.queue.remove(conv_id)  # the queue's record lost (a Redis flush)
        # ...or only its place, the claim kept (restored from the database without it).
        await routing.queue.restore([], {first: "sam"})
        await routing.release(first, "sam")
        await routing.transfer(second, "sam", "programme:example", "")
        waiting = {e.conversation_id: e.queue for e in await routing.queue.waiting()}
        assert waiting == {first: "helpline", second: "programme:example"}
        assert await routing.queue.claims() == {}


async def test_risk_raised_while_with_an_adviser_goes_with_the_conversation_back_to_the_queue(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, _fake, _):
        routing, engine = app[ROUTING], app[ENGINE]
        normal = await _to_queue(app, OTHER)
        conv_id = await _to_queue(app, PERSON)
        await routing.claim(conv_id, "sam", capacity=2)
        await engine.handle(
            InboundMessage("test", PERSON, "I've got the pills here, I'm going to take them all")
        )
        await routing.release(conv_id, "sam")
        waiting = await routing.queue.waiting()
        assert [e.conversation_id for e in waiting] == [conv_id, normal]
        assert waiting[0].priority is Priority.SUICIDE
        (record,) = [r for r in await app[STORE].open_handoffs() if r.conversation_id == conv_id]
        assert record.priority is Priority.SUICIDE or record.priority == int(Priority.SUICIDE)


async def test_an_adviser_cannot_write_to_a_conversation_the_person_has_closed(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, _fake, _):
        routing, store = app[ROUTING], app[STORE]
        conv_id = await _to_queue(app)
        await routing.claim(conv_id, "sam", capacity=2)
        conv = await store.conversation(conv_id)
        conv.closed = True
        await store.save_turn(conv, [], [])
        with pytest.raises(Forbidden):
            await routing.say(conv_id, "sam", "Are you still there?")
        await routing.end(conv_id, "sam", "no_further_action")  # the adviser can still end it
        assert await routing.queue.claims() == {}


async def test_danger_written_just_after_stop_keeps_the_conversation_open_and_queued(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        engine, store, content = app[ENGINE], app[STORE], app[CONTENT]
        await engine.handle(InboundMessage("test", PERSON, "hello"))
        # Two texts sent quickly: both wait for the same turn.
        stop = await engine.accept(InboundMessage("test", PERSON, "stop"))
        await engine.accept(InboundMessage("test", PERSON, "no wait, he's back and has a knife"))
        await engine.process(stop.conversation_id)
        conv = await store.conversation(stop.conversation_id)
        assert (conv.closed, conv.owner) == (False, Owner.QUEUE)
        assert [e.conversation_id for e in await app[ROUTING].queue.waiting()] == [conv.id]
        assert content.text("risk.immediate", "en") in fake.texts()
        assert not (await store.contact_settings(conv.contact_key)).get("opted_out")


async def test_a_first_message_asking_for_an_adviser_first_hears_no_name_is_needed(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        content = app[CONTENT]
        await app[ENGINE].handle(InboundMessage("test", PERSON, "talk to someone"))
        texts = fake.texts()
        promise = content.text("welcome.anonymous_short", "en")
        queued = content.text("handoff.waiting", "en", position=1, minutes=8)
        assert promise in texts and queued in texts
        assert texts.index(promise) < texts.index(queued)


async def test_emergency_guidance_is_never_held_for_quiet_hours_even_when_answered_late(
    sqlite_url: str, tmp_path: Path
) -> None:
    # 23:30 in London in winter (GMT): inside a 22:00-08:00 quiet window.
    clock = Clock(datetime(_WINTER, 12, 1, 23, 30, tzinfo=UTC))
    async with running(settings_for(sqlite_url, tmp_path), clock=clock) as (app, fake, _):
        engine, store, content = app[ENGINE], app[STORE], app[CONTENT]
        first = await engine.handle(InboundMessage("test", PERSON, "hello", None, clock.now))
        conv = await store.conversation(first.conversation_id)
        await store.update_contact_settings(
            conv.contact_key, quiet_hours={"start": "22:00", "end": "08:00"}
        )
        risky = InboundMessage("test", PERSON, "he's back and he has a knife", None, clock.now)
        accepted = await engine.accept(risky)
        clock.now += timedelta(minutes=20)  # answered late: after a restart, say
        await engine.process(accepted.conversation_id)
        assert content.text("risk.immediate", "en") in fake.texts()


async def _danger_with_the_queue_down(
    app: Any, *first: str, at: datetime | None = None
) -> tuple[QueueThatCannotEnqueue, str]:
    """The routing queue refusing, the person says hello (and `first`), then writes about
    danger (each written `at`, if given): a hand-off is owed. Returns the queue and the
    conversation's id."""
    engine, routing = app[ENGINE], app[ROUTING]
    queue = QueueThatCannotEnqueue(routing.queue)
    routing.queue = queue
    when = {} if at is None else {"received_at": at}
    for said in ("hello", *first):
        await engine.handle(InboundMessage("test", PERSON, said, **when))
    accepted = await engine.handle(InboundMessage("test", PERSON, "he has a knife", **when))
    return queue, accepted.conversation_id


async def test_with_the_queue_down_danger_still_gets_the_guidance_and_asking_is_answered(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        engine, content, routing = app[ENGINE], app[CONTENT], app[ROUTING]
        queue = QueueThatCannotEnqueue(routing.queue)
        routing.queue = queue
        unavailable = content.text("handoff.unavailable", "en")
        await engine.handle(InboundMessage("test", PERSON, "hello"))
        await engine.handle(InboundMessage("test", PERSON, "he's back and he has a knife"))
        assert fake.texts()[-2:] == [content.text("risk.immediate", "en"), unavailable]
        accepted = await engine.handle(InboundMessage("test", PERSON, "talk to someone"))
        assert fake.texts()[-1] == unavailable
        conv = await app[STORE].conversation(accepted.conversation_id)
        assert conv.owner is Owner.BOT
        assert await app[STORE].open_handoffs() == []  # no wait recorded that never began
        queue.down = False  # back: asking again works
        await engine.handle(InboundMessage("test", PERSON, "talk to someone"))
        assert [e.conversation_id for e in await queue.waiting()] == [conv.id]


async def test_asking_for_an_adviser_while_the_queue_is_still_down_keeps_danger_s_hand_off_owed(
    database_url: str, tmp_path: Path
) -> None:
    # Told after danger that no adviser can be reached, they type "adviser" as the reply
    # asks, while the queue still refuses: that used to replace the hand-off danger owed
    # with an ordinary one and drop it, so nobody ever queued them once the queue was back.
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        engine, content, routing = app[ENGINE], app[CONTENT], app[ROUTING]
        queue, conv_id = await _danger_with_the_queue_down(app)
        await engine.handle(InboundMessage("test", PERSON, "talk to someone"))
        assert fake.texts()[-1] == content.text("handoff.unavailable", "en")
        queue.down = False
        assert await engine.retry_handoffs() == 1  # housekeeping, on any instance
        entries = await routing.queue.waiting()
        assert [(e.conversation_id, e.priority) for e in entries] == [(conv_id, Priority.IMMEDIATE)]


class StoreThatCannotRecordAHandOff:
    """The app's store, with the hand-off's record failing once as a database error does."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.failures = 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def open_handoff(self, record: Any) -> None:
        if self.failures:
            self.failures -= 1
            raise OperationalError("INSERT INTO handoffs", {}, Exception("disk I/O error"))
        await self.store.open_handoff(record)


@pytest.mark.parametrize("after", ["asking", "danger"])
async def test_a_hand_off_whose_record_fails_leaves_nobody_in_the_queue_and_is_made_later(
    database_url: str, tmp_path: Path, after: str
) -> None:
    # Queued but not recorded, an adviser would claim a wait the person was never told of
    # (and the claim would find them not waiting). They are told it did not work and the
    # queue is left empty; asking again works, and after danger it is owed and housekeeping
    # makes it, at the same priority.
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        engine, content, routing = app[ENGINE], app[CONTENT], app[ROUTING]
        routing.store = StoreThatCannotRecordAHandOff(routing.store)
        await engine.handle(InboundMessage("test", PERSON, "hello"))
        said = "talk to someone" if after == "asking" else "he's back with a knife"
        conv_id = (await engine.handle(InboundMessage("test", PERSON, said))).conversation_id
        assert fake.texts()[-1] == content.text("handoff.unavailable", "en")
        assert await routing.queue.waiting() == []
        assert (await app[STORE].conversation(conv_id)).owner is Owner.BOT
        if after == "asking":
            await engine.handle(InboundMessage("test", PERSON, "talk to someone"))
            priority = Priority.NORMAL
        else:
            assert fake.texts()[-2] == content.text("risk.immediate", "en")
            assert await engine.retry_handoffs() == 1  # housekeeping, on any instance
            priority = Priority.IMMEDIATE
        entries = await routing.queue.waiting()
        assert [(e.conversation_id, e.priority) for e in entries] == [(conv_id, priority)]
        assert len(await app[STORE].open_handoffs()) == 1


class HubThatCannotPublish:
    """The app's hub, with publishing failing as Redis does when it cannot be reached (on
    every topic, or on those given)."""

    def __init__(self, hub: Any, topics: tuple[str, ...] | None = None) -> None:
        self.hub = hub
        self.topics = topics

    def __getattr__(self, name: str) -> Any:
        return getattr(self.hub, name)

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        if self.topics is not None and topic not in self.topics:
            await self.hub.publish(topic, event)
            return
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


async def test_a_refusal_is_flagged_for_advisers_even_when_the_consoles_cannot_be_told(
    database_url: str, tmp_path: Path
) -> None:
    # Asked where the partner lives now, the service refuses and flags it for the advisers.
    # The flag's event to the consoles is a wake-up like any other: a hub that cannot take it
    # must not fail the turn (the note is kept, and the journey carries on).
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        engine, content, routing = app[ENGINE], app[CONTENT], app[ROUTING]
        failing = HubThatCannotPublish(engine.hub, topics=("queue",))
        engine.hub = routing.hub = failing
        await engine.handle(InboundMessage("test", PERSON, "hello"))
        accepted = await engine.handle(InboundMessage("test", PERSON, "where does she live now"))
        assert content.text("guardrail.whereabouts", "en") in fake.texts()
        transcript = [m.text for m in await app[STORE].transcript(accepted.conversation_id)]
        note = content.text("note.flagged", "en", reason="guardrail:whereabouts")
        assert note in transcript
        assert await app[STORE].pending_inbound(accepted.conversation_id) == []


async def test_danger_is_queued_even_when_the_consoles_cannot_be_told(
    database_url: str, tmp_path: Path
) -> None:
    # The hub only wakes the consoles: failing to, the hand-off must still be made in full
    # (queued, recorded, the person told), not fail the turn half-way after the queue took it.
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        engine, content, routing = app[ENGINE], app[CONTENT], app[ROUTING]
        routing.hub = HubThatCannotPublish(routing.hub)
        await engine.handle(InboundMessage("test", PERSON, "hello"))
        accepted = await engine.handle(InboundMessage("test", PERSON, "he's back with a knife"))
        conv = await app[STORE].conversation(accepted.conversation_id)
        assert conv.owner is Owner.QUEUE
        assert [e.conversation_id for e in await routing.queue.waiting()] == [conv.id]
        assert [h.conversation_id for h in await app[STORE].open_handoffs()] == [conv.id]
        assert content.text("risk.immediate", "en") in fake.texts()
        assert content.text("handoff.unavailable", "en") not in fake.texts()


@pytest.mark.parametrize("with_adviser", [False, True])
async def test_delete_my_data_can_be_confirmed_while_waiting_or_with_an_adviser(
    database_url: str, tmp_path: Path, with_adviser: bool
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        content, engine, store, routing = app[CONTENT], app[ENGINE], app[STORE], app[ROUTING]
        conv_id = await _to_queue(app)
        if with_adviser:
            await routing.claim(conv_id, "sam", capacity=2)
        await engine.handle(InboundMessage("test", PERSON, "delete my data"))
        assert content.text("erase.confirm", "en") in fake.texts()[-1]
        await engine.handle(InboundMessage("test", PERSON, "yes"))
        with pytest.raises(NotFound):
            await store.conversation(conv_id)
        assert fake.texts()[-1].startswith(
            content.text("erase.done", "en", conversations=1, messages=0)[:20]
        )
        assert await routing.queue.waiting() == [] and await routing.queue.claims() == {}


async def test_keeping_the_data_while_with_an_adviser_says_so_and_nothing_more(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        content, engine, store, routing = app[CONTENT], app[ENGINE], app[STORE], app[ROUTING]
        conv_id = await _to_queue(app)
        await routing.claim(conv_id, "sam", capacity=2)
        await engine.handle(InboundMessage("test", PERSON, "delete my data"))
        before = len(fake.texts())
        await engine.handle(InboundMessage("test", PERSON, "no"))
        assert fake.texts()[before:] == [content.text("erase.kept", "en")]
        conv = await store.conversation(conv_id)
        assert (conv.owner, conv.adviser) == (Owner.ADVISER, "sam")
        before = len(fake.texts())
        await engine.handle(InboundMessage("test", PERSON, "1"))
        assert fake.texts()[before:] == [], "the bot spoke over the adviser"


@pytest.mark.parametrize(
    "meanwhile",
    [
        [],  # nothing: the adviser joins and speaks
        ["actually, can I ask something first"],
        ["he's back and he has a knife"],
    ],
)
async def test_a_delete_question_left_unanswered_lapses_and_a_later_yes_to_the_adviser_keeps_all(
    database_url: str, tmp_path: Path, meanwhile: list[str]
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, _fake, _):
        engine, store, routing = app[ENGINE], app[STORE], app[ROUTING]
        conv_id = await _to_queue(app)
        await engine.handle(InboundMessage("test", PERSON, "delete my data"))
        for said in meanwhile:
            await engine.handle(InboundMessage("test", PERSON, said))
        await routing.claim(conv_id, "sam", capacity=2)
        await routing.say(conv_id, "sam", "Hello. Is it safe to talk?")
        await engine.handle(InboundMessage("test", PERSON, "ok"))  # one of the words for yes
        conv = await store.conversation(conv_id)  # not erased
        assert (conv.owner, conv.adviser) == (Owner.ADVISER, "sam")
        assert "ok" in [m.text for m in await store.transcript(conv_id)]


async def test_after_danger_with_the_queue_down_the_person_is_queued_once_it_is_back(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "HAND_OFF_RETRY_SECONDS", 0.05)
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        engine, content, routing = app[ENGINE], app[CONTENT], app[ROUTING]
        queue = QueueThatCannotEnqueue(routing.queue)
        routing.queue = queue
        await engine.handle(InboundMessage("test", PERSON, "hello"))
        accepted = await engine.handle(InboundMessage("test", PERSON, "he has a knife, he's here"))
        assert fake.texts()[-1] == content.text("handoff.unavailable", "en")
        # They ask to delete everything and leave the question unanswered.
        await engine.handle(InboundMessage("test", PERSON, "delete my data"))
        queue.down = False
        await wait_for(
            lambda: bool(
                fake.texts()[-1].startswith(
                    content.text("handoff.waiting", "en", position=1, minutes=8)[:40]
                )
            )
        )
        waiting = await queue.waiting()
        assert [e.conversation_id for e in waiting] == [accepted.conversation_id]
        assert waiting[0].priority is Priority.IMMEDIATE
        # The question lapsed when they were queued: "ok" to that erases nothing.
        await engine.handle(InboundMessage("test", PERSON, "ok"))
        assert (await app[STORE].conversation(accepted.conversation_id)).owner is Owner.QUEUE


async def test_a_hand_off_owed_after_danger_is_made_by_housekeeping_after_a_restart(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The queue refuses the hand-off after danger, and the instance that owed it stops
    # before the queue is back (its own retry stops with it). Housekeeping on the next
    # instance to run it queues them, with the same priority.
    monkeypatch.setattr(app_module, "HOUSEKEEPING_SECONDS", 0.05)
    settings = settings_for(database_url, tmp_path)
    async with running(settings) as (app, fake, _):
        _queue, conv_id = await _danger_with_the_queue_down(app)
        assert fake.texts()[-1] == app[CONTENT].text("handoff.unavailable", "en")
    async with running(settings) as (app, fake, _):
        content = app[CONTENT]
        waiting = content.text("handoff.waiting", "en", position=1, minutes=8)[:40]
        await wait_for(lambda: any(t.startswith(waiting) for t in fake.texts()))
        entries = await app[ROUTING].queue.waiting()
        assert [e.conversation_id for e in entries] == [conv_id]
        assert entries[0].priority is Priority.IMMEDIATE
        conv = await app[STORE].conversation(conv_id)
        assert conv.owner is Owner.QUEUE
        # Made once: later rounds of housekeeping leave it be.
        await app[ENGINE].retry_handoffs()
        assert [t for t in fake.texts() if t.startswith(waiting)] == [fake.texts()[-1]]


async def test_a_hand_off_owed_is_dropped_once_the_person_has_left(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        engine, store = app[ENGINE], app[STORE]
        queue, conv_id = await _danger_with_the_queue_down(app)
        await engine.stop_retries()  # as if this instance had stopped
        await engine.handle(InboundMessage("test", PERSON, "stop"))
        assert (await store.conversation(conv_id)).closed
        queue.down = False
        before = len(fake.texts())
        assert await engine.retry_handoffs() == 0
        assert await queue.waiting() == [] and fake.texts()[before:] == []


async def test_a_hand_off_owed_after_danger_can_be_turned_down(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        engine, content = app[ENGINE], app[CONTENT]
        queue, conv_id = await _danger_with_the_queue_down(app)
        await engine.stop_retries()  # housekeeping's turn, below
        await engine.handle(InboundMessage("test", PERSON, "cancel"))
        assert content.text("handoff.not_connecting", "en") in fake.texts()
        queue.down = False
        before = len(fake.texts())
        await engine.retry_handoffs()
        assert await queue.waiting() == [] and fake.texts()[before:] == []
        conv = await app[STORE].conversation(conv_id)
        assert conv.owner is Owner.BOT and not conv.closed


async def test_a_hand_off_owed_waits_while_a_call_back_number_is_asked_and_a_call_back_ends_it(
    database_url: str, tmp_path: Path
) -> None:
    # After danger, with the queue refusing, they choose to be called back instead. Queued
    # while being asked for the number, the number they type next would have gone to the
    # queue as an ordinary message (in clear, to advisers' screens), and booked nothing.
    number = "07700 900123"
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        engine, store, content = app[ENGINE], app[STORE], app[CONTENT]
        queue, conv_id = await _danger_with_the_queue_down(app, "yes")
        await engine.stop_retries()
        for said in ("myself", "partner", "no", "call me back", "tomorrow morning", "2"):
            await engine.handle(InboundMessage("test", PERSON, said))
        conv = await store.conversation(conv_id)
        assert engine.runner.private(conv.flow, conv.state), "not at the number question"
        queue.down = False
        await engine.retry_handoffs()  # not now: they are giving a number
        assert await queue.waiting() == []
        await engine.handle(InboundMessage("test", PERSON, number))
        assert content.text("own.callback_done", "en") in fake.texts()
        await engine.retry_handoffs()  # nor once the call-back is booked
        assert await queue.waiting() == []
        texts = [m.text for m in await store.transcript(conv_id)]
        assert not any("900123" in t for t in texts)


async def test_danger_at_a_question_not_kept_in_clear_is_queued_once_they_stop_typing(
    database_url: str, tmp_path: Path
) -> None:
    # Danger written while asked for their area (an answer not kept in clear), with the queue
    # refusing: the hand-off waits while they may be typing the answer, but a person in
    # crisis may never write again. It used to wait for their next message, for ever.
    # At a moment the line is open, whatever the time the suite runs (the queue's answer
    # differs out of hours), with every message written then.
    clock = Clock(OPEN_NOON)
    async with running(settings_for(database_url, tmp_path), clock=clock) as (app, fake, _):
        engine, store, routing = app[ENGINE], app[STORE], app[ROUTING]
        await engine.stop_retries()
        for said in ("hello", "1", "1", "my ex", "no", "a programme near me", "hello again"):
            accepted = await engine.handle(
                InboundMessage("test", PERSON, said, received_at=clock.now)
            )
        conv = await store.conversation(accepted.conversation_id)
        assert engine.runner.private(conv.flow, conv.state), "not at a question kept sealed"
        queue, conv_id = await _danger_with_the_queue_down(app, at=clock.now)
        assert conv_id == conv.id
        queue.down = False
        clock.now += timedelta(seconds=30)
        await engine.retry_handoffs()  # they may be typing their answer: not yet
        assert await queue.waiting() == []
        clock.now += timedelta(minutes=3)
        assert await engine.retry_handoffs() == 1
        entries = await routing.queue.waiting()
        assert [(e.conversation_id, e.priority) for e in entries] == [(conv_id, Priority.IMMEDIATE)]
        assert (await store.conversation(conv_id)).owner is Owner.QUEUE
        waiting = app[CONTENT].text("handoff.waiting", "en").partition("{")[0]
        assert fake.texts()[-1].startswith(waiting)  # and they are told


async def test_danger_after_asking_to_delete_then_ok_to_the_queue_erases_nothing(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        engine, store, content = app[ENGINE], app[STORE], app[CONTENT]
        first = await engine.handle(InboundMessage("test", PERSON, "hello"))
        await engine.handle(InboundMessage("test", PERSON, "delete my data"))
        await engine.handle(InboundMessage("test", PERSON, "he's back, he has a knife"))
        assert content.text("risk.immediate", "en") in fake.texts()
        await engine.handle(InboundMessage("test", PERSON, "ok"))  # to "an adviser will join"
        conv = await store.conversation(first.conversation_id)  # not erased
        assert conv.owner is Owner.QUEUE
        assert [e.conversation_id for e in await app[ROUTING].queue.waiting()] == [conv.id]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def queue_settings(request: pytest.FixtureRequest, sqlite_url: str, tmp_path: Path) -> Any:
    """The service's settings with the in-process queue, or with the Redis one."""
    if request.param == "memory":
        return settings_for(sqlite_url, tmp_path)
    redis_url, prefix = (request.getfixturevalue(f) for f in ("redis_url", "redis_prefix"))
    return settings_for(sqlite_url, tmp_path, redis_url=redis_url, redis_prefix=prefix)


async def test_a_claim_no_adviser_joined_goes_back_to_waiting_after_a_while(
    queue_settings: Any,
) -> None:
    # The queue gives the conversation to an adviser first and the adviser joins it after:
    # an instance killed between the two left it claimed in the queue and waiting in the
    # database, so nobody could claim it, and its adviser could not release it, for good.
    from tests.console_support import PLUGINS

    clock = Clock()
    async with running(queue_settings, plugins=PLUGINS, clock=clock) as (app, fake, _):
        routing, store = app[ROUTING], app[STORE]
        conv_id = await _to_queue(app)
        assert await routing.queue.claim(conv_id, "sam", 2) is not None  # ... and then killed
        with pytest.raises(Forbidden):
            await routing.release(conv_id, "sam")
        assert await routing.settle_claims() == 0  # it may still be joining
        clock.now += timedelta(seconds=30)
        assert await routing.settle_claims() == 0
        clock.now += UNJOINED_AFTER
        assert await routing.settle_claims() == 1
        assert [e.conversation_id for e in await routing.queue.waiting()] == [conv_id]
        conv = await routing.claim(conv_id, "alex", capacity=2)
        assert conv.adviser == "alex" and (await store.conversation(conv_id)).adviser == "alex"
        assert fake.texts()[-1] == app[CONTENT].text("handoff.joined", "en")
        clock.now += timedelta(minutes=5)
        assert await routing.settle_claims() == 0, "a joined claim is left alone"
