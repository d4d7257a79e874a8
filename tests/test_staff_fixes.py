"""Staff-side fixes: labels without staff names, the idle timeout with a console tab open,
one-time codes used once, conversations held by an adviser who has gone, withdrawn
referral consent, and waiting people after Redis comes back empty."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
import redis.asyncio as redis

from handoff import accounts, console, live, referrals
from helpline.app import HUB, ROUTING, STORE
from helpline.domain import InboundMessage, Owner
from helpline.metrics import queue_kind
from helpline.ports import Priority
from tests.console_support import (
    PASSWORD,
    PLUGINS,
    Console,
    add_staff,
    close_code,
    console_service,
    next_frame,
    person_asks_for_adviser,
)
from tests.support import Clock, engine_of, running, settings_for

PHONE = "+447700900123"
OTHER = "+447700900456"


def test_metrics_label_a_queue_held_for_one_adviser_without_their_name() -> None:
    assert queue_kind("adviser:alice") == "adviser"
    assert queue_kind("adviser:") == "adviser"
    assert queue_kind("helpline") == "helpline"
    assert queue_kind("programme:north") == "programme:north"


async def test_an_open_console_tab_does_not_keep_an_idle_adviser_logged_in(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "RECHECK_SECONDS", 0.05)
    clock = Clock()
    settings = settings_for(database_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True, clock=clock) as (app, _f, url):
        await add_staff(app, "alice")
        async with Console(url) as alice:
            await alice.login("alice")
            ws = await alice.socket()
            await next_frame(ws, lambda f: f["type"] == "queue")
            clock.now += timedelta(minutes=50)
            for _ in range(3):  # the socket's re-checks run with the clock moved on
                await next_frame(ws, lambda f: f["type"] == "queue")
            clock.now += timedelta(minutes=15)
            # 65 minutes without the adviser doing anything: the session has lapsed.
            assert await close_code(ws) == live.UNAUTHORISED
            status, _ = await alice.get("/console/api/me")
            assert status == 401


async def test_a_second_factor_code_logs_in_once(database_url: str, tmp_path: Path) -> None:
    clock = Clock()
    settings = settings_for(database_url, tmp_path)
    async with running(settings, plugins=PLUGINS, clock=clock) as (app, _fake, _url):
        await add_staff(app, "sue", "supervisor")
        uri = await accounts.enable_totp(app[STORE], "sue")
        totp = pyotp.TOTP(parse_qs(urlsplit(uri).query)["secret"][0])
        code = totp.at(clock.now)
        await accounts.authenticate(app[STORE], "sue", PASSWORD, code, now=clock.now)
        with pytest.raises(accounts.LoginRefused):
            await accounts.authenticate(app[STORE], "sue", PASSWORD, code, now=clock.now)
        # An earlier step's code, still inside the window allowed for a clock a little out.
        earlier = totp.at(clock.now - timedelta(seconds=30))
        with pytest.raises(accounts.LoginRefused):
            await accounts.authenticate(app[STORE], "sue", PASSWORD, earlier, now=clock.now)
        clock.now += timedelta(seconds=30)
        later = totp.at(clock.now)
        # Two logins racing with one new code (two instances): one of them gets in.
        results = await asyncio.gather(
            *(
                accounts.authenticate(app[STORE], "sue", PASSWORD, later, now=clock.now)
                for _ in range(2)
            ),
            return_exceptions=True,
        )
        assert sorted(type(r).__name__ for r in results) == ["LoginRefused", "User"]


async def test_a_supervisor_releases_a_conversation_held_by_an_adviser_who_has_gone(
    database_url: str, tmp_path: Path
) -> None:
    staff = (("alice",), ("bob",), ("sue", "supervisor"))
    async with console_service(database_url, tmp_path, *staff) as (app, fake, url):
        conv_id = await person_asks_for_adviser(app, PHONE)
        base = f"/console/api/conversations/{conv_id}"
        async with Console(url) as alice, Console(url) as bob, Console(url) as sue:
            await alice.login("alice")
            await bob.login("bob")
            await sue.login("sue")
            assert (await alice.post(base + "/claim"))[0] == 200
            await accounts.disable_user(app[STORE], "alice", hub=app[HUB])
            # Danger said to an adviser who has gone: a supervisor sees it.
            await engine_of(app).handle(InboundMessage("test", PHONE, "I want to kill myself"))
            _, board = await sue.get("/console/api/queue")
            [held] = [i for i in board["claimed"] if i["claimed_by"] == "alice"]
            assert held["risk"] == "suicide"
            # Another adviser still may not.
            assert (await bob.post(base + "/release"))[0] == 403
            before = len(fake.sent)
            status, _ = await sue.post(base + "/release")
            assert status == 200
            told = fake.texts()[before:]
            assert len(told) == 1 and "step away" in told[0]
            conv = await app[STORE].conversation(conv_id)
            assert conv.owner is Owner.QUEUE and conv.adviser is None
            # Back at the front, for the danger said meanwhile.
            [entry] = await app[ROUTING].queue.waiting()
            assert entry.priority is Priority.for_risk("suicide")
            _, view = await sue.get(base)
            events = [m["text"] for m in view["messages"] if m["author"] == "system"]
            assert "sue released the conversation from alice back to the queue." in events
            _, entries = await sue.get(f"/console/api/audit?conversation={conv_id}")
            [audit] = [e for e in entries if e["action"] == "release"]
            assert audit["actor"] == "sue" and audit["detail"] == {"held_by": "alice"}
            assert (await bob.post(base + "/claim"))[0] == 200


async def test_a_supervisor_transfers_a_conversation_another_adviser_holds(
    database_url: str, tmp_path: Path
) -> None:
    staff = (("alice",), ("bob",), ("sue", "supervisor"))
    async with console_service(database_url, tmp_path, *staff) as (app, _fake, url):
        conv_id = await person_asks_for_adviser(app, PHONE)
        base = f"/console/api/conversations/{conv_id}"
        async with Console(url) as alice, Console(url) as sue:
            await alice.login("alice")
            await sue.login("sue")
            assert (await alice.post(base + "/claim"))[0] == 200
            status, _ = await sue.post(base + "/transfer", {"queue": "adviser:bob"})
            assert status == 200
            [entry] = await app[ROUTING].queue.waiting()
            assert entry.queue == "adviser:bob"
            _, view = await sue.get(base)
            events = [m["text"] for m in view["messages"] if m["author"] == "system"]
            assert "sue transferred the conversation from alice to the adviser:bob queue." in events
            _, entries = await sue.get(f"/console/api/audit?conversation={conv_id}")
            [audit] = [e for e in entries if e["action"] == "transfer"]
            assert audit["actor"] == "sue" and audit["detail"]["held_by"] == "alice"


async def test_disabling_an_adviser_sends_their_conversations_back_to_the_queue(
    database_url: str, tmp_path: Path
) -> None:
    async with console_service(database_url, tmp_path, ("alice",), ("bob",)) as (app, fake, url):
        conv_id = await person_asks_for_adviser(app, PHONE)
        async with Console(url) as alice:
            await alice.login("alice")
            assert (await alice.post(f"/console/api/conversations/{conv_id}/claim"))[0] == 200
        assert await console.release_gone(app) == 0, "an active adviser keeps what they hold"
        await accounts.disable_user(app[STORE], "alice", hub=app[HUB])
        before = len(fake.sent)
        assert await console.release_gone(app) == 1
        assert await console.release_gone(app) == 0
        told = fake.texts()[before:]
        assert len(told) == 1 and "step away" in told[0] and "closed" not in told[0]
        conv = await app[STORE].conversation(conv_id)
        assert conv.owner is Owner.QUEUE
        assert [e.conversation_id for e in await app[ROUTING].queue.waiting()] == [conv_id]
        entries = await accounts.audit_entries(app[STORE], conversation_id=conv_id)
        [audit] = [e for e in entries if e["action"] == "release"]
        assert audit["actor"] == "helpline" and audit["detail"] == {"held_by": "alice"}
        transcript = [m.text for m in await app[STORE].transcript(conv_id)]
        assert "alice's console account was closed: the conversation went back to the queue." in (
            transcript
        )


async def test_disabling_an_adviser_sends_those_waiting_for_them_by_name_to_the_helpline(
    database_url: str, tmp_path: Path
) -> None:
    # Transferred to Bob by name and waiting for him: only Bob (or a supervisor) may claim
    # from his own queue, so with his account closed nobody would ever take it.
    async with console_service(database_url, tmp_path, ("alice",), ("bob",)) as (app, fake, url):
        conv_id = await person_asks_for_adviser(app, PHONE)
        base = f"/console/api/conversations/{conv_id}"
        async with Console(url) as alice:
            await alice.login("alice")
            assert (await alice.post(base + "/claim"))[0] == 200
            assert (await alice.post(base + "/transfer", {"queue": "adviser:bob"}))[0] == 200
            assert await console.release_gone(app) == 0, "bob is still here"
            await accounts.disable_user(app[STORE], "bob", hub=app[HUB])
            before = len(fake.sent)
            assert await console.release_gone(app) == 1
            assert await console.release_gone(app) == 0
            assert fake.texts()[before:] == [], "they keep waiting, at their place"
            [entry] = await app[ROUTING].queue.waiting()
            assert entry.queue == "helpline"
            assert (await app[STORE].conversation(conv_id)).answers["queue"] == "helpline"
            assert (await alice.post(base + "/claim"))[0] == 200


async def _forget_queue(redis_url: str, prefix: str) -> None:
    """Redis restarted without its data: the queue's keys are gone (locks too, unheld)."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def test_a_person_waiting_is_not_told_an_adviser_is_there_after_redis_lost_the_queue(
    sqlite_url: str, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    settings = settings_for(sqlite_url, tmp_path, redis_url=redis_url, redis_prefix=redis_prefix)
    async with running(settings, plugins=PLUGINS) as (app, fake, _url):
        conv_id = await person_asks_for_adviser(app, PHONE)
        await _forget_queue(redis_url, redis_prefix)
        before = len(fake.sent)
        await engine_of(app).handle(InboundMessage("test", PHONE, "position"))
        told = " ".join(fake.texts()[before:])
        assert "talking with an adviser" not in told
        waiting, _ = await app[ROUTING].queue.board()
        assert [e.conversation_id for e in waiting] == [conv_id], "put back on being asked"


async def test_housekeeping_puts_back_what_the_queue_lost_at_its_place(
    sqlite_url: str, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    settings = settings_for(sqlite_url, tmp_path, redis_url=redis_url, redis_prefix=redis_prefix)
    async with running(settings, plugins=PLUGINS) as (app, _fake, _url):
        await add_staff(app, "alice")
        first = await person_asks_for_adviser(app, PHONE)
        held = await person_asks_for_adviser(app, OTHER)
        await app[ROUTING].claim(held, "alice", 3)
        before, _ = await app[ROUTING].queue.board()
        await _forget_queue(redis_url, redis_prefix)
        assert await app[ROUTING].repair_queue() == 2
        assert await app[ROUTING].repair_queue() == 0
        waiting, claimed = await app[ROUTING].queue.board()
        assert [e.conversation_id for e in waiting] == [first]
        assert waiting[0].joined_at == before[0].joined_at, "the person keeps their place"
        assert [(e.conversation_id, who) for e, who in claimed] == [(held, "alice")]
        # The adviser carries on as before.
        await app[ROUTING].release(held, "alice")


async def test_instances_starting_together_put_back_a_lost_queue_once(
    pg_url: str, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    settings = settings_for(pg_url, tmp_path, redis_url=redis_url, redis_prefix=redis_prefix)
    async with running(settings, plugins=PLUGINS) as (app, _fake, _url):
        people = [await person_asks_for_adviser(app, f"+4477009001{n:02}") for n in range(5)]
        await _forget_queue(redis_url, redis_prefix)
        async with (
            running(settings, plugins=PLUGINS) as (second, _f2, _u2),
            running(settings, plugins=PLUGINS) as (third, _f3, _u3),
        ):
            # Each started with the queue empty or half put back; and all three repair at
            # once, as their housekeeping may.
            counts = await asyncio.gather(
                *(a[ROUTING].repair_queue() for a in (app, second, third))
            )
            assert sum(counts) == 0, "started instances had already put everything back"
            waiting, claimed = await app[ROUTING].queue.board()
            assert [e.conversation_id for e in waiting] == people and claimed == []
        await _forget_queue(redis_url, redis_prefix)
        counts = await asyncio.gather(*(app[ROUTING].repair_queue() for _ in range(3)))
        assert sum(counts) == 5
        waiting, _ = await app[ROUTING].queue.board()
        assert [e.conversation_id for e in waiting] == people


async def test_a_withdrawn_or_declined_referral_cannot_be_brought_back(
    database_url: str, tmp_path: Path
) -> None:
    staff = (("pat", "programme", "north"), ("alice",), ("sue", "supervisor"))
    async with console_service(database_url, tmp_path, *staff) as (app, _fake, url):
        left = await person_asks_for_adviser(app, OTHER, queue="programme:north")
        await referrals.create_referral(app[STORE], left, "north", {"area": "Newport"})
        stayed = await person_asks_for_adviser(app, PHONE, queue="programme:north")
        await referrals.create_referral(app[STORE], stayed, "north", {"area": "Cardiff"})
        engine = engine_of(app)
        await engine.handle(InboundMessage("test", OTHER, "cancel"))
        async with Console(url) as pat, Console(url) as sue, Console(url) as alice:
            await pat.login("pat")
            await sue.login("sue")
            await alice.login("alice")
            _, everything = await alice.get("/console/api/referrals")
            status_of = {r["shared"]["area"]: r for r in everything}
            gone, kept = status_of["Newport"], status_of["Cardiff"]
            assert gone["status"] == "withdrawn"
            for who in (pat, sue):
                status, body = await who.post(
                    f"/console/api/referrals/{gone['id']}", {"status": "accepted"}
                )
                assert (status, body) == (409, {"error": "referral_final"})
            assert (await pat.post(f"/console/api/referrals/{kept['id']}", {"status": "declined"}))[
                0
            ] == 200
            status, body = await sue.post(
                f"/console/api/referrals/{kept['id']}", {"status": "contacted"}
            )
            assert (status, body) == (409, {"error": "referral_final"})
            _, listed = await pat.get("/console/api/referrals")
            assert sorted(r["status"] for r in listed) == ["declined", "withdrawn"]
            # The person who left asks for the helpline again: no consent sends them on.
            await engine.handle(InboundMessage("test", OTHER, "adviser"))
            base = f"/console/api/conversations/{left}"
            assert (await alice.post(base + "/claim"))[0] == 200
            status, body = await alice.post(base + "/transfer", {"queue": "programme:north"})
            assert (status, body) == (409, {"error": "no_referral"})
