"""Call-backs that an adviser can actually make: the number asked for (or the number the
person texts from), refused when it is 999 or a helpline, kept only sealed and out of the
transcript, the logs and the live events; shown to an adviser only on request (audited) and
deleted when the call is marked, by retention and by erasure. And someone left waiting is
offered a call-back once, after a configurable time, by SMS as well as web chat."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import text

from handoff import referrals
from helpline.app import CONTENT, ENGINE, HUB, PRIVACY, ROUTING, SENDERS, STORE
from helpline.config import Settings
from helpline.content import DEFAULT_ROOT
from helpline.domain import InboundMessage, Owner
from helpline.hours import OpeningHours
from helpline.logs import quiet_libraries
from tests.console_support import PLUGINS, Console, add_staff, next_frame
from tests.journey_support import Person, content_copy
from tests.loopback import loopback
from tests.support import Clock, QueueThatCannotEnqueue, log_text, running, settings_for
from tests.test_twilio import ACCOUNT, PHONE, TOKEN, Env, twilio_settings

TYPED = "07700 900987"  # the number a person types (Ofcom's drama range)
DIGITS = "07700900987"
TEXTING = "07700900123"  # PHONE, the number the SMS tests text from, as we would dial it
LONDON = ZoneInfo("Europe/London")


def _noon(*, line_open: bool = True) -> datetime:
    """Midday in London on a coming day when the helpline is open (or closed): outside the
    quiet hours tests set, and later than any message's arrival time, so nobody counts as
    having just written."""
    hours = OpeningHours.load(DEFAULT_ROOT)
    day = datetime.now(LONDON) + timedelta(days=1)
    while True:
        noon = day.replace(hour=12, minute=0, second=0, microsecond=0).astimezone(UTC)
        if hours.is_open("helpline", noon) == line_open:
            return noon
        day += timedelta(days=1)


def _leaks(value: object, *secrets: str) -> list[str]:
    blob = value if isinstance(value, str) else json.dumps(value, default=str)
    return [s for s in secrets if s in blob]


async def _raw(app: web.Application, sql: str) -> list[tuple[Any, ...]]:
    """Read the database directly, past every layer of ours."""
    async with app[STORE].engine.connect() as conn:
        return [tuple(row) for row in (await conn.execute(text(sql))).all()]


def _record_hub(app: web.Application) -> list[tuple[str, dict[str, Any]]]:
    """Every live event published from now on, whatever its topic."""
    events: list[tuple[str, dict[str, Any]]] = []
    hub = app[HUB]
    publish = hub.publish

    async def recording(topic: str, event: dict[str, Any]) -> None:
        events.append((topic, event))
        await publish(topic, event)

    hub.publish = recording  # type: ignore[method-assign]
    return events


async def to_the_safe_time(person: Person) -> None:
    """Through the own-behaviour journey to "when is it safe to call?"."""
    for said in ("hi", "1", "1", "1", "2", "call me back"):
        await person.says(said)


async def _to_number_question(person: Person) -> None:
    await to_the_safe_time(person)
    assert await person.says("weekday mornings before 9") == ["own.callback_number"]


# -- web chat and other channels without a number: the number is asked for ---------------------


async def test_a_typed_number_is_sealed_and_kept_out_of_transcript_logs_and_events(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    quiet_libraries()
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await _to_number_question(person)
        events = _record_hub(app)
        assert await person.says(f"it's {TYPED}") == ["own.callback_done", "own.end"]

        (window, sealed), *more = await _raw(app, 'SELECT "window", sealed_number FROM callbacks')
        assert not more and window == "weekday mornings before 9"
        assert sealed and not _leaks(sealed, DIGITS, TYPED)
        conv = await person.conversation()
        assert app[PRIVACY].open(sealed, f"callback:{conv.id}") == DIGITS

        texts = [t for (t,) in await _raw(app, "SELECT text FROM messages")]
        assert app[CONTENT].text("own.callback_number_given", "en") in texts
        everything = await _raw(app, "SELECT * FROM messages") + await _raw(
            app, "SELECT * FROM conversations"
        )
        assert not _leaks(everything, DIGITS, TYPED, "900987")
        assert events and not _leaks(events, DIGITS, TYPED, "900987")
        logged = [log_text(r) for r in caplog.records]
        assert not _leaks(logged, DIGITS, TYPED, "900987")


@pytest.mark.parametrize("refused", ["999", "101", "112", "0808 802 4040", "116 123", "85258"])
async def test_emergency_and_helpline_numbers_are_refused_kindly_and_asked_again(
    refused: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await _to_number_question(person)
        assert await person.says(refused) == ["own.callback_number_retry"]
        assert await _raw(app, "SELECT id FROM callbacks") == []
        assert await person.says(TYPED) == ["own.callback_done", "own.end"]
        assert len(await _raw(app, "SELECT id FROM callbacks")) == 1


async def _frames_until(ws: aiohttp.ClientWebSocketResponse, wanted: str) -> list[str]:
    """Message texts the page receives, up to and including `wanted`."""
    texts: list[str] = []
    while True:
        frame = await ws.receive_json(timeout=10)
        if frame["type"] == "message":
            texts.append(frame["text"])
            if frame["text"] == wanted:
                return texts


async def test_web_chat_asks_for_a_number_and_keeps_only_a_redacted_line(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with (
        running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _fake, url),
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{url}/chat/ws") as ws,
    ):
        t = app[CONTENT].text
        await ws.send_json({"type": "hello", "token": None, "lang": "en"})
        for n, said in enumerate(["1", "1", "1", "2", "2", "evenings after 7"]):
            await ws.send_json({"type": "message", "text": said, "id": f"c{n}"})
            if said == "evenings after 7":
                await _frames_until(ws, t("own.callback_number", "en"))
        await ws.send_json({"type": "message", "text": "999", "id": "c8"})
        await _frames_until(ws, t("own.callback_number_retry", "en"))
        await ws.send_json({"type": "message", "text": TYPED, "id": "c9"})
        await _frames_until(ws, t("own.callback_done", "en"))
        await app[ENGINE].drain()  # the call-back is stored just after the reply goes out
        rows = await _raw(app, 'SELECT "window", sealed_number FROM callbacks')
        assert [r[0] for r in rows] == ["evenings after 7"] and rows[0][1]
        stored = b"".join(p.read_bytes() for p in tmp_path.glob("helpline.db*"))
        assert DIGITS.encode() not in stored and TYPED.encode() not in stored


async def test_a_call_back_booked_before_a_quick_exit_warns_whoever_will_call(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Booked, then the quick exit: someone may have come in. The call-back list said nothing
    # of it, and only the transcript (which the caller may never open) had the line.
    async with (
        running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS, serve=True) as (
            app,
            _fake,
            url,
        ),
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{url}/chat/ws") as ws,
    ):
        t = app[CONTENT].text
        await ws.send_json({"type": "hello", "token": None, "lang": "en"})
        for n, said in enumerate(["1", "1", "1", "2", "2", "evenings after 7", TYPED]):
            await ws.send_json({"type": "message", "text": said, "id": f"c{n}"})
        await _frames_until(ws, t("own.callback_done", "en"))
        await app[ENGINE].drain()
        await add_staff(app, "alice")
        async with Console(url) as alice:
            await alice.login("alice")
            [before] = (await alice.get("/console/api/callbacks"))[1]
            assert before["left_by_quick_exit"] is None
            page = await alice.socket()
            await next_frame(page, lambda f: f.get("type") == "callbacks")
            await ws.send_json({"type": "exit"})
            # An open console's list shows it at once, as a reload does.
            frame = await next_frame(
                page,
                lambda f: f.get("type") == "callbacks" and f["items"][0]["left_by_quick_exit"],
            )
            left = frame["items"][0]["left_by_quick_exit"]
            assert datetime.fromisoformat(left).tzinfo is not None
            [item] = (await alice.get("/console/api/callbacks"))[1]
            assert item["left_by_quick_exit"] == left
            await page.close()


# -- SMS: the number they text from, or another ----------------------------------------------


@pytest.fixture
async def sms(sqlite_url: str, tmp_path: Path) -> AsyncIterator[tuple[Env, Clock]]:
    clock = Clock(_noon())
    async with loopback(ACCOUNT, TOKEN) as lb:
        settings = twilio_settings(sqlite_url, tmp_path, lb.url)
        async with (
            running(settings, serve=True, clock=clock) as (app, _, url),
            aiohttp.ClientSession() as http,
        ):
            yield Env(app, url, settings, lb, http), clock


async def _sms_to_window(env: Env, sender: str = PHONE) -> None:
    for said in ("hi", "1", "1", "1", "2", "2"):
        await env.say(said, sender)
    await env.say("Tuesday after 6pm", sender)


async def test_by_sms_the_number_they_text_from_is_offered_and_booked_sealed(
    sms: tuple[Env, Clock],
) -> None:
    env, _ = sms
    await _sms_to_window(env)
    question = env.loop.sms_bodies(PHONE)[-1]
    assert question.startswith(env.text("own.callback_which"))
    assert f"1. {env.text('own.opt_this_number')}" in question
    await env.say("1")
    assert env.loop.sms_bodies(PHONE)[-2].startswith(env.text("own.callback_done", "en"))
    [(sealed, conv_id)] = await _raw(
        env.app, "SELECT sealed_number, conversation_id FROM callbacks"
    )
    assert env.app[PRIVACY].open(sealed, f"callback:{conv_id}") == TEXTING


async def test_by_sms_another_number_can_be_given_and_999_is_refused(
    sms: tuple[Env, Clock],
) -> None:
    env, _ = sms
    await _sms_to_window(env)
    await env.say("2")
    assert env.loop.sms_bodies(PHONE)[-1] == env.text("own.callback_number", "en")
    await env.say("999")
    assert env.loop.sms_bodies(PHONE)[-1] == env.text("own.callback_number_retry", "en")
    await env.say(TYPED)
    [(sealed, conv_id)] = await _raw(
        env.app, "SELECT sealed_number, conversation_id FROM callbacks"
    )
    assert env.app[PRIVACY].open(sealed, f"callback:{conv_id}") == DIGITS
    texts = [t for (t,) in await _raw(env.app, "SELECT text FROM messages")]
    assert "999" not in texts and TYPED not in texts  # both answers were redacted


async def test_a_number_from_abroad_cannot_be_called_so_another_is_asked_for(
    sms: tuple[Env, Clock],
) -> None:
    env, _ = sms
    abroad = "+14155550123"
    await _sms_to_window(env, abroad)
    await env.say("1", abroad)
    assert env.loop.sms_bodies(abroad)[-1] == env.text("own.callback_unusable")
    assert await _raw(env.app, "SELECT id FROM callbacks") == []
    await env.say(TYPED, abroad)
    assert env.loop.sms_bodies(abroad)[-2].startswith(env.text("own.callback_done", "en"))
    [(window,)] = await _raw(env.app, 'SELECT "window" FROM callbacks')
    assert window == "Tuesday after 6pm"


# -- the console: shown on request (audited), deleted when marked ------------------------------


async def test_show_number_is_audited_and_marking_the_call_deletes_the_number(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    quiet_libraries()
    settings = settings_for(database_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True) as (app, fake, url):
        person = Person(app, fake)
        await _to_number_question(person)
        await person.says(TYPED)
        reference = (await person.conversation()).reference
        await add_staff(app, "alice")
        await add_staff(app, "pat", "programme", "north")
        await add_staff(app, "sam", "supervisor")
        async with Console(url) as alice, Console(url) as pat, Console(url) as sam:
            await alice.login("alice")
            await pat.login("pat")
            await sam.login("sam")
            _, listed = await alice.get("/console/api/callbacks")
            [item] = listed
            assert item["reference"] == reference and item["has_number"] is True
            assert item["window"] == "weekday mornings before 9"
            assert not _leaks(listed, DIGITS, TYPED)
            path = f"/console/api/callbacks/{item['id']}/number"
            assert (await alice.post(path, csrf="wrong"))[0] == 403
            assert (await pat.post(path))[0] == 403
            _, audit = await sam.get(f"/console/api/audit?conversation={person.conversation_id}")
            assert "callback_number_shown" not in [e["action"] for e in audit]

            status, shown = await alice.post(path)
            assert (status, shown) == (200, {"number": DIGITS})
            _, audit = await sam.get(f"/console/api/audit?conversation={person.conversation_id}")
            [entry] = [e for e in audit if e["action"] == "callback_number_shown"]
            assert entry["actor"] == "alice" and entry["at"]
            assert not _leaks(audit, DIGITS, TYPED)

            mark = f"/console/api/callbacks/{item['id']}"
            assert (await alice.post(mark, {"status": "done"}))[0] == 200
            assert await _raw(app, "SELECT sealed_number, status FROM callbacks") == [
                (None, "done")
            ]
            assert (await alice.post(path))[0] == 404
            assert (await alice.get("/console/api/callbacks"))[1] == []
        logged = [log_text(r) for r in caplog.records]
        assert not _leaks(logged, DIGITS, TYPED)


async def test_a_call_back_of_a_conversation_another_adviser_holds_is_theirs(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Refused the conversation itself, an adviser could still show its number and mark the
    # call made (deleting the number).
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        fake,
        url,
    ):
        person = Person(app, fake)
        await _to_number_question(person)
        await person.says(TYPED)
        await person.says("adviser")
        for name, role in (("alice", "adviser"), ("bob", "adviser"), ("sam", "supervisor")):
            await add_staff(app, name, role)
        async with Console(url) as alice, Console(url) as bob, Console(url) as sam:
            for console, name in ((alice, "alice"), (bob, "bob"), (sam, "sam")):
                await console.login(name)
            conv = f"/console/api/conversations/{person.conversation_id}"
            assert (await alice.post(conv + "/claim"))[0] == 200
            [item] = (await bob.get("/console/api/callbacks"))[1]
            number, mark = (
                f"/console/api/callbacks/{item['id']}/number",
                f"/console/api/callbacks/{item['id']}",
            )
            assert (await bob.post(number))[0] == 403
            assert (await bob.post(mark, {"status": "done"}))[0] == 403
            assert (await sam.post(number)) == (200, {"number": DIGITS})  # audited
            assert (await alice.post(number)) == (200, {"number": DIGITS})
            # Referred on: programme staff hold it now, and the call is still the helpline's.
            await referrals.create_referral(app[STORE], person.conversation_id, "north", {})
            await add_staff(app, "pat", "programme", "north")
            assert (await alice.post(conv + "/transfer", {"queue": "programme:north"}))[0] == 200
            async with Console(url) as pat:
                await pat.login("pat")
                assert (await pat.post(conv + "/claim"))[0] == 200
            assert (await bob.post(number)) == (200, {"number": DIGITS})
            assert (await alice.post(mark, {"status": "done"}))[0] == 200


async def test_not_reached_also_deletes_the_number(sqlite_url: str, tmp_path: Path) -> None:
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        fake,
        url,
    ):
        person = Person(app, fake)
        await _to_number_question(person)
        await person.says(TYPED)
        await add_staff(app, "alice")
        async with Console(url) as alice:
            await alice.login("alice")
            [item] = (await alice.get("/console/api/callbacks"))[1]
            status, _ = await alice.post(
                f"/console/api/callbacks/{item['id']}", {"status": "not_reached"}
            )
            assert status == 200
        assert await _raw(app, "SELECT sealed_number FROM callbacks") == [(None,)]


async def test_retention_deletes_call_back_numbers_with_the_conversation(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await _to_number_question(person)
        await person.says(TYPED)
        assert len(await _raw(app, "SELECT id FROM callbacks")) == 1
        await app[STORE].purge(datetime.now(UTC) + timedelta(minutes=1))
        assert await _raw(app, "SELECT id FROM callbacks") == []


async def test_delete_my_data_deletes_call_back_numbers(database_url: str, tmp_path: Path) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await _to_number_question(person)
        await person.says(TYPED)
        await person.says("delete my data")
        await person.says("yes")
        assert await _raw(app, "SELECT id FROM callbacks") == []
        assert await _raw(app, "SELECT id FROM conversations") == []


# -- a long wait: a call-back or other routes, once -------------------------------------------


async def _queued(app: web.Application, address: str = PHONE, channel: str = "test") -> str:
    engine = app[ENGINE]
    await engine.handle(InboundMessage(channel, address, "hello"))
    accepted = await engine.handle(InboundMessage(channel, address, "talk to someone"))
    return accepted.conversation_id


async def test_someone_waiting_is_offered_a_call_back_after_the_set_time_and_only_once(
    sqlite_url: str, tmp_path: Path
) -> None:
    clock = Clock(_noon())
    settings = settings_for(sqlite_url, tmp_path, wait_offer_minutes=15)
    assert Settings.model_fields["wait_offer_minutes"].default == 10
    async with running(settings, clock=clock) as (app, fake, _):
        t, routing = app[CONTENT].text, app[ROUTING]
        after = timedelta(minutes=settings.wait_offer_minutes)
        conv_id = await _queued(app)
        sent = len(fake.sent)
        clock.now += timedelta(minutes=14, seconds=59)
        assert await routing.offer_waiting(after) == 0
        assert len(fake.sent) == sent
        clock.now += timedelta(seconds=1)
        assert await routing.offer_waiting(after) == 1
        offer = fake.sent[-1].reply
        assert offer.text == t("handoff.wait_offer", "en")
        assert offer.options == (
            t("handoff.opt_keep_waiting", "en"),
            t("own.opt_callback", "en"),
            t("handoff.opt_other_routes", "en"),
        )
        clock.now += timedelta(minutes=30)
        assert await routing.offer_waiting(after) == 0
        assert len(fake.sent) == sent + 1
        conv = await app[STORE].conversation(conv_id)
        assert conv.owner is Owner.QUEUE  # still waiting, place kept


async def test_taking_up_the_offer_leaves_the_queue_and_books_a_call_back(
    sqlite_url: str, tmp_path: Path
) -> None:
    clock = Clock(_noon())
    async with running(settings_for(sqlite_url, tmp_path), clock=clock) as (app, fake, _):
        routing = app[ROUTING]
        conv_id = await _queued(app)
        person = Person(app, fake, conversation_id=conv_id)
        # For the adviser: the bot only says, now and then, that the adviser will read it.
        assert await person.says("is anyone there?") == ["handoff.waiting_ack"]
        clock.now += timedelta(minutes=10)
        assert await routing.offer_waiting(timedelta(minutes=10)) == 1
        # Not an answer to the offer (acknowledged again: ten minutes have passed).
        assert await person.says("I'm still here") == ["handoff.waiting_ack"]
        assert await person.says("2") == ["handoff.callback_instead", "own.callback_when"]
        conv = await person.conversation()
        assert conv.owner is Owner.BOT and await routing.queue.waiting() == []
        assert await person.says("after 8pm") == ["own.callback_number"]
        assert await person.says(TYPED) == ["own.callback_done", "own.end"]
        [(window, sealed)] = await _raw(app, 'SELECT "window", sealed_number FROM callbacks')
        assert window == "after 8pm" and sealed


async def test_keep_waiting_and_other_routes_keep_the_place_in_the_queue(
    sqlite_url: str, tmp_path: Path
) -> None:
    clock = Clock(_noon())
    async with running(settings_for(sqlite_url, tmp_path), clock=clock) as (app, fake, _):
        routing = app[ROUTING]
        first = await _queued(app, PHONE)
        clock.now += timedelta(minutes=1)
        second = await _queued(app, "+447700900555")
        clock.now += timedelta(minutes=10)
        assert await routing.offer_waiting(timedelta(minutes=10)) == 2
        one = Person(app, fake, address=PHONE, conversation_id=first)
        two = Person(app, fake, address="+447700900555", conversation_id=second)
        assert await one.says("keep waiting") == ["handoff.keep_waiting"]
        assert await two.says("3") == ["handoff.other_routes"]
        # The offer is over: words go to the adviser, and the bot says so.
        assert await one.says("1") == ["handoff.waiting_ack"]
        waiting = [e.conversation_id for e in await routing.queue.waiting()]
        assert waiting == [first, second]


async def test_by_sms_the_offer_waits_for_quiet_hours_and_a_reply_leads_to_a_call_back(
    sms: tuple[Env, Clock],
) -> None:
    env, clock = sms
    app, routing = env.app, env.app[ROUTING]
    await env.say("hi")
    await env.say("talk to someone")
    conv = await app[STORE].open_conversation(env.key())
    assert conv is not None and conv.owner is Owner.QUEUE
    await app[STORE].update_contact_settings(
        conv.contact_key, quiet_hours={"start": "12:05", "end": "13:00"}
    )
    clock.now += timedelta(minutes=10)  # 12:10 in London: inside their quiet hours
    before = len(env.loop.sms_bodies(PHONE))
    assert await routing.offer_waiting(timedelta(minutes=10)) == 1
    assert len(env.loop.sms_bodies(PHONE)) == before, "texted inside quiet hours"
    clock.now += timedelta(hours=1)
    assert await app[ENGINE].release_held() == 1
    offer = env.loop.sms_bodies(PHONE)[-1]
    assert offer.startswith(env.text("handoff.wait_offer"))
    assert f"2. {env.text('own.opt_callback')}" in offer
    assert await routing.offer_waiting(timedelta(minutes=10)) == 0
    await env.say("2")
    assert env.loop.sms_bodies(PHONE)[-1].startswith(env.text("own.callback_when"))
    await env.say("weekends")
    await env.say("1")  # the number I'm texting from
    [(sealed, conv_id)] = await _raw(app, "SELECT sealed_number, conversation_id FROM callbacks")
    assert app[PRIVACY].open(sealed, f"callback:{conv_id}") == TEXTING


async def test_on_web_chat_the_offer_arrives_live_and_can_be_taken_up(
    sqlite_url: str, tmp_path: Path
) -> None:
    clock = Clock(_noon())
    async with (
        running(settings_for(sqlite_url, tmp_path), serve=True, clock=clock) as (app, _f, url),
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{url}/chat/ws") as ws,
    ):
        t = app[CONTENT].text
        await ws.send_json({"type": "hello", "token": None, "lang": "en"})
        await ws.send_json({"type": "message", "text": "talk to someone", "id": "c1"})
        await _frames_until(ws, t("handoff.waiting", "en", position=1, minutes=8))
        clock.now += timedelta(minutes=10)
        assert await app[ROUTING].offer_waiting(timedelta(minutes=10)) == 1
        await _frames_until(ws, t("handoff.wait_offer", "en"))
        await ws.send_json({"type": "message", "text": "call back", "id": "c2"})
        await _frames_until(ws, t("own.callback_when", "en"))
        await ws.send_json({"type": "message", "text": "mornings", "id": "c3"})
        await _frames_until(ws, t("own.callback_number", "en"))
        await ws.send_json({"type": "message", "text": TYPED, "id": "c4"})
        await _frames_until(ws, t("own.callback_done", "en"))
        await app[ENGINE].drain()
        assert len(await _raw(app, "SELECT id FROM callbacks")) == 1


async def test_out_of_hours_the_closed_message_offers_a_call_back_at_once(
    sqlite_url: str, tmp_path: Path
) -> None:
    clock = Clock(_noon(line_open=False))
    async with running(settings_for(sqlite_url, tmp_path), clock=clock) as (app, fake, _):
        t, routing = app[CONTENT].text, app[ROUTING]
        conv_id = await _queued(app)
        closed = fake.sent[-1].reply
        assert closed.text.startswith(t("handoff.closed", "en", opens="")[:40])
        assert closed.options == (t("handoff.opt_leave_message", "en"), t("own.opt_callback", "en"))
        clock.now += timedelta(minutes=30)
        assert await routing.offer_waiting(timedelta(minutes=10)) == 0  # offered already
        person = Person(app, fake, conversation_id=conv_id)
        # A message, kept for the adviser, and the bot says so, and that the line is closed.
        assert await person.says("I had a call from the police") == ["handoff.waiting_closed"]
        assert await person.says("call back") == ["handoff.callback_instead", "own.callback_when"]
        assert (await person.conversation()).owner is Owner.BOT


# -- messages that arrive together -------------------------------------------------------


async def _place(app: web.Application, conversation_id: str, flow: str, state: str) -> None:
    """Put a conversation at a journey state (as if the person had just been asked)."""
    engine = app[ENGINE]
    async with engine.locks.hold(conversation_id):
        conv = await app[STORE].conversation(conversation_id)
        conv.flow, conv.state = flow, state
        await app[STORE].save_turn(conv, [], [])


async def test_words_sent_right_after_the_number_are_kept_for_the_adviser(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS) as (app, _f, _u):
        engine, store = app[ENGINE], app[STORE]
        first = await engine.handle(InboundMessage("test", "4242", "hi"))
        await _place(app, first.conversation_id, "own", "callback_number")
        # Two texts land before either is handled: the number, then something urgent.
        await engine.accept(InboundMessage("test", "4242", "07700 900123"))
        await engine.accept(InboundMessage("test", "4242", "he has just come home, he has a knife"))
        await engine.process(first.conversation_id)
        texts = [m.text for m in await store.transcript(first.conversation_id)]
        assert "he has just come home, he has a knife" in texts
        assert not any("900123" in t for t in texts)


async def test_a_number_sent_right_after_choosing_another_number_is_never_kept_in_clear(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS) as (app, _f, _u):
        engine, store = app[ENGINE], app[STORE]
        first = await engine.handle(InboundMessage("test", "4242", "hi"))
        await _place(app, first.conversation_id, "own", "callback_which")
        await engine.accept(InboundMessage("test", "4242", "2"))  # "another number"
        await engine.accept(InboundMessage("test", "4242", "07700900123"))
        await engine.process(first.conversation_id)
        texts = [m.text for m in await store.transcript(first.conversation_id)]
        assert not any("07700900123" in t for t in texts)
        assert "2" in texts  # the choice itself is an ordinary answer, kept as written


async def test_a_number_typed_with_the_safe_time_is_kept_nowhere_in_clear(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await to_the_safe_time(person)
        assert await person.says("after 6pm on 07700 900123") == ["own.callback_number"]
        everything = await _raw(app, "SELECT * FROM messages") + await _raw(
            app, "SELECT * FROM conversations"
        )
        assert not _leaks(everything, "900123")
        texts = [t for (t,) in await _raw(app, "SELECT text FROM messages")]
        assert "after 6pm on …" in texts  # the adviser still reads the safe time


async def test_danger_written_instead_of_the_number_is_kept_for_the_adviser(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS) as (app, _f, _u):
        engine, store = app[ENGINE], app[STORE]
        first = await engine.handle(InboundMessage("test", "4242", "hi"))
        await _place(app, first.conversation_id, "own", "callback_number")
        await engine.handle(InboundMessage("test", "4242", "he has just come home, he has a knife"))
        texts = [m.text for m in await store.transcript(first.conversation_id)]
        assert "he has just come home, he has a knife" in texts


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("after 6 on 07700 900123", "after 6 on …"),
        ("weekday mornings, +44 7700 900123 is best", "weekday mornings, … is best"),
        ("between 10 and 12", "between 10 and 12"),
        ("Tuesday 14:00-16:00", "Tuesday 14:00-16:00"),
        # Only the digits read as the number go: 999, a date, hours beside it stay.
        ("call 999 07700900987 now", "call 999 … now"),
        ("I need 999 07700 900987", "I need 999 …"),
        ("999-07700900987", "999-…"),
        ("1/12/2026 07700 900987", "1/12/2026 …"),
        ("10-12 07700900987", "10-12 …"),
        ("07700 900987 2pm", "… 2pm"),
        ("112 12345678", "112 …"),
    ],
)
def test_a_number_typed_into_the_safe_time_is_not_kept_with_it(typed: str, kept: str) -> None:
    from flows.own import without_numbers

    assert without_numbers(typed) == kept


# -- danger at the number question: handed to an adviser, the number still sealed -------------

DANGER = "he has just come home, he has a knife"


async def _queued_after_danger_at_the_number_question(person: Person) -> None:
    await _to_number_question(person)
    said = await person.says(DANGER)
    assert said[0] == "risk.immediate"
    assert (await person.conversation()).owner is Owner.QUEUE


async def _nothing_in_clear(app: web.Application, *secrets: str) -> None:
    """No trace of the number anywhere a person's words are stored (messages, the
    conversation's answers: the ends of messages kept for the next one's screening)."""
    everything = await _raw(app, "SELECT * FROM messages") + await _raw(
        app, "SELECT * FROM conversations"
    )
    assert not _leaks(everything, *secrets)


async def test_a_number_typed_once_danger_has_queued_them_is_booked_sealed_and_kept_out(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Danger written at "what number should we call?" hands them to an adviser at once, the
    # question still open. The number they type next answers it: the call-back is booked
    # with it sealed, the transcript keeps the stand-in, and they stay in the queue.
    caplog.set_level(logging.DEBUG)
    quiet_libraries()
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await _queued_after_danger_at_the_number_question(person)
        events = _record_hub(app)
        # Told it is kept, then who will read what they write, as anyone waiting is.
        assert await person.says(TYPED) == ["own.callback_kept_waiting", "handoff.waiting_ack"]

        conv = await person.conversation()
        assert conv.owner is Owner.QUEUE  # their safety first: an adviser still joins them
        assert [e.conversation_id for e in await app[ROUTING].queue.waiting()] == [conv.id]
        (window, sealed), *more = await _raw(app, 'SELECT "window", sealed_number FROM callbacks')
        assert not more and window == "weekday mornings before 9"
        assert app[PRIVACY].open(sealed, f"callback:{conv.id}") == DIGITS

        texts = [m.text for m in await app[STORE].transcript(conv.id)]
        assert app[CONTENT].text("own.callback_number_given", "en") in texts
        assert DANGER in texts  # what the adviser must act on, as written
        await _nothing_in_clear(app, DIGITS, TYPED, "900987")
        # The consoles saw the message live: as the transcript keeps it.
        shown = [e for _, e in events if e.get("type") == "message" and e.get("author") == "person"]
        assert [e["text"] for e in shown] == [app[CONTENT].text("own.callback_number_given", "en")]
        assert not _leaks(events, DIGITS, TYPED, "900987")
        assert not _leaks([log_text(r) for r in caplog.records], DIGITS, TYPED, "900987")

        # Answered: a number said to the adviser later is an ordinary message again.
        await person.says("thank you")
        assert len(await _raw(app, "SELECT id FROM callbacks")) == 1


async def test_call_999_with_the_number_after_danger_keeps_999_and_its_mark_in_the_console(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Only the number goes: "999" beside it stays, and with it the danger mark the console
    # reads again from what is kept when it opens the conversation (or reconnects).
    settings = settings_for(sqlite_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True) as (app, fake, url):
        person = Person(app, fake)
        await _queued_after_danger_at_the_number_question(person)
        events = _record_hub(app)
        said = await person.says(f"call 999 now, and call me on {DIGITS}")
        assert said[:2] == ["risk.immediate", "own.callback_kept_waiting"]  # the guidance first
        [shown] = [
            e for _, e in events if e.get("type") == "message" and e.get("author") == "person"
        ]
        assert (shown["text"], shown["risk"]) == ("call 999 now, and call me on …", "immediate")
        await add_staff(app, "alice")
        async with Console(url) as alice:
            await alice.login("alice")
            _, view = await alice.get(f"/console/api/conversations/{person.conversation_id}")
            last = [m for m in view["messages"] if m["author"] == "person"][-1]
            assert (last["text"], last["risk"]) == ("call 999 now, and call me on …", "immediate")
        [(sealed,)] = await _raw(app, "SELECT sealed_number FROM callbacks")
        assert app[PRIVACY].open(sealed, f"callback:{person.conversation_id}") == DIGITS
        await _nothing_in_clear(app, DIGITS, TYPED, "900987")


async def test_words_about_danger_with_a_number_reach_the_adviser_as_written_and_marked(
    sqlite_url: str, tmp_path: Path
) -> None:
    # More than the number and words that make it theirs: whose number it is is for the
    # adviser to read, so nothing is booked and the message is theirs as written.
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await _queued_after_danger_at_the_number_question(person)
        events = _record_hub(app)
        written = f"he is kicking the door in, ring me on {TYPED}"
        assert await person.says(written) == ["risk.immediate"]
        texts = [m.text for m in await app[STORE].transcript(person.conversation_id or "")]
        assert written in texts
        [shown] = [
            e for _, e in events if e.get("type") == "message" and e.get("author") == "person"
        ]
        assert (shown["text"], shown["risk"]) == (written, "immediate")
        assert await _raw(app, "SELECT id FROM callbacks") == []


async def test_a_number_typed_after_danger_queued_them_two_minutes_later_is_sealed(
    database_url: str, tmp_path: Path
) -> None:
    # The queue refused them when they wrote about danger at the number question: the
    # hand-off waited while they might be typing the number, then was made once they had
    # written nothing for two minutes. The number they type after that is still theirs to
    # be called on, and is never kept in clear.
    clock = Clock(_noon())
    async with running(settings_for(database_url, tmp_path), clock=clock) as (app, fake, _):
        engine, routing = app[ENGINE], app[ROUTING]
        person = Person(app, fake)

        async def says(text: str) -> list[str]:
            before = len(fake.sent)
            await engine.handle(InboundMessage("test", person.address, text, received_at=clock.now))
            return [person.keys.key(m.reply.text) for m in fake.sent[before:]]

        for text in ("hi", "1", "1", "1", "2", "call me back", "weekday mornings before 9"):
            await says(text)
        queue = QueueThatCannotEnqueue(routing.queue)
        routing.queue = queue
        assert await says(DANGER) == ["risk.immediate", "handoff.unavailable"]
        await engine.stop_retries()  # housekeeping's turn, below
        queue.down = False
        clock.now += timedelta(minutes=3)
        assert await engine.retry_handoffs() == 1
        assert await says(TYPED) == ["own.callback_kept_waiting", "handoff.waiting_ack"]
        [(conv_id, sealed)] = await _raw(
            app, "SELECT conversation_id, sealed_number FROM callbacks"
        )
        assert app[PRIVACY].open(sealed, f"callback:{conv_id}") == DIGITS
        assert (await app[STORE].conversation(conv_id)).owner is Owner.QUEUE
        texts = [m.text for m in await app[STORE].transcript(conv_id)]
        assert app[CONTENT].text("own.callback_number_given", "en") in texts
        await _nothing_in_clear(app, DIGITS, TYPED, "900987")


async def test_out_of_hours_a_number_typed_after_danger_queued_them_is_sealed(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Closed, the queue's message moves the journey to its offer (leave a message, or a
    # call back): the number they type is still the answer to the question danger cut short.
    clock = Clock(_noon(line_open=False))
    async with running(settings_for(sqlite_url, tmp_path), clock=clock) as (app, fake, _):
        person = Person(app, fake)
        await _queued_after_danger_at_the_number_question(person)
        # Nobody reads it until the line opens, they are told, and where to get help now.
        assert await person.says(TYPED) == [
            "own.callback_kept_waiting",
            "handoff.waiting_closed",
            "risk.immediate",
        ]
        conv = await person.conversation()
        assert conv.owner is Owner.QUEUE
        [(sealed,)] = await _raw(app, "SELECT sealed_number FROM callbacks")
        assert app[PRIVACY].open(sealed, f"callback:{conv.id}") == DIGITS
        await _nothing_in_clear(app, DIGITS, TYPED, "900987")


async def test_with_an_adviser_the_number_is_a_booked_call_back_they_can_show_audited(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = settings_for(sqlite_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True) as (app, fake, url):
        person = Person(app, fake)
        await _queued_after_danger_at_the_number_question(person)
        await add_staff(app, "alice")
        await add_staff(app, "sam", "supervisor")
        async with Console(url) as alice, Console(url) as sam:
            await alice.login("alice")
            await sam.login("sam")
            conv_path = f"/console/api/conversations/{person.conversation_id}"
            assert (await alice.post(conv_path + "/claim"))[0] == 200
            sent = len(fake.sent)
            await person.says(f"it's {TYPED}")
            assert len(fake.sent) == sent  # an adviser has them: the bot stays silent

            _, view = await alice.get(conv_path)
            assert not _leaks(view, DIGITS, TYPED, "900987")
            said = [m["text"] for m in view["messages"] if m["author"] == "person"]
            assert said[-2:] == [DANGER, "it's …"]
            _, listed = await alice.get("/console/api/callbacks")
            [item] = listed
            assert item["has_number"] is True and item["window"] == "weekday mornings before 9"
            status, shown = await alice.post(f"/console/api/callbacks/{item['id']}/number")
            assert (status, shown) == (200, {"number": DIGITS})
            _, audit = await sam.get(f"/console/api/audit?conversation={person.conversation_id}")
            assert [e["actor"] for e in audit if e["action"] == "callback_number_shown"] == [
                "alice"
            ]
        await _nothing_in_clear(app, DIGITS, TYPED, "900987")


async def test_a_number_waiting_for_its_turn_after_danger_is_stored_sealed_and_shown_kept(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Stored before its turn reads it: never in clear at rest, and a console that reads the
    # transcript in between shows what the transcript will keep, never ciphertext.
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        fake,
        url,
    ):
        person = Person(app, fake)
        await _queued_after_danger_at_the_number_question(person)
        engine = app[ENGINE]
        await engine.accept(InboundMessage("test", person.address, TYPED))
        await _nothing_in_clear(app, DIGITS, TYPED, "900987")
        await add_staff(app, "alice")
        async with Console(url) as alice:
            await alice.login("alice")
            _, view = await alice.get(f"/console/api/conversations/{person.conversation_id}")
            said = [m["text"] for m in view["messages"] if m["author"] == "person"]
            assert said[-1] == app[CONTENT].text("own.callback_number_given", "en")
        assert person.conversation_id is not None
        await engine.process(person.conversation_id)
        assert len(await _raw(app, "SELECT id FROM callbacks")) == 1
        await _nothing_in_clear(app, DIGITS, TYPED, "900987")


async def test_danger_with_the_number_waiting_for_its_turn_is_shown_marked_with_999_kept(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        fake,
        url,
    ):
        person = Person(app, fake)
        await _queued_after_danger_at_the_number_question(person)
        engine = app[ENGINE]
        await engine.accept(
            InboundMessage("test", person.address, f"call 999 now, and call me on {TYPED}")
        )
        await add_staff(app, "alice")
        async with Console(url) as alice:
            await alice.login("alice")
            _, view = await alice.get(f"/console/api/conversations/{person.conversation_id}")
            last = [m for m in view["messages"] if m["author"] == "person"][-1]
            # Marked as danger: not ciphertext nobody can screen, nor the 999 scrubbed away.
            assert (last["text"], last["risk"]) == ("call 999 now, and call me on …", "immediate")
            await _nothing_in_clear(app, DIGITS, TYPED, "900987")
            # Someone else's number, waiting for its turn: shown as it will be kept, written.
            other = f"he has a gun, his number is {TYPED}"
            await engine.accept(InboundMessage("test", person.address, other))
            _, view = await alice.get(f"/console/api/conversations/{person.conversation_id}")
            last = [m for m in view["messages"] if m["author"] == "person"][-1]
            assert (last["text"], last["risk"]) == (other, "immediate")


async def test_an_ordinary_message_to_the_adviser_after_danger_is_kept_as_written(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await _queued_after_danger_at_the_number_question(person)
        await person.says("I'm at my sister's on Elm Road, flat 12")
        texts = [m.text for m in await app[STORE].transcript(person.conversation_id or "")]
        assert "I'm at my sister's on Elm Road, flat 12" in texts
        assert await _raw(app, "SELECT id FROM callbacks") == []


async def test_leaving_the_queue_after_the_number_is_booked_does_not_ask_for_it_again(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await _queued_after_danger_at_the_number_question(person)
        await person.says(TYPED)
        said = await person.says("cancel")
        assert "own.callback_number" not in said, said
        conv = await person.conversation()
        assert conv.owner is Owner.BOT and (conv.flow, conv.state) == ("own", "callback_done")
        assert len(await _raw(app, "SELECT id FROM callbacks")) == 1


async def test_danger_then_the_number_sent_together_books_it_and_keeps_it_out(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Both land before either is handled: the first hands them to an adviser, the second
    # still answers "what number should we call?".
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS) as (app, _f, _u):
        engine, store = app[ENGINE], app[STORE]
        first = await engine.handle(InboundMessage("test", "4242", "hi"))
        await _place(app, first.conversation_id, "own", "callback_number")
        await engine.accept(InboundMessage("test", "4242", DANGER))
        await engine.accept(InboundMessage("test", "4242", TYPED))
        await engine.process(first.conversation_id)
        texts = [m.text for m in await store.transcript(first.conversation_id)]
        assert DANGER in texts
        assert app[CONTENT].text("own.callback_number_given", "en") in texts
        assert (await store.conversation(first.conversation_id)).owner is Owner.QUEUE
        [(sealed,)] = await _raw(app, "SELECT sealed_number FROM callbacks")
        assert app[PRIVACY].open(sealed, f"callback:{first.conversation_id}") == DIGITS
        await _nothing_in_clear(app, DIGITS, TYPED, "900987")


async def test_a_number_typed_after_asking_for_an_adviser_at_the_number_question_is_booked(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Not only danger: asked for a number, they asked for an adviser instead, then typed it.
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await _to_number_question(person)
        await person.says("talk to an adviser")
        assert (await person.conversation()).owner is Owner.QUEUE
        assert await person.says(TYPED) == ["own.callback_kept_waiting", "handoff.waiting_ack"]
        assert len(await _raw(app, "SELECT id FROM callbacks")) == 1
        await _nothing_in_clear(app, DIGITS, TYPED, "900987")


async def test_in_welsh_the_number_typed_after_danger_is_kept_for_the_call_back_in_welsh(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language="cy")
        for said in ("helo", "1", "1", "1", "2", "ffoniwch fi yn ôl", "boreau"):
            await person.says(said)
        assert (await person.conversation()).state == "callback_number"
        assert (await person.says("mae ganddo gyllell, mae e yma nawr"))[0] == "risk.immediate"
        await person.says(TYPED)
        assert app[CONTENT].text("own.callback_kept_waiting", "cy") in fake.texts()
        texts = [m.text for m in await app[STORE].transcript(person.conversation_id or "")]
        assert app[CONTENT].text("own.callback_number_given", "cy") in texts
        assert len(await _raw(app, "SELECT id FROM callbacks")) == 1
        await _nothing_in_clear(app, DIGITS, TYPED, "900987")


@pytest.mark.parametrize("danger_first", [False, True])
async def test_a_number_waiting_for_its_turn_is_never_shown_to_a_reconnecting_page_as_ciphertext(
    danger_first: bool, sqlite_url: str, tmp_path: Path
) -> None:
    # A web chat page that reconnects between a message's arriving (stored sealed) and its
    # turn is sent the history: the person must see their message as it will be kept (the
    # stand-in), never the sealed text. At the bot's number question, and after danger.
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS) as (app, fake, _):
        person = Person(app, fake)
        if danger_first:
            await _queued_after_danger_at_the_number_question(person)
        else:
            await _to_number_question(person)
        await app[ENGINE].accept(InboundMessage("test", person.address, TYPED))
        assert person.conversation_id is not None
        history = await app[SENDERS]["web"]._history(person.conversation_id)
        said = [m["text"] for m in history if m["author"] == "person"]
        assert said[-1] == app[CONTENT].text("own.callback_number_given", "en")


async def test_at_the_bot_s_number_question_danger_with_999_keeps_999_and_its_mark(
    sqlite_url: str, tmp_path: Path
) -> None:
    # The bot asked for the number: danger typed with it is kept less the number only.
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await _to_number_question(person)
        assert (await person.says(f"call 999 {DIGITS} now"))[0] == "risk.immediate"
        texts = [m.text for m in await app[STORE].transcript(person.conversation_id or "")]
        assert "call 999 … now" in texts
        assert app[ENGINE].screen("call 999 … now", "en").level == "immediate"
        await _nothing_in_clear(app, DIGITS, TYPED, "900987")


@pytest.mark.parametrize(
    "written",
    [
        f"his number is {TYPED}, he's outside",
        "ring the police on 01632 960000 he has a knife",
        "crime ref 01632960001",
        f"her number is {TYPED}, please check she's ok",
        f"ei rif yw {TYPED}",
        f"stop {TYPED}",
        f"cancel {TYPED}",
    ],
)
async def test_after_danger_a_number_with_other_words_is_for_the_adviser_and_books_nothing(
    written: str, sqlite_url: str, tmp_path: Path
) -> None:
    # Someone else's number (a partner's, a victim's, the police's) must never become the
    # call-back an adviser makes; nor do "stop" or "cancel" with a number take them out of
    # the queue (only the word alone does): the adviser reads it as written.
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await _queued_after_danger_at_the_number_question(person)
        said = await person.says(written)
        assert "own.callback_kept_waiting" not in said
        conv = await person.conversation()
        assert conv.owner is Owner.QUEUE and not conv.closed
        texts = [m.text for m in await app[STORE].transcript(conv.id)]
        assert written in texts
        assert await _raw(app, "SELECT id FROM callbacks") == []
        # The question is still open: their own number, sent next, is booked.
        assert (await person.says(TYPED))[0] == "own.callback_kept_waiting"
        assert len(await _raw(app, "SELECT id FROM callbacks")) == 1


@pytest.mark.parametrize(
    "written",
    [f"my number is {TYPED}", f"call me on {TYPED} please", f"ffoniwch fi ar {TYPED}"],
)
async def test_after_danger_their_own_number_said_so_is_booked(
    written: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await _queued_after_danger_at_the_number_question(person)
        assert (await person.says(written))[0] == "own.callback_kept_waiting"
        assert len(await _raw(app, "SELECT id FROM callbacks")) == 1
        await _nothing_in_clear(app, DIGITS, TYPED, "900987")


async def test_delete_my_data_with_a_number_while_queued_after_danger_asks_and_books_nothing(
    sqlite_url: str, tmp_path: Path
) -> None:
    # "Delete everything?" is the last thing said, with its yes/no buttons: no call-back
    # booked, nothing said after it.
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await _queued_after_danger_at_the_number_question(person)
        said = await person.says(f"delete my data {TYPED}")
        assert said[-1] == "erase.confirm" and "own.callback_kept_waiting" not in said
        assert person.last_options()
        assert await _raw(app, "SELECT id FROM callbacks") == []


async def test_a_command_that_reads_as_the_number_too_is_the_command_and_books_nothing(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Were "delete my data" among the words that leave a number theirs, the message would
    # read as the answer too: the command has it, and the answer is taken only where the
    # queue or an adviser has the message, never after a command or a detour.
    root = content_copy(tmp_path)
    words = root / "keywords.yaml"
    own = "callback_own_words:\n  en: ["
    words.write_text(words.read_text().replace(own, own + "delete, data, "))
    settings = settings_for(sqlite_url, tmp_path, content_dir=root)
    async with running(settings) as (app, fake, _):
        person = Person(app, fake)
        await _queued_after_danger_at_the_number_question(person)
        said = await person.says(f"delete my data {TYPED}")
        assert said[-1] == "erase.confirm" and "own.callback_kept_waiting" not in said
        assert await _raw(app, "SELECT id FROM callbacks") == []
        assert await person.says("no") == ["erase.kept"]
        # Not taken: the question is still open, and the number sent next is booked.
        assert (await person.says(TYPED))[0] == "own.callback_kept_waiting"
        assert len(await _raw(app, "SELECT id FROM callbacks")) == 1
        await _nothing_in_clear(app, DIGITS, TYPED, "900987")


async def test_a_long_number_to_an_adviser_with_no_number_asked_is_stored_as_written(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Sealing a message on arrival is for one that may answer "what number should we call?"
    # cut short by a hand-off. Someone who asked for an adviser anywhere else and sends a
    # reference or a card number is stored as written at once (no seal to open at its turn,
    # and PostgreSQL's one-statement save of the turn stays open to it).
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS) as (app, fake, _):
        person = Person(app, fake)
        await person.says("hello")
        await person.says("adviser")
        assert (await person.conversation()).owner is Owner.QUEUE
        said = "my crime reference is 4417700900987"
        await app[ENGINE].accept(InboundMessage("test", person.address, said))
        assert (said,) in await _raw(app, "SELECT text FROM messages")


@pytest.mark.parametrize(
    ("said", "noted"),
    [
        (f"call me now {TYPED}", "call me now …"),
        (f"{TYPED} after 6pm", "… after 6pm"),
        (f"ffoniwch fi nawr ar {TYPED}", "ffoniwch fi nawr ar …"),
    ],
)
async def test_a_time_said_with_the_number_after_danger_reaches_the_call_back(
    said: str, noted: str, sqlite_url: str, tmp_path: Path
) -> None:
    # Booked with the time they gave before danger, the call-back list (where the adviser
    # works from) said nothing of "now" or "after 6pm" said with the number.
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await _queued_after_danger_at_the_number_question(person)
        await person.says(said)
        [(window,)] = await _raw(app, 'SELECT "window" FROM callbacks')
        assert window.startswith("weekday mornings before 9") and noted in window, window
        await _nothing_in_clear(app, DIGITS, TYPED, "900987")


@pytest.mark.parametrize(
    "said",
    [
        f"I'm on {TYPED}",
        f"I am on {TYPED}",
        f"I'll be on {TYPED} tonight",
        f"my own number is {TYPED}",
        f"{TYPED} between 9-5",
        f"dyma'r rhif {TYPED}",
        f"diolch yn fawr, {TYPED} unrhyw amser",
    ],
)
async def test_their_own_number_said_in_everyday_words_after_danger_is_booked(
    said: str, sqlite_url: str, tmp_path: Path
) -> None:
    # Refused, these reached the adviser as written with the number in clear.
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await _queued_after_danger_at_the_number_question(person)
        await person.says(said)
        assert len(await _raw(app, "SELECT id FROM callbacks")) == 1
        await _nothing_in_clear(app, DIGITS, TYPED, "900987")


@pytest.mark.parametrize(
    "said",
    [
        "I'll ring 01632 960000 tonight",
        "I'll text 07700900987 tonight",
        "can I ring 01632 960000 tonight?",
        "I've got the number 01632 960000",
        "ffonia i 01632 960000 heno",
        "ring my x tonight on 07700900987",
        "ring 01632 960000",
        "call 999 07700900987 now",
    ],
)
async def test_a_number_they_will_call_after_danger_is_not_booked_as_their_own(
    said: str, sqlite_url: str, tmp_path: Path
) -> None:
    # "Call", "ring" or "text" beside a number is theirs only with "me" ("call me on ...");
    # otherwise it is a number they will ring, or want rung: the adviser reads it as written.
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await _queued_after_danger_at_the_number_question(person)
        await person.says(said)
        assert await _raw(app, "SELECT id FROM callbacks") == []


async def test_when_to_call_said_with_the_number_survives_a_long_safe_time(
    sqlite_url: str, tmp_path: Path
) -> None:
    long_time = "weekday mornings before 9, " + "or when the children are at school, " * 5
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await to_the_safe_time(person)
        assert await person.says(long_time.strip()) == ["own.callback_number"]
        assert (await person.says(DANGER))[0] == "risk.immediate"
        await person.says(f"call me now {TYPED}")
        [(window,)] = await _raw(app, 'SELECT "window" FROM callbacks')
        assert "call me now …" in window and len(window) <= 200, window
