"""Telegram end to end: Bot API updates (fixtures in Telegram's own JSON) posted to the running
app's webhook with the secret header; the bot's calls captured by a loopback Bot API."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from channels import telegram
from helpline import engine
from helpline.app import CONTENT, ENGINE, PRIVACY, SENDERS, STORE
from helpline.config import Settings
from helpline.domain import UNSTORED, Delivery, Direction, OutboundMessage, Reply
from helpline.errors import DeliveryError
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


CHAT_ID = 5550001234
BOT_TOKEN = "123456:TEST-token_abc"
SECRET = "telegram-webhook-secret-0123456789"
PATH = "/channels/telegram"
PUBLIC = "https://helpline.example.org"


def update(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


_ids = iter(range(900_000_000, 999_999_999))


def text_update(text: str, *, chat_id: int = CHAT_ID, language: str = "en") -> dict[str, Any]:
    data = copy.deepcopy(update("telegram_text_message.json"))
    number = next(_ids)
    data["update_id"] = number
    message = data["message"]
    message["message_id"] = number % 1_000_000
    message["text"] = text
    message["chat"]["id"] = message["from"]["id"] = chat_id
    message["from"]["language_code"] = language
    return data


@dataclass
class Env:
    app: web.Application
    url: str
    settings: Settings
    loop: Loopback
    http: aiohttp.ClientSession

    def text(self, key: str, lang: str = "en", **params: Any) -> str:
        return self.app[CONTENT].text(key, lang, **params)

    def both(self, key: str) -> str:
        """Said before the person has a conversation: English, then Welsh."""
        return f"{self.text(key)}\n\n{self.text(key, 'cy')}"

    async def post(
        self, data: Any, *, secret: str | None = SECRET, raw: bytes | None = None
    ) -> int:
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        body = raw if raw is not None else json.dumps(data).encode()
        async with self.http.post(self.url + PATH, data=body, headers=headers) as resp:
            return resp.status

    async def say(self, text: str, **kwargs: Any) -> None:
        assert await self.post(text_update(text, **kwargs)) == 200
        await self.app[ENGINE].drain()

    def key(self, chat_id: int = CHAT_ID) -> str:
        return self.app[PRIVACY].contact_key("telegram", str(chat_id))


def telegram_settings(database_url: str, tmp: Path, api_base: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "telegram_token": BOT_TOKEN,
        "telegram_secret": SECRET,
        "telegram_api_base": api_base,
        "public_url": PUBLIC,
        **extra,
    }
    return settings_for(database_url, tmp, **values)


@pytest.fixture
async def env(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    async with loopback(bot_token=BOT_TOKEN) as lb:
        settings = telegram_settings(sqlite_url, tmp_path, lb.url)
        async with (
            running(settings, serve=True, clock=noon) as (app, _, url),
            aiohttp.ClientSession() as http,
        ):
            yield Env(app, url, settings, lb, http)


def keyboard(call: dict[str, Any]) -> list[str]:
    markup = call.get("reply_markup") or {}
    return [row[0]["text"] for row in markup.get("keyboard", [])]


# -- journeys --------------------------------------------------------------------------------


async def test_a_telegram_message_gets_the_welcome_with_the_choices_as_buttons(
    database_url: str, tmp_path: Path
) -> None:
    async with loopback(bot_token=BOT_TOKEN) as lb:
        settings = telegram_settings(database_url, tmp_path, lb.url)
        async with (
            running(settings, serve=True, clock=noon) as (app, _, url),
            aiohttp.ClientSession() as http,
        ):
            env = Env(app, url, settings, lb, http)
            assert lb.telegram("getMe")  # the bot was initialised against the loopback
            await env.say("Hello")
            calls = lb.telegram("sendMessage")
            assert calls[0]["text"] == env.text("welcome.intro")
            assert {int(c["chat_id"]) for c in calls} == {CHAT_ID}
            assert env.text("welcome.opt_safe") in keyboard(calls[-1])
            await env.say(env.text("welcome.opt_safe"))  # a tap on the button sends its label
            assert lb.telegram_texts()[-1] == env.text("welcome.who")
            assert env.text("who.opt_self") in keyboard(lb.telegram("sendMessage")[-1])
            await env.say("/stop")
            assert lb.telegram_texts()[-1] == env.text("stop.done")
            assert "remove_keyboard" in lb.telegram("sendMessage")[-1]["reply_markup"]
            assert await app[STORE].open_conversation(env.key()) is None


async def test_pressing_start_in_telegram_opens_with_the_welcome(env: Env) -> None:
    assert await env.post(update("telegram_start_command.json")) == 200
    await env.app[ENGINE].drain()
    assert env.loop.telegram_texts()[0] == env.text("welcome.intro")


async def test_words_after_start_are_read_and_a_deep_link_is_not(env: Env) -> None:
    # "/start" then words, typed as a first message: the words used to be dropped with a
    # deep link's parameter, unscreened.
    await env.say("/start I'm going to kill myself tonight")
    assert env.loop.telegram_texts()[0] == env.text("risk.suicide")
    one_word = 5550004322
    assert await env.post(text_update("/start suicidal", chat_id=one_word)) == 200
    await env.app[ENGINE].drain()
    to_them = [c["text"] for c in env.loop.telegram("sendMessage") if int(c["chat_id"]) == one_word]
    assert to_them[0] == env.text("risk.suicide")
    other = 5550004321
    assert await env.post(text_update("/start campaign_tv-2026", chat_id=other)) == 200
    await env.app[ENGINE].drain()
    to_other = [c["text"] for c in env.loop.telegram("sendMessage") if int(c["chat_id"]) == other]
    assert to_other[0] == env.text("welcome.intro")


async def test_a_welsh_telegram_user_is_welcomed_in_welsh(env: Env) -> None:
    await env.say("Helo", language="cy")
    assert env.loop.telegram_texts()[0] == env.text("welcome.intro", "cy")


async def test_risk_in_a_telegram_message_is_answered_with_safety_words_first(env: Env) -> None:
    await env.say("Hello")
    before = len(env.loop.telegram_texts())
    await env.say("I've got a knife and I'm going to use it")
    assert env.loop.telegram_texts()[before] == env.text("risk.immediate")


async def test_a_redelivered_update_is_stored_and_answered_once(env: Env) -> None:
    data = text_update("Hello")
    for _ in range(3):
        assert await env.post(data) == 200
    await env.app[ENGINE].drain()
    assert env.loop.telegram_texts().count(env.text("welcome.intro")) == 1
    conv = await env.app[STORE].open_conversation(env.key())
    assert conv is not None
    inbound = [m for m in await env.app[STORE].transcript(conv.id) if m.direction is Direction.IN]
    assert len(inbound) == 1


async def test_a_button_press_is_acknowledged_and_read_as_the_person_s_answer(env: Env) -> None:
    await env.say("Hello")
    press = update("telegram_callback_query.json")
    assert await env.post(press) == 200
    await env.app[ENGINE].drain()
    assert [c["callback_query_id"] for c in env.loop.telegram("answerCallbackQuery")] == [
        press["callback_query"]["id"]
    ]
    conv = await env.app[STORE].open_conversation(env.key())
    assert conv is not None
    texts = [m.text for m in await env.app[STORE].transcript(conv.id)]
    assert "menu" in texts


async def test_quiet_hours_and_safety_guidance_work_on_telegram_too(env: Env) -> None:
    await env.say("QUIET 22:00-08:00")
    assert env.loop.telegram_texts()[-1] == env.text(
        "channels.quiet_set", start="22:00", end="08:00"
    )
    settings = await env.app[STORE].contact_settings(env.key())
    assert settings["quiet_hours"] == {"start": "22:00", "end": "08:00"}
    await env.say("safe?")
    assert env.loop.telegram_texts()[-1] == env.text("channels.safe_telegram")


async def test_messages_over_the_rate_limit_are_acknowledged_and_told_once_to_slow_down(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with loopback(bot_token=BOT_TOKEN) as lb:
        settings = telegram_settings(sqlite_url, tmp_path, lb.url, messages_per_minute=2)
        async with (
            running(settings, serve=True, clock=noon) as (app, _, url),
            aiohttp.ClientSession() as http,
        ):
            env = Env(app, url, settings, lb, http)
            app[ENGINE].limiter = MemoryLimiter(lambda: 30.0)  # every message in one window
            for n in range(5):
                assert await env.post(text_update(f"hello {n}")) == 200  # not redelivered
            await app[ENGINE].drain()
            assert lb.telegram_texts().count(env.text("channels.slow_down")) == 1
            conv = await app[STORE].open_conversation(env.key())
            assert conv is not None
            transcript = await app[STORE].transcript(conv.id)
            assert [m.text for m in transcript if m.direction is Direction.IN] == [
                "hello 0",
                "hello 1",
            ]


async def test_telegram_out_of_reach_at_start_is_tried_again_until_the_bot_answers(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The service starts without Telegram (web chat must not wait for it); once the Bot API
    # answers, the bot starts in the background and a person writing then is welcomed.
    monkeypatch.setattr(telegram, "START_RETRY_SECONDS", 0.05)
    async with loopback(bot_token=BOT_TOKEN) as lb:
        lb.telegram_down = True
        settings = telegram_settings(sqlite_url, tmp_path, lb.url)
        async with (
            running(settings, serve=True, clock=noon) as (app, _, url),
            aiohttp.ClientSession() as http,
        ):
            env = Env(app, url, settings, lb, http)
            await wait_for(lambda: len(lb.telegram("getMe")) >= 3)  # tried again, and again
            assert lb.telegram_texts() == []
            lb.telegram_down = False
            channel = app[SENDERS]["telegram"]
            await wait_for(lambda: channel.application.running, timeout=15)
            await env.say("Hello")
            assert lb.telegram_texts()[0] == env.text("welcome.intro")


# -- what is not text ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["telegram_sticker.json", "telegram_photo.json"])
async def test_stickers_and_photos_get_a_calm_text_only_reply_and_nothing_stored(
    env: Env, name: str
) -> None:
    for _ in range(2):  # the update delivered again: told once
        assert await env.post(update(name)) == 200
        await env.app[ENGINE].drain()
    assert env.loop.telegram_texts() == [env.both("channels.text_only")]
    assert await env.app[STORE].sealed_address(env.key()) is None


def numbered(data: dict[str, Any], n: int, kind: str = "message") -> dict[str, Any]:
    """The n-th of several updates like `data`: each its own update and message."""
    data = copy.deepcopy(data)
    data["update_id"] += n
    data[kind]["message_id"] += n
    return data


async def test_a_flood_of_stickers_or_an_album_without_words_brings_one_reply(env: Env) -> None:
    for n in range(4):
        assert await env.post(numbered(update("telegram_sticker.json"), n)) == 200
    for n in range(3):
        assert await env.post(numbered(update("telegram_album_photo.json"), n)) == 200
    await env.app[ENGINE].drain()
    assert env.loop.telegram_texts() == [env.both("channels.text_only")]


async def test_an_album_with_words_has_them_read_and_no_text_only_reply(env: Env) -> None:
    for n in range(3):  # three photos sent together, the words on the first
        photo = numbered(update("telegram_album_photo.json"), n)
        if n == 0:
            photo["message"]["caption"] = "Hello"
        assert await env.post(photo) == 200
    await env.app[ENGINE].drain()
    texts = env.loop.telegram_texts()
    assert texts[0] == env.text("welcome.intro")
    assert env.text("channels.text_only") not in texts
    conv = await env.app[STORE].open_conversation(env.key())
    assert conv is not None
    inbound = [m for m in await env.app[STORE].transcript(conv.id) if m.direction is Direction.IN]
    assert [m.text for m in inbound] == ["Hello"]


async def test_a_live_location_gets_one_reply_not_one_for_every_move(env: Env) -> None:
    assert await env.post(update("telegram_live_location.json")) == 200
    for n in range(5):  # each new position arrives as an edit of the same message
        moved = update("telegram_live_location_moved.json")
        moved["update_id"] += n
        moved["edited_message"]["edit_date"] += 30 * n
        assert await env.post(moved) == 200
    await env.app[ENGINE].drain()
    assert env.loop.telegram_texts() == [env.both("channels.text_only")]
    assert await env.app[STORE].sealed_address(env.key()) is None


async def test_several_edits_in_a_row_bring_one_reply(env: Env) -> None:
    await env.say("Hello")
    before = len(env.loop.telegram_texts())
    for n in range(3):
        edit = update("telegram_edited_message.json")
        edit["update_id"] += n
        edit["edited_message"]["edit_date"] += 10 * n
        edit["edited_message"]["text"] = f"Hello again {n}"
        assert await env.post(edit) == 200
    await env.app[ENGINE].drain()
    assert env.loop.telegram_texts()[before:] == [env.text("channels.edit_unseen")]


async def test_a_photo_s_caption_is_read_and_screened_like_text_and_the_photo_not_stored(
    env: Env,
) -> None:
    assert await env.post(update("telegram_photo_caption.json")) == 200
    await env.app[ENGINE].drain()
    texts = env.loop.telegram_texts()
    assert env.text("risk.immediate") in texts
    assert env.text("channels.text_only") not in texts
    conv = await env.app[STORE].open_conversation(env.key())
    assert conv is not None and conv.risk_level == "immediate"
    inbound = [m for m in await env.app[STORE].transcript(conv.id) if m.direction is Direction.IN]
    assert [m.text for m in inbound] == ["I've got a knife and I'm going to use it"]


async def test_an_edit_that_names_a_danger_is_read_as_a_new_message_once(env: Env) -> None:
    original = update("telegram_text_message.json")  # message 11, "Hello"
    assert await env.post(original) == 200
    await env.app[ENGINE].drain()
    before = len(env.loop.telegram_texts())
    edit = update("telegram_edited_message_risky.json")  # message 11 again, edited
    for _ in range(2):  # redelivered: handled once
        assert await env.post(edit) == 200
    await env.app[ENGINE].drain()
    after = env.loop.telegram_texts()[before:]
    assert after.count(env.text("risk.immediate")) == 1
    assert env.text("channels.edit_unseen") not in after
    conv = await env.app[STORE].open_conversation(env.key())
    assert conv is not None and conv.risk_level == "immediate"
    inbound = [m for m in await env.app[STORE].transcript(conv.id) if m.direction is Direction.IN]
    assert [m.text for m in inbound] == ["Hello", edit["edited_message"]["text"]]


async def test_an_edited_message_is_not_read_again_and_the_person_is_told(env: Env) -> None:
    await env.say("Hello")
    before = len(env.loop.telegram_texts())
    for _ in range(2):  # the update delivered again: told once
        assert await env.post(update("telegram_edited_message.json")) == 200
        await env.app[ENGINE].drain()
    assert env.loop.telegram_texts()[before:] == [env.text("channels.edit_unseen")]


@pytest.mark.parametrize("name", ["telegram_my_chat_member.json", "telegram_group_message.json"])
async def test_updates_that_are_not_a_private_message_are_acknowledged_and_ignored(
    env: Env, name: str
) -> None:
    assert await env.post(update(name)) == 200
    await env.app[ENGINE].drain()
    assert env.loop.telegram("sendMessage") == []


# -- refusals and bad requests -------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"new_chat_member": {"status": 5}},
        {"new_chat_member": None},
        {"chat": {"id": "x", "type": "private"}},
        {"date": "today"},
    ],
)
async def test_a_malformed_block_report_is_refused_and_nothing_changes(
    env: Env, change: dict[str, Any]
) -> None:
    await env.say("Hello")
    data = update("telegram_my_chat_member.json")
    data["my_chat_member"].update(change)
    assert await env.post(data) == 400
    assert not (await env.app[STORE].contact_settings(env.key())).get("opted_out")


async def test_a_webhook_without_the_right_secret_is_refused_and_nothing_stored(
    env: Env,
) -> None:
    assert await env.post(text_update("Hello"), secret=None) == 403
    assert await env.post(text_update("Hello"), secret="wrong") == 403
    await env.app[ENGINE].drain()
    assert await env.app[STORE].sealed_address(env.key()) is None
    assert env.loop.telegram("sendMessage") == []


async def test_malformed_or_oversize_updates_get_a_clean_answer(env: Env) -> None:
    assert await env.post(None, raw=b"{not json") == 400
    assert await env.post(None, raw=b"\xff\xfe") == 400
    assert await env.post([1, 2, 3]) == 400
    assert await env.post({"message": {"text": "no update id"}}) == 400
    assert await env.post({"update_id": 5, "message": {"text": "no chat"}}) == 400
    bad_caption = update("telegram_photo_caption.json")
    bad_caption["message"]["caption"] = {"not": "text"}
    assert await env.post(bad_caption) == 400
    assert await env.post(None, raw=b"{" + b" " * 70_000 + b"}") == 413
    # Dates no clock can read, where the channel reads them and where only PTB does.
    for field in ("date", "edit_date"):
        for when in (2**62, -5):
            odd = text_update("hello")
            odd["message"][field] = when
            assert await env.post(odd) == 400, (field, when)
    channel_post = {"update_id": 7, "channel_post": {**text_update("hi")["message"], "date": 2**62}}
    assert await env.post(channel_post) == 400
    await env.app[ENGINE].drain()
    assert env.loop.telegram("sendMessage") == []


def _replying_to(depth: int) -> dict[str, Any]:
    """A message replying to a message replying to ... `depth` deep (Telegram nests none:
    a reply_to_message never carries one of its own)."""
    inner: dict[str, Any] = {"message_id": 1, "date": 1, "chat": {"id": 1, "type": "private"}}
    for n in range(depth):
        chat = {"id": 1, "type": "private"}
        inner = {"message_id": n + 2, "date": 1, "chat": chat, "reply_to_message": inner}
    return inner


async def test_an_update_nested_too_deep_is_refused_cleanly_and_the_next_one_taken(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    # Both used to answer 500, the second with some 3,000 lines of traceback in the log.
    assert await env.post(None, raw=b"[" * 20_000) == 400
    deep = text_update("hello")
    deep["message"]["reply_to_message"] = _replying_to(600)
    assert len(json.dumps(deep)) < 64 * 1024  # under the webhook's size limit
    assert await env.post(deep) == 400
    await env.say("Hello")
    assert env.loop.telegram_texts()[0] == env.text("welcome.intro")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert not any(r.exc_info for r in caplog.records)


async def test_button_presses_with_ids_too_long_or_odd_to_store_are_taken_once_each(
    database_url: str, tmp_path: Path
) -> None:
    # An id of 61 characters or more overflowed the message's external id on PostgreSQL:
    # a 500, and Telegram sending the press again and again. Real ids are ~19 digits.
    ids = ["4382bfdwdsb323b2d9", "9" * 61, "9" * 62, "x" * 5000, "nul\x00inside"]
    async with loopback(bot_token=BOT_TOKEN) as lb:
        settings = telegram_settings(database_url, tmp_path, lb.url)
        async with (
            running(settings, serve=True, clock=noon) as (app, _, url),
            aiohttp.ClientSession() as http,
        ):
            env = Env(app, url, settings, lb, http)
            await env.say("Hello")
            for query_id in ids:
                press = update("telegram_callback_query.json")
                press["callback_query"]["id"] = query_id
                for _ in range(2):  # and delivered again
                    assert await env.post(press) == 200, query_id[:70]
                await env.app[ENGINE].drain()
            conv = await env.app[STORE].open_conversation(env.key())
            assert conv is not None
            said = [m.text for m in await env.app[STORE].transcript(conv.id)]
            assert said.count("menu") == len(ids)
            answered = [str(c["callback_query_id"]) for c in lb.telegram("answerCallbackQuery")]
            assert set(answered) == set(ids)  # acknowledged with the id Telegram gave


async def test_a_person_who_blocked_the_bot_is_marked_and_not_retried(env: Env) -> None:
    await env.say("Hello")
    before = len(env.loop.telegram("sendMessage"))
    env.loop.fail_telegram(403, "Forbidden: bot was blocked by the user")
    await env.say("1")
    assert len(env.loop.telegram("sendMessage")) == before + 1
    assert (await env.app[STORE].contact_settings(env.key()))["opted_out"] is True
    conv = await env.app[STORE].open_conversation(env.key())
    assert conv is not None
    assert (await env.app[STORE].transcript(conv.id))[-1].status is Delivery.FAILED


async def _sent_in_the_end(app: web.Application, conversation_id: str) -> list[Delivery]:
    await wait_for(lambda: not app[ENGINE]._resending, timeout=15)
    await app[ENGINE].drain()
    return [
        m.status
        for m in await app[STORE].transcript(conversation_id)
        if m.direction is Direction.OUT
    ]


async def test_danger_guidance_held_back_by_telegram_flood_control_is_sent_again_first(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with loopback(bot_token=BOT_TOKEN) as lb:
        settings = telegram_settings(database_url, tmp_path, lb.url)
        async with (
            running(settings, serve=True, clock=noon) as (app, _, url),
            aiohttp.ClientSession() as http,
        ):
            env = Env(app, url, settings, lb, http)
            await env.say("Hello")
            before = len(lb.telegram_texts())
            lb.fail_telegram(429, "Too Many Requests: retry after 1")
            caplog.set_level(logging.INFO)
            await env.say("I've got a knife and I'm going to use it")
            # Refused once, and the replies after it wait behind it rather than overtake it.
            assert len(lb.telegram_texts()) == before + 1
            await wait_for(lambda: len(lb.telegram_texts()) >= before + 3, timeout=15)
            again = lb.telegram_texts()[before + 1 :]
            assert again[0] == env.text("risk.immediate")
            assert "adviser" in again[1]
            conv = await app[STORE].open_conversation(env.key())
            assert conv is not None
            assert set(await _sent_in_the_end(app, conv.id)) == {Delivery.SENT}
            logged = "\n".join(log_text(r) for r in caplog.records)
            assert "RetryAfter" in logged
            assert str(CHAT_ID) not in logged and "knife" not in logged


async def test_guidance_held_back_on_one_instance_is_sent_once_when_another_answers_first(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two instances on one database, their locks not shared (a lapsed lease, Redis
    # restarted): the person writes again to the other instance before the first one's
    # next try. The other sends the guidance first; the first one's try sends nothing twice.
    monkeypatch.setattr(engine, "RESEND_FIRST_SECONDS", 1.0)
    async with loopback(bot_token=BOT_TOKEN) as lb:
        settings = telegram_settings(pg_url, tmp_path, lb.url)
        async with (
            running(settings, serve=True, clock=noon) as (first, _, first_url),
            running(settings, serve=True, clock=noon) as (other, _, other_url),
            aiohttp.ClientSession() as http,
        ):
            await Env(first, first_url, settings, lb, http).say("Hello")
            before = len(lb.telegram_texts())
            lb.fail_telegram(429, "Too Many Requests: retry after 1")
            await Env(first, first_url, settings, lb, http).say("I want to kill myself tonight")
            assert len(lb.telegram_texts()) == before + 1  # refused: waits for its next try
            await Env(other, other_url, settings, lb, http).say("are you there?")
            conv = await first[STORE].open_conversation(Env(first, "", settings, lb, http).key())
            assert conv is not None
            await _sent_in_the_end(first, conv.id)
            await _sent_in_the_end(other, conv.id)
            texts = lb.telegram_texts()[before:]
            guidance = first[CONTENT].text("risk.suicide", "en")
            assert texts[0] == texts[1] == guidance  # refused, then sent by the other
            assert texts.count(guidance) == 2  # and not a third time by the first's try


async def test_someone_who_wrote_while_telegram_was_out_of_reach_is_answered_once_it_is_back(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telegram, "START_RETRY_SECONDS", 0.2)
    # However long it is out of reach: waiting for the bot to start is no failed try.
    monkeypatch.setattr(engine, "SEND_TRIES", 1)
    async with loopback(bot_token=BOT_TOKEN) as lb:
        lb.telegram_down = True
        settings = telegram_settings(sqlite_url, tmp_path, lb.url)
        async with (
            running(settings, serve=True, clock=noon) as (app, _, url),
            aiohttp.ClientSession() as http,
        ):
            env = Env(app, url, settings, lb, http)
            await env.say("I want to kill myself tonight")
            assert lb.telegram_texts() == []
            lb.telegram_down = False  # back well before the replies' own next try
            await wait_for(lambda: len(lb.telegram_texts()) >= 3, timeout=15)
            assert lb.telegram_texts()[0] == env.text("risk.suicide")
            conv = await app[STORE].open_conversation(env.key())
            assert conv is not None
            assert set(await _sent_in_the_end(app, conv.id)) == {Delivery.SENT}


async def test_the_bot_never_messages_a_chat_that_has_not_written_in(env: Env) -> None:
    channel = env.app[SENDERS]["telegram"]
    with pytest.raises(DeliveryError):
        await channel.send(OutboundMessage(1, "c", "telegram", "777000111", Reply("hi"), "en"))
    assert env.loop.telegram("sendMessage") == []


# -- privacy -------------------------------------------------------------------------------------


async def test_the_chat_id_and_words_stay_out_of_logs_and_the_id_out_of_the_database(
    env: Env, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    quiet_libraries()  # as setup_logging does in production: drivers log SQL parameters
    secret_words = "my unusual words giraffe"
    await env.say("Hello")
    await env.say("1")
    await env.say(secret_words)
    await env.say("QUIET 22:00-08:00")
    await env.say("I've got a knife and I'm going to use it")
    assert await env.post(update("telegram_sticker.json")) == 200
    await env.say("stop")
    assert env.loop.telegram_texts()
    for leak in (str(CHAT_ID), secret_words, BOT_TOKEN, SECRET):
        leaking = [r.name for r in caplog.records if leak in log_text(r)]
        assert not leaking, f"logged by {leaking}"
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("helpline.db*"))
    assert stored
    assert str(CHAT_ID).encode() not in stored


# -- set-up, set-webhook and polling -----------------------------------------------------------


async def test_without_a_bot_token_no_telegram_webhook_or_sender_exists(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with (
        running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url),
        aiohttp.ClientSession() as http,
    ):
        assert "telegram" not in app[SENDERS]
        async with http.post(url + PATH, json=text_update("x")) as resp:
            assert resp.status in (404, 405)


async def test_set_webhook_points_telegram_at_our_url_with_the_secret(tmp_path: Path) -> None:
    async with loopback(bot_token=BOT_TOKEN) as lb:
        settings = telegram_settings("sqlite+aiosqlite://", tmp_path, lb.url)
        url = await telegram.set_webhook(settings)
        assert url == PUBLIC + PATH
        (call,) = lb.telegram("setWebhook")
        assert call["url"] == PUBLIC + PATH
        assert call["secret_token"] == SECRET
        assert set(call["allowed_updates"]) == set(telegram.ALLOWED_UPDATES)


async def test_polling_stores_and_answers_updates_without_a_webhook(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with loopback(bot_token=BOT_TOKEN) as lb:
        settings = telegram_settings(sqlite_url, tmp_path, lb.url, telegram_secret=None)
        async with running(settings, clock=noon) as (app, _, _):
            stop = asyncio.Event()
            task = asyncio.create_task(telegram.poll(app, stop=stop))
            try:
                lb.queue_update(text_update("Hello"))
                await wait_for(lambda: len(lb.telegram_texts()) >= 1)
                await app[ENGINE].drain()
                assert lb.telegram_texts()[0] == app[CONTENT].text("welcome.intro", "en")
                assert lb.telegram("deleteWebhook")
            finally:
                stop.set()
                await task


async def test_polling_started_while_telegram_is_out_of_reach_answers_once_it_is_back(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telegram, "START_RETRY_SECONDS", 0.05)
    async with loopback(bot_token=BOT_TOKEN) as lb:
        lb.telegram_down = True
        settings = telegram_settings(sqlite_url, tmp_path, lb.url, telegram_secret=None)
        async with running(settings, clock=noon) as (app, _, _):
            stop = asyncio.Event()
            task = asyncio.create_task(telegram.poll(app, stop=stop))
            try:
                await wait_for(lambda: len(lb.telegram("deleteWebhook")) >= 2)  # tried again
                assert not task.done()
                lb.telegram_down = False
                lb.queue_update(text_update("Hello"))
                await wait_for(lambda: len(lb.telegram_texts()) >= 1, timeout=15)
                assert lb.telegram_texts()[0] == app[CONTENT].text("welcome.intro", "en")
            finally:
                stop.set()
                await task


async def test_polling_moves_on_past_a_message_over_the_rate_limit(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with loopback(bot_token=BOT_TOKEN) as lb:
        settings = telegram_settings(
            sqlite_url, tmp_path, lb.url, telegram_secret=None, messages_per_minute=1
        )
        async with running(settings, clock=noon) as (app, _, _):
            app[ENGINE].limiter = MemoryLimiter(lambda: 30.0)  # every message in one window
            stop = asyncio.Event()
            task = asyncio.create_task(telegram.poll(app, stop=stop))
            try:
                first, over = text_update("Hello"), text_update("hello again")
                lb.queue_update(first)
                lb.queue_update(over)
                # The next getUpdates confirms both: nobody else's updates wait behind it.
                await wait_for(
                    lambda: any(
                        int(call.get("offset") or 0) > over["update_id"]
                        for call in lb.telegram("getUpdates")
                    )
                )
                await app[ENGINE].drain()
                slow_down = app[CONTENT].text("channels.slow_down", "en")
                assert lb.telegram_texts().count(slow_down) == 1
            finally:
                stop.set()
                await task


async def test_delete_my_data_also_clears_the_conversation_from_the_telegram_chat(
    env: Env,
) -> None:
    posted = []
    for n, text in enumerate(("hello", "1", "delete my data", "1")):
        data = text_update(text)
        data["message"]["message_id"] = 500_000 + n  # apart from the bot's own numbering
        posted.append(data["message"]["message_id"])
        assert await env.post(data) == 200
        await env.app[ENGINE].drain()
    deleted = {i for call in env.loop.telegram("deleteMessages") for i in call["message_ids"]}
    # Everything the bot sent before the erasure (the loopback numbers them from 100) and
    # everything the person sent is gone from the chat; only the confirmation remains.
    sent = env.loop.telegram("sendMessage")
    bot_ids = set(range(100, 100 + len(sent) - 1))
    assert set(posted) <= deleted and bot_ids <= deleted
    assert 100 + len(sent) - 1 not in deleted
    assert await env.app[STORE].sealed_address(env.key()) is None


async def _photo_and_sticker(env: Env) -> set[int]:
    """The person writes, then sends a photo and a sticker with no words: neither is stored,
    nor the bot's notice about them. Returns the ids of those three messages in the chat."""
    for n, text in enumerate(("hello", "1")):
        data = text_update(text)
        data["message"]["message_id"] = 500_000 + n
        assert await env.post(data) == 200
        await env.app[ENGINE].drain()
    unstored = set()
    for n, name in enumerate(("telegram_photo.json", "telegram_sticker.json")):
        media = update(name)
        media["update_id"] = next(_ids)
        media["message"]["message_id"] = 600_000 + n
        media["message"]["chat"]["id"] = CHAT_ID
        unstored.add(600_000 + n)
        assert await env.post(media) == 200
        await env.app[ENGINE].drain()
    texts = [c.get("text") for c in env.loop.telegram("sendMessage")]
    assert texts.count(env.text("channels.text_only")) == 1  # one notice for both
    unstored.add(100 + texts.index(env.text("channels.text_only")))  # numbered from 100
    return unstored


async def _delete_my_data(env: Env) -> set[int]:
    """The person deletes their data; returns the ids deleted from the chat."""
    for n, text in enumerate(("delete my data", "1")):
        data = text_update(text)
        data["message"]["message_id"] = 500_010 + n
        assert await env.post(data) == 200
        await env.app[ENGINE].drain()
    assert await env.app[STORE].sealed_address(env.key()) is None  # really erased
    return {i for call in env.loop.telegram("deleteMessages") for i in call["message_ids"]}


async def test_delete_my_data_also_clears_photos_stickers_and_notices_from_the_chat(
    env: Env,
) -> None:
    unstored = await _photo_and_sticker(env)
    assert unstored <= await _delete_my_data(env)


async def test_delete_my_data_also_clears_guidance_sent_before_its_turn(env: Env) -> None:
    # Emergency guidance sent while the conversation's lock could not be taken is not in
    # the store (engine: _guidance_unlocked); it must not stay on the person's phone.
    await env.say("Hello")
    conv = await env.app[STORE].open_conversation(env.key())
    assert conv is not None
    guidance = Reply(env.text("risk.immediate"))
    sent = await env.app[SENDERS]["telegram"].send(
        OutboundMessage(UNSTORED, conv.id, "telegram", str(CHAT_ID), guidance, "en", env.key())
    )
    assert sent is not None
    assert {int(i) for i in sent.split(",")} <= await _delete_my_data(env)


async def test_with_redis_photos_and_notices_are_cleared_and_no_chat_id_is_kept(
    pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    import redis.asyncio as redis

    async with loopback(bot_token=BOT_TOKEN) as lb:
        settings = telegram_settings(
            pg_url, tmp_path, lb.url, redis_url=redis_url, redis_prefix=redis_prefix
        )
        async with (
            running(settings, serve=True, clock=noon) as (app, _, url),
            aiohttp.ClientSession() as http,
        ):
            env = Env(app, url, settings, lb, http)
            client = redis.Redis.from_url(redis_url)
            try:
                unstored = await _photo_and_sticker(env)
                kept = f"{redis_prefix}telegram-unstored:{env.key()}"
                ids = {int(i) for i in await client.zrange(kept, 0, -1)}
                assert ids == unstored  # under the keyed hash, never the chat id
                assert not [k async for k in client.scan_iter(match=f"*{CHAT_ID}*")]
                assert unstored <= await _delete_my_data(env)
                assert not await client.exists(kept)  # forgotten once used
            finally:
                await client.aclose()
