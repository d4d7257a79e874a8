"""Someone waiting when their queue closes is told, once, that nobody will join them until it
opens again and when that is, with the helpline's offer of a call-back; after danger, the
guidance again. Before, they were left with "about 5 minutes" all night."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from helpline.app import CONTENT, ROUTING
from helpline.domain import Owner
from tests.journey_support import Person, content_copy, with_test_programme
from tests.support import Clock, running, settings_for
from tests.test_callbacks import _noon, _queued

LONDON = ZoneInfo("Europe/London")


def _at(moment: datetime, hour: int, minute: int) -> datetime:
    """The same day as `moment`, at this time in London."""
    return moment.astimezone(LONDON).replace(hour=hour, minute=minute).astimezone(UTC)


def _before(text: str) -> str:
    """The words of a message before its first placeholder."""
    return text.partition("{")[0]


async def test_someone_waiting_when_the_line_closes_is_told_once_and_offered_a_call_back(
    sqlite_url: str, tmp_path: Path
) -> None:
    noon = _noon()
    clock = Clock(noon)
    async with running(settings_for(sqlite_url, tmp_path), clock=clock) as (app, fake, _):
        content, routing = app[CONTENT], app[ROUTING]
        conv_id = await _queued(app)
        assert await routing.tell_closing() == 0  # open: nothing to tell
        sent = len(fake.sent)
        clock.now = _at(noon, 20, 1)  # the line closes at 20:00
        assert await routing.tell_closing() == 1
        [told] = [m.reply for m in fake.sent[sent:]]
        opens = routing.next_opening("helpline", clock.now)
        assert opens is not None
        when = content.when(opens, "en")
        assert told.text == content.text("handoff.closing", "en", opens=when)
        assert told.options == (
            content.text("handoff.opt_leave_message", "en"),
            content.text("own.opt_callback", "en"),
        )
        # Once: not again a minute later, nor on another instance's round.
        clock.now += timedelta(minutes=1)
        assert await routing.tell_closing() == 0
        assert len(fake.sent) == sent + 1
        person = Person(app, fake, conversation_id=conv_id)
        assert (await person.conversation()).owner is Owner.QUEUE  # place kept
        # "position" says the line is closed, never a wait in minutes.
        assert await person.says("position") == ["handoff.waiting_closed"]
        # Taking up the offer books a call-back, as out of hours.
        assert await person.says("call me back") == [
            "handoff.callback_instead",
            "own.callback_when",
        ]


async def test_in_welsh_the_closing_words_are_welsh(sqlite_url: str, tmp_path: Path) -> None:
    noon = _noon()
    clock = Clock(noon)
    async with running(settings_for(sqlite_url, tmp_path), clock=clock) as (app, fake, _):
        content = app[CONTENT]
        person = Person(app, fake, language="cy")
        await person.says("helo")
        await person.says("siarad â rhywun")
        assert (await person.conversation()).owner is Owner.QUEUE
        clock.now = _at(noon, 21, 0)
        assert await app[ROUTING].tell_closing() == 1
        assert fake.sent[-1].reply.text.startswith(
            _before(content.messages["handoff.closing"]["cy"])
        )


async def test_someone_who_queued_while_closed_is_not_told_again(
    sqlite_url: str, tmp_path: Path
) -> None:
    clock = Clock(_noon(line_open=False))
    async with running(settings_for(sqlite_url, tmp_path), clock=clock) as (app, fake, _):
        await _queued(app)
        sent = len(fake.sent)
        clock.now += timedelta(minutes=5)
        assert await app[ROUTING].tell_closing() == 0
        assert len(fake.sent) == sent


async def test_after_danger_the_guidance_is_said_again_at_closing(
    sqlite_url: str, tmp_path: Path
) -> None:
    noon = _noon()
    clock = Clock(noon)
    async with running(settings_for(sqlite_url, tmp_path), clock=clock) as (app, fake, _):
        person = Person(app, fake)
        await person.says("hello")
        await person.says("I'm scared I'm going to hurt her right now")
        assert (await person.conversation()).owner is Owner.QUEUE
        sent = len(fake.sent)
        clock.now = _at(noon, 20, 1)
        assert await app[ROUTING].tell_closing() == 1
        said = [person.keys.key(m.reply.text) for m in fake.sent[sent:]]
        assert said[0] == "handoff.closing"
        assert any(key.startswith("risk.immediate") for key in said[1:]), said
        # The call-back's options on the last message, where every channel keeps them.
        assert fake.sent[-1].reply.options == (
            app[CONTENT].text("handoff.opt_leave_message", "en"),
            app[CONTENT].text("own.opt_callback", "en"),
        )


async def test_someone_with_an_adviser_at_closing_is_told_nothing(
    sqlite_url: str, tmp_path: Path
) -> None:
    noon = _noon()
    clock = Clock(noon)
    async with running(settings_for(sqlite_url, tmp_path), clock=clock) as (app, fake, _):
        routing = app[ROUTING]
        conv_id = await _queued(app)
        await routing.claim(conv_id, "adviser-1", 3)
        sent = len(fake.sent)
        clock.now = _at(noon, 20, 1)
        assert await routing.tell_closing() == 0
        assert len(fake.sent) == sent


async def test_someone_waiting_for_a_programme_is_told_when_its_staff_are_back(
    sqlite_url: str, tmp_path: Path
) -> None:
    noon = _noon()
    clock = Clock(noon)
    root = content_copy(tmp_path)
    with_test_programme(root)
    settings = settings_for(sqlite_url, tmp_path, content_dir=root)
    async with running(settings, clock=clock) as (app, fake, _):
        content, routing = app[CONTENT], app[ROUTING]
        person = Person(app, fake)
        for text in ["hello", "1", "1", "1", "no", "3", "NP20 1", "1", "yes"]:
            await person.says(text)
        conv = await person.conversation()
        assert conv.owner is Owner.QUEUE
        queue = str(conv.answers["queue"])
        sent = len(fake.sent)
        clock.now = _at(noon, 17, 1)  # the programme's staff finish at 17:00
        assert await routing.tell_closing() == 1
        [told] = [m.reply for m in fake.sent[sent:]]
        opens = routing.next_opening(queue, clock.now)
        assert opens is not None
        assert told.text == content.text(
            "programme.waiting_closed", "en", opens=content.when(opens, "en")
        )
        # The helpline's call-back is not offered in a programme's queue.
        assert not told.options
        clock.now = _at(noon, 20, 1)
        assert await routing.tell_closing() == 0


@pytest.mark.postgres
async def test_on_postgresql_and_redis_two_rounds_at_once_tell_them_once(
    pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    noon = _noon()
    clock = Clock(noon)
    settings = settings_for(pg_url, tmp_path, redis_url=redis_url, redis_prefix=redis_prefix)
    async with running(settings, clock=clock) as (app, fake, _):
        content, routing = app[CONTENT], app[ROUTING]
        await _queued(app)
        sent = len(fake.sent)
        clock.now = _at(noon, 20, 1)
        assert sorted(await asyncio.gather(routing.tell_closing(), routing.tell_closing())) == [
            0,
            1,
        ]
        [told] = [m.reply.text for m in fake.sent[sent:]]
        assert told.startswith(_before(content.messages["handoff.closing"]["en"]))
