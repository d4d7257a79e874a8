"""Leaving a programme's queue after a referral withdraws it: the person is told so plainly,
and is back at the choice of what to do next, where referring again shows what is shared
and asks for consent again."""

from __future__ import annotations

from pathlib import Path

import pytest

from handoff import referrals
from helpline.app import CONTENT, STORE
from helpline.domain import Owner
from tests.journey_support import Person, content_copy, with_test_programme
from tests.support import running, settings_for

REFERRED = ["hello", "1", "1", "1", "no", "3", "NP20 1", "1", "yes"]


async def test_cancelling_a_referral_says_it_is_withdrawn_and_asks_consent_again_to_refer(
    sqlite_url: str, tmp_path: Path
) -> None:
    root = content_copy(tmp_path)
    with_test_programme(root)
    async with running(settings_for(sqlite_url, tmp_path, content_dir=root)) as (app, fake, _):
        person = Person(app, fake)
        for text in REFERRED:
            await person.says(text)
        assert (await person.conversation()).owner is Owner.QUEUE
        assert await person.says("cancel") == ["programme.withdrawn", "programme.next"]
        refer = app[CONTENT].text("programme.opt_refer", "en")
        assert refer in person.last_options()
        [referral] = await referrals.referrals(app[STORE])
        assert referral["status"] == "withdrawn"
        conv = await person.conversation()
        assert (conv.owner, conv.flow, conv.state) == (Owner.BOT, "programme", "offer_referral")
        # Referring again is asked for again, with what would be shared.
        assert await person.says("1") == ["programme.consent"]


async def test_waiting_for_a_programme_says_how_to_withdraw_the_referral(
    sqlite_url: str, tmp_path: Path
) -> None:
    root = content_copy(tmp_path)
    with_test_programme(root)
    async with running(settings_for(sqlite_url, tmp_path, content_dir=root)) as (app, fake, _):
        person = Person(app, fake, language="cy")
        for text in ["helo", *REFERRED[1:-1], "ydw"]:
            await person.says(text)
        waiting = [t for t in fake.texts() if "canslo" in t]
        assert waiting and "dynnu eich atgyfeiriad yn ôl" in waiting[-1]


@pytest.mark.parametrize(
    ("language", "greeting", "said"),
    [
        ("en", "hello", "I've changed my mind, I don't want to be referred"),
        ("en", "hello", "please withdraw my referral"),
        ("cy", "helo", "dwi wedi newid fy meddwl, tynnwch fy atgyfeiriad yn ôl"),
    ],
)
async def test_withdrawing_in_plain_words_while_waiting_for_a_programme_withdraws_it(
    language: str, greeting: str, said: str, sqlite_url: str, tmp_path: Path
) -> None:
    # Only "cancel" did: plain words were kept "for the programme's staff" and the referral
    # stood.
    root = content_copy(tmp_path)
    with_test_programme(root)
    async with running(settings_for(sqlite_url, tmp_path, content_dir=root)) as (app, fake, _):
        person = Person(app, fake, language=language)
        yes = "yes" if language == "en" else "ydw"
        for text in [greeting, *REFERRED[1:-1], yes]:
            await person.says(text)
        assert (await person.conversation()).owner is Owner.QUEUE
        assert await person.says(said) == ["programme.withdrawn", "programme.next"]
        [referral] = await referrals.referrals(app[STORE])
        assert referral["status"] == "withdrawn"


@pytest.mark.parametrize(
    "said",
    [
        "I haven't changed my mind",
        "please don't cancel my referral",
        "can I withdraw my referral later?",
        "I changed my mind about the time, can they call in the evening",
        "dwi ddim wedi newid fy meddwl",
        "peidiwch â chanslo fy atgyfeiriad",
    ],
)
async def test_keeping_or_asking_about_a_referral_does_not_withdraw_it(
    said: str, sqlite_url: str, tmp_path: Path
) -> None:
    root = content_copy(tmp_path)
    with_test_programme(root)
    async with running(settings_for(sqlite_url, tmp_path, content_dir=root)) as (app, fake, _):
        person = Person(app, fake)
        for text in REFERRED:
            await person.says(text)
        assert "programme.withdrawn" not in await person.says(said)
        assert (await person.conversation()).owner is Owner.QUEUE
        [referral] = await referrals.referrals(app[STORE])
        assert referral["status"] == "new"


async def test_changing_one_s_mind_while_waiting_for_the_helpline_keeps_the_place(
    sqlite_url: str, tmp_path: Path
) -> None:
    # The plain words withdraw a referral only: in the helpline's own queue they are a
    # message for the adviser, and the wait goes on.
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        for text in ["hello", "1", "adviser"]:
            await person.says(text)
        assert (await person.conversation()).owner is Owner.QUEUE
        await person.says("I've changed my mind about what I want to say")
        assert (await person.conversation()).owner is Owner.QUEUE
