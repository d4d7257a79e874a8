"""Privacy promises kept at the edges: a phone number typed in any common UK form is never
kept in clear with the safe time to call, and an opt-out made through the platform itself
(Twilio's STOP, a blocked Telegram bot) withdraws call-backs as "stop" does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from channels import telegram
from flows.own import callback_number, without_numbers
from handoff import callbacks
from helpline.app import ENGINE, PRIVACY, STORE
from helpline.directory import normalise_uk_callback_number
from helpline.errors import NotFound
from tests import test_telegram as tg
from tests.journey_support import Person
from tests.loopback import loopback
from tests.support import Clock, running, settings_for
from tests.test_callbacks import (
    TYPED,
    _leaks,
    _noon,
    _raw,
    _record_hub,
    _sms_to_window,
    to_the_safe_time,
)
from tests.test_twilio import ACCOUNT, PHONE, SMS_PATH, TOKEN, Env, sms, twilio_settings

# One number (Ofcom's drama range), as people write it.
WRITTEN = ("+44 (0)7700 900987", "447700900987", "0044 7700 900987", "07700/900987")


@pytest.mark.parametrize("written", WRITTEN)
def test_a_number_in_any_common_form_is_taken_out_of_the_safe_time(written: str) -> None:
    assert without_numbers(f"after 6 on {written}") == "after 6 on …"


@pytest.mark.parametrize("written", ["12345678", "7700.900.987", "0044 161 496 0000"])
def test_a_long_run_of_digits_goes_even_when_nobody_could_call_it(written: str) -> None:
    assert not any(c.isdigit() for c in without_numbers(f"mornings: {written}"))


@pytest.mark.parametrize(
    "typed",
    [
        "after 6",
        "between 9 and 5",
        "18:30",
        "Tuesday 14:00-16:00",
        "9.30-12.30",
        "10.00 - 12.00 weekdays",
        "on 1/12/2026 after 6",
        "1/12/2026 10-12",
        "30/11/2026 6 - 8pm",
        "1/12/2026 6",
    ],
)
def test_times_and_dates_in_the_safe_time_are_kept_and_only_the_number_goes(typed: str) -> None:
    assert without_numbers(f"{typed}, on 07700/900987") == f"{typed}, on …"


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("6.30 07700 900123", "6.30 …"),
        ("after 6.30 07700900123", "after 6.30 …"),
        ("9.30-12.30 07700 900123", "9.30-12.30 …"),
        ("1/12/2026 07700900123", "1/12/2026 …"),
        ("6.30 447700900123", "6.30 …"),
        ("9.30 - 07-70-09-00-12-3", "9.30 - …"),
    ],
)
def test_a_number_straight_after_a_time_or_date_goes_too(typed: str, kept: str) -> None:
    # Read as more pieces of the time, the number used to be kept whole; the time or date
    # before it stays (only the digits read as the number go).
    assert without_numbers(typed) == kept


@pytest.mark.parametrize("written", WRITTEN)
def test_a_number_in_any_common_form_can_be_called_back(written: str) -> None:
    assert normalise_uk_callback_number(written) == "07700900987"


async def test_a_number_typed_with_the_safe_time_in_international_form_is_never_kept_in_clear(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await to_the_safe_time(person)
        assert await person.says("after 6 on +44 (0)7700 900987") == ["own.callback_number"]
        # Asked for the number on its own, they give it in the same form: it is understood.
        assert await person.says("+44 (0)7700 900987") == ["own.callback_done", "own.end"]

        (window, sealed), *more = await _raw(app, 'SELECT "window", sealed_number FROM callbacks')
        assert not more and window == "after 6 on …"  # what the adviser reads on the console
        conv = await person.conversation()
        assert app[PRIVACY].open(sealed, f"callback:{conv.id}") == "07700900987"
        everything = await _raw(app, "SELECT * FROM messages") + await _raw(
            app, "SELECT * FROM conversations"
        )
        assert not _leaks(everything, "900987", "7700 9")


# -- an opt-out made through the platform withdraws call-backs, as "stop" does ----------------


@pytest.fixture
async def texting(database_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    async with loopback(ACCOUNT, TOKEN) as lb:
        settings = twilio_settings(database_url, tmp_path, lb.url)
        async with (
            running(settings, serve=True, clock=Clock(_noon())) as (app, _, url),
            aiohttp.ClientSession() as http,
        ):
            yield Env(app, url, settings, lb, http)


async def _nobody_can_phone_them(
    app: web.Application, hub_events: list[tuple[str, dict[str, Any]]]
) -> None:
    assert await _raw(app, "SELECT status, sealed_number FROM callbacks") == [("withdrawn", None)]
    [(callback_id,)] = await _raw(app, "SELECT id FROM callbacks")
    with pytest.raises(NotFound):  # the console's "Show number" has nothing to show
        await callbacks.reveal_number(app[STORE], app[PRIVACY], callback_id)
    assert (callbacks.TOPIC, {"type": "callback"}) in hub_events  # the consoles update


async def test_texting_stop_with_twilio_opt_out_withdraws_the_call_back_and_its_number(
    texting: Env,
) -> None:
    await _sms_to_window(texting)
    await texting.say("1")  # call me on this number
    assert await _raw(texting.app, "SELECT status FROM callbacks") == [("requested",)]
    events = _record_hub(texting.app)
    stop = sms("STOP", PHONE, OptOutType="STOP")
    assert (await texting.post(SMS_PATH, stop))[0] == 200
    await texting.app[ENGINE].drain()
    await _nobody_can_phone_them(texting.app, events)


async def test_a_text_refused_as_unsubscribed_withdraws_the_call_back(texting: Env) -> None:
    await _sms_to_window(texting)
    await texting.say("1")
    events = _record_hub(texting.app)
    texting.loop.fail_twilio(21610)  # they texted STOP to Twilio; we never heard of it
    await texting.say("hello again")
    await _nobody_can_phone_them(texting.app, events)


async def test_blocking_the_telegram_bot_withdraws_the_call_back(
    database_url: str, tmp_path: Path
) -> None:
    async with loopback(bot_token=tg.BOT_TOKEN) as lb:
        settings = tg.telegram_settings(database_url, tmp_path, lb.url)
        async with (
            running(settings, serve=True, clock=tg.noon) as (app, _, url),
            aiohttp.ClientSession() as http,
        ):
            env = tg.Env(app, url, settings, lb, http)
            for said in ("hi", "1", "1", "1", "2", "call me back", "after 6", TYPED):
                await env.say(said)
            assert await _raw(app, "SELECT status FROM callbacks") == [("requested",)]
            events = _record_hub(app)
            lb.fail_telegram(403, "Forbidden: bot was blocked by the user")
            await env.say("hello again")
            assert (await app[STORE].contact_settings(env.key()))["opted_out"] is True
            await _nobody_can_phone_them(app, events)


async def test_blocking_the_telegram_bot_withdraws_the_call_back_before_anything_is_sent(
    database_url: str, tmp_path: Path
) -> None:
    # Telegram reports the block itself (my_chat_member, the bot "kicked"): nobody phones
    # them even if the helpline never writes to them again.
    async with loopback(bot_token=tg.BOT_TOKEN) as lb:
        settings = tg.telegram_settings(database_url, tmp_path, lb.url)
        async with (
            running(settings, serve=True, clock=tg.noon) as (app, _, url),
            aiohttp.ClientSession() as http,
        ):
            env = tg.Env(app, url, settings, lb, http)
            for said in ("hi", "1", "1", "1", "2", "call me back", "after 6", TYPED):
                await env.say(said)
            conv = await app[STORE].open_conversation(env.key())
            assert conv is not None
            kept = len(await app[STORE].transcript(conv.id))
            sent = len(lb.telegram_texts())
            events = _record_hub(app)
            assert "my_chat_member" in telegram.ALLOWED_UPDATES
            assert await env.post(tg.update("telegram_my_chat_member.json")) == 200
            await app[ENGINE].drain()
            assert (await app[STORE].contact_settings(env.key()))["opted_out"] is True
            await _nobody_can_phone_them(app, events)
            assert len(lb.telegram_texts()) == sent
            assert len(await app[STORE].transcript(conv.id)) == kept  # nothing else stored


async def test_blocking_the_bot_after_the_chat_was_closed_still_withdraws_the_call_back(
    sqlite_url: str, tmp_path: Path
) -> None:
    # A quiet chat is closed after half an hour; the call-back it booked still waits. The
    # block found no open conversation and withdrew nothing, and with nothing more to send
    # no refused reply would ever withdraw it: an adviser could phone them.
    async with loopback(bot_token=tg.BOT_TOKEN) as lb:
        settings = tg.telegram_settings(sqlite_url, tmp_path, lb.url)
        async with (
            running(settings, serve=True, clock=tg.noon) as (app, _, url),
            aiohttp.ClientSession() as http,
        ):
            env = tg.Env(app, url, settings, lb, http)
            for said in ("hi", "1", "1", "1", "2", "call me back", "after 6", TYPED):
                await env.say(said)
            assert await app[ENGINE].close_idle(timedelta(days=-3650)) == 1  # all are quiet
            assert await app[STORE].open_conversation(env.key()) is None
            events = _record_hub(app)
            assert await env.post(tg.update("telegram_my_chat_member.json")) == 200
            await app[ENGINE].drain()
            await _nobody_can_phone_them(app, events)


def test_a_long_run_of_digits_is_scrubbed_in_one_pass_without_failing() -> None:
    # Up to a web chat message's length. Each group used to be scrubbed by a call within
    # the last: a long run raised RecursionError and the turn failed.
    assert without_numbers("1 " * 2000) == "1 … "
    assert without_numbers("999 " * 999 + "07700 900987") == "999 " * 999 + "…"


@pytest.mark.parametrize(
    "typed",
    [
        "01/12/2026 10:00",
        "Thursday 03/12/2026 9.30",
        "on 02/12/2026 10-12 only",
        "02.12.2026 10",
        "01/12/2026 999",
        "ring 999. 10-12",
        "call 999, 1/12/2026",
        "6 9.30 10-12",
    ],
)
def test_a_date_or_time_with_hours_beside_it_is_never_read_as_a_number(typed: str) -> None:
    # "01/12/2026 10" made 0112202610, a landline by its digits: the safe time lost its date
    # and, at the number question, the date was booked as the number to call. 999 with a
    # full stop after it went with the digits beside it, and the console's danger mark too.
    assert without_numbers(typed) == typed
    assert callback_number(typed) is None


@pytest.mark.parametrize(
    ("typed", "kept", "number"),
    [
        ("on 02/12/2026 10 07700900987", "on 02/12/2026 10 …", "07700900987"),
        ("01/12/2026 10:00 07700900987", "01/12/2026 10:00 …", "07700900987"),
        ("ring 999. 10-12 to 07700900987", "ring 999. 10-12 to …", "07700900987"),
        ("call 999. 01/12/2026 07700900987", "call 999. 01/12/2026 …", "07700900987"),
        ("(999) 07700 900987", "(999) …", "07700900987"),
    ],
)
def test_the_number_beside_a_date_time_or_999_is_the_one_read(
    typed: str, kept: str, number: str
) -> None:
    assert without_numbers(typed) == kept
    assert callback_number(typed) == number


@pytest.mark.parametrize(
    "typed",
    [
        "01632 96.00.00",
        "01632.96.00.00",
        "07700.90.09.87",
        "07700 90.09.87",
        "+44 1632 96.00.00",
        "02079.46.00.00",
        "07700 12.09.87",
    ],
)
def test_a_number_typed_in_pairs_with_dots_is_no_date(typed: str) -> None:
    # "96.00.00" read as a date (month 00) left the number in clear and unread; "07700
    # 12.09.87" is a number's last digits, not the 12th of September.
    assert without_numbers(f"after 6 on {typed}") == "after 6 on …"
    assert callback_number(typed) is not None


@pytest.mark.parametrize(
    "typed", ["01-12-2026 10", "01-12-2026 10:00", "02-12-2026 10.30", "on 01-12-26 after 6"]
)
def test_a_date_with_dashes_is_no_number_either(typed: str) -> None:
    assert without_numbers(typed) == typed
    assert callback_number(typed) is None


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("999.07700900987", "999.…"),
        ("(999)07700900987", "(999)…"),
        ("call 999.07700 900987 now", "call 999.… now"),
        ("07700:900987", "…"),
        ("+44:7700:900:987", "…"),
        ("07700 900:987", "…"),
    ],
)
def test_999_glued_to_the_number_stays_and_colons_hide_no_number(typed: str, kept: str) -> None:
    # "999." glued to the number went with it (and the console's danger mark); a number
    # typed with colons was kept in clear. (Colons are not read as a number to call back.)
    assert without_numbers(typed) == kept
    if ":" not in typed:
        assert callback_number(typed) == "07700900987"


@pytest.mark.parametrize(
    ("typed", "kept", "number"),
    [
        # A number's last digits in pairs are no date: they were kept in clear.
        ("+44 1632 12-10-81", "…", "01632121081"),
        ("call me on +44 20-12-12-1234 after 6", "call me on … after 6", "02012121234"),
        ("01-04-85-43-40-3 after 6pm", "… after 6pm", "01048543403"),
        ("+447.946.25.05.48 18:30", "… 18:30", "07946250548"),
        # A date or time after a number is no part of it: a digit joined it.
        ("0161 496 000 1/12/2026", "… 1/12/2026", "0161496000"),
        ("01632 96000 9.30", "… 9.30", "0163296000"),
        ("07700 900123 01/12/2026 18:30", "… 01/12/2026 18:30", "07700900123"),
        # Dates and times in a row stay, and make no number.
        ("01/12/2026 02/12/2026 03/12/2026", "01/12/2026 02/12/2026 03/12/2026", None),
        ("18:30 - 20:30 01/12/2026", "18:30 - 20:30 01/12/2026", None),
        ("2026 09:30", "2026 09:30", None),
    ],
)
def test_numbers_dates_and_times_side_by_side_are_told_apart(
    typed: str, kept: str, number: str | None
) -> None:
    assert without_numbers(typed) == kept
    assert callback_number(typed) == number
