"""The welcome and the victim journey end to end: what someone said before the "why are you
here" question is not asked again, a victim is offered choices (children, a service for men,
an adviser) and never questioned, self-descriptions are understood without false matches, and
a Welsh greeting as the first message starts the conversation in Welsh."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpline.app import CONTENT
from helpline.content import Content
from helpline.domain import Owner
from tests.journey_support import Person, run_golden
from tests.support import engine_of, running, settings_for

WELCOME = ["welcome.intro", "welcome.confidential", "welcome.practical", "welcome.safe_now"]
# A first message saying they are being hurt: help for them at once, the safety question still.
HEARD = ["welcome.heard", "welcome.confidential", "welcome.practical", "welcome.heard_safe"]
SIGNPOST_OPTIONS = ("victim.opt_adviser", "flow.opt_start_again", "flow.opt_done")

# -- 1. the first message is not thrown away ---

FIRST_WORDS = [
    ("my boyfriend hits me and I'm scared", HEARD, ["victim.signpost"], "victim"),
    ("I'm being abused by my husband", HEARD, ["victim.signpost"], "victim"),
    ("I shout at my wife and I need help", WELCOME, ["own.start", "own.about"], "own"),
    ("I can't stop shouting at her", WELCOME, ["own.start", "own.about"], "own"),
]


@pytest.mark.parametrize(("first", "welcome", "then", "flow"), FIRST_WORDS)
async def test_who_they_said_they_are_first_is_not_asked_again_after_the_safety_question(
    first: str, welcome: list[str], then: list[str], flow: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        # The safety question still comes first (a shared device).
        await run_golden(person, [(first, welcome), ("1", then)])
        assert (await person.conversation()).flow == flow


async def test_who_they_said_first_is_remembered_through_not_right_now(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await run_golden(
            person,
            [
                ("my husband hits me", HEARD),
                ("not right now", ["welcome.not_safe"]),
                ("ok I can talk now", ["victim.signpost"]),
            ],
        )


async def test_yes_its_safe_with_who_they_are_goes_straight_to_their_journey(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await run_golden(
            person, [("hi", WELCOME), ("yes it's safe, my partner hits me", ["victim.signpost"])]
        )


@pytest.mark.parametrize("first", ["hi", "I need some advice", "my partner", "help me please"])
async def test_a_first_message_that_does_not_say_who_still_gets_the_question(
    first: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await person.says(first)
        assert await person.says("1") == ["welcome.who"]


async def test_menu_after_a_journey_asks_who_again_whatever_the_first_message_said(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await run_golden(
            person,
            [
                ("I shout at my wife", WELCOME),
                ("1", ["own.start", "own.about"]),
                ("menu", ["welcome.who"]),
            ],
        )


# -- 2. the victim journey offers choices and answers questions ---


async def test_victim_signpost_offers_an_adviser_the_start_or_done(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await run_golden(
            person, [("hi", WELCOME), ("1", ["welcome.who"]), ("3", ["victim.signpost"])]
        )
        content = app[CONTENT]
        assert person.last_options() == tuple(content.text(k, "en") for k in SIGNPOST_OPTIONS)


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("what about my kids", "victim.children"),
        ("I'm worried about the children", "victim.children"),
        ("beth am y plant", "victim.children"),
        ("I'm a man, who can I call?", "victim.men"),
        ("im male", "victim.men"),
        ("dwi'n ddyn", "victim.men"),
        ("ok", "victim.again"),
        ("my son's friend was there", "victim.again"),
        ("a man came to the door", "victim.again"),
    ],
)
async def test_victim_questions_about_children_or_men_get_the_right_services(
    text: str, reply: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await run_golden(
            person, [("hi", WELCOME), ("1", ["welcome.who"]), ("3", ["victim.signpost"])]
        )
        assert await person.says(text) == [reply]
        content = app[CONTENT]
        # Every answer keeps the choices; none asks the person anything.
        assert person.last_options() == tuple(content.text(k, "en") for k in SIGNPOST_OPTIONS)


async def test_victim_children_and_men_services_are_in_the_directory(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, _fake, _):
        content = app[CONTENT]
        for language in ("en", "cy"):
            children = content.text("victim.children", language)
            assert "0808 800 5000" in children and "0800 1111" in children
            men = content.text("victim.men", language)
            assert "0808 801 0327" in men and "999" in men
            for key in ("victim.children", "victim.men", "victim.end", "victim.again"):
                assert "?" not in content.text(key, language), key  # no questions of a victim


async def test_victim_can_talk_to_an_adviser(sqlite_url: str, tmp_path: Path) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await run_golden(
            person,
            [
                ("my husband hits me", HEARD),
                ("1", ["victim.signpost"]),
                ("what about my kids", ["victim.children"]),
                ("1", ["handoff.waiting"]),
            ],
        )
        conv = await person.conversation()
        assert (conv.flow, conv.owner) == ("victim", Owner.QUEUE)


async def test_victim_can_finish_or_go_back_to_the_start(sqlite_url: str, tmp_path: Path) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language="cy")
        await run_golden(
            person,
            [
                ("helo", WELCOME),
                ("1", ["welcome.who"]),
                ("3", ["victim.signpost"]),
                ("diolch", ["victim.end"]),
                ("fy mhlant", ["victim.children"]),
                ("2", ["welcome.who"]),
            ],
        )


# -- 3. self-descriptions at "why are you here" ---

WHO_TEXTS = [
    ("I'm a GP", "professional"),
    ("i am a gp", "professional"),
    ("how do I refer", "professional"),
    ("how do I refer someone", "professional"),
    ("I can't stop shouting at her", "own"),
    ("I cant stop shouting at him", "own"),
    ("everything we do is healthy, she just winds me up", "own"),
    # Near-variants that must keep their own meaning.
    ("my GP told me to get in touch", None),
    ("how do I refer myself", "own"),
    ("he can't stop shouting at me", None),
    ("he can't stop shouting at her", None),
    ("he hits me and says I wind him up", "victim"),
    ("my brother can't stop shouting at his wife", "family"),
    ("she winds him up", None),
]


@pytest.mark.parametrize(("text", "flow"), WHO_TEXTS)
async def test_who_is_writing_understands_common_self_descriptions(
    text: str, flow: str | None, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await person.says("hi")
        await person.says("1")
        got = await person.says(text)
        conv = await person.conversation()
        if flow is None:
            assert got == ["who.retry"], got
        else:
            assert conv.flow == flow, got


async def test_minimising_then_my_partner_is_understood_in_two_steps(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await run_golden(
            person,
            [
                ("hi", WELCOME),
                ("1", ["welcome.who"]),
                ("everything we do is healthy, she just winds me up", ["own.start", "own.about"]),
                ("my partner", ["own.children"]),
            ],
        )


# -- 4. a Welsh greeting first starts in Welsh ---


@pytest.mark.parametrize(
    "greeting",
    ["helo", "Shwmae!", "shw mae", "su'mae", "Bore da", "noswaith dda", "diolch", "prynhawn da"],
)
async def test_a_welsh_greeting_first_starts_the_conversation_in_welsh(
    greeting: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language="en")
        assert await person.says(greeting) == WELCOME
        content = app[CONTENT]
        assert fake.texts()[-1] == content.text("welcome.safe_now", "cy")
        assert (await person.conversation()).language == "cy"
        assert await person.says("1") == ["welcome.who"]
        assert fake.texts()[-1] == content.text("welcome.who", "cy")


@pytest.mark.parametrize(
    ("first", "said"),
    [
        ("Dw i eisiau lladd fy hun", "risk.suicide"),
        ("Mae ganddo fo gyllell ac mae o'n mynd i'w lladd hi", "risk.immediate"),
        ("Dw i angen help gyda sut dw i'n trin fy mhartner", "welcome.safe_now"),
        ("Mae gen i gyllell a dw i'n mynd i'w defnyddio hi.", "risk.immediate"),
        ("Dw i'n taro fy mhartner", "welcome.safe_now"),
    ],
)
async def test_a_first_message_in_welsh_is_answered_in_welsh_danger_too(
    first: str, said: str, sqlite_url: str, tmp_path: Path
) -> None:
    # A text or Telegram message in Welsh, on a number or app that starts in English: the
    # emergency guidance, said before any welcome could offer Welsh, came in English.
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language="en")
        await person.says(first)
        assert app[CONTENT].text(said, "cy") in fake.texts()
        assert (await person.conversation()).language == "cy"


@pytest.mark.parametrize(
    "greeting",
    [
        "hello",
        "hi",
        "hiya",
        "good morning",
        "helo my husband",
        "my ex Mae lives in the EU now",
        "I work at the chemical plant with Mae",
        "I do tai chi with my partner, dw hun",
        "I'm scared I'll kill her tonight, dw hun",
        "Hi, my cariad says I shout too much",
        "hi, my babi is 2 and I lose my temper",
    ],
)
async def test_an_english_or_mixed_first_message_keeps_english(
    greeting: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language="en")
        await person.says(greeting)
        assert (await person.conversation()).language == "en"


async def test_a_welsh_greeting_later_in_an_english_conversation_changes_nothing(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language="en")
        await run_golden(
            person,
            [("hello", WELCOME), ("1", ["welcome.who"]), ("3", ["victim.signpost"])],
        )
        assert await person.says("diolch") == ["victim.end"]
        assert (await person.conversation()).language == "en"


async def test_no_to_is_it_safe_means_not_right_now(sqlite_url: str, tmp_path: Path) -> None:
    # "no" was read by YAML as false, so it was never understood here.
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await run_golden(person, [("hi", WELCOME), ("no", ["welcome.not_safe"])])


async def test_a_welsh_greeting_typed_under_an_english_welcome_shows_it_in_welsh(
    sqlite_url: str, tmp_path: Path
) -> None:
    # The web chat shows the welcome when the page opens, before anything is typed.
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language="en")
        await engine_of(app).open(person.channel, person.address, language="en")
        assert await person.says("shwmae") == WELCOME
        content = app[CONTENT]
        assert fake.texts()[-1] == content.text("welcome.safe_now", "cy")
        assert (await person.conversation()).language == "cy"


@pytest.mark.parametrize(
    "first",
    [
        "helo, dw i'n poeni am sut dw i'n trin fy mhartner",
        "Dw i angen help, dw i wedi bod yn gas efo fy ngwraig",
    ],
)
async def test_welsh_words_typed_first_under_an_english_welcome_turn_it_welsh(
    first: str, sqlite_url: str, tmp_path: Path
) -> None:
    # A page opened in English shows the welcome before anything is typed: a person who then
    # writes in Welsh was answered in English, and "ydy" to the next question not understood.
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language="en")
        await engine_of(app).open(person.channel, person.address, language="en")
        said = await person.says(first)
        assert said[0] == "language.detected"
        content = app[CONTENT]
        texts = fake.texts()
        assert content.text("language.detected", "cy") in texts
        # how to go back to English is said in English too
        assert '"English"' in content.text("language.detected", "cy")
        assert texts[-1] == content.text(said[-1], "cy")
        assert (await person.conversation()).language == "cy"


@pytest.mark.parametrize(
    "first", ["Hi, my cariad says I shout too much", "hi, my babi is 2 and I lose my temper"]
)
async def test_english_with_welsh_words_of_wales_typed_under_an_english_welcome_stays_english(
    first: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language="en")
        await engine_of(app).open(person.channel, person.address, language="en")
        assert "language.detected" not in await person.says(first)
        assert (await person.conversation()).language == "en"


async def test_welsh_words_after_the_first_typed_message_change_nothing(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language="en")
        await engine_of(app).open(person.channel, person.address, language="en")
        await person.says("yes")
        await person.says("dw i'n poeni am sut dw i'n trin fy mhartner")
        assert (await person.conversation()).language == "en"


async def test_danger_typed_first_in_welsh_under_an_english_welcome_is_answered_in_welsh(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language="en")
        await engine_of(app).open(person.channel, person.address, language="en")
        said = await person.says("Dw i eisiau lladd fy hun heno")
        assert said[0] == "risk.suicide"  # the guidance first, nothing before it
        assert app[CONTENT].text("risk.suicide", "cy") in fake.texts()


@pytest.mark.parametrize(
    "text",
    [
        "dw i'n gweiddi ar cariad fi",
        "taro cariad fi",
        "nes i daro cariad fi neithiwr",
        "mae cariad fi'n crio",
        "gweiddi ar y babi",
    ],
)
def test_welsh_typed_as_people_text_it_is_read_as_welsh(text: str) -> None:
    # "cariad fi" is how many write it: moving "cariad" among the weak words lost these.
    assert Content.load().written_in_welsh(text)


@pytest.mark.parametrize(
    "text", ["Hi, my cariad says I shout too much", "hi, my babi is 2 and I lose my temper"]
)
def test_an_english_greeting_beside_a_welsh_word_of_wales_is_english(text: str) -> None:
    assert not Content.load().written_in_welsh(text)
