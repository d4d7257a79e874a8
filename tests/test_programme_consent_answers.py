"""A referral and deleting everything are done only on a clear yes: a question or a doubt
said at "do you agree?" or "delete everything?" is answered by asking again, never taken as
consent."""

from __future__ import annotations

from pathlib import Path

import pytest

from handoff import referrals
from helpline.app import STORE
from tests.journey_support import Person, content_copy, with_test_programme
from tests.support import running, settings_for

TO_CONSENT = {
    "en": ["hello", "1", "1", "1", "no", "3", "NP20 1", "1"],
    "cy": ["helo", "1", "1", "1", "na", "3", "NP20 1", "1"],
}


@pytest.mark.parametrize(
    ("language", "said"),
    [
        ("en", "what happens if I agree?"),
        ("en", "I am not sure I agree"),
        ("en", "before I go ahead, will they contact my partner?"),
        ("en", "go ahead?"),
        ("cy", "beth sy'n digwydd os dwi'n cytuno?"),
        ("cy", "dwi ddim yn siŵr os dwi'n cytuno"),
    ],
)
async def test_a_question_or_doubt_at_consent_is_answered_not_taken_as_a_yes(
    language: str, said: str, sqlite_url: str, tmp_path: Path
) -> None:
    root = content_copy(tmp_path)
    with_test_programme(root)
    async with running(settings_for(sqlite_url, tmp_path, content_dir=root)) as (app, fake, _):
        person = Person(app, fake, language=language)
        for text in TO_CONSENT[language]:
            await person.says(text)
        assert await person.says(said) == ["programme.consent_unsure", "programme.consent"]
        conv = await person.conversation()
        assert (conv.flow, conv.state) == ("programme", "consent")
        assert await referrals.referrals(app[STORE]) == []
        # ...and a plain yes afterwards still refers them.
        yes = "yes" if language == "en" else "ydw"
        assert "programme.referred" in await person.says(yes)


@pytest.mark.parametrize(
    ("language", "said", "keys"),
    [
        ("cy", "dwi ddim yn cytuno", ["programme.declined"]),
        ("en", "I do not agree", ["programme.declined"]),
        ("en", "yes I agree", ["programme.referred"]),
        # Plain consent in other words, and a text's kiss, were asked again and again.
        ("en", "yes I consent", ["programme.referred"]),
        ("en", "I give my consent", ["programme.referred"]),
        ("en", "go for it", ["programme.referred"]),
        ("en", "yes send it", ["programme.referred"]),
        ("en", "yes x", ["programme.referred"]),
        ("cy", "rwy'n cydsynio", ["programme.referred"]),
        ("cy", "ydw plis x", ["programme.referred"]),
        ("en", "I don't consent", ["programme.declined"]),
        ("en", "I do not consent to that", ["programme.declined"]),
        # Alone, a kiss or the question's own words are no answer: asked again.
        ("en", "x", []),
        ("en", "send it", []),
        ("en", "I agree but my partner won't like it", ["programme.consent_unclear"]),
    ],
)
async def test_a_plain_answer_at_consent_is_taken_and_a_mixed_one_asked_again(
    language: str, said: str, keys: list[str], sqlite_url: str, tmp_path: Path
) -> None:
    root = content_copy(tmp_path)
    with_test_programme(root)
    async with running(settings_for(sqlite_url, tmp_path, content_dir=root)) as (app, fake, _):
        person = Person(app, fake, language=language)
        for text in TO_CONSENT[language]:
            await person.says(text)
        got = await person.says(said)
        assert [k for k in got if k in keys or k.startswith("programme.")][: len(keys)] == keys
        if keys in ([], ["programme.consent_unclear"]):
            assert await referrals.referrals(app[STORE]) == []
            assert (await person.conversation()).state == "consent"
            assert person.last_options()  # the yes and no buttons again


@pytest.mark.parametrize(
    "said",
    ["what happens if I agree?", "go ahead?", "I'm not sure", "beth sy'n digwydd os dwi'n cytuno?"],
)
async def test_a_question_at_delete_everything_deletes_nothing(
    said: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        for text in ("hello", "1", "2"):
            await person.says(text)
        assert await person.says("delete my data") == ["erase.confirm"]
        assert await person.says(said) == ["erase.unsure", "erase.confirm"]
        conv = await person.conversation()
        assert conv.flow == "erase"
        assert await person.says("yes") == ["erase.done"]


@pytest.mark.parametrize(
    ("language", "said", "refers"),
    [
        ("en", "thanks", False),
        ("en", "ok then", True),
        ("en", "go on", True),
        ("en", "I'm safe", False),
        ("en", "Yes, delete them", False),  # the erase question's button
        ("en", "Yes, refer me", True),
        ("cy", "diolch", False),
        ("cy", "ydw diolch", True),
        ("cy", "o'r gorau", True),
    ],
)
async def test_only_a_yes_to_this_question_refers(
    language: str, said: str, refers: bool, sqlite_url: str, tmp_path: Path
) -> None:
    # "thanks" alone, "I'm safe" (the yes to "is it safe to talk?") and the erase button's
    # words all made a referral.
    root = content_copy(tmp_path)
    with_test_programme(root)
    async with running(settings_for(sqlite_url, tmp_path, content_dir=root)) as (app, fake, _):
        person = Person(app, fake, language=language)
        for text in TO_CONSENT[language]:
            await person.says(text)
        got = await person.says(said)
        assert ("programme.referred" in got) is refers, got
        assert bool(await referrals.referrals(app[STORE])) is refers


@pytest.mark.parametrize("said", ["thanks", "Yes, refer me", "I'm safe", "ok thanks"])
async def test_delete_everything_needs_a_yes_to_it(
    said: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        for text in ("hello", "1", "2"):
            await person.says(text)
        assert await person.says("delete my data") == ["erase.confirm"]
        got = await person.says(said)
        deleted = "erase.done" in got
        assert deleted is (said == "ok thanks"), got
