"""Danger sent in pieces: people text in fragments, and a long story goes in several
messages. The words either side of each break are screened together."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpline.domain import Owner
from tests.journey_support import Person
from tests.support import running, settings_for

START = ("hello", "1", "1")


@pytest.mark.parametrize(
    ("first", "then", "guidance"),
    [
        ("I want to end", "my life", "risk.suicide"),
        ("I've decided I'm going to take my", "own life tonight", "risk.suicide"),
        ("he's got his hands round her", "neck", "risk.immediate"),
        ("I'm holding a", "knife and she won't stop", "risk.immediate"),
        ("Dw i eisiau lladd", "fy hun", "risk.suicide"),
    ],
)
async def test_danger_split_over_two_messages_gets_the_guidance(
    first: str, then: str, guidance: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        for said in (*START, first):
            assert not any(k.startswith("risk.") for k in await person.says(said))
        assert guidance in await person.says(then)
        assert (await person.conversation()).owner is Owner.QUEUE


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ("no one is in danger right now", "I could murder a pint"),
        ("my back is killing me after the gym", "the kids are fine"),
        ("my ex", "no"),
    ],
)
async def test_two_harmless_messages_stay_harmless_together(
    first: str, then: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        for said in (*START, first, then):
            assert not any(k.startswith("risk.") for k in await person.says(said))
        assert (await person.conversation()).risk_level == "none"


async def test_an_answer_kept_sealed_is_never_kept_for_screening_with_the_next(
    sqlite_url: str, tmp_path: Path
) -> None:
    # The area a programme is searched for is not kept in clear: nor are its last words.
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        for said in (*START, "my ex", "no", "a programme near me", "CF10 3AT"):
            await person.says(said)
        conv = await person.conversation()
        assert "CF10" not in str(conv.answers)
