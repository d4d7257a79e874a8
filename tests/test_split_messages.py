"""Danger sent in pieces: people text in fragments, and a long story goes in several
messages. The words either side of each break are screened together."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from helpline.app import CONTENT
from helpline.domain import InboundMessage, Owner
from tests.journey_support import Person
from tests.support import engine_of, running, settings_for

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
        # A question answered, then the next thing they want to say.
        ("will you call the police", "help me stop shouting at her"),
        ("do you call the police?", "now what"),
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


async def test_fragments_arriving_together_are_joined_too(sqlite_url: str, tmp_path: Path) -> None:
    # Texted in quick succession, the later ones arrive while the first waits: all three are
    # answered in one turn, and the break between the last two still counts.
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        for said in START:
            await person.says(said)
        engine = engine_of(app)
        for said in ("ok", "I want to end", "my life"):
            accepted = await engine.accept(InboundMessage("test", person.address, said))
        await engine.process(accepted.conversation_id)
        assert app[CONTENT].text("risk.suicide", "en") in fake.texts()


async def test_pieces_far_apart_are_not_joined(sqlite_url: str, tmp_path: Path) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        for said in (*START, "I want to end"):
            await person.says(said)
        later = datetime.now(UTC) + timedelta(minutes=10)
        await engine_of(app).handle(
            InboundMessage("test", person.address, "my life story here", received_at=later)
        )
        assert (await person.conversation()).risk_level == "none"
