"""Waiting for an adviser, and leaving: "stop" withdraws a booked call-back; someone in the
queue is answered (help, an acknowledgement that an adviser will read what they write) but
never talked over once an adviser has joined; danger is answered first; a blank message is
asked again rather than taken as an answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import text

from helpline.app import STORE
from tests.console_support import PLUGINS, Console, add_staff
from tests.journey_support import Person
from tests.support import running, settings_for

TYPED = "07700 900456"


async def _raw(app: web.Application, sql: str) -> list[tuple[Any, ...]]:
    async with app[STORE].engine.connect() as conn:
        return [tuple(row) for row in (await conn.execute(text(sql))).all()]


# -- stop withdraws a call-back ------------------------------------------------------------


async def test_stop_withdraws_a_booked_call_back_and_deletes_its_number(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = settings_for(sqlite_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True) as (app, fake, url):
        person = Person(app, fake)
        for said in ("hi", "1", "1", "1", "2", "2", "tuesday 6pm"):
            await person.says(said)
        assert await person.says(TYPED) == ["own.callback_done", "own.end"]
        await add_staff(app, "alice")
        async with Console(url) as alice:
            await alice.login("alice")
            [item] = (await alice.get("/console/api/callbacks"))[1]
            assert await person.says("stop") == ["stop.done"]
            assert (await alice.get("/console/api/callbacks"))[1] == []
            path = f"/console/api/callbacks/{item['id']}/number"
            assert (await alice.post(path))[0] == 404
        assert await _raw(app, "SELECT sealed_number, status FROM callbacks") == [
            (None, "withdrawn")
        ]


# -- a blank message ---------------------------------------------------------------------


async def test_a_blank_message_is_asked_again_not_taken_as_an_answer(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await person.says("hi")
        assert await person.says("1") == ["welcome.who"]
        assert await person.says("  \n ") == ["flow.empty", "welcome.who"]
        assert person.last_options() == fake.sent[-3].reply.options  # the same choices
        assert (await person.conversation()).state == "who"
        await person.says("1")
        assert (await person.conversation()).flow == "own"
        inbound = await _raw(app, "SELECT text FROM messages WHERE direction = 'in'")
        assert ("  \n ",) in inbound  # stored like any other message, never dropped
