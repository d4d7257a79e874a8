"""Ways of saying stop, opting back in, Telegram's own commands and pictures sent with words,
on SMS, WhatsApp and Telegram: webhooks in the platforms' own shapes, replies recorded by the
loopback (tests/loopback.py)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from helpline.app import ENGINE, STORE
from tests import test_telegram as tg
from tests import test_twilio as tw
from tests.loopback import loopback
from tests.support import running


@pytest.fixture
async def sms(sqlite_url: str, tmp_path: Path) -> AsyncIterator[tw.Env]:
    async with loopback(tw.ACCOUNT, tw.TOKEN) as lb:
        settings = tw.twilio_settings(sqlite_url, tmp_path, lb.url)
        async with (
            running(settings, serve=True, clock=tw.noon) as (app, _, url),
            aiohttp.ClientSession() as http,
        ):
            yield tw.Env(app, url, settings, lb, http)


@pytest.fixture
async def bot(sqlite_url: str, tmp_path: Path) -> AsyncIterator[tg.Env]:
    async with loopback(bot_token=tg.BOT_TOKEN) as lb:
        settings = tg.telegram_settings(sqlite_url, tmp_path, lb.url)
        async with (
            running(settings, serve=True, clock=tg.noon) as (app, _, url),
            aiohttp.ClientSession() as http,
        ):
            yield tg.Env(app, url, settings, lb, http)


async def _texted(env: tw.Env, address: str, word: str) -> list[str]:
    """What the person is sent after `word`, sent mid-conversation."""
    await env.say("Hello", address)
    before = len(env.loop.sms_bodies(address))
    await env.say(word, address)
    return env.loop.sms_bodies(address)[before:]


# -- 1. ways of saying stop --------------------------------------------------------------------


@pytest.mark.parametrize(
    "word", ["STOPALL", "QUIT", "END", "CANCEL", "Stop please", "STOP STOP", "UNSUBSCRIBE"]
)
async def test_twilio_s_opt_out_words_and_plain_requests_end_an_sms_conversation(
    sms: tw.Env, word: str
) -> None:
    sent = await _texted(sms, tw.PHONE, word)
    assert sent == [sms.text("stop.done")]
    assert await sms.app[STORE].open_conversation(sms.key()) is None
    assert (await sms.app[STORE].contact_settings(sms.key())).get("opted_out") is True


@pytest.mark.parametrize(
    "word", ["QUIT", "END", "stop texting me", "please stop", "Stop it", "no more messages"]
)
async def test_asking_to_stop_on_whatsapp_ends_the_conversation(sms: tw.Env, word: str) -> None:
    sent = await _texted(sms, tw.WHATSAPP, word)
    assert sent == [sms.text("stop.done")]
    assert await sms.app[STORE].open_conversation(sms.key(tw.WHATSAPP)) is None


@pytest.mark.parametrize(
    ("word", "lang"),
    [
        ("please stop", "en"),
        ("stop texting me", "en"),
        ("QUIT", "en"),
        ("/stop@HelperBot", "en"),
        ("Stopiwch plis", "cy"),
        ("Dim mwy o negeseuon", "cy"),
    ],
)
async def test_asking_to_stop_on_telegram_ends_the_conversation(
    bot: tg.Env, word: str, lang: str
) -> None:
    await bot.say("Hello", language=lang)
    before = len(bot.loop.telegram_texts())
    await bot.say(word, language=lang)
    assert bot.loop.telegram_texts()[before:] == [bot.text("stop.done", lang)]
    assert await bot.app[STORE].open_conversation(bot.key()) is None


@pytest.mark.parametrize(
    "said",
    [
        "I can't stop shouting",
        "how do I stop hitting her",
        "I want to stop",
        "he won't stop texting me",
        "I keep telling myself to stop it",
        "can I cancel my appointment",
    ],
)
async def test_stop_inside_an_ordinary_sentence_does_not_end_the_conversation(
    sms: tw.Env, said: str
) -> None:
    sent = await _texted(sms, tw.PHONE, said)
    assert sms.text("stop.done") not in sent
    assert await sms.app[STORE].open_conversation(sms.key()) is not None


@pytest.mark.parametrize(
    "said", ["stop me before I hurt her", "please stop me, I'm about to hurt her"]
)
async def test_stop_me_is_never_a_stop_but_danger(sms: tw.Env, said: str) -> None:
    # Asking to be stopped from hurting someone is a plea in danger: the 999 guidance.
    sent = await _texted(sms, tw.PHONE, said)
    assert sms.text("stop.done") not in sent
    assert sms.text("risk.immediate") in sent
    assert await sms.app[STORE].open_conversation(sms.key()) is not None


async def test_stop_me_before_i_hurt_her_right_now_is_danger_not_a_stop(sms: tw.Env) -> None:
    sent = await _texted(sms, tw.PHONE, "stop me before I hurt her, I'm losing it right now")
    assert sms.text("stop.done") not in sent
    assert sms.text("risk.immediate") in sent
    conv = await sms.app[STORE].open_conversation(sms.key())
    assert conv is not None and conv.risk_level != "none"


async def test_cancel_while_waiting_leaves_the_queue_and_does_not_end_the_conversation(
    sms: tw.Env,
) -> None:
    await sms.say("Hello")
    await sms.say("talk to someone")
    before = len(sms.loop.sms_bodies(tw.PHONE))
    await sms.say("CANCEL")
    sent = sms.loop.sms_bodies(tw.PHONE)[before:]
    assert sms.text("stop.done") not in sent
    conv = await sms.app[STORE].open_conversation(sms.key())
    assert conv is not None


# -- 2. Telegram's /start and commands with the bot's name ------------------------------------


@pytest.mark.parametrize("command", ["/start", "/start@HelperBot", "/start abc123"])
async def test_start_in_an_open_telegram_conversation_shows_the_menu_not_a_miss(
    bot: tg.Env, command: str
) -> None:
    await bot.say("Hello")
    before = len(bot.loop.telegram_texts())
    await bot.say(command)
    sent = bot.loop.telegram_texts()[before:]
    assert sent == [bot.text("welcome.who")]
    assert await bot.app[STORE].open_conversation(bot.key()) is not None


async def test_start_as_the_first_telegram_message_is_still_the_welcome(bot: tg.Env) -> None:
    await bot.say("/start@HelperBot")
    assert bot.loop.telegram_texts()[0] == bot.text("welcome.intro")


async def test_help_with_the_bot_s_name_is_the_help(bot: tg.Env) -> None:
    await bot.say("Hello")
    before = len(bot.loop.telegram_texts())
    await bot.say("/help@HelperBot")
    assert bot.loop.telegram_texts()[before] == bot.text("help.show")


# -- 3. opting back in on SMS ------------------------------------------------------------------


@pytest.mark.parametrize("word", ["START", "UNSTOP", "Unstop"])
async def test_start_or_unstop_by_sms_opts_back_in_with_a_short_confirmation(
    sms: tw.Env, word: str
) -> None:
    sent = await _texted(sms, tw.PHONE, word)
    assert sent == [sms.text("channels.opted_in")]
    assert (await sms.app[STORE].contact_settings(sms.key())).get("opted_out") is not True


async def test_start_after_stop_by_sms_is_confirmed_and_the_person_opted_back_in(
    sms: tw.Env,
) -> None:
    await _texted(sms, tw.PHONE, "STOP")
    before = len(sms.loop.sms_bodies(tw.PHONE))
    await sms.say("START")
    assert sms.loop.sms_bodies(tw.PHONE)[before:] == [sms.text("channels.opted_in")]
    assert (await sms.app[STORE].contact_settings(sms.key())).get("opted_out") is False


async def test_the_confirmations_say_nothing_about_what_the_service_is_for(sms: tw.Env) -> None:
    for key in ("channels.opted_in", "stop.done"):
        for lang in ("en", "cy"):
            words = sms.text(key, lang).lower()
            assert not any(w in words for w in ("abuse", "camdrin", "helpline", "behaviour"))


# -- 4. a picture sent with words ------------------------------------------------------------


async def test_words_sent_with_a_picture_are_read_and_the_person_told_the_picture_is_not(
    sms: tw.Env,
) -> None:
    for n in range(2):  # a second picture soon after: told once
        picture = tw.fixture(
            "twilio_mms_inbound.json",
            Body=f"here is a picture of what he did {n}",
            From=tw.PHONE,
            MessageSid=tw.sms("")["MessageSid"],
        )
        assert (await sms.post(tw.SMS_PATH, picture))[0] == 200
        await sms.app[ENGINE].drain()
    sent = sms.loop.sms_bodies(tw.PHONE)
    assert sent.count(sms.text("channels.media_unread")) == 1
    assert sms.text("channels.text_only") not in sent
    welcome = next(i for i, body in enumerate(sent) if sms.text("welcome.intro") in body)
    assert sent.index(sms.text("channels.media_unread")) > welcome  # never before the welcome


async def test_a_telegram_photo_with_a_caption_is_read_and_the_photo_noted_as_unread(
    bot: tg.Env,
) -> None:
    photo = copy.deepcopy(tg.update("telegram_photo_caption.json"))
    photo["message"]["caption"] = "Hello, this is what happened"
    assert await bot.post(photo) == 200
    await bot.app[ENGINE].drain()
    texts = bot.loop.telegram_texts()
    assert bot.text("welcome.intro") in texts
    assert texts.count(bot.text("channels.media_unread")) == 1
    assert texts.index(bot.text("channels.media_unread")) > texts.index(bot.text("welcome.intro"))


async def test_a_picture_whose_words_name_a_danger_gets_only_the_guidance(bot: tg.Env) -> None:
    assert await bot.post(tg.update("telegram_photo_caption.json")) == 200
    await bot.app[ENGINE].drain()
    texts = bot.loop.telegram_texts()
    assert bot.text("risk.immediate") in texts
    assert bot.text("channels.media_unread") not in texts


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("en", ("hello", "1", "2", "delete my data", "cancel")),
        ("cy", ("helo", "ydy", "2", "dileu fy nata", "canslo")),
    ],
)
async def test_cancel_where_the_question_takes_it_as_no_is_that_answer_not_a_stop(
    sqlite_url: str, tmp_path: Path, language: str, words: tuple[str, ...]
) -> None:
    # "Delete everything?" answered "cancel": keep everything and carry on, as "no" does;
    # never the stop journey (which would also withdraw a call-back and opt them out).
    from tests.journey_support import Person
    from tests.support import settings_for

    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language=language)
        for text in words[:-1]:
            await person.says(text)
        assert (await person.conversation()).flow == "erase"
        said = await person.says(words[-1])
        assert "stop.done" not in said
        conv = await person.conversation()
        assert not conv.closed and conv.flow != "stop"
