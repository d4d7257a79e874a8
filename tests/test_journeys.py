"""Every journey end to end through the real engine, in English and Welsh: golden scripts
(what a person types -> which messages they get back, and where they end up), interruptions
by risk and by the commands, guardrail refusals from any state, and free-text understanding."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpline.app import CONTENT, STORE
from helpline.domain import Owner
from tests.journey_support import Person, content_copy, run_golden, with_test_programme
from tests.support import running, settings_for

WELCOME = ["welcome.intro", "welcome.confidential", "welcome.practical", "welcome.safe_now"]
Script = list[tuple[str, list[str]]]

# -- golden scripts: (input, reply keys) in order, and the final flow and state ---

GOLDEN: dict[str, tuple[str, Script, tuple[str, str, Owner]]] = {
    "own behaviour, things to do today": (
        "en",
        [
            ("hello", WELCOME),
            ("1", ["welcome.who"]),
            ("I think I'm controlling", ["own.start", "own.about"]),
            ("my partner", ["own.children"]),
            ("yes", ["own.children_note", "own.want"]),
            ("4", ["own.today", "own.more"]),
            ("that's all", ["own.end"]),
        ],
        ("own", "end", Owner.BOT),
    ),
    "own behaviour, in Welsh": (
        "cy",
        [
            ("helo", WELCOME),
            ("ydy", ["welcome.who"]),
            ("dwi'n gweiddi ar fy mhartner", ["own.start", "own.about"]),
            ("cyn-bartner", ["own.children"]),
            ("nac oes", ["own.want"]),
            ("heddiw", ["own.today", "own.more"]),
            ("3", ["own.end"]),
        ],
        ("own", "end", Owner.BOT),
    ),
    "own behaviour, an adviser": (
        "en",
        [
            ("hi", WELCOME),
            ("yes it's safe", ["welcome.who"]),
            ("1", ["own.start", "own.about"]),
            ("I'd rather not say", ["own.children"]),
            ("skip", ["own.want"]),
            ("1", ["handoff.waiting"]),
        ],
        ("own", "adviser", Owner.QUEUE),
    ),
    "own behaviour, a call back": (
        "en",
        [
            ("hi", WELCOME),
            ("1", ["welcome.who"]),
            ("1", ["own.start", "own.about"]),
            ("1", ["own.children"]),
            ("2", ["own.want"]),
            ("call me back", ["own.callback_when"]),
            ("weekday mornings before 9", ["own.callback_number"]),
            ("12345", ["own.callback_number_retry"]),
            ("07700 900123", ["own.callback_done", "own.end"]),
        ],
        ("own", "callback_done", Owner.BOT),
    ),
    "friends and family": (
        "en",
        [
            ("hello", WELCOME),
            ("1", ["welcome.who"]),
            ("my brother is horrible to his wife", ["family.start"]),
            ("1", ["family.abuser", "family.more"]),
            ("2", ["family.victim", "family.more"]),
            ("3", ["family.services", "family.more"]),
            ("5", ["family.end"]),
        ],
        ("family", "end", Owner.BOT),
    ),
    "friends and family, in Welsh, to an adviser": (
        "cy",
        [
            ("helo", WELCOME),
            ("1", ["welcome.who"]),
            ("2", ["family.start"]),
            ("2", ["family.victim", "family.more"]),
            ("cynghorydd", ["handoff.waiting"]),
        ],
        ("family", "victim", Owner.QUEUE),
    ),
    "being hurt": (
        "en",
        [
            ("hello", WELCOME),
            ("1", ["welcome.who"]),
            ("my husband puts me down and controls me", ["victim.signpost"]),
            ("what about my kids", ["victim.children"]),
            ("ok", ["victim.again"]),
            ("thank you", ["victim.end"]),
        ],
        ("victim", "end", Owner.BOT),
    ),
    "being hurt, in Welsh": (
        "cy",
        [
            ("helo", WELCOME),
            ("1", ["welcome.who"]),
            ("3", ["victim.signpost"]),
        ],
        ("victim", "signpost", Owner.BOT),
    ),
    "professional": (
        "en",
        [
            ("hello", WELCOME),
            ("1", ["welcome.who"]),
            ("I'm a social worker", ["professional.start"]),
            ("1", ["professional.referral", "professional.more"]),
            ("4", ["professional.services", "professional.more"]),
            ("5", ["professional.end"]),
        ],
        ("professional", "end", Owner.BOT),
    ),
    "professional, in Welsh, practitioner support": (
        "cy",
        [
            ("helo", WELCOME),
            ("1", ["welcome.who"]),
            ("4", ["professional.start"]),
            ("3", ["handoff.waiting"]),
        ],
        ("professional", "support", Owner.QUEUE),
    ),
    "not safe to talk now, then back later": (
        "en",
        [
            ("hello", WELCOME),
            ("not right now", ["welcome.not_safe"]),
            ("ok I can talk now", ["welcome.who"]),
        ],
        ("welcome", "who", Owner.BOT),
    ),
    "someone in danger now": (
        "en",
        [
            ("hello", WELCOME),
            ("3", ["risk.immediate", "handoff.waiting"]),
        ],
        ("welcome", "danger", Owner.QUEUE),
    ),
}


@pytest.mark.parametrize("name", list(GOLDEN))
async def test_journey_golden_script(name: str, sqlite_url: str, tmp_path: Path) -> None:
    language, script, (flow, state, owner) = GOLDEN[name]
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language=language)
        await run_golden(person, script)
        conv = await person.conversation()
        assert (conv.flow, conv.state, conv.owner) == (flow, state, owner)
        # Everything was said in the person's language.
        content = app[CONTENT]
        other = "en" if language == "cy" else "cy"
        welsh_or_english = {content.text(k, other) for k in content.messages}
        assert not [m for m in fake.texts() if m in welsh_or_english and m not in _both(app)]


def _both(app: object) -> set[str]:
    """Texts that are the same in both languages (brand names, numbers)."""
    content = app[CONTENT]  # type: ignore[index]
    return {v["en"] for v in content.messages.values() if v["en"] == v["cy"]}


async def test_a_whole_journey_works_on_postgresql_too(database_url: str, tmp_path: Path) -> None:
    language, script, (flow, state, owner) = GOLDEN["own behaviour, things to do today"]
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language=language)
        await run_golden(person, script)
        conv = await person.conversation()
        assert (conv.flow, conv.state) == (flow, state)


# -- who is writing: numbers, labels and free text ---

WHO_TEXTS = [
    ("I think I'm controlling", "own"),
    ("I'm worried about my own behaviour", "own"),
    ("i shout at my wife and I want to stop", "own"),
    ("my husband hits me", "victim"),
    ("my brother hits me", "victim"),
    ("I'm scared of my boyfriend", "victim"),
    ("my son is controlling his girlfriend", "family"),
    ("my friend's partner hits her", "family"),
    ("I'm a probation officer", "professional"),
    ("I want to refer a client", "professional"),
    ("4", "professional"),
    ("Mae rhywun yn fy mrifo i", "victim"),
    ("dwi'n poeni am fy ymddygiad", "own"),
]


ANSWERED_WITH_WHO = [
    ("my husband hits me", "victim"),
    ("he hit me last night and I'm scared", "victim"),
    ("my boyfriend controls me", "victim"),
    ("mae e'n fy nharo i", "victim"),
    ("I hit my wife and I need help", "own"),
]


@pytest.mark.parametrize(("text", "flow"), ANSWERED_WITH_WHO)
async def test_is_it_safe_answered_by_saying_who_they_are_is_taken_at_their_word(
    text: str, flow: str, sqlite_url: str, tmp_path: Path
) -> None:
    # A victim arriving by mistake must be signposted at once, not told "sorry, I didn't
    # catch that"; nor is anyone asked again, after "not right now", what they just said.
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        for address, not_now in (("+447700900111", False), ("+447700900222", True)):
            person = Person(app, fake, address=address)
            await person.says("hello")
            if not_now:
                assert await person.says("not right now") == ["welcome.not_safe"]
            await person.says(text)
            assert (await person.conversation()).flow == flow, (not_now, text)


@pytest.mark.parametrize(("text", "flow"), WHO_TEXTS)
async def test_who_is_writing_is_understood_from_free_text(
    text: str, flow: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await person.says("hello")
        await person.says("1")
        await person.says(text)
        assert (await person.conversation()).flow == flow


async def test_unclear_answers_are_asked_again_kindly_then_offered_a_person(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await run_golden(
            person,
            [
                ("hello", WELCOME),
                ("1", ["welcome.who"]),
                ("not sure really", ["who.retry"]),
                ("hmm", ["who.retry", "flow.offer_adviser"]),
                ("1", ["own.start", "own.about"]),
            ],
        )
        content = app[CONTENT]
        assert person.last_options() == tuple(
            content.text(k, "en")
            for k in ("own.opt_partner", "own.opt_ex", "own.opt_family", "flow.opt_skip")
        )


async def test_options_are_numbered_quick_replies_in_the_persons_language(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language="cy")
        await person.says("helo")
        content = app[CONTENT]
        assert person.last_options() == tuple(
            content.text(k, "cy")
            for k in ("welcome.opt_safe", "welcome.opt_not_now", "welcome.opt_danger")
        )


# -- commands at any point ---


async def test_help_then_carry_on_returns_to_the_same_question(
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
                ("help", ["help.show"]),
                ("1", ["own.children"]),
                ("no", ["own.want"]),
            ],
        )


async def test_help_then_carry_on_at_the_welcome_asks_its_question_only(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Carrying on from help at the welcome said all three introductions again, and the "1"
    # that left help was read as a first message.
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await run_golden(
            person,
            [
                ("hello", WELCOME),
                ("help", ["help.show"]),
                ("1", ["welcome.safe_now"]),
            ],
        )
        assert fake.sent[-1].reply.options, "the question comes with its options again"
        assert await person.says("1") == ["welcome.who"]


async def test_menu_starts_again_and_language_switches_mid_journey(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await run_golden(
            person,
            [
                ("hello", WELCOME),
                ("1", ["welcome.who"]),
                ("2", ["family.start"]),
                ("Cymraeg", ["language.switched", "family.start"]),
                ("dewislen", ["welcome.who"]),
                ("English", ["language.switched", "welcome.who"]),
            ],
        )
        content = app[CONTENT]
        assert fake.texts()[-5] == content.text("language.switched", "cy")
        assert fake.texts()[-1] == content.text("welcome.who", "en")


async def test_stop_ends_the_conversation_and_writing_again_starts_afresh(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await run_golden(
            person,
            [("hello", WELCOME), ("1", ["welcome.who"]), ("1", ["own.start", "own.about"])],
        )
        assert await person.says("stop") == ["stop.done"]
        conv = await person.conversation()
        assert (conv.flow, conv.closed) == ("stop", True)
        assert (await person.says("hello again"))[:1] == ["welcome.intro"]


async def test_delete_my_data_asks_first_and_no_keeps_going(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await run_golden(
            person,
            [
                ("hello", WELCOME),
                ("1", ["welcome.who"]),
                ("2", ["family.start"]),
                ("delete my data", ["erase.confirm"]),
                ("no", ["family.start"]),
                ("delete my data", ["erase.confirm"]),
                ("yes", ["erase.done"]),
            ],
        )


async def test_the_adviser_command_from_family_reaches_the_family_queue(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await person.says("hello")
        await person.says("1")
        await person.says("someone I know is behaving abusively")
        assert await person.says("talk to someone") == ["handoff.waiting"]
        conv = await person.conversation()
        assert (conv.owner, conv.answers["queue"]) == (Owner.QUEUE, "family")


# -- risk interrupts any journey ---


async def test_a_suicide_risk_interrupts_a_journey_with_help_and_a_person(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await person.says("hello")
        await person.says("1")
        await person.says("1")
        assert await person.says("I want to kill myself") == ["risk.suicide", "handoff.waiting"]
        conv = await person.conversation()
        assert conv.owner is Owner.QUEUE
        assert conv.risk_level == "suicide"


async def test_immediate_danger_in_welsh_interrupts_with_999_in_welsh(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language="cy")
        await person.says("helo")
        await person.says("ydy")
        keys = await person.says("mae e'n fy nhagu i nawr")
        assert keys[0] == "risk.immediate"
        assert fake.texts()[len(fake.texts()) - len(keys)] == app[CONTENT].text(
            "risk.immediate", "cy"
        )


# -- guardrails from any state ---

GUARDED = [
    ("where is my partner staying", "guardrail.whereabouts"),
    ("where does she live now", "guardrail.whereabouts"),
    ("Where does my ex work these days?", "guardrail.whereabouts"),
    ("whereabouts does she live now", "guardrail.whereabouts"),
    ("where is she working", "guardrail.whereabouts"),
    ("what did she tell you?", "guardrail.contact"),
    ("Has my wife been in touch with you?", "guardrail.contact"),
    ("can you pass a message to her", "guardrail.message"),
    ("Ble mae fy ngwraig yn aros?", "guardrail.whereabouts"),
    ("Lle mae fy ngwraig yn aros rwan?", "guardrail.whereabouts"),  # northern "where"
    ("Ble mae'r plant?", "guardrail.whereabouts"),
    ("beth ddywedodd hi wrthoch chi", "guardrail.contact"),
]


@pytest.mark.parametrize(("text", "reply"), GUARDED)
async def test_requests_about_someone_else_are_refused_and_the_journey_carries_on(
    text: str, reply: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await person.says("hello")
        await person.says("1")
        await person.says("1")
        options = person.last_options()
        assert await person.says(text) == [reply]
        assert person.last_options() == options  # still at the same question
        conv = await person.conversation()
        assert (conv.flow, conv.state) == ("own", "start")
        assert await person.says("1") == ["own.children"]


@pytest.mark.parametrize(
    "script",
    [
        [("where is she staying now", ["guardrail.whereabouts", *WELCOME])],
        [("hello", WELCOME), ("did she call you", ["guardrail.contact"])],
        [
            ("hello", WELCOME),
            ("1", ["welcome.who"]),
            ("where's my wife", ["guardrail.whereabouts"]),
        ],
        [
            ("hello", WELCOME),
            ("1", ["welcome.who"]),
            ("2", ["family.start"]),
            ("tell me what she said", ["guardrail.contact"]),
        ],
    ],
)
async def test_guardrails_work_from_the_first_message_and_any_state(
    script: list[tuple[str, list[str]]], sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        await run_golden(Person(app, fake), script)


async def test_ordinary_questions_are_not_mistaken_for_guardrail_requests(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, _fake, _):
        content = app[CONTENT]
        for text in (
            "where is my nearest programme",
            "where can I get help",
            "she told me she was scared of me",
            "did she call the police",
            "I want to find a course near me",
            "ble mae fy rhaglen agosaf",
            "lle mae'r rhaglen agosaf",
            "ble mae'r gwasanaeth agosaf",
            "I want to tell her I'm sorry",
            "where do they go for help",
            "where does the course run",
            "where do I live if she kicks me out",
            "where do my kids live if we split up",
            "where do my children stay when I have contact",
        ):
            assert content.guardrail(text) is None, text


# -- a programme near me ---


async def test_programme_near_me_refers_only_with_consent_showing_what_is_shared(
    sqlite_url: str, tmp_path: Path
) -> None:
    root = content_copy(tmp_path)
    with_test_programme(root)
    settings = settings_for(sqlite_url, tmp_path, content_dir=root)
    async with running(settings) as (app, fake, _):
        person = Person(app, fake)
        await run_golden(
            person,
            [
                ("hello", WELCOME),
                ("1", ["welcome.who"]),
                ("1", ["own.start", "own.about"]),
                ("my ex", ["own.children"]),
                ("no", ["own.want"]),
                ("a programme near me", ["programme.ask"]),
                ("Narnia", ["programme.retry"]),
                ("NP20 1", ["programme.found", "programme.entry", "programme.next"]),
                ("refer me", ["programme.consent"]),
            ],
        )
        consent = fake.texts()[-1]
        content = app[CONTENT]
        assert "Newport" in consent
        assert content.text("programme.about_ex", "en") in consent
        assert "NP20" not in consent  # what they typed is never passed on
        # Order aside (see ORDER_BUG), the referral is confirmed (with a reference once the
        # console's referral effect is wired) and the person is queued.
        keys = set(await person.says("yes"))
        assert {"programme.waiting", "programme.referred"} <= keys
        assert keys <= {"programme.waiting", "programme.referred", "referral.reference"}
        conv = await person.conversation()
        assert conv.owner is Owner.QUEUE
        assert conv.answers["queue"] == "programme:gwent-community-programme"
        assert "NP20 1" not in str(conv.answers)
        # Nor is it kept in the transcript that advisers read: the area found is enough.
        transcript = [m.text for m in await app[STORE].transcript(conv.id)]
        assert "…" in transcript and "Narnia" in transcript
        assert not [text for text in transcript if "NP20" in text]


async def test_a_place_given_with_danger_at_the_area_question_is_kept_for_the_adviser(
    sqlite_url: str, tmp_path: Path
) -> None:
    # A postcode is left out of what is kept, but not from words about danger: whoever
    # decides on calling 999 may need to know where.
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        for text in ("hello", "1", "1", "my ex", "no", "a programme near me"):
            await person.says(text)
        await person.says("he has a knife and is hurting her now at CF10 3AT flat 2")
        conv = await person.conversation()
        assert conv.risk_level == "immediate"
        transcript = [m.text for m in await app[STORE].transcript(conv.id)]
        assert "he has a knife and is hurting her now at CF10 3AT flat 2" in transcript


async def test_programme_details_say_the_partner_will_usually_be_contacted(
    sqlite_url: str, tmp_path: Path
) -> None:
    root = content_copy(tmp_path)
    programme = with_test_programme(root)
    settings = settings_for(sqlite_url, tmp_path, content_dir=root)
    async with running(settings) as (app, fake, _):
        person = Person(app, fake, language="cy")
        for text in ("helo", "1", "1", "1", "nac oes", "3"):
            await person.says(text)
        assert await person.says("Casnewydd") == [
            "programme.found",
            "programme.entry",
            "programme.next",
        ]
        details = fake.texts()[-2]
        assert programme["partner_contact_note"]["cy"] in details
        assert programme["name"]["cy"] in details
        assert "01632 960000" in details
        assert await person.says("na") != []  # "no" is not an option here: asked again
        assert await person.says("2") == ["handoff.waiting"]


async def test_declining_a_referral_shares_nothing(sqlite_url: str, tmp_path: Path) -> None:
    root = content_copy(tmp_path)
    with_test_programme(root)
    settings = settings_for(sqlite_url, tmp_path, content_dir=root)
    async with running(settings) as (app, fake, _):
        person = Person(app, fake)
        for text in ("hello", "1", "1", "1", "no", "3", "Gwent"):
            await person.says(text)
        assert await person.says("1") == ["programme.consent"]
        assert await person.says("no") == ["programme.declined"]
        assert await person.says("2") == ["programme.end"]
        conv = await person.conversation()
        assert conv.owner is Owner.BOT
        assert "programme" in conv.answers  # chosen, but nothing handed over


async def test_drive_is_never_offered_to_someone_referring_themselves(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        for text in ("hello", "1", "1", "1", "no", "3"):
            await person.says(text)
        assert await person.says("Cardiff") == ["programme.none"]
        assert "Drive" not in " ".join(fake.texts())


async def test_a_professional_sees_how_drive_works_but_cannot_refer_through_us(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        for text in ("hello", "1", "4", "2"):
            await person.says(text)
        assert await person.says("cardif") == [
            "professional.area_none",
            "professional.area_referral_only",
            "professional.area_line",
            "professional.more",
        ]
        assert "MARAC" in fake.texts()[-3]
        content = app[CONTENT]
        assert content.text("programme.opt_refer", "en") not in person.last_options()
