"""Waiting for an adviser, and leaving: "stop" withdraws a booked call-back; someone in the
queue is answered (help, a question with a set answer once a wait, an acknowledgement that an
adviser will read what they write) but never talked over once an adviser has joined; danger is
answered first; a blank message is asked again rather than taken as an answer."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import text

from helpline.app import CONTENT, ROUTING, STORE
from helpline.domain import InboundMessage, Owner
from helpline.engine import ACK_EVERY
from tests.console_support import PLUGINS, Console, add_staff, next_frame
from tests.journey_support import Person
from tests.support import OPEN_NOON, Clock, engine_of, running, settings_for

TYPED = "07700 900456"


async def _raw(app: web.Application, sql: str) -> list[tuple[Any, ...]]:
    async with app[STORE].engine.connect() as conn:
        return [tuple(row) for row in (await conn.execute(text(sql))).all()]


# -- stop withdraws a call-back ------------------------------------------------------------


async def test_stop_withdraws_a_booked_call_back_and_deletes_its_number(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = settings_for(sqlite_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True) as (app, fake, url):
        person = Person(app, fake)
        for said in ("hi", "1", "1", "1", "2", "2", "tuesday 6pm"):
            await person.says(said)
        assert await person.says(TYPED) == ["own.callback_done", "own.end"]
        await add_staff(app, "alice")
        async with Console(url) as alice:
            await alice.login("alice")
            [item] = (await alice.get("/console/api/callbacks"))[1]
            assert await person.says("stop") == ["stop.done"]
            assert (await alice.get("/console/api/callbacks"))[1] == []
            path = f"/console/api/callbacks/{item['id']}/number"
            assert (await alice.post(path))[0] == 404
        assert await _raw(app, "SELECT sealed_number, status FROM callbacks") == [
            (None, "withdrawn")
        ]


# -- a blank message ---------------------------------------------------------------------


async def test_a_blank_message_is_asked_again_not_taken_as_an_answer(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await person.says("hi")
        assert await person.says("1") == ["welcome.who"]
        assert await person.says("  \n ") == ["flow.empty", "welcome.who"]
        assert person.last_options() == fake.sent[-3].reply.options  # the same choices
        assert (await person.conversation()).state == "who"
        await person.says("1")
        assert (await person.conversation()).flow == "own"
        inbound = await _raw(app, "SELECT text FROM messages WHERE direction = 'in'")
        assert ("  \n ",) in inbound  # stored like any other message, never dropped


# -- while waiting in the queue ----------------------------------------------------------


async def _waiting(person: Person) -> None:
    for said in ("hi", "1", "1"):
        await person.says(said)
    await person.says("adviser")
    assert (await person.conversation()).owner is Owner.QUEUE


async def test_help_and_menu_while_waiting_say_what_can_be_done_while_waiting(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await _waiting(person)
        assert await person.says("help") == ["handoff.waiting_help"]
        assert await person.says("menu") == ["handoff.waiting_help"]
        assert (await person.conversation()).owner is Owner.QUEUE  # still in the queue
        person.language = "cy"
        assert await person.says("Cymraeg") == ["language.switched"]
        assert await person.says("dewislen") == ["handoff.waiting_help"]
        assert fake.sent[-1].reply.text == app[CONTENT].text("handoff.waiting_help", "cy")


async def test_other_messages_while_waiting_are_acknowledged_now_and_then_only(
    sqlite_url: str, tmp_path: Path
) -> None:
    clock = Clock(OPEN_NOON)
    async with running(settings_for(sqlite_url, tmp_path), clock=clock) as (app, fake, _):
        person = Person(app, fake)
        await _waiting(person)
        assert await person.says("ok he has gone") == ["handoff.waiting_ack"]
        assert await person.says("I just wanted to say that") == []
        clock.now += ACK_EVERY - timedelta(seconds=1)
        assert await person.says("are you there?") == []
        clock.now += timedelta(seconds=1)
        assert await person.says("hello?") == ["handoff.waiting_ack"]
        # Danger still comes first, and is not followed by the acknowledgement.
        clock.now += ACK_EVERY
        assert await person.says("he's back and he has a knife") == ["risk.immediate"]


async def test_nothing_is_said_over_an_adviser_once_they_have_joined(
    sqlite_url: str, tmp_path: Path
) -> None:
    clock = Clock(OPEN_NOON)
    async with running(settings_for(sqlite_url, tmp_path), clock=clock) as (app, fake, _):
        person = Person(app, fake)
        await _waiting(person)
        assert person.conversation_id is not None
        await app[ROUTING].claim(person.conversation_id, "alice", 3)
        clock.now += ACK_EVERY * 2
        assert await person.says("what now") == []
        assert await person.says("help") == []


async def test_danger_first_then_the_short_promise_then_the_queue_and_later_the_full_one(
    sqlite_url: str, tmp_path: Path
) -> None:
    clock = Clock(OPEN_NOON)
    async with running(settings_for(sqlite_url, tmp_path), clock=clock) as (app, fake, _):
        person = Person(app, fake, language="cy")
        assert await person.says("I want to kill myself") == [
            "risk.suicide",
            "welcome.anonymous_short",
            "handoff.waiting",
        ]
        assert await person.says("what now") == ["handoff.waiting_ack", "welcome.confidential"]
        assert fake.sent[-1].reply.text == app[CONTENT].text("welcome.confidential", "cy")
        clock.now += ACK_EVERY
        assert await person.says("still here") == ["handoff.waiting_ack"]  # said once


async def test_danger_as_a_first_message_on_sms_gets_the_same_order(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        assert await person.says("he's going to kill me, he's outside the door") == [
            "risk.immediate",
            "welcome.anonymous_short",
            "handoff.waiting",
        ]
        assert await person.says("help") == ["handoff.waiting_help", "welcome.confidential"]


# -- after leaving the queue -------------------------------------------------------------


async def test_position_after_cancelling_says_they_are_not_waiting(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await _waiting(person)
        said = await person.says("cancel")
        assert said[0] == "handoff.cancelled"
        where = await person.conversation()
        said = await person.says("position")
        assert said[0] == "handoff.not_waiting" and "who.retry" not in said
        after = await person.conversation()
        assert after.owner is Owner.BOT and (after.flow, after.state) == (where.flow, where.state)


async def test_cancel_goes_back_to_where_they_were_before_asking(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        for said in ("hi", "1", "1"):
            await person.says(said)
        before = await person.conversation()
        await person.says("adviser")
        said = await person.says("cancel")
        assert said[0] == "handoff.cancelled" and "welcome.who" not in said
        after = await person.conversation()
        assert (after.flow, after.state) == (before.flow, before.state)


# -- where two of these meet (a review of the day's changes) ------------------------------------


async def test_a_first_message_asking_how_long_is_greeted_like_any_other(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        said = await person.says("how long")
        assert "welcome.confidential" in said and said[-1] == "welcome.safe_now"
        assert "handoff.not_waiting" not in said
        assert await person.says("1") == ["welcome.who"]


async def test_a_blank_message_at_the_safety_question_asks_it_again(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await person.says("hello")
        assert await person.says("  ") == ["flow.empty", "welcome.safe_now"]


async def test_danger_after_stop_in_one_turn_does_not_say_goodbye_and_cancel_goes_on(
    sqlite_url: str, tmp_path: Path
) -> None:
    # "stop", then danger, sent quickly (one turn): the danger keeps them, so "we won't send
    # you any more messages" is not said, and leaving the queue does not go back to "stop".
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        for text in ("hello", "1", "1"):
            await person.says(text)
        engine = engine_of(app)
        before = len(fake.sent)
        for text in ("stop", "no wait, he's back and he has a knife"):
            accepted = await engine.accept(InboundMessage("test", person.address, text))
        await engine.process(accepted.conversation_id)
        said = [person.keys.key(m.reply.text) for m in fake.sent[before:]]
        assert "stop.done" not in said
        assert said[:2] == ["risk.immediate", "handoff.waiting"]
        assert await person.says("cancel") == ["handoff.cancelled", "welcome.who"]
        assert not (await person.conversation()).closed


# -- questions with a set answer, while waiting (content/guardrails.yaml) -------------------


@pytest.mark.parametrize(
    ("language", "text"), [("en", "is this confidential?"), ("cy", "ydy hyn yn gyfrinachol?")]
)
async def test_asking_if_this_is_confidential_while_waiting_is_answered_once_a_wait(
    language: str, text: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake, language=language)
        await _waiting(person)
        assert await person.says(text) == ["guardrail.confidential"]
        assert fake.sent[-1].reply.text == app[CONTENT].text("guardrail.confidential", language)
        # Asked again in the same wait: not said again, only (now and then) that the adviser
        # will read it.
        assert await person.says(text) == ["handoff.waiting_ack"]
        assert await person.says(text) == []
        assert (await person.conversation()).owner is Owner.QUEUE
        # Left the queue and back: a new wait, in which it is answered again.
        assert (await person.says("cancel"))[0] == "handoff.cancelled"
        await person.says("adviser")
        assert await person.says(text) == ["guardrail.confidential"]


async def test_other_questions_with_a_set_answer_are_answered_while_waiting(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await _waiting(person)
        assert await person.says("will you call the police on me?") == ["guardrail.confidential"]
        # The same answer, asked another way: said once a wait.
        assert await person.says("is this confidential") == ["handoff.waiting_ack"]
        # Words that fit someone already waiting: not "type adviser", not "I'm here".
        assert await person.says("are you a real person?") == ["guardrail.bot_waiting"]
        assert await person.says("has my wife been in touch with you") == [
            "guardrail.contact_waiting"
        ]
        assert await person.says("where does she live now") == ["guardrail.whereabouts"]
        # A request to find someone is flagged for the advisers, as in a journey.
        transcript = [m.text for m in await app[STORE].transcript(person.conversation_id or "")]
        flagged = app[CONTENT].text("note.flagged", "en", reason="guardrail:whereabouts")
        assert flagged in transcript


async def test_a_request_asked_again_while_waiting_is_flagged_to_advisers_once_a_wait(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        fake,
        url,
    ):
        person = Person(app, fake)
        await _waiting(person)
        conv_id = person.conversation_id
        assert conv_id is not None
        assert await person.says("where does she live now") == ["guardrail.whereabouts"]
        # Asked again, and another way: the same request, already flagged this wait.
        for said in ("where does she live now", "where is my wife"):
            await person.says(said)
        # Another request is flagged in its own right.
        assert await person.says("has my wife been in touch with you") == [
            "guardrail.contact_waiting"
        ]
        await add_staff(app, "alice")
        async with Console(url) as alice:
            await alice.login("alice")

            async def shown() -> tuple[list[str], list[str]]:
                view = (await alice.get(f"/console/api/conversations/{conv_id}"))[1]
                notes = [m["text"] for m in view["messages"] if m["direction"] == "note"]
                said = [m["text"] for m in view["messages"] if m["author"] == "person"]
                return notes, said

            def flagged(rail: str) -> str:
                return app[CONTENT].text("note.flagged", "en", reason=f"guardrail:{rail}")

            notes, said = await shown()
            assert notes.count(flagged("whereabouts")) == 1
            assert notes.count(flagged("contact")) == 1
            # Every message still reaches the adviser, the repeats included.
            assert said.count("where does she live now") == 2 and "where is my wife" in said
            # Handed back to the queue: a new wait, in which it is flagged again, once.
            await app[ROUTING].claim(conv_id, "alice", 3)
            await app[ROUTING].release(conv_id, "alice")
            for said_again in ("where does she live now", "where is my wife"):
                await person.says(said_again)
            notes, _ = await shown()
            assert notes.count(flagged("whereabouts")) == 2


async def test_the_answer_while_waiting_pays_the_owed_statement_and_never_repeats_it(
    sqlite_url: str, tmp_path: Path
) -> None:
    clock = Clock(OPEN_NOON)
    async with running(settings_for(sqlite_url, tmp_path), clock=clock) as (app, fake, _):
        # Danger first: only the short promise, the full statement owed while they wait.
        person = Person(app, fake, address="+447700900111")
        assert await person.says("I want to kill myself") == [
            "risk.suicide",
            "welcome.anonymous_short",
            "handoff.waiting",
        ]
        # The answer has every fact of the statement: it is said once, not both.
        assert await person.says("will you tell the police?") == ["guardrail.confidential"]
        assert await person.says("what now") == ["handoff.waiting_ack"]
        # Another set answer leaves the statement owed: said after it.
        other = Person(app, fake, address="+447700900222")
        await other.says("I want to kill myself")
        assert await other.says("where does she live now") == [
            "guardrail.whereabouts",
            "welcome.confidential",
        ]
        # Two messages answered together: the statement, then the question it just answered.
        third = Person(app, fake, address="+447700900333")
        await third.says("I want to kill myself")
        engine = engine_of(app)
        before = len(fake.sent)
        for said in ("what now", "is this confidential?"):
            accepted = await engine.accept(InboundMessage("test", third.address, said))
        await engine.process(accepted.conversation_id)
        said = [third.keys.key(m.reply.text) for m in fake.sent[before:]]
        assert said == ["handoff.waiting_ack", "welcome.confidential"]


async def test_nothing_is_said_over_an_adviser_even_to_a_question_with_a_set_answer(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await _waiting(person)
        assert person.conversation_id is not None
        await app[ROUTING].claim(person.conversation_id, "alice", 3)
        assert await person.says("is this confidential?") == []
        assert await person.says("will you call the police on me") == []
        assert await person.says("are you a robot?") == []
        # Released to the queue: a new wait, in which the question is answered again.
        await app[ROUTING].release(person.conversation_id, "alice")
        assert await person.says("is this confidential?") == ["guardrail.confidential"]


@pytest.mark.parametrize("hands_back", ["release", "transfer"])
async def test_a_set_answer_is_given_again_after_an_adviser_hands_back_before_they_write(
    hands_back: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await _waiting(person)
        assert await person.says("is this confidential?") == ["guardrail.confidential"]
        conv_id = person.conversation_id
        assert conv_id is not None
        # An adviser joins, then hands them back to a queue before they have written again.
        await app[ROUTING].claim(conv_id, "alice", 3)
        if hands_back == "release":
            await app[ROUTING].release(conv_id, "alice")
        else:
            await app[ROUTING].transfer(conv_id, "alice", "family", "")
        assert (await person.conversation()).owner is Owner.QUEUE
        # A new wait: the question is answered again, not only "an adviser will read this".
        assert await person.says("is this confidential?") == ["guardrail.confidential"]


async def test_danger_while_waiting_gets_the_guidance_not_a_set_answer(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        person = Person(app, fake)
        await _waiting(person)
        danger = "will you call the police? he has a knife and says he will kill me"
        assert await person.says(danger) == ["risk.immediate"]
        # Not used up by the danger: asked on its own, it is answered.
        assert await person.says("will you call the police on me?") == ["guardrail.confidential"]
        said = await person.says("is this confidential? I want to kill myself")
        assert said == ["risk.suicide"]


async def test_a_question_answered_while_waiting_still_reaches_the_advisers(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        fake,
        url,
    ):
        person = Person(app, fake)
        await _waiting(person)
        conv_id = person.conversation_id
        assert conv_id is not None
        await add_staff(app, "alice")
        async with Console(url) as alice:
            await alice.login("alice")
            ws = await alice.socket()
            await ws.send_json({"type": "watch", "conversation": conv_id})
            await next_frame(ws, lambda f: f["type"] == "watching")
            assert await person.says("will you tell the police?") == ["guardrail.confidential"]
            heard = await next_frame(
                ws, lambda f: f["type"] == "message" and f.get("author") == "person"
            )
            assert heard["text"] == "will you tell the police?"
            assert heard["conversation"] == conv_id
            await ws.close()
            assert (await alice.post(f"/console/api/conversations/{conv_id}/claim"))[0] == 200
        transcript = [m.text for m in await app[STORE].transcript(conv_id)]
        answer = app[CONTENT].text("guardrail.confidential", "en")
        asked = transcript.index("will you tell the police?")
        assert transcript[asked + 1] == answer  # kept for the adviser, with what was said
