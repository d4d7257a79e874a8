"""A child at risk, said to the bot: interrupted as danger is, with the guidance for a child
and an adviser, even when it was in the past (the screen's "concern")."""

from __future__ import annotations

from pathlib import Path

from helpline.app import CONTENT, ROUTING
from helpline.domain import Owner
from tests.journey_support import Person
from tests.support import running, settings_for

OWN_JOURNEY = ("hello", "1", "1")  # safe to talk; my own behaviour


async def _in_own_journey(person: Person) -> None:
    for text in OWN_JOURNEY:
        await person.says(text)
    assert (await person.conversation()).flow == "own"


async def test_a_child_hurt_gets_the_guidance_for_a_child_and_an_adviser_first(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        earlier = Person(app, fake, address="+447700900301")
        for text in ("hello", "1", "adviser"):
            await earlier.says(text)
        person = Person(app, fake, address="+447700900302")
        await _in_own_journey(person)
        said = await person.says("I hit my son last night and he has bruises")
        assert said == ["risk.child", "handoff.waiting"]
        conv = await person.conversation()
        assert conv.owner is Owner.QUEUE
        assert conv.risk_level == "concern"
        # Ahead of someone who asked earlier with nothing said of risk.
        waiting, _ = await app[ROUTING].queue.board()
        assert [e.conversation_id for e in waiting][:2] == [
            person.conversation_id,
            earlier.conversation_id,
        ]
        # Said once: what follows while waiting is not met with the same words again.
        assert "risk.child" not in await person.says("i hurt my kid, i know it was wrong")


async def test_a_first_message_about_a_child_hurt_is_answered_in_welsh_too(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language="cy")
        said = await person.says("wnes i daro fy mab neithiwr")
        assert said[0] == "risk.child"
        assert "handoff.waiting" in said
        assert app[CONTENT].text("risk.child", "cy") in fake.texts()
        assert (await person.conversation()).owner is Owner.QUEUE


async def test_an_ordinary_mention_of_children_does_not_interrupt(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await _in_own_journey(person)
        said = await person.says("my son is 6 and he plays football")
        assert "risk.child" not in said
        assert (await person.conversation()).owner is Owner.BOT


async def test_the_guidance_for_a_child_is_never_held_for_quiet_hours(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Answered late (a backlog, a retry: more than a few minutes after they wrote), inside
    # the person's quiet hours: "if a child is in danger right now, call 999" still goes.
    from datetime import timedelta

    from helpline.app import STORE
    from helpline.domain import Delivery, InboundMessage
    from tests.support import OPEN_NOON, Clock, engine_of

    clock = Clock(OPEN_NOON)
    async with running(settings_for(sqlite_url, tmp_path), clock=clock) as (app, fake, _):
        person = Person(app, fake)
        await _in_own_journey(person)
        conv = await person.conversation()
        await app[STORE].update_contact_settings(
            conv.contact_key, quiet_hours={"start": "11:00", "end": "13:00"}
        )
        engine = engine_of(app)
        text = "I hit my son last night and he has bruises"
        accepted = await engine.accept(
            InboundMessage("test", person.address, text, received_at=clock.now)
        )
        clock.now += timedelta(minutes=10)  # still inside 11:00-13:00
        before = len(fake.sent)
        await engine.process(accepted.conversation_id)
        sent = [person.keys.key(m.reply.text) for m in fake.sent[before:]]
        assert sent[0] == "risk.child"
        held = await app[STORE].undelivered([Delivery.HELD])
        assert app[CONTENT].text("risk.child", "en") not in [m.text for m in held]


async def test_someone_supporting_a_young_person_who_is_hurt_is_given_childline(
    sqlite_url: str, tmp_path: Path
) -> None:
    # A parent whose 15-year-old is hit by her boyfriend was told only of adult helplines.
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        for n, (language, greeting) in enumerate((("en", "hello"), ("cy", "helo"))):
            person = Person(app, fake, language=language, address=f"+44770090031{n}")
            for text in (greeting, "1", "2"):  # safe to talk; someone I know
                await person.says(text)
            assert await person.says("2") == ["family.victim", "family.more"]  # being hurt
            told = fake.texts()[-2]
            assert "Childline" in told and "0800 1111" in told and "0808 800 5000" in told


async def test_a_young_person_hit_at_home_is_given_childline_with_the_victim_services(
    sqlite_url: str, tmp_path: Path
) -> None:
    # "My dad keeps hitting me" was sent to the friends-and-family journey; signposted as a
    # victim now, the services named were all for adults.
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        for n, (language, greeting, said) in enumerate(
            (("en", "hello", "my dad keeps hitting me"), ("cy", "helo", "mae fy nhad yn fy mwrw i"))
        ):
            person = Person(app, fake, language=language, address=f"+44770090032{n}")
            for text in (greeting, "1"):  # safe to talk
                await person.says(text)
            assert await person.says(said) == ["victim.signpost"]
            told = fake.texts()[-1]
            assert "Childline" in told and "0800 1111" in told
