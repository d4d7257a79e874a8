"""QUIET hours as people write them (am/pm, "to", "till", 2200) and SMS questions that say
their choices once, over signed Twilio webhooks to a loopback Twilio."""

from __future__ import annotations

import re

import pytest

from channels import texting
from helpline.app import STORE
from helpline.domain import Reply
from tests.test_twilio import Env, env  # noqa: F401  (env is the fixture)

EVENING = {"start": "22:00", "end": "07:00"}


async def _quiet_hours(person: Env) -> object:
    return (await person.app[STORE].contact_settings(person.key())).get("quiet_hours")


@pytest.mark.parametrize(
    ("said", "lang", "window"),
    [
        ("QUIET 10pm-7am", "en", EVENING),
        ("QUIET 10 pm - 7 am", "en", EVENING),
        ("QUIET 10.30pm-6.45am", "en", {"start": "22:30", "end": "06:45"}),
        ("QUIET 11pm to 6am", "en", {"start": "23:00", "end": "06:00"}),
        ("quiet 22:00 till 07:00", "en", EVENING),
        ("QUIET 2200-0700", "en", EVENING),
        ("Quiet hours from 10:30pm until 7am", "en", {"start": "22:30", "end": "07:00"}),
        ("TAWEL 10yh tan 7yb", "cy", EVENING),
    ],
)
async def test_quiet_hours_written_with_am_pm_or_words_are_set(
    env: Env,  # noqa: F811
    said: str,
    lang: str,
    window: dict[str, str],
) -> None:
    await env.say("Hello")
    await env.say(said)
    assert env.loop.sms_bodies()[-1] == env.text("channels.quiet_set", lang, **window)
    assert await _quiet_hours(env) == window


async def test_bare_hours_are_read_as_evening_to_morning_and_the_reply_says_so(
    env: Env,  # noqa: F811
) -> None:
    await env.say("Hello")
    await env.say("QUIET 10-7")
    reply = env.loop.sms_bodies()[-1]
    assert reply == env.text("channels.quiet_read_as", **EVENING)
    assert "22:00" in reply and "am or pm" in reply
    assert await _quiet_hours(env) == EVENING


async def test_hours_that_could_be_morning_or_evening_are_asked_about(
    env: Env,  # noqa: F811
) -> None:
    await env.say("Hello")
    await env.say("QUIET 7-10")
    assert env.loop.sms_bodies()[-1] == env.text("channels.quiet_ampm")
    await env.say("TAWEL 7-10")
    assert env.loop.sms_bodies()[-1] == env.text("channels.quiet_ampm", "cy")
    assert await _quiet_hours(env) is None


async def test_quiet_hours_over_sixteen_hours_are_refused_with_an_example(
    env: Env,  # noqa: F811
) -> None:
    await env.say("Hello")
    await env.say("QUIET 10:00-07:00")
    reply = env.loop.sms_bodies()[-1]
    assert reply == env.text("channels.quiet_too_long", hours=16, start="10:00", end="07:00")
    assert "QUIET 10pm-7am" in reply
    assert await _quiet_hours(env) is None


@pytest.mark.parametrize(
    ("said", "lang"),
    [
        ("QUIET 10pm", "en"),
        ("QUIET 25-99", "en"),
        ("quiet 7.30 tonight", "en"),
        ("QUIET 13pm-7am", "en"),
        ("TAWEL 10yh", "cy"),
    ],
)
async def test_quiet_and_unreadable_times_get_the_times_answer_not_the_journey(
    env: Env,  # noqa: F811
    said: str,
    lang: str,
) -> None:
    await env.say("Hello")
    before = len(env.loop.sms_bodies())
    await env.say(said)
    assert env.loop.sms_bodies()[before:] == [env.text("channels.quiet_unclear", lang)]
    assert await _quiet_hours(env) is None


@pytest.mark.parametrize(
    ("said", "status", "window"),
    [
        ("10-7", "read_as", EVENING),
        ("12-6", "read_as", {"start": "00:00", "end": "06:00"}),
        ("10-7am", "read_as", EVENING),
        ("9am-5", "read_as", {"start": "09:00", "end": "17:00"}),
        ("22-7", "set", EVENING),
        ("9 tan 17", "set", {"start": "09:00", "end": "17:00"}),
        ("12am-6am", "set", {"start": "00:00", "end": "06:00"}),
        ("rhwng 10yh a 7yb", "set", EVENING),
        ("22–07", "set", EVENING),
        ("7-10", "ambiguous", None),
        ("2200-0700", "set", EVENING),
        ("06:00-23:00", "too_long", None),
        ("22:00-22:00", "unclear", None),
        ("0700pm-8", "unclear", None),
    ],
)
def test_quiet_windows_are_read_the_way_people_write_them(
    said: str, status: str, window: dict[str, str] | None
) -> None:
    reading = texting.read_window(said)
    assert reading.status == status
    if window is not None:
        assert reading.times() == window
    assert texting.parse_window(said) == (window if status in ("set", "read_as") else None)


# -- questions with options on SMS ----------------------------------------------------------


def _says_the_choices_once(body: str, labels: list[str]) -> None:
    for n, label in enumerate(labels, start=1):
        assert body.count(f"{n}. {label}") == 1, body
    assert len(re.findall(r"\b1\b", body)) == 1, body  # "1" only on its own line
    assert body.casefold().count("reply with a number") == 1, body


async def test_a_question_asked_again_by_sms_says_its_choices_once(
    env: Env,  # noqa: F811
) -> None:
    await env.say("Hello")
    before = len(env.loop.sms_bodies())
    await env.say("purple")
    (reply,) = env.loop.sms_bodies()[before:]
    assert reply.startswith(env.text("welcome.safe_retry"))
    keys = ("welcome.opt_safe", "welcome.opt_not_now", "welcome.opt_danger")
    labels = [env.text(k) for k in keys]
    _says_the_choices_once(reply, labels)


async def test_a_question_that_already_asks_for_a_number_says_so_once_by_sms(
    env: Env,  # noqa: F811
) -> None:
    await env.say("Hello")
    await env.say("1")
    reply = env.loop.sms_bodies()[-1]
    assert reply.startswith(env.text("welcome.who"))
    assert reply.casefold().count("reply with a number") == 1, reply
    assert "\n1. " in reply


def test_numbered_options_leave_out_an_intro_the_text_already_gives() -> None:
    reply = Reply("Pa un? Atebwch gyda rhif, neu dywedwch wrtha i.", ("Fi", "Rhywun arall"))
    assert texting.numbered(reply, "Atebwch gyda rhif:") == (
        "Pa un? Atebwch gyda rhif, neu dywedwch wrtha i.\n\n1. Fi\n2. Rhywun arall"
    )
