"""What the bot says to questions and situations a reviewer found it answering badly: asking
whether we call the police is answered, not treated as an emergency; hurting on both sides is
not met with "it is not your fault"; requests to manage the person harmed meet a calm boundary;
the person harmed always has a service, in England too; self-descriptions are understood."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpline.app import CONTENT, STORE
from helpline.content import DEFAULT_ROOT
from helpline.domain import Direction, Owner
from tests.journey_support import Person, run_golden
from tests.support import running, settings_for

WELCOME = ["welcome.intro", "welcome.confidential", "welcome.practical", "welcome.safe_now"]

# -- asking about the police, confidentiality, recording ---------------------------------------

ASKS_ABOUT_THE_SERVICE = [
    ("en", "will you call the police on me"),
    ("en", "do you call the police"),
    ("en", "Are you going to report me to the police?"),
    ("en", "do you have to tell social services"),
    ("en", "is this confidential?"),
    ("en", "are you recording this"),
    ("en", "will this be reported"),
    ("cy", "ydych chi'n mynd i ffonio'r heddlu arna i"),
    ("cy", "ydy hyn yn gyfrinachol?"),
]


@pytest.mark.parametrize(("language", "text"), ASKS_ABOUT_THE_SERVICE)
async def test_asking_what_the_service_does_is_answered_mid_journey_and_the_question_stays(
    language: str, text: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language=language)
        await person.says("hello")
        await person.says("1")
        await person.says("1")
        options = person.last_options()
        assert await person.says(text) == ["guardrail.confidential"]
        assert person.last_options() == options  # still at the same question
        conv = await person.conversation()
        assert (conv.flow, conv.state, conv.owner) == ("own", "start", Owner.BOT)
        assert conv.risk_level == "none"
        assert await person.says("1") == ["own.children"]


async def test_asking_about_the_police_first_is_answered_in_the_welcome_once_not_queued(
    sqlite_url: str, tmp_path: Path
) -> None:
    # The answer (which names the police) takes the place of the welcome's own statement of
    # where confidentiality ends: the same facts are not said twice, one after the other.
    answered = ["welcome.intro", "guardrail.confidential", "welcome.practical", "welcome.safe_now"]
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        for address, language, text in (
            ("+447700900111", "en", "will you call the police on me"),
            ("+447700900222", "cy", "ydych chi'n mynd i ffonio'r heddlu arna i"),
            ("+447700900333", "en", "is this confidential?"),
        ):
            person = Person(app, fake, address=address, language=language)
            assert await person.says(text) == answered
            said = " ".join(person.last_texts(4))
            heddlu = "heddlu" if language == "cy" else "police"
            ip = "(IP)"
            assert said.count(heddlu) == 1 and said.count(ip) == 1
            assert person.last_options() == tuple(
                app[CONTENT].text(f"welcome.opt_{o}", language)
                for o in ("safe", "not_now", "danger")
            )
            conv = await person.conversation()
            assert (conv.owner, conv.risk_level) == (Owner.BOT, "none")
            conv = await person.conversation()
            assert (conv.owner, conv.risk_level) == (Owner.BOT, "none")


async def test_asking_about_the_police_while_waiting_does_not_raise_danger(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        for said in ("hello", "1", "1", "skip", "skip"):
            await person.says(said)
        assert await person.says("1") == ["handoff.waiting"]
        assert "risk.immediate" not in await person.says("do you call the police")
        conv = await person.conversation()
        assert (conv.owner, conv.risk_level) == (Owner.QUEUE, "none")


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("en", "call the police he's here"),
        ("en", "I need to call the police"),
        ("en", "can you call the police"),
        ("cy", "ffoniwch yr heddlu, mae e yma"),
    ],
)
async def test_asking_for_the_police_is_still_danger(
    language: str, text: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language=language)
        await run_golden(person, [("hello", WELCOME), ("1", ["welcome.who"])])
        assert (await person.says(text))[0] == "risk.immediate"
        assert (await person.conversation()).risk_level == "immediate"


async def test_talk_about_the_police_that_is_not_a_question_about_us_gets_no_set_answer(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, _fake, _):
        content = app[CONTENT]
        for text in (
            "do you think I should tell the police",
            "she will report me to the police",
            "did she call the police",
            "my partner called the police on me",
            "I want to tell the police what I did",
            "I'm worried she'll tell social services",
            "mae hi wedi ffonio'r heddlu",
            "dwi eisiau ffonio'r heddlu",
        ):
            assert content.guardrail(text) is None, text


# -- hurting on both sides ----------------------------------------------------------------------

BOTH_SIDES = [
    ("en", "I hit my wife but she hits me too"),
    ("en", "she hit me first so I hit her back"),
    ("en", "she hits me too so it's mutual"),
    ("cy", "mae hi'n fy nharo i hefyd"),
]


@pytest.mark.parametrize(("language", "text"), BOTH_SIDES)
async def test_hurting_on_both_sides_is_offered_both_routes_not_told_it_is_not_their_fault(
    language: str, text: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language=language)
        await run_golden(person, [("hello", WELCOME), ("1", ["welcome.who"])])
        assert await person.says(text) == ["welcome.both"]
        content = app[CONTENT]
        assert person.last_options() == tuple(
            content.text(k, language) for k in ("welcome.opt_both_own", "welcome.opt_both_adviser")
        )
        assert await person.says("1") == ["own.start", "own.about"]
        assert (await person.conversation()).answers["who"] == "self"


async def test_hurting_on_both_sides_said_first_or_with_it_is_safe_is_offered_both(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        first = Person(app, fake, address="+447700900111")
        assert await first.says("I hit my wife but she hits me too") == WELCOME
        assert await first.says("yes") == ["welcome.both"]
        second = Person(app, fake, address="+447700900222")
        await second.says("hello")
        assert await second.says("yes it's safe, she hit me first so I hit her back") == [
            "welcome.both"
        ]
        assert await second.says("2") == ["handoff.waiting"]
        conv = await second.conversation()
        assert (conv.flow, conv.owner) == ("own", Owner.QUEUE)


@pytest.mark.parametrize(
    "text",
    [
        "my husband controls me and he hits me too",
        "he hits me",
        "he hits me and says i'm the problem",
        "mae e'n fy nharo i",
        "mae e'n fy nharo i ac yn dweud mai fi yw'r broblem",
    ],
)
async def test_someone_only_being_hurt_is_still_told_it_is_not_their_fault(
    text: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await run_golden(person, [("hello", WELCOME), ("1", ["welcome.who"])])
        assert await person.says(text) == ["victim.signpost"]


# -- requests to manage the person harmed ------------------------------------------------------

BOUNDARIES = [
    ("en", "how do I get her to drop the charges", "guardrail.charges"),
    ("en", "can you help me get her to withdraw her statement", "guardrail.charges"),
    ("cy", "sut alla i ei chael hi i ollwng y cyhuddiadau", "guardrail.charges"),
    ("en", "I need to get my kids back, she's poisoning them against me", "guardrail.court"),
    ("en", "she won't let me see my kids", "guardrail.court"),
    ("cy", "mae hi'n troi'r plant yn fy erbyn", "guardrail.court"),
]


@pytest.mark.parametrize(("language", "text", "reply"), BOUNDARIES)
async def test_requests_to_manage_the_person_harmed_meet_a_boundary_and_an_adviser_is_told(
    language: str, text: str, reply: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language=language)
        await run_golden(person, [("hello", WELCOME), ("1", ["welcome.who"])])
        options = person.last_options()
        assert await person.says(text) == [reply]
        assert person.last_options() == options  # the who question, still open
        conv = await person.conversation()
        assert (conv.flow, conv.state) == ("welcome", "who")
        transcript = [m.text for m in await app[STORE].transcript(conv.id)]
        rail = reply.split(".")[1]
        assert app[CONTENT].text("note.flagged", "en", reason=f"guardrail:{rail}") in transcript
        assert await person.says("1") == ["own.start", "own.about"]


async def test_ordinary_talk_of_court_children_and_charges_gets_no_boundary(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, _fake, _):
        content = app[CONTENT]
        for text in (
            "she dropped the charges last week",
            "I was in custody last night",
            "the court said no contact",
            "I want my kids to be safe",
            "the police charged me",
            "I need to get my kids back from school",
            "I'm going to court next week",
            "she wants to press charges",
            "mae gen i achos llys wythnos nesaf",
        ):
            assert content.guardrail(text) is None, text


# -- what is not understood is not thanked; "are you a robot?" -----------------------------------


@pytest.mark.parametrize("text", ["fuck off", "this is pointless", "whatever"])
async def test_what_is_not_understood_at_the_who_question_is_not_thanked(
    text: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await run_golden(person, [("hello", WELCOME), ("1", ["welcome.who"])])
        assert await person.says(text) == ["who.retry"]
        for language in ("en", "cy"):
            retry = app[CONTENT].text("who.retry", language)
            assert "thank" not in retry.lower() and "diolch" not in retry.lower()


@pytest.mark.parametrize(
    ("language", "text"),
    [("en", "are you a robot"), ("en", "is this a bot?"), ("cy", "ydych chi'n robot?")],
)
async def test_are_you_a_robot_is_answered_plainly_and_the_question_stays(
    language: str, text: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language=language)
        await run_golden(person, [("hello", WELCOME), ("1", ["welcome.who"])])
        assert await person.says(text) == ["guardrail.bot"]
        assert await person.says("1") == ["own.start", "own.about"]


async def test_asking_for_a_real_person_still_reaches_an_adviser(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await run_golden(person, [("hello", WELCOME), ("1", ["welcome.who"])])
        assert await person.says("is this a real person?") == ["handoff.waiting"]


# -- the person harmed always has somewhere to turn, in England too ------------------------------


def _directory_phone(service_id: str) -> str:
    services = yaml.safe_load((DEFAULT_ROOT / "directory" / "services.yaml").read_text())
    entry = next(s for s in services["services"] if s["id"] == service_id)
    return str(next(c["value"] for c in entry["contacts"] if c["channel"] == "phone"))


async def test_the_end_of_the_own_behaviour_route_names_a_service_for_the_person_harmed(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await run_golden(
            person,
            [
                ("hello", WELCOME),
                ("1", ["welcome.who"]),
                ("1", ["own.start", "own.about"]),
                ("1", ["own.children"]),
                ("no", ["own.want"]),
                ("4", ["own.today", "own.more"]),
                ("that's all", ["own.end"]),
            ],
        )
        content = app[CONTENT]
        england = _directory_phone("national-domestic-abuse-helpline")
        for key in ("own.end", "handoff.other_routes"):
            for language in ("en", "cy"):
                assert england in content.text(key, language), (key, language)
        assert england in person.last_texts()[0]


# -- self-descriptions understood ----------------------------------------------------------------

SELF_DESCRIPTIONS = [
    ("cy", "dwi wedi taro fy nghariad"),
    ("cy", "dwi ddim yn gwybod ai fi yw'r broblem"),
    ("en", "I need help to stop hurting my girlfriend"),
    ("en", "I'm not abusive, I just have a temper"),
]


@pytest.mark.parametrize(("language", "text"), SELF_DESCRIPTIONS)
async def test_people_describing_their_own_behaviour_reach_the_own_behaviour_route(
    language: str, text: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language=language)
        await run_golden(person, [("hello", WELCOME), ("1", ["welcome.who"])])
        assert await person.says(text) == ["own.start", "own.about"]


# -- friends and family: no one labelled --------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["my son's girlfriend is lying about him", "my brother is horrible to his wife"]
)
async def test_family_and_friends_are_met_without_labelling_the_person_they_ask_about(
    text: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await run_golden(person, [("hello", WELCOME), ("1", ["welcome.who"])])
        assert await person.says(text) == ["family.start"]
        for language in ("en", "cy"):
            said = app[CONTENT].text("family.start", language).lower()
            assert "behaving abusively" not in said and "ymddwyn yn gamdriniol" not in said


async def test_questions_anyone_may_ask_do_not_alert_an_adviser(
    sqlite_url: str, tmp_path: Path
) -> None:
    # "Is this confidential?" and "are you a robot?" are answered; they are no concern to flag
    # (a request to find someone, or to get charges dropped, still is: above).
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await run_golden(person, [("hello", WELCOME), ("1", ["welcome.who"])])
        assert await person.says("is this confidential?") == ["guardrail.confidential"]
        assert await person.says("are you a robot") == ["guardrail.bot"]
        conv = await person.conversation()
        notes = [m for m in await app[STORE].transcript(conv.id) if m.direction == Direction.NOTE]
        assert notes == []
