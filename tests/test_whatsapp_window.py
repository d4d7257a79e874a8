"""WhatsApp's 24 hours: a free-form reply reaches someone only within 24 hours of their last
message (Twilio error 63016 after that). What the adviser sees when a reply is refused so,
and what the person gets when they write again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from handoff.accounts import add_user
from helpline.app import CONTENT, ROUTING, STORE
from helpline.domain import Delivery, Direction, StoredMessage
from tests.console_support import PASSWORD, Console, next_frame
from tests.journey_support import Person, content_copy, with_test_programme
from tests.loopback import loopback
from tests.support import Clock, running, settings_for
from tests.test_programme_consent_answers import TO_CONSENT
from tests.test_twilio import (
    ACCOUNT,
    PHONE,
    PUBLIC,
    TOKEN,
    WHATSAPP,
    Env,
    fixture,
    noon,
    twilio_settings,
)
from tests.test_twilio import env as env  # noqa: F401 - the fixture


@pytest.fixture
async def console_env(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    """Twilio's loopback and the console, served over plain HTTP (no public address: the
    console's cookie would be Secure, and Twilio's webhooks are signed for the local one)."""
    async with loopback(ACCOUNT, TOKEN) as lb:
        settings = twilio_settings(sqlite_url, tmp_path, lb.url, public_url=None)
        async with (
            running(settings, serve=True, clock=noon) as (app, _, url),
            aiohttp.ClientSession() as http,
        ):
            yield Env(app, url, settings, lb, http)


OUTSIDE_WINDOW = 63016


async def _waiting_for_an_adviser(env: Env, address: str = WHATSAPP) -> str:
    await env.say("Hello", address)
    await env.say("adviser", address)
    conv = await env.app[STORE].open_conversation(env.key(address))
    assert conv is not None
    return conv.id


async def _replies(env: Env, conv_id: str) -> list[StoredMessage]:
    return [m for m in await env.app[STORE].transcript(conv_id) if m.direction is Direction.OUT]


async def test_a_reply_whatsapp_refuses_for_the_window_goes_when_the_person_writes_again(
    env: Env,
) -> None:
    conv_id = await _waiting_for_an_adviser(env)
    routing = env.app[ROUTING]
    # Monday morning, 40 hours after they last wrote: WhatsApp refuses every free-form text.
    env.loop.fail_twilio(OUTSIDE_WINDOW)
    await routing.claim(conv_id, "sam", capacity=2)
    await routing.say(conv_id, "sam", "Hi, I'm Sam. I've read your message.")
    tried = len(env.loop.twilio_sent(WHATSAPP))
    await routing.say(conv_id, "sam", "Write back whenever you can.")
    # Not tried again, nor the next reply: nothing can reach them until they write.
    assert len(env.loop.twilio_sent(WHATSAPP)) == tried
    joined, first, second = (await _replies(env, conv_id))[-3:]
    assert {joined.status, first.status, second.status} == {Delivery.UNREACHABLE}

    before = len(env.loop.sms_bodies(WHATSAPP))
    await env.say("hello? is anyone there", WHATSAPP)
    # Everything that waited reaches them, in the order it was said.
    assert env.loop.sms_bodies(WHATSAPP)[before:] == [
        env.text("handoff.joined"),
        "Hi, I'm Sam. I've read your message.",
        "Write back whenever you can.",
    ]
    assert {m.status for m in (await _replies(env, conv_id))[-3:]} == {Delivery.SENT}
    await routing.say(conv_id, "sam", "Thanks for writing back.")
    assert env.loop.sms_bodies(WHATSAPP)[-1] == "Thanks for writing back."


async def test_the_console_says_the_person_must_write_first_and_when_the_replies_went(
    console_env: Env,
) -> None:
    env = console_env
    await add_user(env.app[STORE], "sam", "adviser", PASSWORD)
    conv_id = await _waiting_for_an_adviser(env)
    unreachable = env.app[CONTENT].text("console.unreachable", "en")
    assert "write first" in unreachable and "24 hours" in unreachable
    async with Console(env.url) as sam:
        await sam.login("sam")
        page = await sam.http.get(env.url + "/console")
        assert 'data-label-unreachable="' in await page.text()
        ws = await sam.socket()
        status, _ = await sam.post(f"/console/api/conversations/{conv_id}/claim")
        assert status == 200
        await ws.send_json({"type": "watch", "conversation": conv_id})
        await next_frame(ws, lambda f: f["type"] == "watching")
        env.loop.fail_twilio(OUTSIDE_WINDOW)
        status, said = await sam.post(
            f"/console/api/conversations/{conv_id}/say", {"text": "Hi, I'm Sam."}
        )
        assert status == 200
        frame = await next_frame(
            ws, lambda f: f["type"] == "delivery" and f["status"] == "unreachable"
        )
        assert frame["conversation"] == conv_id
        reply = (await _replies(env, conv_id))[-1]
        assert reply.id in frame["ids"]
        # Opened afresh (another adviser, a reload), the reply still shows as waiting.
        _, view = await sam.get(f"/console/api/conversations/{conv_id}")
        shown = {m["id"]: m for m in view["messages"]}
        assert shown[reply.id].get("status") == "unreachable"

        await env.say("hi", WHATSAPP)
        went = await next_frame(ws, lambda f: f["type"] == "delivery" and f["status"] == "sent")
        assert reply.id in went["ids"]
        _, view = await sam.get(f"/console/api/conversations/{conv_id}")
        assert "status" not in {m["id"]: m for m in view["messages"]}[reply.id]
        await ws.close()


async def test_sms_replies_are_never_kept_waiting_for_a_window(env: Env) -> None:
    conv_id = await _waiting_for_an_adviser(env, PHONE)
    routing = env.app[ROUTING]
    await routing.claim(conv_id, "sam", capacity=2)
    env.loop.fail_twilio(30003)  # unreachable handset: an ordinary failure
    await routing.say(conv_id, "sam", "Hi, I'm Sam.")
    assert (await _replies(env, conv_id))[-1].status is Delivery.FAILED
    await routing.say(conv_id, "sam", "Are you there?")
    assert env.loop.sms_bodies(PHONE)[-1] == "Are you there?"


async def test_a_refusal_whatsapp_reports_after_taking_the_reply_waits_for_the_person_too(
    env: Env,
) -> None:
    # Twilio often takes the message (201) and reports error 63016 in the status callback.
    conv_id = await _waiting_for_an_adviser(env)
    routing = env.app[ROUTING]
    await routing.claim(conv_id, "sam", capacity=2)
    await routing.say(conv_id, "sam", "Hi, I'm Sam.")
    sent = env.loop.twilio_sent(WHATSAPP)[-1]
    sid = env.loop.sids[-1]
    params = fixture("twilio_status_whatsapp_failed.json", MessageSid=sid, SmsSid=sid)
    status, _, _ = await env.post(sent["StatusCallback"].removeprefix(PUBLIC), params)
    assert status == 204
    assert (await _replies(env, conv_id))[-1].status is Delivery.UNREACHABLE
    tried = len(env.loop.twilio_sent(WHATSAPP))
    await routing.say(conv_id, "sam", "Write back whenever you can.")
    assert len(env.loop.twilio_sent(WHATSAPP)) == tried  # not tried: it would fail as well

    await env.say("sorry, I'm here now", WHATSAPP)
    assert env.loop.sms_bodies(WHATSAPP)[-2:] == ["Hi, I'm Sam.", "Write back whenever you can."]
    assert {m.status for m in (await _replies(env, conv_id))[-2:]} == {Delivery.SENT}


async def test_an_sms_failure_reported_with_the_same_code_is_still_a_failure(env: Env) -> None:
    await env.say("Hello")
    sent, sid = env.loop.twilio_sent(PHONE)[0], env.loop.sids[0]
    params = fixture(
        "twilio_status_delivered.json",
        MessageSid=sid,
        SmsSid=sid,
        MessageStatus="failed",
        SmsStatus="failed",
        ErrorCode="63016",
    )
    status, _, _ = await env.post(sent["StatusCallback"].removeprefix(PUBLIC), params)
    assert status == 204
    conv = await env.app[STORE].open_conversation(env.key(PHONE))
    assert conv is not None
    assert (await _replies(env, conv.id))[0].status is Delivery.FAILED


# -- told at the moment a reply here is promised ----------------------------------------------

LONDON = ZoneInfo("Europe/London")
SATURDAY_5PM = datetime(2026, 11, 28, 17, 0, tzinfo=LONDON)  # closed until Monday 09:00
MONDAY_9AM = datetime(2026, 11, 30, 9, 0, tzinfo=LONDON)
MONDAY_9PM = datetime(2026, 11, 30, 21, 0, tzinfo=LONDON)  # closed until Tuesday 09:00


@asynccontextmanager
async def twilio_at(
    database_url: str, tmp_path: Path, when: datetime
) -> AsyncIterator[tuple[Env, Clock]]:
    clock = Clock(when)
    async with loopback(ACCOUNT, TOKEN) as lb:
        settings = twilio_settings(database_url, tmp_path, lb.url)
        async with (
            running(settings, serve=True, clock=clock) as (app, _, url),
            aiohttp.ClientSession() as http,
        ):
            yield Env(app, url, settings, lb, http), clock


async def _leaves_a_message(env: Env, address: str) -> tuple[list[str], list[str]]:
    """Asks for an adviser out of hours and chooses "Leave a message": what each said."""
    await env.say("Hello", address)
    before = len(env.loop.sms_bodies(address))
    await env.say("adviser", address)
    offered = env.loop.sms_bodies(address)[before:]
    before = len(env.loop.sms_bodies(address))
    await env.say("1", address)  # 1. Leave a message
    return offered, env.loop.sms_bodies(address)[before:]


async def test_leaving_a_message_on_whatsapp_on_saturday_says_to_write_again_after_monday_9(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with twilio_at(sqlite_url, tmp_path, SATURDAY_5PM) as (env, _):
        offered, answered = await _leaves_a_message(env, WHATSAPP)
        opens = env.content.when(MONDAY_9AM, "en")
        assert offered[-1].startswith(env.text("handoff.closed", opens=opens))
        assert answered == [
            env.text("handoff.leave_message"),
            env.text("handoff.reply_window", opens=opens),
        ]
        assert "Monday 30 November, 09:00" in answered[-1]
        # Said once: their message itself is only acknowledged.
        before = len(env.loop.sms_bodies(WHATSAPP))
        await env.say("My son's dad keeps shouting at him, I don't know what to do", WHATSAPP)
        told = env.loop.sms_bodies(WHATSAPP)[before:]
        assert env.text("handoff.reply_window", opens=opens) not in told


async def test_leaving_a_message_by_sms_says_nothing_of_a_window(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with twilio_at(sqlite_url, tmp_path, SATURDAY_5PM) as (env, _):
        _, answered = await _leaves_a_message(env, PHONE)
        assert answered == [env.text("handoff.leave_message")]


async def test_leaving_a_message_on_whatsapp_the_evening_before_an_opening_says_nothing_more(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Monday 21:00 to Tuesday 09:00 is 12 hours: an adviser has time to reply within 24.
    async with twilio_at(sqlite_url, tmp_path, MONDAY_9PM) as (env, _):
        _, answered = await _leaves_a_message(env, WHATSAPP)
        assert answered == [env.text("handoff.leave_message")]


async def test_writing_on_whatsapp_to_a_queue_closed_all_weekend_is_told_once_per_opening(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Waiting without choosing "Leave a message": their message gets the closed words, and
    # the way to keep the reply's way open with them.
    async with twilio_at(sqlite_url, tmp_path, SATURDAY_5PM) as (env, clock):
        await env.say("Hello", WHATSAPP)
        await env.say("adviser", WHATSAPP)
        before = len(env.loop.sms_bodies(WHATSAPP))
        await env.say("I shouted at my partner again and I need to talk to someone", WHATSAPP)
        opens = env.content.when(MONDAY_9AM, "en")
        assert env.loop.sms_bodies(WHATSAPP)[before:] == [
            env.text("handoff.waiting_closed", opens=opens),
            env.text("handoff.reply_window", opens=opens),
        ]
        clock.now = clock.now + timedelta(hours=1)
        before = len(env.loop.sms_bodies(WHATSAPP))
        await env.say("position", WHATSAPP)
        assert env.loop.sms_bodies(WHATSAPP)[before:] == [
            env.text("handoff.waiting_closed", opens=opens)
        ]


async def test_a_referral_on_a_channel_with_a_reply_window_says_to_write_now_and_then(
    sqlite_url: str, tmp_path: Path
) -> None:
    root = content_copy(tmp_path)
    with_test_programme(root)
    settings = settings_for(sqlite_url, tmp_path, content_dir=root)
    for address, window in (("+447700900001", timedelta(hours=24)), ("+447700900002", None)):
        async with running(settings) as (app, fake, _):
            fake.reply_window = window  # type: ignore[attr-defined]
            person = Person(app, fake, address=address)
            for text in TO_CONSENT["en"]:
                await person.says(text)
            said = await person.says("yes")
            assert ("programme.reply_window" in said) is (window is not None), said
            assert "programme.waiting" in said
            # Once a wait: not again with each message.
            assert "programme.reply_window" not in await person.says("position")


async def test_a_code_word_refused_for_the_window_is_never_sent_later(env: Env) -> None:
    # The transcript keeps a stand-in for the code: sent later, it would carry the stand-in.
    for said in ("Hello", "1", "1"):
        await env.say(said, WHATSAPP)
    env.loop.fail_twilio(OUTSIDE_WINDOW)
    await env.say("code word", WHATSAPP)
    conv = await env.app[STORE].open_conversation(env.key(WHATSAPP))
    assert conv is not None
    kept = env.text("handover.code_kept")
    (stand_in,) = [m for m in await _replies(env, conv.id) if m.text == kept]
    assert stand_in.status is Delivery.FAILED
    await env.say("hello?", WHATSAPP)
    assert kept not in env.loop.sms_bodies(WHATSAPP)


async def test_the_window_counts_from_the_persons_last_message_not_from_now(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Told of their wait outside their own turn (a programme handing them back on Monday at
    # 08:00): the line opens in an hour, but 40 hours after they last wrote.
    async with twilio_at(sqlite_url, tmp_path, SATURDAY_5PM) as (env, clock):
        await env.say("Hello", WHATSAPP)
        await env.say("adviser", WHATSAPP)
        clock.now = MONDAY_9AM - timedelta(hours=1)
        conv = await env.app[STORE].open_conversation(env.key(WHATSAPP))
        assert conv is not None
        conv.last_inbound_at = SATURDAY_5PM
        said = [r.text for r in await env.app[ROUTING].waiting_replies(conv)]
        opens = env.content.when(MONDAY_9AM, "en")
        assert said[-1] == env.text("handoff.reply_window", opens=opens)
        conv.last_inbound_at = clock.now  # had they just written, nothing more is needed
        conv.answers.pop("_window_told", None)
        said = [r.text for r in await env.app[ROUTING].waiting_replies(conv)]
        assert said == [env.text("handoff.waiting_closed", opens=opens)]
