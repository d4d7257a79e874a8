"""The console's live socket when what feeds it fails: it is closed so the page reconnects,
never left open and silently stale (or still streaming after access could not be checked);
and what it streams when events could have been missed: the transcript, whole, again."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSCloseCode, web
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from handoff import live, referrals, safeguarding
from helpline.app import HUB, ROUTING, STORE, purge
from helpline.domain import InboundMessage
from helpline.errors import QueueError
from helpline.ports import QueueEntry, RoutingQueue
from tests.console_support import (
    PLUGINS,
    Console,
    add_staff,
    close_code,
    console_service,
    next_frame,
    person_asks_for_adviser,
    waiting_refs,
)
from tests.journey_support import Person
from tests.support import Clock, engine_of, hub_link, running, settings_for
from tests.test_callbacks import TYPED, _to_number_question

PHONE = "+447700900123"


class QueueThatFailsOnce:
    """The app's real queue, except that once armed its next read of the whole queue (the
    console's snapshot) fails as a queue that lost Redis does (RedisQueue turns that into a
    QueueError)."""

    def __init__(self, queue: RoutingQueue) -> None:
        self.queue = queue
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.queue, name)

    async def board(self) -> tuple[list[QueueEntry], list[tuple[QueueEntry, str]]]:
        if self.armed:
            self.armed = False
            raise QueueError("the routing queue is unavailable")
        return await self.queue.board()


@contextlib.asynccontextmanager
async def watching(
    database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[web.Application, Console, aiohttp.ClientWebSocketResponse]]:
    """The service running, alice logged in to its console, her live socket showing the
    (empty) queue."""
    async with running(settings_for(database_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        _fake,
        url,
    ):
        await add_staff(app, "alice")
        async with Console(url) as alice:
            await alice.login("alice")
            ws = await alice.socket()
            await next_frame(ws, lambda f: f["type"] == "queue")
            yield app, alice, ws


class StoreThatFailsOnce:
    """Once armed, the next read of the waiting conversations (the console's snapshot)
    fails as a database error does."""

    def __init__(self, store: Any) -> None:
        self.read = store.conversations
        self.armed = False

    async def conversations(self, ids: Any) -> Any:
        if self.armed:
            self.armed = False
            raise OperationalError("SELECT conversations", {}, Exception("database is locked"))
        return await self.read(ids)


@pytest.mark.parametrize("failing", ["queue", "database"])
async def test_a_queue_view_that_fails_once_reconnects_and_shows_the_person_waiting(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    async with watching(sqlite_url, tmp_path) as (app, alice, ws):
        broken: QueueThatFailsOnce | StoreThatFailsOnce
        if failing == "queue":
            broken = QueueThatFailsOnce(app[ROUTING].queue)
            app[ROUTING].queue = broken
        else:
            broken = StoreThatFailsOnce(app[STORE])
            monkeypatch.setattr(app[STORE], "conversations", broken.conversations)
        broken.armed = True
        conv_id = await person_asks_for_adviser(app, PHONE)
        # The snapshot for the new arrival fails: the page is told to come back rather
        # than being left showing a queue without them.
        assert await close_code(ws) == WSCloseCode.TRY_AGAIN_LATER
        assert not broken.armed, "the failure came from the snapshot"
        reference = (await app[STORE].conversation(conv_id)).reference
        ws = await alice.socket()
        frame = await next_frame(ws, lambda f: f["type"] == "queue")
        assert waiting_refs(frame) == [reference]
        await ws.close()


async def test_a_console_whose_session_cannot_be_checked_stops_streaming(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "RECHECK_SECONDS", 0.05)
    async with watching(database_url, tmp_path) as (app, _alice, ws):
        # A real database error on every re-check: the sessions table is not there.
        async with app[STORE].engine.begin() as conn:
            await conn.execute(text("ALTER TABLE console_sessions RENAME TO sessions_away"))
        try:
            # Whether the adviser may still see transcripts cannot be told: the socket
            # closes (and the page asks again on reconnecting).
            assert await close_code(ws) == WSCloseCode.TRY_AGAIN_LATER
        finally:
            async with app[STORE].engine.begin() as conn:
                await conn.execute(text("ALTER TABLE sessions_away RENAME TO console_sessions"))


async def test_logging_out_closes_the_live_console_at_once(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        _fake,
        url,
    ):
        await add_staff(app, "sam", "adviser")
        async with Console(url) as sam:
            await sam.login("sam")
            ws = await sam.socket()
            await next_frame(ws, lambda f: f["type"] == "queue")
            assert (await sam.post("/console/logout"))[0] == 200
            # Not a minute later, at the next check of the session: now.
            assert await close_code(ws, timeout=5) == live.UNAUTHORISED


async def test_danger_shows_on_the_console_with_its_risk_and_reasons(
    database_url: str, tmp_path: Path
) -> None:
    # The queue's event goes out while the turn is still running, before it saves the
    # risk it found: the adviser must not be left looking at "no risk" for someone in danger.
    async with watching(database_url, tmp_path) as (app, _alice, ws):
        engine = engine_of(app)
        await engine.handle(InboundMessage("test", PHONE, "hello"))
        accepted = await engine.handle(InboundMessage("test", PHONE, "he has a knife"))
        reference = (await app[STORE].conversation(accepted.conversation_id)).reference

        def shown_at_risk(frame: dict[str, Any]) -> bool:
            return frame["type"] == "queue" and any(
                i["reference"] == reference and i["risk"] == "immediate" and i["flags"]
                for i in frame["waiting"]
            )

        await next_frame(ws, shown_at_risk)
        await ws.close()


class QueueEventsLost:
    """The app's hub, except that events for the advisers' consoles are lost on the way."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub

    def __getattr__(self, name: str) -> Any:
        return getattr(self.hub, name)

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        if topic == "queue":
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        await self.hub.publish(topic, event)


async def test_a_console_that_missed_an_event_shows_the_person_at_its_next_check(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "RECHECK_SECONDS", 0.05)
    async with watching(sqlite_url, tmp_path) as (app, _alice, ws):
        engine_of(app).hub = app[ROUTING].hub = QueueEventsLost(app[ROUTING].hub)
        conv_id = await person_asks_for_adviser(app, PHONE)
        reference = (await app[STORE].conversation(conv_id)).reference
        frame = await next_frame(
            ws, lambda f: f["type"] == "queue" and bool(waiting_refs(f)), timeout=5
        )
        assert waiting_refs(frame) == [reference]
        await ws.close()


def said(frames: list[dict[str, Any]], conv_id: str) -> list[str]:
    """What the console was sent of a conversation's transcript, live or whole."""
    texts: list[str] = []
    for f in frames:
        if f.get("conversation") != conv_id:
            continue
        if f["type"] == "message":
            texts.append(f["text"])
        elif f["type"] == "transcript":
            texts += [m["text"] for m in f["messages"]]
    return texts


async def test_a_watched_transcript_misses_nothing_said_before_the_watch_or_while_away(
    database_url: str, tmp_path: Path
) -> None:
    async with watching(database_url, tmp_path) as (app, alice, ws):
        engine = engine_of(app)
        conv_id = await person_asks_for_adviser(app, PHONE)
        status, view = await alice.post(f"/console/api/conversations/{conv_id}/claim")
        assert status == 200
        # Said after the console fetched the conversation, before it asked to watch it.
        await engine.handle(InboundMessage("test", PHONE, "said before the watch"))
        assert "said before the watch" not in [m["text"] for m in view["messages"]]
        await ws.send_json({"type": "watch", "conversation": conv_id})
        seen: list[dict[str, Any]] = []
        await next_frame(ws, lambda f: f["type"] == "watching", seen)
        assert "said before the watch" in said(seen, conv_id)

        # Said while the console's socket was down (a rolling restart): on reconnecting the
        # page watches again, and gets it.
        await ws.close()
        await engine.handle(InboundMessage("test", PHONE, "said while you were away"))
        ws = await alice.socket()
        await ws.send_json({"type": "watch", "conversation": conv_id})
        seen = []
        await next_frame(ws, lambda f: f["type"] == "watching", seen)
        assert "said while you were away" in said(seen, conv_id)
        # Still live after that.
        await engine.handle(InboundMessage("test", PHONE, "and now"))
        await next_frame(ws, lambda f: "and now" in said([f], conv_id))
        await ws.close()


@pytest.mark.redis
async def test_a_console_catches_up_on_what_was_said_while_live_events_were_cut_off(
    sqlite_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    # The instance's subscription to live events drops, and the person writes before it is
    # back: Redis passes their words (and the queue's wake-up) to no one. The adviser
    # watching must still see them, and the queue must be shown afresh, without a reload.
    settings = settings_for(sqlite_url, tmp_path, redis_url=redis_url, redis_prefix=redis_prefix)
    async with (
        running(settings, plugins=PLUGINS, serve=True) as (app, _fake, url),
        hub_link(redis_url, redis_prefix) as link,
        Console(url) as alice,
    ):
        await add_staff(app, "alice")
        await alice.login("alice")
        ws = await alice.socket()
        await next_frame(ws, lambda f: f["type"] == "queue")
        conv_id = await person_asks_for_adviser(app, PHONE)
        assert (await alice.post(f"/console/api/conversations/{conv_id}/claim"))[0] == 200
        await ws.send_json({"type": "watch", "conversation": conv_id})
        await next_frame(ws, lambda f: f["type"] == "watching")
        async with link.cut_off(app[HUB]):  # all this happens in the gap
            await engine_of(app).handle(InboundMessage("test", PHONE, "are you still there?"))
            newcomer = await person_asks_for_adviser(app, "+447700900456")
        reference = (await app[STORE].conversation(newcomer)).reference
        seen: list[dict[str, Any]] = []
        await next_frame(ws, lambda f: "are you still there?" in said(seen, conv_id), seen)
        if not any(reference in waiting_refs(f) for f in seen):
            await next_frame(ws, lambda f: reference in waiting_refs(f))
        await ws.close()


async def test_a_console_that_connects_is_sent_the_concerns_and_referrals_raised_before(
    database_url: str, tmp_path: Path
) -> None:
    # A console's page fetches its lists, then opens its socket: a concern raised between the
    # two (or while a dropped socket was away) must show once it is connected, not only at
    # the next concern, and without an alert for what is not new to this page.
    async with console_service(
        database_url, tmp_path, ("sam", "supervisor"), ("pat", "programme", "north")
    ) as (app, _fake, url):
        conv_id = await person_asks_for_adviser(app, PHONE)
        north = await person_asks_for_adviser(app, "+447700900456", queue="programme:north")
        async with Console(url) as sam, Console(url) as pat:
            await sam.login("sam")
            await pat.login("pat")
            assert (await sam.get("/console/api/safeguarding"))[1] == []
            assert (await pat.get("/console/api/referrals"))[1] == []
            concern = await safeguarding.raise_concern(
                app[STORE],
                app[HUB],
                conv_id,
                "alice",
                "A child is at home and was hurt last night.",
            )
            ours = await referrals.create_referral(app[STORE], north, "north", {"area": "Newport"})
            await referrals.create_referral(app[STORE], conv_id, "south", {"a": "b"})
            ws = await sam.socket()
            frame = await next_frame(ws, lambda f: f["type"] == "safeguarding", timeout=5)
            assert [c["id"] for c in frame["items"]] == [concern] and not frame["alert"]
            await ws.close()
            ws = await pat.socket()
            frame = await next_frame(ws, lambda f: f["type"] == "referrals", timeout=5)
            assert [r["reference"] for r in frame["items"]] == [ours]
            await ws.close()


async def test_erasure_and_retention_take_what_a_person_said_off_the_consoles_at_once(
    database_url: str, tmp_path: Path
) -> None:
    # A call-back's safe time to call is the person's own words: once they delete their data,
    # or retention deletes it, no console may go on showing it until someone reloads.
    clock = Clock()
    settings = settings_for(database_url, tmp_path)
    async with (
        running(settings, plugins=PLUGINS, serve=True, clock=clock) as (app, fake, url),
        Console(url) as sam,
    ):
        await add_staff(app, "sam", "supervisor")
        await sam.login("sam")
        ws = await sam.socket()
        await next_frame(ws, lambda f: f["type"] == "callbacks")
        for address in (PHONE, "+447700900456"):
            person = Person(app, fake, address=address)
            await _to_number_question(person)
            await person.says(TYPED)

        def windows(frame: dict[str, Any]) -> list[str]:
            return [item["window"] for item in frame["items"]]

        await next_frame(ws, lambda f: f["type"] == "callbacks" and len(f["items"]) == 2)
        await person.says("delete my data")
        await person.says("yes")
        frame = await next_frame(ws, lambda f: f["type"] == "callbacks", timeout=5)
        assert windows(frame) == ["weekday mornings before 9"]  # the other person's
        clock.now += timedelta(days=settings.retention_days + 1)
        await purge(app)
        frame = await next_frame(ws, lambda f: f["type"] == "callbacks", timeout=5)
        assert windows(frame) == []
        await ws.close()


async def test_watching_again_is_checked_again(database_url: str, tmp_path: Path) -> None:
    # A programme's staff watch a conversation; a supervisor passes it back to the helpline.
    # Opening it again on their page must be refused, not answered with its transcript.
    async with console_service(
        database_url, tmp_path, ("pat", "programme", "north"), ("sam", "supervisor")
    ) as (app, _fake, url):
        conv_id = await person_asks_for_adviser(app, PHONE, queue="programme:north")
        await referrals.create_referral(app[STORE], conv_id, "north", {})
        async with Console(url) as pat, Console(url) as sam:
            await pat.login("pat")
            await sam.login("sam")
            base = f"/console/api/conversations/{conv_id}"
            assert (await pat.post(base + "/claim"))[0] == 200
            ws = await pat.socket()
            await ws.send_json({"type": "watch", "conversation": conv_id})
            await next_frame(ws, lambda f: f["type"] == "watching")
            # The queue's events are lost on the way: no snapshot drops the watch first.
            engine_of(app).hub = app[ROUTING].hub = QueueEventsLost(app[ROUTING].hub)
            assert (await sam.post(base + "/transfer", {"queue": "helpline"}))[0] == 200
            await engine_of(app).handle(InboundMessage("test", PHONE, "for the helpline only"))
            await ws.send_json({"type": "watch", "conversation": conv_id})
            seen: list[dict[str, Any]] = []
            await next_frame(ws, lambda f: f["type"] == "refused", seen)
            assert "for the helpline only" not in said(seen, conv_id)
            await ws.close()


async def test_a_person_who_stops_while_the_console_starts_watching_is_shown_as_ended(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The person says "stop" just as the adviser's page asks to watch their conversation:
    # after the watch found it open, before the watch was in place. The page must still be
    # told it ended (it went on offering replies to someone who had left: a browser test
    # caught it once the suite ran faster).
    async with watching(database_url, tmp_path) as (app, alice, ws):
        conv_id = await person_asks_for_adviser(app, PHONE)
        status, _view = await alice.post(f"/console/api/conversations/{conv_id}/claim")
        assert status == 200
        audit = live.accounts.audit

        async def person_stops_meanwhile(store: Any, name: str, action: str, *a: Any) -> None:
            if action == "watch":
                await engine_of(app).handle(InboundMessage("test", PHONE, "stop"))
            await audit(store, name, action, *a)

        monkeypatch.setattr(live.accounts, "audit", person_stops_meanwhile)
        await ws.send_json({"type": "watch", "conversation": conv_id})
        ended = await next_frame(ws, lambda f: f["type"] == "closed", timeout=5)
        assert ended == {"type": "closed", "conversation": conv_id, "by": "person"}
