"""The engine end to end on SQLite and the real PostgreSQL: welcome, order, restart, duplicates."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import flows
from handoff.locks_redis import LockUnavailable, RedisLocks
from helpline import app as app_module
from helpline.app import CONTENT, RETRY_UNANSWERED_AFTER, ROUTING, STORE
from helpline.domain import Delivery, InboundMessage, OutboundMessage
from helpline.errors import DuplicateMessage, NotSent
from helpline.flowkit import FlowSpec, State, Turn
from helpline.storage import SqlStore
from tests.support import (
    Clock,
    FakeChannel,
    engine_of,
    redis_not_answering,
    running,
    settings_for,
    wait_for,
)

PHONE = "+447700900123"
OTHER = "+447700900124"


async def test_first_message_is_answered_with_the_welcome_and_the_choice(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        await engine_of(app).handle(InboundMessage("test", PHONE, "hello"))
        content = app[CONTENT]
        welcome = next(f for f in flows.ALL if f.name == "welcome")
        first = welcome.state(welcome.initial)
        assert fake.texts(PHONE)[0] == content.text("welcome.intro", "en")
        assert fake.sent[-1].reply.options == tuple(
            content.text(o.label, "en") for o in first.options
        )


def _echo(turn: Turn) -> None:
    turn.say_text(f"heard: {turn.text}")


ECHO = FlowSpec(
    name="welcome",
    initial="echo",
    states=(State("echo", enter=(_echo,), free_text="heard"),),
    transitions=({"trigger": "heard", "source": "echo", "dest": "echo"},),
)


async def test_many_messages_at_once_are_answered_in_order_once_each(
    database_url: str, tmp_path: Path
) -> None:
    settings = settings_for(database_url, tmp_path, messages_per_minute=1000)
    async with running(settings, journeys=(ECHO,)) as (app, fake, _):
        engine = engine_of(app)
        await engine.handle(InboundMessage("test", PHONE, "first"))
        words = [f"message {i}" for i in range(40)]
        # Stored one after another (as a channel would), handled concurrently.
        for i, word in enumerate(words):
            await engine.submit(InboundMessage("test", PHONE, word, external_id=f"m{i}"))
        await wait_for(lambda: len(fake.sent) >= 41)
        await engine.drain()
        assert fake.texts() == ["heard: first"] + [f"heard: {w}" for w in words]


async def test_concurrent_conversations_do_not_mix(database_url: str, tmp_path: Path) -> None:
    async with running(settings_for(database_url, tmp_path), journeys=(ECHO,)) as (app, fake, _):
        engine = engine_of(app)
        people = [f"+4477009001{i:02d}" for i in range(12)]
        await asyncio.gather(
            *(engine.handle(InboundMessage("test", p, f"from {p}")) for p in people)
        )
        for p in people:
            assert fake.texts(p) == [f"heard: from {p}"]


async def test_a_redelivered_message_is_handled_once(database_url: str, tmp_path: Path) -> None:
    async with running(settings_for(database_url, tmp_path), journeys=(ECHO,)) as (app, fake, _):
        engine = engine_of(app)
        await engine.handle(InboundMessage("test", PHONE, "once", external_id="SM1"))
        try:
            await engine.handle(InboundMessage("test", PHONE, "once", external_id="SM1"))
        except DuplicateMessage:
            pass
        else:
            raise AssertionError("the second delivery was accepted")
        assert fake.texts() == ["heard: once"]


async def test_a_redelivery_arriving_with_other_messages_fails_alone(
    database_url: str, tmp_path: Path
) -> None:
    # On SQLite, writes arriving together are committed together: a duplicate among them
    # must not cost anyone else their message.
    async with running(settings_for(database_url, tmp_path), journeys=(ECHO,)) as (app, fake, _):
        engine = engine_of(app)
        await engine.handle(InboundMessage("test", PHONE, "first", external_id="SM1"))
        phones = [f"+4477009002{i:02d}" for i in range(30)]
        results = await asyncio.gather(
            *(engine.handle(InboundMessage("test", p, f"from {p}", external_id=p)) for p in phones),
            engine.handle(InboundMessage("test", PHONE, "first", external_id="SM1")),
            return_exceptions=True,
        )
        assert [type(r) for r in results[:-1]] == [type(results[0])] * len(phones)
        assert not isinstance(results[0], BaseException)
        assert isinstance(results[-1], DuplicateMessage)
        await engine.drain()
        for p in phones:
            assert fake.texts(p) == [f"heard: from {p}"]
        assert fake.texts(PHONE) == ["heard: first"]


async def test_a_conversation_continues_after_a_restart(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(database_url, tmp_path)
    answers = ["hi", "1", "1", "1"]
    async with running(settings) as (app, fake, _):
        engine = engine_of(app)
        for text in answers[:-1]:
            await engine.handle(InboundMessage("test", PHONE, text))
        before = fake.texts()
    async with running(settings) as (app, fake, _):
        engine = engine_of(app)
        await engine.handle(InboundMessage("test", PHONE, answers[-1]))
        resumed = fake.texts()
        # A person who never saw a restart, giving the same answers, is told the same.
        for text in answers:
            await engine.handle(InboundMessage("test", OTHER, text))
        control = fake.texts(OTHER)
    assert before + resumed == control
    assert resumed and resumed != fake.texts(OTHER)[: len(resumed)]


async def test_a_message_stored_but_not_answered_before_a_crash_is_answered_at_start(
    database_url: str, tmp_path: Path
) -> None:
    settings = settings_for(database_url, tmp_path)
    async with running(settings, journeys=(ECHO,)) as (app, fake, _):
        # Stored and acknowledged, then the process "dies" before handling it.
        await engine_of(app).accept(InboundMessage("test", PHONE, "are you there?"))
        assert fake.sent == []
    async with running(settings, journeys=(ECHO,)) as (app, fake, _):
        await wait_for(lambda: fake.sent)
        assert fake.texts() == ["heard: are you there?"]
        pending = await app[STORE].conversations_with_pending_inbound()
        assert pending == []


async def test_a_message_whose_turn_failed_is_answered_without_writing_again(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "HOUSEKEEPING_SECONDS", 0.05)
    clock = Clock()
    settings = settings_for(database_url, tmp_path)
    async with running(settings, journeys=(ECHO,), clock=clock) as (app, fake, _):
        engine = engine_of(app)
        working, client = engine.locks, redis_not_answering()
        engine.locks = RedisLocks(client)
        with pytest.raises(LockUnavailable):
            await engine.handle(InboundMessage("test", PHONE, "I need help"))
        engine.locks = working
        await client.aclose()
        assert fake.sent == []
        clock.now = datetime.now(UTC)
        # Just written: its turn may still be running elsewhere, so it is left alone.
        assert await engine.retry_unanswered(RETRY_UNANSWERED_AFTER) == 0
        clock.now += RETRY_UNANSWERED_AFTER
        await wait_for(lambda: fake.sent)  # housekeeping, no new message, no restart
        await engine.drain()
        assert fake.texts() == ["heard: I need help"]
        assert await app[STORE].conversations_with_pending_inbound() == []


async def test_danger_written_while_redis_is_down_gets_the_guidance_at_once(
    database_url: str, tmp_path: Path
) -> None:
    # The turn cannot take the conversation's lock, so it waits for housekeeping; someone
    # texting about a knife must not wait with it (the web page shows 999, a text does not).
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        engine, content = engine_of(app), app[CONTENT]
        await engine.handle(InboundMessage("test", PHONE, "hello"))
        working, client = engine.locks, redis_not_answering()
        engine.locks = RedisLocks(client)
        before = len(fake.sent)
        with pytest.raises(LockUnavailable):
            await engine.handle(InboundMessage("test", PHONE, "I want to kill myself"))
        assert fake.texts()[before:] == [content.text("risk.suicide", "en")]
        with pytest.raises(LockUnavailable):  # housekeeping tries again: not said twice
            await engine.process((await engine.open("test", PHONE)).id)
        assert len(fake.sent) == before + 1
        with pytest.raises(LockUnavailable):  # worse: said too
            await engine.handle(InboundMessage("test", PHONE, "he has a knife, he's coming"))
        assert fake.texts()[before + 1 :] == [content.text("risk.immediate", "en")]
        with pytest.raises(LockUnavailable):  # nothing about danger: nothing said early
            await engine.handle(InboundMessage("test", OTHER, "hello"))
        assert fake.texts(OTHER) == []
        # Texts about danger handled together (fragments arriving at once): said once.
        third = "+447700900125"
        await asyncio.gather(
            *(engine.handle(InboundMessage("test", third, t)) for t in ("he has a gun", "help")),
            return_exceptions=True,
        )
        assert fake.texts(third) == [content.text("risk.immediate", "en")]
        engine.locks = working
        await client.aclose()
        await engine.process((await engine.open("test", PHONE)).id)
        assert content.text("risk.immediate", "en") in fake.texts()[before + 2 :]


@contextlib.contextmanager
def sending_fails(fake: FakeChannel) -> Iterator[None]:
    """Inside, every send fails as a lost live event bus would, after the reply was saved;
    the failure must reach the caller."""
    send = fake.send

    async def cut_off(message: object) -> None:
        raise ConnectionError("the live event bus went away")

    fake.send = cut_off  # type: ignore[method-assign]
    try:
        with pytest.raises(ConnectionError):
            yield
    finally:
        fake.send = send  # type: ignore[method-assign]


async def test_a_reply_whose_sending_failed_goes_out_without_writing_again(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "HOUSEKEEPING_SECONDS", 0.05)
    clock = Clock()
    settings = settings_for(database_url, tmp_path)
    async with running(settings, journeys=(ECHO,), clock=clock) as (app, fake, _):
        engine = engine_of(app)
        with sending_fails(fake):
            await engine.handle(InboundMessage("test", PHONE, "I need help"))
        assert await app[STORE].conversations_with_pending_inbound() == []  # it was answered
        clock.now = datetime.now(UTC) + RETRY_UNANSWERED_AFTER
        await wait_for(lambda: fake.sent)  # housekeeping, no new message, no restart
        await engine.drain()
        clock.now += RETRY_UNANSWERED_AFTER  # and again: it is not sent twice
        await engine.retry_unanswered(RETRY_UNANSWERED_AFTER)
        await engine.drain()
        assert fake.texts() == ["heard: I need help"]


async def test_guidance_sent_again_late_is_not_held_for_quiet_hours(
    database_url: str, tmp_path: Path
) -> None:
    clock = Clock(datetime.now(UTC))
    async with running(settings_for(database_url, tmp_path), clock=clock) as (app, fake, _):
        engine, store = engine_of(app), app[STORE]
        first = await engine.handle(InboundMessage("test", PHONE, "hello"))
        conv = await store.conversation(first.conversation_id)
        london = datetime.now(ZoneInfo("Europe/London"))
        window = {
            "start": (london - timedelta(hours=1)).strftime("%H:%M"),
            "end": (london + timedelta(hours=3)).strftime("%H:%M"),
        }
        await store.update_contact_settings(conv.contact_key, quiet_hours=window)
        with sending_fails(fake):
            await engine.handle(InboundMessage("test", PHONE, "he's here and he has a knife"))
        clock.now += timedelta(minutes=20)  # sent again well after they wrote
        await engine.retry_unanswered(RETRY_UNANSWERED_AFTER)
        await engine.drain()
        assert app[CONTENT].text("risk.immediate", "en") in fake.texts()
        # Only the guidance: an adviser's later reply sent again in quiet hours waits.
        routing = app[ROUTING]
        await routing.claim(first.conversation_id, "sam", capacity=2)
        now = InboundMessage("test", PHONE, "I'm in the bathroom", None, clock.now)
        await engine.handle(now)  # so the adviser's answer is sent at once, not held
        with sending_fails(fake):
            await routing.say(first.conversation_id, "sam", "Are you somewhere safe now?")
        clock.now += timedelta(minutes=20)
        await engine.retry_unanswered(RETRY_UNANSWERED_AFTER)
        await engine.drain()
        assert "Are you somewhere safe now?" not in fake.texts()
        transcript = await store.transcript(first.conversation_id)
        (held,) = [m for m in transcript if m.text == "Are you somewhere safe now?"]
        assert held.status is Delivery.HELD


async def test_no_phone_number_is_stored_in_clear(sqlite_url: str, tmp_path: Path) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, _fake, _):
        await engine_of(app).handle(InboundMessage("test", PHONE, "hello"))
    raw = (tmp_path / "helpline.db").read_bytes()
    for suffix in ("-wal",):
        wal = tmp_path / f"helpline.db{suffix}"
        if wal.exists():
            raw += wal.read_bytes()
    assert PHONE.encode() not in raw
    assert PHONE[1:].encode() not in raw


async def test_under_load_a_message_about_danger_is_answered_before_those_waiting(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One turn at a time, so that everyone else has to wait: the person in danger is
    # answered first, with the emergency guidance, though twenty wrote before them.
    monkeypatch.setattr(SqlStore, "turns_at_once", 1)
    async with running(settings_for(database_url, tmp_path), journeys=(ECHO,)) as (app, fake, _):
        engine = engine_of(app)
        people = [f"+4477009003{i:02d}" for i in range(20)]
        danger = "+447700900399"
        await asyncio.gather(
            *(engine.handle(InboundMessage("test", p, f"from {p}")) for p in people),
            engine.handle(InboundMessage("test", danger, "he's outside with a knife")),
        )
        first = fake.sent[0]
        assert first.address == danger
        assert first.reply.text == app[CONTENT].text("risk.immediate", "en")
        for p in people:
            assert fake.texts(p) == [f"heard: from {p}"]


async def test_a_turn_waiting_when_danger_is_disclosed_is_moved_up_with_it(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Twenty turns wait in line, the last of them for someone who said hello; then that
    # person discloses danger. Their waiting turn answers both messages, so it goes first.
    monkeypatch.setattr(SqlStore, "turns_at_once", 1)
    async with running(settings_for(database_url, tmp_path), journeys=(ECHO,)) as (app, fake, _):
        engine = engine_of(app)
        people = [f"+4477009004{i:02d}" for i in range(20)]
        danger = "+447700900398"
        waiting = [
            (await engine.accept(InboundMessage("test", p, f"from {p}"))).conversation_id
            for p in [*people, danger]
        ]
        await asyncio.gather(
            *(engine.process(conversation_id) for conversation_id in waiting),
            engine.handle(InboundMessage("test", danger, "he's outside with a knife")),
        )
        # The first person's turn was already running; the person in danger is next.
        assert [m.address for m in fake.sent[:3]] == [people[0], danger, danger]
        assert fake.texts(danger)[:2] == [
            f"heard: from {danger}",
            app[CONTENT].text("risk.immediate", "en"),
        ]
        for p in people:
            assert fake.texts(p) == [f"heard: from {p}"]


class RefusingChannel(FakeChannel):
    """Refuses the next `refuse` sends as a platform's rate limit does (NotSent), asking to
    be tried again after `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("test")
        self.refuse = 0
        self.retry_after = retry_after

    async def send(self, message: OutboundMessage) -> str | None:
        if self.refuse:
            self.refuse -= 1
            raise NotSent("rate limited", kind="test 429", retry_after=self.retry_after)
        return await super().send(message)


async def test_danger_does_not_wait_behind_an_earlier_reply_the_platform_refused(
    sqlite_url: str, tmp_path: Path
) -> None:
    # The reply to "1" was refused for two minutes (flood control); "I have a knife" then
    # waited behind it, its 999 guidance with it.
    async with running(settings_for(sqlite_url, tmp_path)) as (app, _, _url):
        engine = engine_of(app)
        channel = RefusingChannel(retry_after=120)
        engine.senders["test"] = channel
        await engine.handle(InboundMessage("test", PHONE, "hi"))
        channel.refuse = 1
        await engine.handle(InboundMessage("test", PHONE, "1"))
        asked = len(channel.sent)
        await engine.handle(InboundMessage("test", PHONE, "he has a knife and he's coming"))
        await engine.drain()
        said = channel.texts()[asked:]
        guidance = app[CONTENT].text("risk.immediate", "en")
        assert said[0] == guidance  # first, not in two minutes
        await wait_for(lambda: len(channel.texts()) > asked + 2)
        await engine.drain()
        # What waited went straight after it, once each.
        assert app[CONTENT].text("welcome.who", "en") in channel.texts()[asked + 1 :]
        assert len(channel.texts()) == len(set(channel.texts()))


async def test_a_code_word_the_platform_refused_is_not_sent_later_as_its_stand_in(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, _, _url):
        engine = engine_of(app)
        channel = RefusingChannel(retry_after=0.1)
        engine.senders["test"] = channel
        for said in ("hi", "1", "1"):
            await engine.handle(InboundMessage("test", PHONE, said))
        before = len(channel.sent)
        channel.refuse = 1
        await engine.handle(InboundMessage("test", PHONE, "code word"))
        await asyncio.sleep(0.5)
        await engine.drain()
        stand_in = app[CONTENT].text("handover.code_kept", "en")
        assert stand_in not in channel.texts()[before:]
