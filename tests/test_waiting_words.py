"""What someone waiting is told of the wait matches who will answer and when: out of hours,
that the line is closed, when it opens and where to get help now (never "about 8 minutes");
after a programme referral, that the programme's staff will reply (never an adviser)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from handoff import referrals
from helpline.app import CONTENT, ENGINE, ROUTING, STORE
from helpline.hours import HORIZON_DAYS
from tests.journey_support import Person, content_copy, with_test_programme
from tests.support import Clock, running, settings_for

# Wednesday 25 November 2026, 02:30 in London (GMT): every queue is closed; the helpline
# opens at 09:00 (content/hours.yaml).
NIGHT = datetime(2026, 11, 25, 2, 30, tzinfo=UTC)
OPENS = {"en": "Wednesday 25 November, 09:00", "cy": "Dydd Mercher 25 Tachwedd, 09:00"}
# Tuesday 24 November 2026, 12:00: the helpline and the programmes are open.
TUESDAY_NOON = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
# Saturday 28 November 2026, 12:00: the helpline is open, the programmes are not until
# Monday 09:00.
SATURDAY_NOON = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
MONDAY = {"en": "Monday 30 November, 09:00", "cy": "Dydd Llun 30 Tachwedd, 09:00"}
POSITION = {"en": "position", "cy": "safle"}
LANGUAGES = ("en", "cy")


def _no_minutes(texts: list[str], language: str) -> None:
    """Nothing said promises a wait in minutes ("about 8 minutes", "tua 8 munud")."""
    estimate = "minutes" if language == "en" else "munud"
    assert not [text for text in texts if estimate in text], texts


async def _said(person: Person, text: str) -> list[str]:
    before = len(person.fake.sent)
    await person.says(text)
    return [m.reply.text for m in person.fake.sent[before:]]


# -- out of hours --------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
async def test_out_of_hours_someone_at_risk_asking_their_place_is_told_the_line_is_closed(
    language: str, sqlite_url: str, tmp_path: Path
) -> None:
    # At 02:30 they say they want to die, are told when the line opens, then ask where they
    # are: the answer was "an adviser will join you ... about 8 minutes".
    clock = Clock(NIGHT)
    async with running(settings_for(sqlite_url, tmp_path), clock=clock) as (app, fake, _):
        t = app[CONTENT].text
        person = Person(app, fake, language=language)
        for said in ("hi", "1", "1"):
            await person.says(said)
        told = await _said(person, "i want to kill myself")
        assert t("risk.suicide", language) in told
        assert t("handoff.closed", language, opens=OPENS[language]) in told
        answer = await _said(person, POSITION[language])
        _no_minutes(answer, language)
        assert OPENS[language] in answer[0]
        assert answer == [
            t("handoff.waiting_closed", language, opens=OPENS[language]),
            t("risk.suicide", language),  # where to get help now, as when they said it
        ]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_out_of_hours_asking_their_place_with_no_danger_says_closed_until_when(
    language: str, sqlite_url: str, tmp_path: Path
) -> None:
    clock = Clock(NIGHT)
    async with running(settings_for(sqlite_url, tmp_path), clock=clock) as (app, fake, _):
        t = app[CONTENT].text
        person = Person(app, fake, language=language)
        await person.says("hi")
        await person.says("adviser" if language == "en" else "cynghorydd")
        answer = await _said(person, POSITION[language])
        _no_minutes(answer, language)
        assert answer == [t("handoff.waiting_closed", language, opens=OPENS[language])]
        # When the line opens, the place in the queue is told as before.
        clock.now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
        answer = await _said(person, POSITION[language])
        assert answer == [t("handoff.waiting", language, position=1, minutes=8)]


async def test_closed_words_keep_the_promise_the_closed_message_made(
    sqlite_url: str, tmp_path: Path
) -> None:
    # "What you write is kept for the adviser who joins you when we open" is only true if
    # the wait survives the night: a queued conversation is never closed as idle.
    clock = Clock(NIGHT)
    async with running(settings_for(sqlite_url, tmp_path), clock=clock) as (app, fake, _):
        person = Person(app, fake)
        await person.says("hi")
        await person.says("adviser")
        clock.now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
        assert await app[ENGINE].close_idle(timedelta(minutes=30)) == 0
        assert (await person.conversation()).closed is False
        assert person.conversation_id is not None
        assert await app[ROUTING].queue.entry(person.conversation_id) is not None


# -- after a programme referral ------------------------------------------------------------


async def _referred(person: Person) -> list[str]:
    """Through "a programme near me" to a consented referral (options chosen by number, the
    same in both languages); what the consent was answered with."""
    for said in ("hello", "1", "1", "2", "2", "3", "NP20 1", "1"):
        await person.says(said)
    return await _said(person, "1")


@pytest.mark.parametrize("language", LANGUAGES)
async def test_after_a_programme_referral_the_programme_s_staff_will_reply_not_an_adviser(
    language: str, sqlite_url: str, tmp_path: Path
) -> None:
    root = content_copy(tmp_path)
    with_test_programme(root)
    settings = settings_for(sqlite_url, tmp_path, content_dir=root)
    async with running(settings, clock=Clock(TUESDAY_NOON)) as (app, fake, _):
        t = app[CONTENT].text
        person = Person(app, fake, language=language)
        told = await _referred(person)
        assert (await person.conversation()).answers["queue"].startswith("programme:")
        _no_minutes(told, language)
        assert t("handoff.waiting", language, position=1, minutes=8) not in told
        assert told[-1] == t("programme.waiting", language)
        answer = await _said(person, POSITION[language])
        _no_minutes(answer, language)
        assert answer == [t("programme.waiting", language)]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_programme_declining_at_night_hands_back_to_a_closed_helpline_truthfully(
    language: str, sqlite_url: str, tmp_path: Path
) -> None:
    # Referred at noon; the programme declines at 02:30. The person was told "one of our own
    # advisers ... will join you here as soon as they can" while nobody would until 09:00.
    root = content_copy(tmp_path)
    with_test_programme(root)
    settings = settings_for(sqlite_url, tmp_path, content_dir=root)
    clock = Clock(TUESDAY_NOON)
    async with running(settings, clock=clock) as (app, fake, _):
        t = app[CONTENT].text
        person = Person(app, fake, language=language)
        await _referred(person)
        [referral] = await referrals.referrals(app[STORE])
        clock.now = NIGHT
        await referrals.set_status(app[STORE], referral["id"], "declined", "pat", programme_id=None)
        sent = len(fake.sent)
        assert await referrals.hand_back(
            app, person.conversation_id, "gwent-community-programme", declined=True
        )
        told = [m.reply.text for m in fake.sent[sent:]]
        assert told == [
            t("referral.declined", language),
            t("handoff.waiting_closed", language, opens=OPENS[language]),
        ]
        _no_minutes(told, language)
        assert (await person.conversation()).answers["queue"] == "helpline"


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_programme_handing_back_by_day_gives_the_helpline_s_place_in_its_queue(
    language: str, sqlite_url: str, tmp_path: Path
) -> None:
    root = content_copy(tmp_path)
    with_test_programme(root)
    settings = settings_for(sqlite_url, tmp_path, content_dir=root)
    async with running(settings, clock=Clock(TUESDAY_NOON)) as (app, fake, _):
        t = app[CONTENT].text
        person = Person(app, fake, language=language)
        await _referred(person)
        await referrals.withdraw(app[STORE], person.conversation_id, "gwent-community-programme")
        sent = len(fake.sent)
        assert await referrals.hand_back_unconsented(app) == 1
        told = [m.reply.text for m in fake.sent[sent:]]
        assert told == [
            t("referral.handed_back", language),
            t("handoff.waiting", language, position=1, minutes=8),
        ]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_referral_out_of_the_programme_s_hours_says_when_its_staff_are_back(
    language: str, sqlite_url: str, tmp_path: Path
) -> None:
    # Saturday: the helpline's advisers are in, the programme's staff are not until Monday.
    # It used to say "our advisers are not available" and offer a call back from them.
    root = content_copy(tmp_path)
    with_test_programme(root)
    settings = settings_for(sqlite_url, tmp_path, content_dir=root)
    async with running(settings, clock=Clock(SATURDAY_NOON)) as (app, fake, _):
        t = app[CONTENT].text
        person = Person(app, fake, language=language)
        told = await _referred(person)
        _no_minutes(told, language)
        assert t("handoff.closed", language, opens=MONDAY[language]) not in told
        assert told[-1] == t("programme.waiting_closed", language, opens=MONDAY[language])
        assert fake.sent[-1].reply.options == ()
        answer = await _said(person, POSITION[language])
        assert answer == [t("programme.waiting_closed", language, opens=MONDAY[language])]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_long_wait_for_a_programme_is_not_met_with_the_helpline_s_offer(
    language: str, sqlite_url: str, tmp_path: Path
) -> None:
    # The helpline's offer to someone waiting long says "all our advisers are helping other
    # people" and offers a call back from them, which would take the person out of the
    # programme's queue: its staff answer in their own hours, as the person was told.
    root = content_copy(tmp_path)
    with_test_programme(root)
    settings = settings_for(sqlite_url, tmp_path, content_dir=root)
    clock = Clock(TUESDAY_NOON)
    async with running(settings, clock=clock) as (app, fake, _):
        t, routing = app[CONTENT].text, app[ROUTING]
        person = Person(app, fake, language=language)
        await _referred(person)
        sent = len(fake.sent)
        clock.now += timedelta(hours=2)
        assert await routing.offer_waiting(timedelta(minutes=10)) == 0
        assert fake.texts()[sent:] == []
        assert t("handoff.wait_offer", language) not in fake.texts()
        # Someone waiting as long for the helpline's advisers is still offered it.
        helpline = Person(app, fake, language=language, address="+447700900125")
        await helpline.says("hi")
        await helpline.says("adviser" if language == "en" else "cynghorydd")
        clock.now += timedelta(minutes=11)
        assert await routing.offer_waiting(timedelta(minutes=10)) == 1
        assert fake.texts()[-1] == t("handoff.wait_offer", language)


def _closed_for_good(root: Path, queue: str) -> None:
    """`queue` closed every day from TUESDAY_NOON for longer than next_opening looks ahead."""
    path = root / "hours.yaml"
    hours = yaml.safe_load(path.read_text(encoding="utf-8"))
    start = TUESDAY_NOON.date()
    hours["closures"] = [
        {"date": (start + timedelta(days=n)).isoformat(), "queues": [queue], "name": "paused"}
        for n in range(HORIZON_DAYS + 5)
    ]
    path.write_text(yaml.safe_dump(hours), encoding="utf-8")


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_line_closed_until_further_notice_says_so_when_asked_the_place(
    language: str, sqlite_url: str, tmp_path: Path
) -> None:
    root = content_copy(tmp_path)
    _closed_for_good(root, "helpline")
    settings = settings_for(sqlite_url, tmp_path, content_dir=root)
    async with running(settings, clock=Clock(TUESDAY_NOON)) as (app, fake, _):
        t = app[CONTENT].text
        person = Person(app, fake, language=language)
        await person.says("hi")
        await person.says("adviser" if language == "en" else "cynghorydd")
        answer = await _said(person, POSITION[language])
        assert answer == [t("handoff.waiting_closed_unknown", language)]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_programme_closed_until_further_notice_says_so_at_the_referral_and_after(
    language: str, sqlite_url: str, tmp_path: Path
) -> None:
    root = content_copy(tmp_path)
    programme = with_test_programme(root)
    _closed_for_good(root, f"programme:{programme['id']}")
    settings = settings_for(sqlite_url, tmp_path, content_dir=root)
    async with running(settings, clock=Clock(TUESDAY_NOON)) as (app, fake, _):
        t = app[CONTENT].text
        person = Person(app, fake, language=language)
        told = await _referred(person)
        assert told[-1] == t("programme.waiting_closed_unknown", language)
        answer = await _said(person, POSITION[language])
        assert answer == [t("programme.waiting_closed_unknown", language)]


# -- "are you there?": the acknowledgement now and then ------------------------------------
# Engine._while_waiting said handoff.waiting_ack ("Your message will be read by the adviser
# who joins you") whatever the queue; it now says Routing.acknowledgement.


@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_acknowledgement_says_who_will_read_and_when(
    language: str, sqlite_url: str, tmp_path: Path
) -> None:
    root = content_copy(tmp_path)
    with_test_programme(root)
    settings = settings_for(sqlite_url, tmp_path, content_dir=root)
    clock = Clock(NIGHT)
    async with running(settings, clock=clock) as (app, fake, _):
        t, routing = app[CONTENT].text, app[ROUTING]
        at_risk = Person(app, fake, language=language)
        for said in ("hi", "1", "1", "i want to kill myself"):
            await at_risk.says(said)
        ack = [r.text for r in routing.acknowledgement(await at_risk.conversation())]
        assert ack == [
            t("handoff.waiting_closed", language, opens=OPENS[language]),
            t("risk.suicide", language),
        ]
        clock.now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # Wednesday noon: all open
        ack = [r.text for r in routing.acknowledgement(await at_risk.conversation())]
        assert ack == [t("handoff.waiting_ack", language)]
        referred = Person(app, fake, language=language, address="+447700900124")
        await _referred(referred)
        ack = [r.text for r in routing.acknowledgement(await referred.conversation())]
        assert ack == [t("programme.waiting_ack", language)]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_out_of_hours_are_you_there_is_told_the_line_is_closed(
    language: str, sqlite_url: str, tmp_path: Path
) -> None:
    clock = Clock(NIGHT)
    async with running(settings_for(sqlite_url, tmp_path), clock=clock) as (app, fake, _):
        t = app[CONTENT].text
        person = Person(app, fake, language=language)
        for said in ("hi", "1", "1", "i want to kill myself"):
            await person.says(said)
        assert await _said(person, "are you there") == [
            t("handoff.waiting_closed", language, opens=OPENS[language]),
            t("risk.suicide", language),
        ]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_after_a_referral_a_message_is_kept_for_the_programme_s_staff(
    language: str, sqlite_url: str, tmp_path: Path
) -> None:
    root = content_copy(tmp_path)
    with_test_programme(root)
    settings = settings_for(sqlite_url, tmp_path, content_dir=root)
    async with running(settings, clock=Clock(TUESDAY_NOON)) as (app, fake, _):
        person = Person(app, fake, language=language)
        await _referred(person)
        assert await _said(person, "ok") == [app[CONTENT].text("programme.waiting_ack", language)]
