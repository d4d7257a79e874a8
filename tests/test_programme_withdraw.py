"""Leaving a programme's queue after a referral withdraws it: the person is told so plainly,
and is back at the choice of what to do next, where referring again shows what is shared
and asks for consent again."""

from __future__ import annotations

from pathlib import Path

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
