"""The words the text channels answer themselves (HELP, "SAFE?") in a conversation held in
Welsh are answered in Welsh, and HELP while waiting for an adviser says what works while
waiting: over signed Twilio webhooks and Telegram updates, to loopbacks of both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from helpline.app import STORE
from helpline.domain import Owner
from tests import test_telegram as tg
from tests.loopback import loopback
from tests.support import running
from tests.test_twilio import PHONE, WHATSAPP, Env, env, noon  # noqa: F401  (env: fixture)


@pytest.fixture
async def telegram(sqlite_url: str, tmp_path: Path) -> AsyncIterator[tg.Env]:
    async with loopback(bot_token=tg.BOT_TOKEN) as lb:
        settings = tg.telegram_settings(sqlite_url, tmp_path, lb.url)
        async with (
            running(settings, serve=True, clock=noon) as (app, _, url),
            aiohttp.ClientSession() as http,
        ):
            yield tg.Env(app, url, settings, lb, http)


@pytest.mark.parametrize("word", ["help", "HELP", "Help?", "info"])
async def test_help_texted_in_a_welsh_conversation_is_answered_in_welsh(
    env: Env,  # noqa: F811
    word: str,
) -> None:
    await env.say("helo")  # the Welsh welcome, which tells them to type "help"
    assert env.loop.sms_bodies()[0] == env.text("welcome.intro", "cy")
    await env.say(word)
    assert env.loop.sms_bodies()[-2:] == [
        env.text("help.show", "cy"),
        env.text("channels.help_more", "cy"),
    ]


@pytest.mark.parametrize("word", ["safe?", "SAFE?", "/safe"])
async def test_safe_texted_in_a_welsh_conversation_is_answered_in_welsh(
    env: Env,  # noqa: F811
    word: str,
) -> None:
    await env.say("helo")
    await env.say(word)
    assert env.loop.sms_bodies()[-1] == env.text("channels.safe_text", "cy")


async def test_help_on_whatsapp_in_a_welsh_conversation_is_answered_in_welsh(
    env: Env,  # noqa: F811
) -> None:
    await env.say("shwmae", sender=WHATSAPP)
    await env.say("help", sender=WHATSAPP)
    assert env.loop.sms_bodies(WHATSAPP)[-2:] == [
        env.text("help.show", "cy"),
        env.text("channels.help_more", "cy"),
    ]


async def test_help_and_safe_on_telegram_in_a_welsh_conversation_are_answered_in_welsh(
    telegram: tg.Env,
) -> None:
    await telegram.say("helo")
    await telegram.say("/help")
    assert telegram.loop.telegram_texts()[-2:] == [
        telegram.text("help.show", "cy"),
        telegram.text("channels.help_more", "cy"),
    ]
    await telegram.say("safe?")
    assert telegram.loop.telegram_texts()[-1] == telegram.text("channels.safe_telegram", "cy")


async def test_a_welsh_word_in_an_english_conversation_is_still_answered_in_welsh(
    env: Env,  # noqa: F811
) -> None:
    await env.say("Hello")
    await env.say("cymorth")
    assert env.loop.sms_bodies()[-2:] == [
        env.text("help.show", "cy"),
        env.text("channels.help_more", "cy"),
    ]
    await env.say("help")
    assert env.loop.sms_bodies()[-2:] == [env.text("help.show"), env.text("channels.help_more")]


async def test_help_texted_while_waiting_for_an_adviser_says_what_works_while_waiting(
    env: Env,  # noqa: F811
) -> None:
    for body in ("Hello", "1", "adviser"):
        await env.say(body)
    conv = await env.app[STORE].open_conversation(env.key())
    assert conv is not None and conv.owner is Owner.QUEUE
    await env.say("help")
    assert env.loop.sms_bodies()[-2:] == [
        env.text("handoff.waiting_help"),
        env.text("channels.help_more"),
    ]


async def test_help_texted_while_waiting_in_welsh_is_the_welsh_waiting_help(
    env: Env,  # noqa: F811
) -> None:
    for body in ("helo", "ydy", "cynghorydd"):
        await env.say(body)
    conv = await env.app[STORE].open_conversation(env.key())
    assert conv is not None and conv.owner is Owner.QUEUE
    await env.say("help")
    assert env.loop.sms_bodies()[-2:] == [
        env.text("handoff.waiting_help", "cy"),
        env.text("channels.help_more", "cy"),
    ]
