"""SMS and WhatsApp end to end: webhooks signed with Twilio's own RequestValidator, posted to
the running app; replies captured by a loopback speaking the Twilio REST API."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy.exc import OperationalError
from twilio.request_validator import RequestValidator

from channels import texting
from helpline import engine
from helpline.app import CONTENT, ENGINE, PRIVACY, ROUTING, SENDERS, STORE
from helpline.config import Settings
from helpline.content import Content
from helpline.domain import Conversation, Delivery, Direction, OutboundMessage, Owner, Reply
from helpline.errors import DeliveryError, Forbidden
from helpline.logs import quiet_libraries
from helpline.ratelimit import MemoryLimiter
from tests.loopback import Loopback, loopback
from tests.support import OPEN_NOON, log_text, running, settings_for, wait_for

FIXTURES = Path(__file__).parent / "fixtures"


NOON = OPEN_NOON


def noon() -> datetime:
    """The app's clock: midday in London, outside every quiet-hours window the tests set
    (the wall clock would make them fail at night). In the past, so nothing looks idle."""
    return NOON


PHONE = "+447700900123"
WHATSAPP = "whatsapp:+447700900456"
TOKEN = "twilio-test-token"
ACCOUNT = "AC" + "0" * 32
PUBLIC = "https://helpline.example.org"
SMS_PATH = "/channels/twilio/sms"
WA_PATH = "/channels/twilio/whatsapp"


def fixture(name: str, **changes: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((FIXTURES / name).read_text())
    data.update(changes)
    return data


_sid_counter = iter(range(1, 10_000))


def sms(body: str, sender: str = PHONE, **changes: str) -> dict[str, str]:
    sid = f"SM{next(_sid_counter):032x}"
    return fixture(
        "twilio_sms_inbound.json",
        Body=body,
        From=sender,
        MessageSid=sid,
        SmsSid=sid,
        SmsMessageSid=sid,
        **changes,
    )


@dataclass
class Env:
    app: web.Application
    url: str
    settings: Settings
    loop: Loopback
    http: aiohttp.ClientSession

    @property
    def content(self) -> Content:
        return self.app[CONTENT]

    def text(self, key: str, lang: str = "en", **params: Any) -> str:
        return self.content.text(key, lang, **params)

    def both(self, key: str) -> str:
        """Said before the person has a conversation: English, then Welsh."""
        return f"{self.text(key)}\n\n{self.text(key, 'cy')}"

    async def post(
        self, path: str, params: dict[str, str], *, signature: str | None = None
    ) -> tuple[int, str, str]:
        if signature is None:
            signature = RequestValidator(TOKEN).compute_signature(
                self.settings.base_url + path, params
            )
        async with self.http.post(
            self.url + path, data=params, headers={"X-Twilio-Signature": signature}
        ) as resp:
            return resp.status, resp.content_type, await resp.text()

    async def say(self, body: str, sender: str = PHONE) -> None:
        """The person texts; returns once the app has answered everything it will."""
        path = WA_PATH if sender.startswith("whatsapp:") else SMS_PATH
        params = sms(body, sender)
        if sender.startswith("whatsapp:"):
            params = fixture(
                "twilio_whatsapp_inbound.json",
                Body=body,
                From=sender,
                MessageSid=params["MessageSid"],
                SmsSid=params["MessageSid"],
                SmsMessageSid=params["MessageSid"],
            )
        status, _, _ = await self.post(path, params)
        assert status == 200
        await self.app[ENGINE].drain()

    def key(self, address: str = PHONE) -> str:
        channel = "whatsapp" if address.startswith("whatsapp:") else "sms"
        return self.app[PRIVACY].contact_key(channel, address)


def twilio_settings(database_url: str, tmp: Path, api_base: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "twilio_account_sid": ACCOUNT,
        "twilio_auth_token": TOKEN,
        "twilio_from": "+447700900000",
        "twilio_whatsapp_from": "+14155238886",
        "twilio_api_base": api_base,
        "public_url": PUBLIC,
        **extra,
    }
    return settings_for(database_url, tmp, **values)


@pytest.fixture
async def env(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    async with loopback(ACCOUNT, TOKEN) as lb:
        settings = twilio_settings(sqlite_url, tmp_path, lb.url)
        async with (
            running(settings, serve=True, clock=noon) as (app, _, url),
            aiohttp.ClientSession() as http,
        ):
            yield Env(app, url, settings, lb, http)


@pytest.fixture
async def limited(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    """Like env, with two messages a minute allowed and every message in one window."""
    async with loopback(ACCOUNT, TOKEN) as lb:
        settings = twilio_settings(sqlite_url, tmp_path, lb.url, messages_per_minute=2)
        async with (
            running(settings, serve=True, clock=noon) as (app, _, url),
            aiohttp.ClientSession() as http,
        ):
            app[ENGINE].limiter = MemoryLimiter(lambda: 30.0)
            yield Env(app, url, settings, lb, http)


# -- journeys --------------------------------------------------------------------------------


async def test_a_text_gets_the_welcome_by_sms_and_numbered_choices_work(
    database_url: str, tmp_path: Path
) -> None:
    async with loopback(ACCOUNT, TOKEN) as lb:
        settings = twilio_settings(database_url, tmp_path, lb.url)
        async with (
            running(settings, serve=True, clock=noon) as (app, _, url),
            aiohttp.ClientSession() as http,
        ):
            env = Env(app, url, settings, lb, http)
            status, content_type, body = await env.post(SMS_PATH, sms("Hello"))
            assert (status, content_type) == (200, "text/xml")
            assert body.endswith("<Response/>")
            await app[ENGINE].drain()
            bodies = lb.sms_bodies(PHONE)
            assert bodies[0] == env.text("welcome.intro")
            assert all(p["From"] == "+447700900000" for p in lb.twilio_sent())
            assert all(p["StatusCallback"].startswith(PUBLIC) for p in lb.twilio_sent())
            question = bodies[-1]
            assert env.text("channels.reply_with_number") in question
            assert f"1. {env.text('welcome.opt_safe')}" in question
            await env.say("1")
            assert lb.sms_bodies(PHONE)[-1].startswith(env.text("welcome.who"))
            await env.say("stop")
            assert lb.sms_bodies(PHONE)[-1] == env.text("stop.done")
            assert await app[STORE].open_conversation(env.key()) is None


async def test_whatsapp_replies_go_to_the_whatsapp_address_from_the_whatsapp_sender(
    env: Env,
) -> None:
    await env.say("Hi", WHATSAPP)
    sent = env.loop.twilio_sent(WHATSAPP)
    assert sent and sent[0]["Body"] == env.text("welcome.intro")
    assert {p["From"] for p in sent} == {"whatsapp:+14155238886"}
    assert env.loop.twilio_sent(PHONE) == []


async def test_risk_in_a_text_is_answered_with_safety_words_first(env: Env) -> None:
    await env.say("Hello")
    before = len(env.loop.sms_bodies())
    await env.say("I've got a knife and I'm going to use it")
    after = env.loop.sms_bodies()[before:]
    assert after[0] == env.text("risk.immediate")


async def test_a_redelivered_text_is_stored_and_answered_once(env: Env) -> None:
    params = sms("Hello")
    for _ in range(3):
        status, _, body = await env.post(SMS_PATH, params)
        assert status == 200 and body.endswith("<Response/>")
    await env.app[ENGINE].drain()
    once = len(env.loop.sms_bodies())
    assert env.loop.sms_bodies().count(env.text("welcome.intro")) == 1
    conv = await env.app[STORE].open_conversation(env.key())
    assert conv is not None
    inbound = [m for m in await env.app[STORE].transcript(conv.id) if m.direction is Direction.IN]
    assert len(inbound) == 1
    assert once > 0


async def test_delete_my_data_by_text_erases_everything_and_confirms_by_text(env: Env) -> None:
    await env.say("Hello")
    await env.say("delete my data")
    assert env.loop.sms_bodies()[-1].startswith(env.text("erase.confirm"))
    await env.say("1")
    done = env.text("erase.done", conversations=1, messages=0).split("1 conversation")[0]
    assert env.loop.sms_bodies()[-1].startswith(done)
    assert await env.app[STORE].sealed_address(env.key()) is None
    assert await env.app[STORE].open_conversation(env.key()) is None


# -- STOP, opt-out and refusals ---------------------------------------------------------------


async def test_twilio_opt_out_ends_the_conversation_without_another_text(env: Env) -> None:
    await env.say("Hello")
    sent_before = len(env.loop.twilio_sent())
    params = fixture("twilio_sms_opt_out.json", From=PHONE)
    status, _, _ = await env.post(SMS_PATH, params)
    assert status == 200
    await env.app[ENGINE].drain()
    assert len(env.loop.twilio_sent()) == sent_before  # Twilio itself confirmed the STOP
    assert await env.app[STORE].open_conversation(env.key()) is None
    assert (await env.app[STORE].contact_settings(env.key()))["opted_out"] is True


async def _with_an_adviser(env: Env, adviser: str) -> Conversation:
    """The person texts hello, asks for someone, and `adviser` takes the conversation."""
    await env.say("Hello")
    await env.say("talk to someone")
    conv = await env.app[STORE].open_conversation(env.key())
    assert conv is not None
    await env.app[ROUTING].claim(conv.id, adviser, capacity=2)
    return conv


async def test_an_opt_out_while_with_an_adviser_takes_the_conversation_from_them(
    env: Env,
) -> None:
    conv = await _with_an_adviser(env, "sam")
    routing = env.app[ROUTING]
    status, _, _ = await env.post(SMS_PATH, fixture("twilio_sms_opt_out.json", From=PHONE))
    assert status == 200
    await env.app[ENGINE].drain()
    stored = await env.app[STORE].conversation(conv.id)
    assert (stored.closed, stored.owner, stored.adviser) == (True, Owner.BOT, None)
    assert await routing.queue.claims() == {}
    with pytest.raises(Forbidden):
        await routing.say(conv.id, "sam", "Are you still there?")


async def test_an_opt_out_a_turn_has_read_already_still_ends_the_conversation(
    env: Env,
) -> None:
    # A last text, then STOP at once: the last text's turn reads both (STOP as words) before
    # the opt-out's own close runs, which found its message answered and failed, leaving the
    # conversation with the adviser, who went on writing to an opted-out number.
    conv = await _with_an_adviser(env, "sam")
    routing = env.app[ROUTING]
    engine = env.app[ENGINE]
    async with engine.locks.hold(conv.id):  # the turn and the close queue up behind this
        assert (await env.post(SMS_PATH, sms("one more thing")))[0] == 200
        # CANCEL, one of Twilio's opt-out words: to the turn, with an adviser, it is "cancel".
        opt_out = fixture("twilio_sms_opt_out.json", From=PHONE, Body="CANCEL")
        assert (await env.post(SMS_PATH, opt_out))[0] == 200
    await engine.drain()
    stored = await env.app[STORE].conversation(conv.id)
    assert (stored.closed, stored.owner, stored.adviser) == (True, Owner.BOT, None)
    with pytest.raises(Forbidden):
        await routing.say(conv.id, "sam", "Are you still there?")


async def test_a_send_refused_as_unsubscribed_marks_the_person_opted_out_and_is_not_retried(
    env: Env,
) -> None:
    await env.say("Hello")
    calls = len(env.loop.twilio_sent())
    env.loop.fail_twilio(21610)
    await env.say("1")
    assert len(env.loop.twilio_sent()) == calls + 1  # tried once, not again
    assert (await env.app[STORE].contact_settings(env.key()))["opted_out"] is True
    conv = await env.app[STORE].open_conversation(env.key())
    assert conv is not None
    last = (await env.app[STORE].transcript(conv.id))[-1]
    assert last.status is Delivery.FAILED


async def _replies(env: Env) -> list[Delivery]:
    await wait_for(lambda: not env.app[ENGINE]._resending, timeout=15)
    await env.app[ENGINE].drain()
    conv = await env.app[STORE].open_conversation(env.key())
    assert conv is not None
    return [
        m.status for m in await env.app[STORE].transcript(conv.id) if m.direction is Direction.OUT
    ]


async def test_danger_guidance_twilio_was_too_busy_to_take_is_sent_again_first(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(engine, "RESEND_FIRST_SECONDS", 0.05)
    await env.say("Hello")
    before = len(env.loop.sms_bodies())
    env.loop.fail_twilio(20429, 429)  # too many requests
    env.loop.fail_twilio(20003, 503)  # then the service unavailable
    caplog.set_level(logging.INFO)
    await env.say("I've got a knife and I'm going to use it")
    await wait_for(lambda: len(env.loop.sms_bodies()) >= before + 4, timeout=15)
    bodies = env.loop.sms_bodies()[before:]
    assert bodies[:3] == [env.text("risk.immediate")] * 3  # nothing overtook it
    assert "adviser" in bodies[3]
    assert set(await _replies(env)) == {Delivery.SENT}
    logged = "\n".join(log_text(r) for r in caplog.records)
    assert "Twilio error 20429, HTTP 429" in logged
    assert PHONE not in logged and "knife" not in logged


async def test_a_reply_twilio_never_takes_is_given_up_after_a_few_tries_and_the_next_goes(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "RESEND_FIRST_SECONDS", 0.01)
    await env.say("Hello")
    before = len(env.loop.sms_bodies())
    for _ in range(engine.SEND_TRIES):
        env.loop.fail_twilio(20429, 429)
    await env.say("I've got a knife and I'm going to use it")
    await wait_for(lambda: len(env.loop.sms_bodies()) >= before + engine.SEND_TRIES + 1)
    assert "adviser" in env.loop.sms_bodies()[-1]
    assert (await _replies(env))[-2:] == [Delivery.FAILED, Delivery.SENT]


def _database_down(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    async def locked(**_: Any) -> None:
        raise OperationalError("INSERT INTO messages", {}, Exception("database is locked"))

    monkeypatch.setattr(env.app[STORE], "accept_inbound", locked)


def _twiml_messages(body: str) -> list[str]:
    root = ElementTree.fromstring(body)  # noqa: S314 - our own answer, in a test
    assert root.tag == "Response"
    return [m.text or "" for m in root.findall("Message")]


async def test_a_text_that_cannot_be_stored_asks_the_person_to_send_it_again_in_both_languages(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    _database_down(env, monkeypatch)
    status, content_type, body = await env.post(SMS_PATH, sms("Hello"))
    assert (status, content_type) == (200, "text/xml")
    [said] = _twiml_messages(body)
    assert env.text("channels.not_received") in said
    assert env.text("channels.not_received", "cy") in said


async def test_danger_in_a_text_that_cannot_be_stored_still_gets_the_guidance_first(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    _database_down(env, monkeypatch)
    status, _, body = await env.post(SMS_PATH, sms("I've got a knife and I'm going to use it"))
    assert status == 200
    said = _twiml_messages(body)
    assert said[0].startswith(env.text("risk.immediate"))
    assert env.text("risk.immediate", "cy") in "\n\n".join(said)
    assert env.text("channels.not_received") in said[-1]
    assert all(len(m) <= 1600 for m in said)
    logged = "\n".join(log_text(r) for r in caplog.records)
    assert PHONE not in logged and "knife" not in logged


async def test_a_text_that_can_be_neither_stored_nor_screened_still_gets_an_answer(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The screen failing as well left the person with a 500 and nothing at all.
    _database_down(env, monkeypatch)
    screen = env.app[ENGINE].screen

    def failing(text: str, language: str) -> Any:
        if language == "cy":
            raise RuntimeError("the screen broke")
        return screen(text, language)

    monkeypatch.setattr(env.app[ENGINE], "screen", failing)
    status, _, body = await env.post(SMS_PATH, sms("can we talk"))
    assert status == 200
    said = _twiml_messages(body)
    # Unread, it may be danger: the guidance first, then "please send it again".
    assert said[0].startswith(env.text("risk.immediate"))
    assert env.text("channels.not_received") in said[-1]


async def test_whatsapp_outside_the_24_hour_window_waits_for_the_person_to_write(env: Env) -> None:
    # Refused (error 63016), the reply is not failed for good: it goes when they next write
    # (tests/test_whatsapp_window.py).
    await env.say("Hi", WHATSAPP)
    env.loop.fail_twilio(63016)
    await env.say("1", WHATSAPP)
    conv = await env.app[STORE].open_conversation(env.key(WHATSAPP))
    assert conv is not None
    assert (await env.app[STORE].transcript(conv.id))[-1].status is Delivery.UNREACHABLE


async def test_a_twilio_that_does_not_answer_fails_the_message_in_time_without_a_retry(
    env: Env,
) -> None:
    await env.say("Hello")
    calls = len(env.loop.twilio_sent())
    env.app[SENDERS]["sms"].transport.timeout = 0.2  # type: ignore[attr-defined]
    env.loop.hold_twilio = release = asyncio.Event()
    try:
        await env.say("1")
    finally:
        release.set()
    assert len(env.loop.twilio_sent()) == calls + 1
    conv = await env.app[STORE].open_conversation(env.key())
    assert conv is not None
    assert (await env.app[STORE].transcript(conv.id))[-1].status is Delivery.FAILED


async def test_welsh_help_words_are_answered_in_welsh(env: Env) -> None:
    await env.say("Cymorth")
    assert env.loop.sms_bodies()[-2:] == [
        env.text("help.show", "cy"),
        env.text("channels.help_more", "cy"),
    ]


async def test_someone_who_chose_welsh_is_answered_in_welsh_when_they_write_again(
    env: Env,
) -> None:
    await env.say("Hello")
    await env.say("Cymraeg")
    await env.say("stop")
    assert await env.app[STORE].open_conversation(env.key()) is None
    sent = len(env.loop.sms_bodies(PHONE))
    await env.say("Helo")
    assert env.loop.sms_bodies(PHONE)[sent] == env.text("welcome.intro", "cy")


async def test_the_helpline_never_texts_a_number_that_has_not_written_in(env: Env) -> None:
    channel = env.app[SENDERS]["sms"]
    message = OutboundMessage(1, "c1", "sms", "+447700900999", Reply("hello"), "en")
    with pytest.raises(DeliveryError):
        await channel.send(message)
    assert env.loop.twilio_sent() == []


async def report(env: Env, n: int, state: str) -> None:
    """Twilio's status callback for the n-th message sent, posted where the send asked."""
    sent, sid = env.loop.twilio_sent()[n], env.loop.sids[n]
    assert sent["StatusCallback"].startswith(PUBLIC)
    params = fixture(
        "twilio_status_delivered.json",
        MessageSid=sid,
        SmsSid=sid,
        To=PHONE,
        MessageStatus=state,
        SmsStatus=state,
    )
    status, _, _ = await env.post(sent["StatusCallback"].removeprefix(PUBLIC), params)
    assert status == 204


async def first_reply_status(env: Env) -> Delivery:
    conv = await env.app[STORE].open_conversation(env.key())
    assert conv is not None
    first_out = next(
        m for m in await env.app[STORE].transcript(conv.id) if m.direction is Direction.OUT
    )
    return first_out.status


async def test_delivery_reports_mark_the_stored_reply_delivered(env: Env) -> None:
    await env.say("Hello")
    await report(env, 0, "delivered")
    assert await first_reply_status(env) is Delivery.DELIVERED


async def test_a_report_of_sent_arriving_after_delivered_leaves_the_reply_delivered(
    env: Env,
) -> None:
    await env.say("Hello")
    for state in ("delivered", "sent"):  # Twilio's callbacks may arrive in any order
        await report(env, 0, state)
    assert await first_reply_status(env) is Delivery.DELIVERED
    await report(env, 0, "undelivered")  # a failure is final, whatever came before
    await report(env, 0, "read")
    assert await first_reply_status(env) is Delivery.FAILED


async def test_a_failure_reported_before_twilio_has_answered_the_send_is_kept(env: Env) -> None:
    # A number that cannot take texts fails at once: Twilio's report can reach us before its
    # API's answer to our request has, so before the reply is recorded as sent with its SID.
    await env.say("Hello")
    before = len(env.loop.twilio_sent())
    env.loop.hold_twilio = release = asyncio.Event()
    status, _, _ = await env.post(SMS_PATH, sms("1"))
    assert status == 200
    for _ in range(500):
        if env.loop.held_sids:
            break
        await asyncio.sleep(0.01)
    (sid,) = env.loop.held_sids
    callback = env.loop.twilio_sent()[before]["StatusCallback"]
    params = fixture(
        "twilio_status_delivered.json",
        MessageSid=sid,
        SmsSid=sid,
        To=PHONE,
        MessageStatus="undelivered",
        SmsStatus="undelivered",
    )
    reported = asyncio.create_task(env.post(callback.removeprefix(PUBLIC), params))
    await asyncio.sleep(0.3)  # the report is in; the reply is still being sent
    release.set()
    assert (await reported)[0] == 204
    await env.app[ENGINE].drain()
    reply_id = int(callback.rpartition("reply=")[2])
    conv = await env.app[STORE].open_conversation(env.key())
    assert conv is not None
    (reply,) = [m for m in await env.app[STORE].transcript(conv.id) if m.id == reply_id]
    assert reply.status is Delivery.FAILED


async def test_a_long_reply_whose_first_part_never_arrived_shows_as_failed(env: Env) -> None:
    await env.say("Hello")
    await env.say("talk to someone")
    conv = await env.app[STORE].open_conversation(env.key())
    assert conv is not None
    await env.app[ROUTING].claim(conv.id, "sam", capacity=2)
    before = len(env.loop.twilio_sent())
    paragraph = "Thank you for telling me. " * 40  # ~1,000 characters
    stored = await env.app[ROUTING].say(conv.id, "sam", f"{paragraph}\n\n{paragraph}")
    assert len(env.loop.twilio_sent()) == before + 2  # sent as two texts
    await report(env, before + 1, "delivered")
    await report(env, before, "undelivered")
    (reply,) = [m for m in await env.app[STORE].transcript(conv.id) if m.id == stored.id]
    assert reply.status is Delivery.FAILED


# -- the channel's own words --------------------------------------------------------------------


async def test_quiet_hours_are_set_changed_and_removed_by_text(env: Env) -> None:
    store = env.app[STORE]
    await env.say("QUIET 22:00-08:00")
    assert env.loop.sms_bodies()[-1] == env.text("channels.quiet_set", start="22:00", end="08:00")
    assert (await store.contact_settings(env.key()))["quiet_hours"] == {
        "start": "22:00",
        "end": "08:00",
    }
    await env.say("quiet")
    assert env.loop.sms_bodies()[-1] == env.text("channels.quiet_now", start="22:00", end="08:00")
    await env.say("Tawel 21.30 - 7")
    assert env.loop.sms_bodies()[-1] == env.text(
        "channels.quiet_set", "cy", start="21:30", end="07:00"
    )
    await env.say("quiet 25:00-99")
    assert env.loop.sms_bodies()[-1] == env.text("channels.quiet_unclear")
    await env.say("QUIET OFF")
    assert env.loop.sms_bodies()[-1] == env.text("channels.quiet_off")
    assert (await store.contact_settings(env.key()))["quiet_hours"] is None


async def test_the_quiet_command_is_kept_in_the_transcript_and_the_journey_carries_on(
    env: Env,
) -> None:
    await env.say("Hello")
    await env.say("QUIET 23:00-07:00")
    await env.say("1")
    assert env.loop.sms_bodies()[-1].startswith(env.text("welcome.who"))
    conv = await env.app[STORE].open_conversation(env.key())
    assert conv is not None
    texts = [m.text for m in await env.app[STORE].transcript(conv.id)]
    assert "QUIET 23:00-07:00" in texts


async def test_danger_after_the_quiet_word_gets_the_emergency_guidance_not_the_command(
    env: Env,
) -> None:
    await env.say("Hello")
    before = len(env.loop.sms_bodies())
    await env.say("Quiet hours after 10 please, if he sees this he will kill me")
    after = env.loop.sms_bodies()[before:]
    assert after and after[0] == env.text("risk.immediate")
    assert env.text("channels.quiet_unclear") not in after
    conv = await env.app[STORE].open_conversation(env.key())
    assert conv is not None and conv.risk_level == "immediate"
    assert (await env.app[STORE].contact_settings(env.key())).get("quiet_hours") is None


async def test_the_quiet_word_in_an_ordinary_sentence_reaches_the_journey(env: Env) -> None:
    await env.say("Hello")
    before = len(env.loop.sms_bodies())
    await env.say("quiet here tonight, the kids are asleep")
    assert env.text("channels.quiet_unclear") not in env.loop.sms_bodies()
    # The journey answers it: not an answer to "is it safe?", so that question again.
    (reply,) = env.loop.sms_bodies()[before:]
    assert reply.startswith(env.text("welcome.safe_retry"))
    conv = await env.app[STORE].open_conversation(env.key())
    assert conv is not None
    assert await env.app[STORE].pending_inbound(conv.id) == []


async def test_asking_if_it_is_safe_to_text_gets_the_privacy_guidance(env: Env) -> None:
    await env.say("Is it safe to text?")
    assert env.loop.sms_bodies()[-1] == env.text("channels.safe_text")
    await env.say("DIOGEL?")
    assert env.loop.sms_bodies()[-1] == env.text("channels.safe_text", "cy")


async def test_help_by_text_lists_the_words_that_work_including_texting_ones(env: Env) -> None:
    await env.say("HELP")
    assert env.loop.sms_bodies()[-2:] == [env.text("help.show"), env.text("channels.help_more")]


async def _held_back(env: Env, *bodies: str) -> None:
    """Texts that arrive while a turn for an earlier message of the conversation is still
    running (it holds the conversation): the next turn finds them all waiting at once."""
    conv = await env.app[STORE].open_conversation(env.key())
    assert conv is not None
    async with env.app[ENGINE].locks.hold(conv.id):
        for body in bodies:
            assert (await env.post(SMS_PATH, sms(body)))[0] == 200
    await env.app[ENGINE].drain()


async def test_help_sent_right_after_an_answer_is_answered_once_after_it(env: Env) -> None:
    await env.say("Hello")
    before = len(env.loop.sms_bodies())
    await _held_back(env, "1", "HELP")
    after = env.loop.sms_bodies()[before:]
    assert after[0].startswith(env.text("welcome.who"))
    assert after[1:] == [env.text("help.show"), env.text("channels.help_more")]


async def test_quiet_hours_sent_right_after_choosing_a_call_back_are_not_taken_as_its_time(
    env: Env,
) -> None:
    for body in ("Hello", "1", "1", "1", "2"):  # to "what would help most right now?"
        await env.say(body)
    before = len(env.loop.sms_bodies())
    await _held_back(env, "2", "QUIET 22-7")  # a call-back, then quiet hours
    after = env.loop.sms_bodies()[before:]
    assert after == [
        env.text("own.callback_when"),
        env.text("channels.quiet_set", start="22:00", end="07:00"),
    ]
    conv = await env.app[STORE].open_conversation(env.key())
    assert conv is not None
    assert conv.state == "callback" and "callback_window" not in conv.answers  # still asked
    assert (await env.app[STORE].contact_settings(env.key()))["quiet_hours"] == {
        "start": "22:00",
        "end": "07:00",
    }


async def test_help_asked_when_to_call_back_is_readable_in_the_transcript(env: Env) -> None:
    for body in ("Hello", "1", "1", "1", "2", "2"):  # to "when is it safe to call?"
        await env.say(body)
    await env.say("HELP")
    assert env.loop.sms_bodies()[-2:] == [env.text("help.show"), env.text("channels.help_more")]
    conv = await env.app[STORE].open_conversation(env.key())
    assert conv is not None
    inbound = [m for m in await env.app[STORE].transcript(conv.id) if m.direction is Direction.IN]
    assert inbound[-1].text == "HELP"


async def test_an_opt_out_asked_when_to_call_back_is_readable_in_the_transcript(
    env: Env,
) -> None:
    for body in ("Hello", "1", "1", "1", "2", "2"):  # to "when is it safe to call?"
        await env.say(body)
    conv = await env.app[STORE].open_conversation(env.key())
    assert conv is not None
    status, _, _ = await env.post(SMS_PATH, fixture("twilio_sms_opt_out.json", From=PHONE))
    assert status == 200
    await env.app[ENGINE].drain()
    inbound = [m for m in await env.app[STORE].transcript(conv.id) if m.direction is Direction.IN]
    assert inbound[-1].text == "STOP"
    assert (await env.app[STORE].conversation(conv.id)).closed


async def test_a_picture_without_words_gets_a_calm_text_only_reply_and_nothing_stored(
    env: Env,
) -> None:
    picture = fixture("twilio_mms_inbound.json", From=PHONE)
    for _ in range(2):  # the webhook delivered again: told once
        status, _, _ = await env.post(SMS_PATH, picture)
        assert status == 200
        await env.app[ENGINE].drain()
    assert env.loop.sms_bodies(PHONE) == [env.both("channels.text_only")]
    assert await env.app[STORE].open_conversation(env.key()) is None


async def test_several_whatsapp_pictures_at_once_bring_one_text_only_reply(env: Env) -> None:
    for _ in range(4):
        sid = sms("")["MessageSid"]
        picture = fixture(
            "twilio_whatsapp_inbound.json",
            Body="",
            NumMedia="1",
            MessageType="image",
            MediaContentType0="image/jpeg",
            MediaUrl0=f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}/Media/ME1",
            MessageSid=sid,
            SmsSid=sid,
            SmsMessageSid=sid,
        )
        assert (await env.post(WA_PATH, picture))[0] == 200
    await env.app[ENGINE].drain()
    assert env.loop.sms_bodies(WHATSAPP) == [env.both("channels.text_only")]
    assert await env.app[STORE].open_conversation(env.key(WHATSAPP)) is None


async def test_a_first_whatsapp_voice_note_is_answered_in_english_and_welsh(env: Env) -> None:
    sid = sms("")["MessageSid"]
    voice = fixture(
        "twilio_whatsapp_inbound.json",
        Body="",
        NumMedia="1",
        MessageType="audio",
        MediaContentType0="audio/ogg",
        MediaUrl0=f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}/Media/ME1",
        MessageSid=sid,
        SmsSid=sid,
        SmsMessageSid=sid,
    )
    assert (await env.post(WA_PATH, voice))[0] == 200
    await env.app[ENGINE].drain()
    [said] = env.loop.sms_bodies(WHATSAPP)
    assert env.text("channels.text_only") in said
    assert env.text("channels.text_only", "cy") in said


async def test_a_whatsapp_location_gets_the_text_only_reply_and_nothing_stored(env: Env) -> None:
    status, _, _ = await env.post(WA_PATH, fixture("twilio_whatsapp_location.json"))
    assert status == 200
    await env.app[ENGINE].drain()
    assert env.loop.sms_bodies(WHATSAPP) == [env.both("channels.text_only")]
    assert await env.app[STORE].open_conversation(env.key(WHATSAPP)) is None


async def test_texts_over_the_rate_limit_are_acknowledged_and_told_once_to_slow_down(
    limited: Env,
) -> None:
    env, app = limited, limited.app
    for n in range(5):
        status, content_type, body = await env.post(SMS_PATH, sms(f"hello {n}"))
        assert (status, content_type) == (200, "text/xml")  # not redelivered
        assert body.endswith("<Response/>")
    await app[ENGINE].drain()
    assert env.loop.sms_bodies(PHONE).count(env.text("channels.slow_down")) == 1
    conv = await app[STORE].open_conversation(env.key())
    assert conv is not None
    transcript = await app[STORE].transcript(conv.id)
    assert [m.text for m in transcript if m.direction is Direction.IN] == [
        "hello 0",
        "hello 1",
    ]


async def test_an_opt_out_over_the_rate_limit_still_ends_the_conversation(limited: Env) -> None:
    env, app = limited, limited.app
    for n in range(2):
        await env.post(SMS_PATH, sms(f"hello {n}"))
    status, _, _ = await env.post(SMS_PATH, fixture("twilio_sms_opt_out.json", From=PHONE))
    assert status == 200
    await app[ENGINE].drain()
    assert await app[STORE].open_conversation(env.key()) is None
    assert (await app[STORE].contact_settings(env.key()))["opted_out"] is True


# -- bad requests ------------------------------------------------------------------------------


async def test_unsigned_or_wrongly_signed_webhooks_are_refused_and_nothing_is_stored(
    env: Env,
) -> None:
    params = sms("Hello")
    assert (await env.post(SMS_PATH, params, signature=""))[0] == 403
    assert (await env.post(SMS_PATH, params, signature="bm90IGEgc2lnbmF0dXJl"))[0] == 403
    signed_for_other_url = RequestValidator(TOKEN).compute_signature(
        "https://elsewhere.example" + SMS_PATH, params
    )
    assert (await env.post(SMS_PATH, params, signature=signed_for_other_url))[0] == 403
    await env.app[ENGINE].drain()
    assert await env.app[STORE].sealed_address(env.key()) is None
    assert env.loop.twilio_sent() == []


async def test_malformed_or_oversize_webhooks_get_a_clean_answer(env: Env) -> None:
    # Signed but missing the sender and message id.
    assert (await env.post(SMS_PATH, {"Body": "Hello"}))[0] == 400
    # A WhatsApp address on the SMS webhook.
    assert (await env.post(SMS_PATH, sms("Hello", WHATSAPP)))[0] == 400
    # Not a form at all.
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC + SMS_PATH, {})
    async with env.http.post(
        env.url + SMS_PATH,
        data=b"\xff\xfe{not a form",
        headers={"X-Twilio-Signature": signature, "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 400
    async with env.http.post(
        env.url + SMS_PATH, data=sms("x" * 40_000), headers={"X-Twilio-Signature": "x"}
    ) as resp:
        assert resp.status == 413
    await env.app[ENGINE].drain()
    assert env.loop.twilio_sent() == []


# -- privacy -------------------------------------------------------------------------------------


async def test_the_phone_number_and_words_stay_out_of_logs_and_the_number_out_of_the_database(
    env: Env, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    quiet_libraries()  # as setup_logging does in production: drivers log SQL parameters
    secret_words = "my unusual words zebra"
    await env.say("Hello")
    await env.say("1")
    await env.say(secret_words)
    await env.say("QUIET 22:00-08:00")
    await env.say("I've got a knife and I'm going to use it")
    env.loop.fail_twilio(21610)
    await env.say("stop")
    assert env.loop.sms_bodies()  # the journey really ran
    for leak in (PHONE, PHONE[1:], "7700900123", secret_words, TOKEN):
        leaking = [r.name for r in caplog.records if leak in log_text(r)]
        assert not leaking, f"logged by {leaking}"
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("helpline.db*"))
    assert stored  # the database (and its WAL) were read
    for leak in (PHONE, "7700900123"):
        assert leak.encode() not in stored


# -- set-up and shaping --------------------------------------------------------------------------


async def test_without_twilio_settings_no_twilio_webhook_or_sender_exists(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with (
        running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url),
        aiohttp.ClientSession() as http,
    ):
        assert "sms" not in app[SENDERS] and "whatsapp" not in app[SENDERS]
        async with http.post(url + SMS_PATH, data={"Body": "x"}) as resp:
            assert resp.status in (404, 405)


async def test_sms_only_settings_register_sms_but_not_whatsapp(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = settings_for(
        sqlite_url,
        tmp_path,
        twilio_account_sid=ACCOUNT,
        twilio_auth_token=TOKEN,
        twilio_messaging_service_sid="MG" + "1" * 32,
    )
    async with running(settings) as (app, _, _):
        assert "sms" in app[SENDERS] and "whatsapp" not in app[SENDERS]


def test_long_replies_are_split_in_order_at_sentence_or_paragraph_ends() -> None:
    paragraph = " ".join(f"Sentence number {i} is here." for i in range(60))
    text = "\n\n".join([paragraph, "Short one.", paragraph])
    parts = texting.split_text(text, 1600)
    assert len(parts) > 2 and all(len(p) <= 1600 for p in parts)
    assert all(p.endswith(".") for p in parts)
    assert " ".join(" ".join(parts).split()) == " ".join(text.split())


def test_a_single_word_longer_than_a_message_is_still_cut_to_size() -> None:
    parts = texting.split_text("a" * 3500, 1600)
    assert [len(p) for p in parts] == [1600, 1600, 300]


async def test_an_adviser_reply_with_a_long_blank_run_reaches_the_person_by_text(
    env: Env,
) -> None:
    await env.say("Hello")
    conv = await env.app[STORE].open_conversation(env.key())
    assert conv is not None
    before = len(env.loop.sms_bodies())
    text = "Thanks for waiting.\n\n" + " " * 1700 + "\n\nI'm here."
    message = OutboundMessage(5, conv.id, "sms", PHONE, Reply(text), "en", conv.contact_key)
    assert await env.app[SENDERS]["sms"].send(message)
    assert env.loop.sms_bodies()[before:] == ["Thanks for waiting.\n\nI'm here."]
    assert texting.split_text("a\n\n" + " " * 2000 + "\n\nb", 1600) == ["a\n\nb"]
    assert texting.split_text(" " * 2000 + "\n\n" + " " * 2000, 1600) == []


def test_options_become_numbered_lines_under_the_text() -> None:
    reply = Reply("Which is closest?", ("Me", "Someone else"))
    assert texting.numbered(reply, "Reply with a number:") == (
        "Which is closest?\n\nReply with a number:\n1. Me\n2. Someone else"
    )


@pytest.mark.parametrize(
    ("said", "window"),
    [
        ("22:00-08:00", {"start": "22:00", "end": "08:00"}),
        ("22-7", {"start": "22:00", "end": "07:00"}),
        ("21.30 to 6.45", {"start": "21:30", "end": "06:45"}),
        ("9 tan 17", {"start": "09:00", "end": "17:00"}),
        ("24:00-08:00", None),
        ("22:00-22:00", None),
        ("tonight", None),
    ],
)
def test_quiet_hours_are_read_from_24_hour_times(said: str, window: dict[str, str] | None) -> None:
    assert texting.parse_window(said) == window
