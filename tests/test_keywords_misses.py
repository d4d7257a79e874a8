"""Answers typed the way people text (fragments, typos, "gf", past tense in Welsh) are
understood at the question they answer, through the real engine; and the words added for
them do not catch ordinary messages that mean something else."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.journey_support import Person
from tests.support import running, settings_for

WELCOME = ["welcome.intro", "welcome.confidential", "welcome.practical", "welcome.safe_now"]


async def _replies(tmp_path: Path, sqlite_url: str, lang: str, *said: str) -> list[str]:
    """What the last message got back (content keys), after the ones before it."""
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language=lang)
        for text in said[:-1]:
            await person.says(text)
        return await person.says(said[-1])


# -- "Is it safe for you to message right now?" ----------------------------------------------


@pytest.mark.parametrize("text", ["yeh", "Yeh", "ye its safe", "yeh its safe", "its safe"])
async def test_yes_typed_loosely_to_is_it_safe_moves_on_to_who(
    text: str, sqlite_url: str, tmp_path: Path
) -> None:
    assert await _replies(tmp_path, sqlite_url, "en", "hi", text) == ["welcome.who"]


@pytest.mark.parametrize("text", ["its not safe", "ye he's here", "yesterday was bad"])
async def test_is_it_safe_answers_that_are_not_yes_are_not_read_as_yes(
    text: str, sqlite_url: str, tmp_path: Path
) -> None:
    assert "welcome.who" not in await _replies(tmp_path, sqlite_url, "en", "hi", text)


# -- who is writing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("en", "its me im the problem"),
        ("en", "im the problem"),
        ("cy", "wnes i weiddi ar fy nghariad a'i gwthio hi, dwi'n teimlo cywilydd"),
        ("cy", "nes i weiddi arni neithiwr"),
        ("cy", "dwi wedi gweiddi ar fy mhartner"),
    ],
)
async def test_saying_it_is_your_own_behaviour_in_your_own_words_is_understood(
    lang: str, text: str, sqlite_url: str, tmp_path: Path
) -> None:
    answer = "ydy" if lang == "cy" else "1"
    got = await _replies(tmp_path, sqlite_url, lang, "hi", answer, text)
    assert got == ["own.start", "own.about"]


async def test_a_victim_quoting_im_the_problem_is_still_signposted_as_a_victim(
    sqlite_url: str, tmp_path: Path
) -> None:
    got = await _replies(
        tmp_path, sqlite_url, "en", "hi", "1", "he hits me and says im the problem"
    )
    assert got[0].startswith("victim.")


# -- "Is this about a partner, an ex, or family?" -------------------------------------------


@pytest.mark.parametrize("text", ["partnr", "my partnr", "gf", "my gf", "bf", "the wife", "hubby"])
async def test_a_partner_typed_short_or_misspelt_is_understood(
    text: str, sqlite_url: str, tmp_path: Path
) -> None:
    got = await _replies(tmp_path, sqlite_url, "en", "hi", "1", "me", text)
    assert got == ["own.children"]


# -- the professional menu -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("en", "what runs in cardiff"),
        ("en", "whats available in wrexham"),
        ("en", "are there any programmes in bristol for my client?"),
        ("cy", "beth sy'n rhedeg yn abertawe"),
    ],
)
async def test_asking_what_runs_in_a_named_place_shows_that_area(
    lang: str, text: str, sqlite_url: str, tmp_path: Path
) -> None:
    safe, professional = ("ydy", "4") if lang == "cy" else ("1", "4")
    got = await _replies(tmp_path, sqlite_url, lang, "hi", safe, professional, text)
    assert got[0] in ("professional.area_found", "professional.area_none"), got
    assert got[-2:] == ["professional.area_line", "professional.more"]


async def test_asking_what_runs_without_a_place_asks_which_area(
    sqlite_url: str, tmp_path: Path
) -> None:
    got = await _replies(tmp_path, sqlite_url, "en", "hi", "1", "4", "what runs near my client")
    assert got == ["professional.area_ask"]


# -- the friends and family menu -------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "before", "text", "shown"),
    [
        # Before either: the person being hurt, whose safety comes first.
        ("en", [], "what about her", "family.victim"),
        # After how to talk to the one behaving abusively: the other person, the one hurt.
        ("en", ["1"], "what about her", "family.victim"),
        # After how to support the person being hurt: the one behaving abusively.
        ("en", ["2"], "what about him", "family.abuser"),
        ("cy", [], "beth amdani hi", "family.victim"),
        ("cy", ["2"], "beth amdano fe", "family.abuser"),
    ],
)
async def test_what_about_her_asks_about_the_other_person(
    lang: str, before: list[str], text: str, shown: str, sqlite_url: str, tmp_path: Path
) -> None:
    safe = "ydy" if lang == "cy" else "1"
    got = await _replies(tmp_path, sqlite_url, lang, "hi", safe, "2", *before, text)
    assert got == [shown, "family.more"]


async def test_an_explicit_choice_in_the_family_menu_still_wins_over_what_about(
    sqlite_url: str, tmp_path: Path
) -> None:
    got = await _replies(tmp_path, sqlite_url, "en", "hi", "1", "2", "2", "what about support her")
    assert got == ["family.victim", "family.more"]
