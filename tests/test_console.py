"""The adviser console over HTTP and its websocket, on SQLite and the real PostgreSQL:
the claim -> say -> end flow, CSRF, role and programme boundaries, safeguarding, call-backs."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from handoff import accounts, callbacks, referrals
from helpline.app import CONTENT, HUB, ROUTING, STORE
from helpline.domain import InboundMessage, Owner
from helpline.storage.models import HandoffRow
from tests.console_support import (
    PASSWORD,
    PLUGINS,
    Console,
    add_staff,
    console_service,
    next_frame,
    person_asks_for_adviser,
    waiting_refs,
)
from tests.support import engine_of, running, settings_for

PHONE = "+447700900123"
OTHER = "+447700900456"


async def test_adviser_claims_talks_with_the_person_and_ends_with_an_outcome(
    database_url: str, tmp_path: Path
) -> None:
    settings = settings_for(database_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True) as (app, fake, url):
        await add_staff(app, "alice")
        conv_id = await person_asks_for_adviser(app, PHONE)
        reference = (await app[STORE].conversation(conv_id)).reference
        async with Console(url) as alice:
            await alice.login("alice")
            ws = await alice.socket()
            first = await next_frame(ws, lambda f: f["type"] == "queue")
            assert waiting_refs(first) == [reference]
            status, snapshot = await alice.get("/console/api/queue")
            assert status == 200
            item = snapshot["waiting"][0]
            assert item["channel"] == "test" and item["risk"] == "none"
            assert PHONE not in json.dumps(snapshot) and PHONE[1:] not in json.dumps(snapshot)

            status, view = await alice.post(f"/console/api/conversations/{conv_id}/claim")
            assert status == 200 and view["mine"] is True
            await ws.send_json({"type": "watch", "conversation": conv_id})
            await next_frame(ws, lambda f: f["type"] == "watching")

            status, _ = await alice.post(
                f"/console/api/conversations/{conv_id}/say", {"text": "Hello, I'm Alice."}
            )
            assert status == 200
            assert fake.texts(PHONE)[-1] == "Hello, I'm Alice."

            await engine_of(app).handle(InboundMessage("test", PHONE, "I lost my temper"))
            heard = await next_frame(
                ws, lambda f: f["type"] == "message" and f.get("author") == "person"
            )
            assert heard["text"] == "I lost my temper" and heard["conversation"] == conv_id

            status, _ = await alice.post(
                f"/console/api/conversations/{conv_id}/end", {"outcome": "signposted"}
            )
            assert status == 200
            await ws.close()
        assert fake.texts(PHONE)[-1] == app[CONTENT].text("handoff.ended", "en")
        conv = await app[STORE].conversation(conv_id)
        assert conv.owner is Owner.BOT and conv.adviser is None
        before = len(fake.sent)
        await engine_of(app).handle(InboundMessage("test", PHONE, "menu"))
        assert len(fake.sent) > before, "the bot answers again once the adviser has ended"
        async with Console(url) as check:
            await add_staff(app, "sam", "supervisor")
            await check.login("sam")
            _, entries = await check.get(f"/console/api/audit?conversation={conv_id}")
        actions = [e["action"] for e in entries if e["actor"] == "alice"]
        assert {"claim", "say", "end"} <= set(actions)
        assert "Hello" not in json.dumps(entries), "the audit log holds no message text"


async def test_state_changing_requests_without_the_csrf_token_are_refused(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        _fake,
        url,
    ):
        await add_staff(app, "alice")
        conv_id = await person_asks_for_adviser(app, PHONE)
        async with Console(url) as alice:
            await alice.login("alice")
            path = f"/console/api/conversations/{conv_id}/claim"
            assert (await alice.post(path, csrf=""))[0] == 403
            assert (await alice.post(path, csrf="not-the-token"))[0] == 403
            # The right token from another site's page is refused too.
            async with alice.http.post(
                url + path,
                json={},
                headers={"X-CSRF-Token": alice.csrf, "Origin": "https://evil.example"},
            ) as resp:
                assert resp.status == 403
            assert (await alice.post("/console/logout", csrf="nope"))[0] == 403
            entry = await app[ROUTING].queue.entry(conv_id)
            assert entry is not None and await app[ROUTING].queue.claims() == {}
            assert (await alice.post(path))[0] == 200


async def test_an_adviser_cannot_end_or_write_in_a_conversation_another_adviser_holds(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        fake,
        url,
    ):
        await add_staff(app, "alice")
        await add_staff(app, "bob")
        conv_id = await person_asks_for_adviser(app, PHONE)
        async with Console(url) as alice, Console(url) as bob:
            await alice.login("alice")
            await bob.login("bob")
            assert (await alice.post(f"/console/api/conversations/{conv_id}/claim"))[0] == 200
            base = f"/console/api/conversations/{conv_id}"
            assert (await bob.post(base + "/end", {"outcome": "signposted"}))[0] == 403
            assert (await bob.post(base + "/say", {"text": "hi"}))[0] == 403
            assert (await bob.post(base + "/release"))[0] == 403
            # Claiming what another adviser holds is a lost race (409), not a forbidden act.
            assert (await bob.post(base + "/claim"))[0] == 409
            assert (await bob.get(base))[0] == 403
        conv = await app[STORE].conversation(conv_id)
        assert conv.owner is Owner.ADVISER and conv.adviser == "alice"
        assert "hi" not in fake.texts(PHONE)


async def test_programme_staff_see_only_their_own_programme_over_http(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        _fake,
        url,
    ):
        await add_staff(app, "pat", "programme", "north")
        await add_staff(app, "quinn", "programme", "south")
        helpline_conv = await person_asks_for_adviser(app, PHONE)
        north_conv = await person_asks_for_adviser(app, OTHER, queue="programme:north")
        north_ref = (await app[STORE].conversation(north_conv)).reference
        ours = await referrals.create_referral(
            app[STORE], north_conv, "north", {"first_name": "Sam", "_secret": "x"}
        )
        theirs = await referrals.create_referral(app[STORE], helpline_conv, "south", {"a": "b"})
        async with Console(url) as pat, Console(url) as quinn:
            await pat.login("pat")
            await quinn.login("quinn")
            assert (await pat.get(f"/console/api/conversations/{helpline_conv}"))[0] == 404
            assert (await quinn.get(f"/console/api/conversations/{north_conv}"))[0] == 404
            status, view = await pat.get(f"/console/api/conversations/{north_conv}")
            assert status == 200 and view["reference"] == north_ref
            _, snapshot = await pat.get("/console/api/queue")
            assert waiting_refs(snapshot) == [north_ref]
            _, snapshot = await quinn.get("/console/api/queue")
            assert waiting_refs(snapshot) == []
            for path in (
                f"/console/api/conversations/{helpline_conv}/claim",
                f"/console/api/conversations/{helpline_conv}/note",
            ):
                assert (await pat.post(path, {"text": "x"}))[0] == 404
            assert (await pat.get("/console/api/callbacks"))[0] == 403
            assert (await pat.get("/console/api/supervisor"))[0] == 403

            _, listed = await pat.get("/console/api/referrals")
            assert [r["reference"] for r in listed] == [ours]
            assert listed[0]["shared"] == {"first_name": "Sam"}
            assert listed[0]["conversation"] is None, "no helpline reference leaks to programmes"
            their_id = (await quinn.get("/console/api/referrals"))[1][0]["id"]
            assert (await pat.post(f"/console/api/referrals/{their_id}", {"status": "accepted"}))[
                0
            ] == 404
            our_id = listed[0]["id"]
            assert (await pat.post(f"/console/api/referrals/{our_id}", {"status": "accepted"}))[
                0
            ] == 200
            assert (await pat.post(f"/console/api/conversations/{north_conv}/claim"))[0] == 200
        assert await referrals.referral_status(app[STORE], ours) == "accepted"
        assert await referrals.referral_status(app[STORE], theirs) == "new"


async def test_programme_staff_see_only_what_the_person_agreed_to_share_and_what_followed(
    database_url: str, tmp_path: Path
) -> None:
    # The consent step says: only these answers, "not your name, your number or what you've
    # told us", and a safety concern but not what was said. (Danger itself would move them to
    # the helpline's queue: tests/test_routing.py.)
    async with console_service(
        database_url, tmp_path, ("pat", "programme", "north"), ("alice",)
    ) as (app, _fake, url):
        conv_id = await person_asks_for_adviser(app, OTHER, queue="programme:north")
        engine = engine_of(app)
        await engine.handle(InboundMessage("test", OTHER, "I slapped her last month"))
        await referrals.create_referral(app[STORE], conv_id, "north", {"area": "Newport"})
        await engine.handle(InboundMessage("test", OTHER, "when can we talk?"))
        base = f"/console/api/conversations/{conv_id}"
        async with Console(url) as pat, Console(url) as alice:
            await pat.login("pat")
            await alice.login("alice")
            status, view = await pat.get(base)
            assert status == 200
            said = [m["text"] for m in view["messages"] if m["direction"] == "in"]
            assert said == ["when can we talk?"]
            assert view["summary"] == {"area": "Newport"}
            assert view["flags"] == [] and view["risk"] == "concern"
            _, snapshot = await pat.get("/console/api/queue")
            [item] = snapshot["waiting"]
            assert item["summary"] == {"area": "Newport"} and item["flags"] == []
            # So does the transcript the live socket sends when they open the conversation.
            ws = await pat.socket()
            await ws.send_json({"type": "watch", "conversation": conv_id})
            frame = await next_frame(ws, lambda f: f["type"] == "transcript")
            said = [m["text"] for m in frame["messages"] if m["direction"] == "in"]
            assert said == ["when can we talk?"]
            # A helpline note stays the helpline's, even one written after the referral; the
            # programme's own notes are theirs.
            assert (await alice.post(base + "/note", {"text": "helpline only"}))[0] == 200
            assert (await pat.post(base + "/note", {"text": "pat's own"}))[0] == 200
            seen: list[dict[str, object]] = []
            await next_frame(ws, lambda f: f.get("text") == "pat's own", seen)
            assert not [f for f in seen if f.get("text") == "helpline only"]
            _, view = await pat.get(base)
            notes = [m["text"] for m in view["messages"] if m["direction"] == "note"]
            assert notes == ["pat's own"]
            # The helpline's own advisers still see the whole conversation.
            _, whole = await alice.get(base)
            said = [m["text"] for m in whole["messages"] if m["direction"] == "in"]
            assert "I slapped her last month" in said and whole["flags"] != []


async def test_only_the_persons_consent_sends_a_conversation_to_a_programme(
    database_url: str, tmp_path: Path
) -> None:
    async with console_service(
        database_url, tmp_path, ("pat", "programme", "north"), ("alice",)
    ) as (app, _fake, url):
        conv_id = await person_asks_for_adviser(app, PHONE)
        base = f"/console/api/conversations/{conv_id}"
        async with Console(url) as alice, Console(url) as pat:
            await alice.login("alice")
            await pat.login("pat")
            assert (await alice.post(base + "/claim"))[0] == 200
            status, answer = await alice.post(base + "/transfer", {"queue": "programme:north"})
            assert (status, answer) == (409, {"error": "no_referral"})
            assert (await pat.get(base))[0] == 404, "the programme sees nothing of it"
            await referrals.create_referral(app[STORE], conv_id, "north", {"area": "Newport"})
            assert (await alice.post(base + "/transfer", {"queue": "programme:north"}))[0] == 200
            assert (await pat.get(base))[0] == 200


async def test_a_referral_is_withdrawn_when_the_person_leaves_the_programmes_queue(
    database_url: str, tmp_path: Path
) -> None:
    staff = (("pat", "programme", "north"), ("alice",))
    async with console_service(database_url, tmp_path, *staff) as (app, _fake, url):
        left = await person_asks_for_adviser(app, OTHER, queue="programme:north")
        held = await person_asks_for_adviser(app, PHONE, queue="programme:north")
        gone = await referrals.create_referral(app[STORE], left, "north", {"area": "Newport"})
        taken_up = await referrals.create_referral(app[STORE], held, "north", {})
        engine = engine_of(app)
        async with Console(url) as pat, Console(url) as alice:
            await pat.login("pat")
            await alice.login("alice")
            assert (await pat.post(f"/console/api/conversations/{held}/claim"))[0] == 200
            await engine.handle(InboundMessage("test", OTHER, "cancel"))
            await engine.handle(InboundMessage("test", PHONE, "stop"))  # with pat: leaves too
            _, listed = await pat.get("/console/api/referrals")
            status = {r["reference"]: r["status"] for r in listed}
            # Nobody is waiting on the first any more; the second was taken up, and stands.
            assert status == {gone: "withdrawn", taken_up: "new"}
            # What they shared went with their consent: the programme keeps only the
            # reference and what became of it. The helpline's own staff still see it all.
            shared = {r["reference"]: r["shared"] for r in listed}
            assert shared[gone] == {}
            _, everything = await alice.get("/console/api/referrals")
            assert {r["reference"]: r["shared"] for r in everything}[gone] == {"area": "Newport"}
            # Consent withdrawn is no consent: the helpline cannot send them there again.
            await engine.handle(InboundMessage("test", OTHER, "adviser"))
            base = f"/console/api/conversations/{left}"
            assert (await alice.post(base + "/claim"))[0] == 200
            status, answer = await alice.post(base + "/transfer", {"queue": "programme:north"})
            assert (status, answer) == (409, {"error": "no_referral"})


async def test_ending_as_the_person_writes_asks_the_adviser_to_read_it_first(
    database_url: str, tmp_path: Path
) -> None:
    async with console_service(database_url, tmp_path, ("alice",)) as (app, _fake, url):
        conv_id = await person_asks_for_adviser(app, PHONE)
        base = f"/console/api/conversations/{conv_id}"
        async with Console(url) as alice:
            await alice.login("alice")
            assert (await alice.post(base + "/claim"))[0] == 200
            await engine_of(app).accept(InboundMessage("test", PHONE, "wait, one more thing"))
            ended = await alice.post(base + "/end", {"outcome": "signposted"})
            assert ended == (409, {"error": "just_written"})
            await engine_of(app).process(conv_id)
            _, view = await alice.get(base)
            assert "wait, one more thing" in json.dumps(view)
            assert (await alice.post(base + "/end", {"outcome": "signposted"}))[0] == 200


async def test_programme_staff_no_longer_see_a_conversation_once_they_have_ended_it(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        _fake,
        url,
    ):
        await add_staff(app, "pat", "programme", "north")
        north_conv = await person_asks_for_adviser(app, OTHER, queue="programme:north")
        await referrals.create_referral(app[STORE], north_conv, "north", {})
        base = f"/console/api/conversations/{north_conv}"
        async with Console(url) as pat:
            await pat.login("pat")
            assert (await pat.post(base + "/claim"))[0] == 200
            await app[ROUTING].queue.remove(north_conv)  # the queue's record lost (Redis)
            assert (await pat.get(base))[0] == 200, "they still hold it"
            assert (await pat.post(base + "/end", {"outcome": "signposted"}))[0] == 200
            # Back with the helpline's bot: what the person says next is not the programme's,
            # nor is it when they then ask for an adviser: the helpline's advisers answer.
            await engine_of(app).handle(InboundMessage("test", OTHER, "private words"))
            assert (await pat.get(base))[0] == 404
            await engine_of(app).handle(InboundMessage("test", OTHER, "adviser"))
            assert (await pat.get(base))[0] == 404
            entry = await app[ROUTING].queue.entry(north_conv)
            assert entry is not None and entry.queue == "helpline"


async def test_programme_staff_receive_no_live_events_of_other_queues(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        _fake,
        url,
    ):
        await add_staff(app, "pat", "programme", "north")
        async with Console(url) as pat:
            await pat.login("pat")
            ws = await pat.socket()
            seen: list[dict[str, object]] = []
            await next_frame(ws, lambda f: f["type"] == "queue", seen)
            helpline_conv = await person_asks_for_adviser(app, PHONE)
            helpline_ref = (await app[STORE].conversation(helpline_conv)).reference
            await ws.send_json({"type": "watch", "conversation": helpline_conv})
            await next_frame(ws, lambda f: f["type"] in ("refused", "watching"), seen)
            await engine_of(app).handle(InboundMessage("test", PHONE, "private words"))
            await referrals.create_referral(app[STORE], helpline_conv, "south", {}, hub=app[HUB])
            # Something pat may see happens last; everything before it has been delivered.
            north_conv = await person_asks_for_adviser(app, OTHER, queue="programme:north")
            await referrals.create_referral(app[STORE], north_conv, "north", {}, hub=app[HUB])
            north_ref = (await app[STORE].conversation(north_conv)).reference
            await next_frame(ws, lambda f: north_ref in waiting_refs(f), seen)
            await ws.close()
        text = json.dumps(seen)
        assert {"type": "refused", "conversation": helpline_conv} in seen
        assert helpline_ref not in text and "private words" not in text
        # Only their own programme's referrals: never the south one.
        listed = [r for f in seen if f["type"] == "referrals" for r in f["items"]]
        assert all(r["programme"] == "north" for r in listed)


async def test_the_console_refuses_anyone_not_logged_in(sqlite_url: str, tmp_path: Path) -> None:
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        _fake,
        url,
    ):
        await add_staff(app, "alice")
        async with Console(url) as stranger:
            assert (await stranger.get("/console/api/queue"))[0] == 401
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await stranger.socket()
            assert refused.value.status == 401
            await stranger.login("alice")
            with pytest.raises(aiohttp.WSServerHandshakeError) as cross:
                await stranger.http.ws_connect(url + "/console/ws", origin="https://evil.example")
            assert cross.value.status == 403
            assert (await stranger.post("/console/logout"))[0] == 200
            assert (await stranger.get("/console/api/queue"))[0] == 401


async def test_the_session_cookie_is_httponly_strict_and_secure_when_configured(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = settings_for(sqlite_url, tmp_path, cookie_secure=True)
    async with running(settings, plugins=PLUGINS, serve=True) as (app, _fake, url):
        await add_staff(app, "alice")
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{url}/console/login",
                json={"username": "alice", "password": "correct horse battery staple"},
            ) as resp,
        ):
            assert resp.status == 200
            header = resp.headers["Set-Cookie"]
        assert "HttpOnly" in header and "SameSite=Strict" in header and "Secure" in header
        assert "Path=/console" in header


async def test_a_safeguarding_concern_alerts_a_supervisor_who_must_sign_it_off(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        _fake,
        url,
    ):
        await add_staff(app, "alice")
        await add_staff(app, "sam", "supervisor")
        conv_id = await person_asks_for_adviser(app, PHONE)
        async with Console(url) as alice, Console(url) as sam:
            await alice.login("alice")
            await sam.login("sam")
            ws = await sam.socket()
            await next_frame(ws, lambda f: f["type"] == "queue")
            assert (await alice.post(f"/console/api/conversations/{conv_id}/claim"))[0] == 200
            status, raised = await alice.post(
                f"/console/api/conversations/{conv_id}/safeguarding",
                {"concern": "A child is at home and was hurt last night."},
            )
            assert status == 200
            alert = await next_frame(ws, lambda f: f["type"] == "safeguarding" and f["alert"])
            assert [c["id"] for c in alert["items"]] == [raised["id"]]
            sign = f"/console/api/safeguarding/{raised['id']}/sign-off"
            assert (await alice.post(sign, {"decision": "mine"}))[0] == 403
            assert (await alice.get("/console/api/safeguarding"))[0] == 403
            assert (await sam.post(sign, {"decision": "Referred to children's services."}))[
                0
            ] == 200
            assert (await sam.post(sign, {"decision": "again"}))[0] == 400
            assert (await sam.get("/console/api/safeguarding"))[1] == []
            # A supervisor can join a conversation another adviser holds, read-only.
            status, view = await sam.post(f"/console/api/conversations/{conv_id}/join")
            assert status == 200 and view["mine"] is False
            assert (await sam.post(f"/console/api/conversations/{conv_id}/say", {"text": "x"}))[
                0
            ] == 403
            _, overview = await sam.get("/console/api/supervisor")
            alice_now = {"name": "alice", "role": "adviser", "programme": None, "load": 1}
            # The service's default capacity (3) unless one is set for her.
            assert {**alice_now, "capacity": 3} in overview["staff"]
            _, entries = await sam.get(f"/console/api/audit?conversation={conv_id}")
            await ws.close()
        actions = {(e["actor"], e["action"]) for e in entries}
        assert ("alice", "safeguarding_raised") in actions
        assert ("sam", "safeguarding_signed_off") in actions
        assert ("sam", "join") in actions


async def test_advisers_see_requested_call_backs_and_mark_them(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        _fake,
        url,
    ):
        await add_staff(app, "alice")
        conv_id = await person_asks_for_adviser(app, PHONE)
        await callbacks.request_callback(app[STORE], conv_id, "weekdays after 6pm, not Fridays")
        async with Console(url) as alice:
            await alice.login("alice")
            _, listed = await alice.get("/console/api/callbacks")
            assert [c["window"] for c in listed] == ["weekdays after 6pm, not Fridays"]
            assert PHONE not in json.dumps(listed)
            path = f"/console/api/callbacks/{listed[0]['id']}"
            assert (await alice.post(path, {"status": "sideways"}))[0] == 400
            assert (await alice.post(path, {"status": "not_reached"}))[0] == 200
            assert (await alice.get("/console/api/callbacks"))[1] == []


async def test_the_console_migration_goes_down_and_up_again(
    database_url: str, tmp_path: Path
) -> None:
    from alembic import command

    from helpline.storage.migrate import alembic_config, upgrade

    engine = create_async_engine(database_url)
    try:
        await upgrade(engine)

        def down_and_up(connection: object) -> None:
            config = alembic_config(connection)  # type: ignore[arg-type]
            command.downgrade(config, "0001")
            command.upgrade(config, "head")

        async with engine.connect() as conn:
            await conn.run_sync(down_and_up)
            await conn.commit()
            tables = await conn.run_sync(
                lambda c: set(__import__("sqlalchemy").inspect(c).get_table_names())
            )
        assert {"console_users", "console_sessions", "audit_log", "referrals"} <= tables
        assert {"callbacks", "safeguarding"} <= tables
    finally:
        await engine.dispose()


async def test_the_console_page_has_the_words_and_no_inline_script(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        _fake,
        url,
    ):
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/console?lang=cy") as resp:
                page = await resp.text()
                csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
        assert app[CONTENT].text("console.login_button", "cy") in page
        assert "{{" not in page and "<script>" not in page and "style=" not in page


@pytest.mark.redis
@pytest.mark.postgres
async def test_a_console_on_another_instance_sees_the_queue_and_the_person_live(
    pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(pg_url, tmp_path, redis_url=redis_url, redis_prefix=redis_prefix)
    async with (
        running(settings, plugins=PLUGINS) as (app_a, _fake_a, _),
        running(settings, plugins=PLUGINS, serve=True) as (app_b, fake_b, url_b),
    ):
        await add_staff(app_b, "alice")
        async with Console(url_b) as alice:
            await alice.login("alice")
            ws = await alice.socket()
            await next_frame(ws, lambda f: f["type"] == "queue")
            conv_id = await person_asks_for_adviser(app_a, PHONE)
            reference = (await app_a[STORE].conversation(conv_id)).reference
            await next_frame(ws, lambda f: reference in waiting_refs(f))
            assert (await alice.post(f"/console/api/conversations/{conv_id}/claim"))[0] == 200
            await ws.send_json({"type": "watch", "conversation": conv_id})
            await next_frame(ws, lambda f: f["type"] == "watching")
            await engine_of(app_a).handle(InboundMessage("test", PHONE, "are you there?"))
            heard = await next_frame(
                ws, lambda f: f["type"] == "message" and f.get("author") == "person"
            )
            assert heard["text"] == "are you there?"
            await alice.post(f"/console/api/conversations/{conv_id}/say", {"text": "Yes, I am."})
            assert fake_b.texts(PHONE)[-1] == "Yes, I am."
            await ws.close()


async def test_notes_stay_private_and_transfers_reach_the_right_people(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        fake,
        url,
    ):
        await add_staff(app, "alice")
        await add_staff(app, "bob")
        await add_staff(app, "pat", "programme", "north")
        conv_id = await person_asks_for_adviser(app, PHONE)
        base = f"/console/api/conversations/{conv_id}"
        async with Console(url) as alice, Console(url) as bob, Console(url) as pat:
            await alice.login("alice")
            await bob.login("bob")
            await pat.login("pat")
            assert (await alice.post(base + "/claim"))[0] == 200
            assert (await alice.post(base + "/note", {"text": "Seems calmer now."}))[0] == 200
            assert "Seems calmer now." not in fake.texts(PHONE)

            # To one named adviser: only they may claim it.
            assert (await alice.post(base + "/transfer", {"queue": "adviser:bob"}))[0] == 200
            assert (await alice.post(base + "/claim"))[0] == 404
            assert (await pat.get(base))[0] == 404
            assert (await bob.post(base + "/claim"))[0] == 200
            # Bob steps away: any adviser may now take it (the person is told another will
            # join them). Left in Bob's own queue, only he could, and nobody else saw it.
            assert (await bob.post(base + "/release"))[0] == 200
            assert (await app[ROUTING].queue.entry(conv_id)).queue == "helpline"  # type: ignore[union-attr]
            status, view = await alice.get(base)
            assert status == 200 and view["queue"] == "helpline"
            assert (await alice.post(base + "/claim"))[0] == 200
            assert (await alice.post(base + "/transfer", {"queue": "adviser:bob"}))[0] == 200
            assert (await bob.post(base + "/claim"))[0] == 200

            # On to a programme the person agreed to be referred to, with a note for the
            # helpline's own record.
            await referrals.create_referral(app[STORE], conv_id, "north", {"area": "Gwynedd"})
            status, _ = await bob.post(
                base + "/transfer",
                {"queue": "programme:north", "note": "Wants a group near Bangor."},
            )
            assert status == 200
            assert (await bob.post(base + "/transfer", {"queue": "nowhere"}))[0] == 400
            # Nowhere no one would look: a programme without staff, a disabled adviser.
            await add_staff(app, "carol")
            await accounts.disable_user(app[STORE], "carol")
            for nowhere in ("programme:south", "adviser:carol"):
                assert (await bob.post(base + "/transfer", {"queue": nowhere}))[0] == 400
            status, view = await pat.get(base)
            assert status == 200 and view["queue"] == "programme:north"
            notes = [m["text"] for m in view["messages"] if m["direction"] == "note"]
            assert notes == [], "the helpline's notes, even the transfer's, are the helpline's"
            assert (await pat.post(base + "/claim"))[0] == 200
            assert (await pat.post(base + "/say", {"text": "Hello from North."}))[0] == 200
            assert (await pat.post(base + "/transfer", {"queue": "family"}))[0] == 403
        assert fake.texts(PHONE)[-1] == "Hello from North."
        assert fake.texts(PHONE).count(app[CONTENT].text("handoff.transferred", "en")) == 3


async def test_what_an_adviser_types_is_kept_even_with_characters_a_database_refuses(
    database_url: str, tmp_path: Path
) -> None:
    settings = settings_for(database_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True) as (app, fake, url):
        await add_staff(app, "alice")
        conv_id = await person_asks_for_adviser(app, PHONE)
        async with Console(url) as alice:
            await alice.login("alice")
            base = f"/console/api/conversations/{conv_id}"
            assert (await alice.post(base + "/claim"))[0] == 200
            # A NUL pasted from somewhere (PostgreSQL refuses it in text) and a lone
            # surrogate half: kept as a replacement character, never a server error.
            assert (await alice.post(base + "/say", {"text": "Hi\x00 there \ud800"}))[0] == 200
            assert (await alice.post(base + "/note", {"text": "note\x00"}))[0] == 200
            assert fake.texts(PHONE)[-1] == "Hi\ufffd there \ufffd"
            status, _ = await alice.post("/console/login", {"username": "x\x00", "password": "p"})
            assert status == 400
        notes = [m.text for m in await app[STORE].transcript(conv_id)]
        assert "note\ufffd" in notes


async def test_advisers_hold_no_more_conversations_than_their_capacity(
    sqlite_url: str, tmp_path: Path
) -> None:
    import run

    settings = settings_for(sqlite_url, tmp_path, adviser_capacity=2)
    async with running(settings, plugins=PLUGINS, serve=True) as (app, _fake, url):
        await add_staff(app, "alice")
        await add_staff(app, "bob")
        waiting = [await person_asks_for_adviser(app, f"+4477009001{i:02d}") for i in range(4)]
        # bob is set to one conversation at a time from the command line.
        cli = ["--database-url", sqlite_url, "--data-dir", str(tmp_path), "user", "capacity"]
        assert await asyncio.to_thread(run.main, [*cli, "bob", "1"]) == 0
        async with Console(url) as alice, Console(url) as bob:
            await alice.login("alice")
            await bob.login("bob")
            base = "/console/api/conversations/"
            assert (await bob.post(base + waiting[0] + "/claim"))[0] == 200
            # Told why: not "someone else took it" (the console said either) ...
            assert await bob.post(base + waiting[1] + "/claim") == (409, {"error": "at_capacity"})
            # ... which is what a conversation another adviser holds gets.
            assert await alice.post(base + waiting[0] + "/claim") == (409, {"error": "conflict"})
            # alice has the service's default of two; a third is not "no one is waiting".
            taken = [await alice.post("/console/api/claim-next") for _ in range(3)]
            assert [bool(t[1].get("id")) for t in taken[:2]] == [True, True]
            assert taken[2] == (409, {"error": "at_capacity"})
            status, view = await alice.get("/console/api/queue")
            assert status == 200 and len(view["waiting"]) == 1
        assert await asyncio.to_thread(run.main, [*cli, "bob", "0"]) == 2  # refused
        assert await asyncio.to_thread(run.main, [*cli, "nobody", "2"]) == 2


@pytest.mark.parametrize("item", ["99999999999999999999", str(2**31), "3000000000", "0", "-1"])
async def test_an_id_no_item_could_have_is_not_found_rather_than_an_error(
    database_url: str, tmp_path: Path, item: str
) -> None:
    # Ids are 32-bit columns: a bigger number used to fail in the database (a 500).
    settings = settings_for(database_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True) as (app, _fake, url):
        await add_staff(app, "sam", "supervisor")
        async with Console(url) as sam:
            await sam.login("sam")
            for path, body in (
                (f"/console/api/callbacks/{item}/number", {}),
                (f"/console/api/callbacks/{item}", {"status": "done"}),
                (f"/console/api/safeguarding/{item}/sign-off", {"decision": "Referred on."}),
                (f"/console/api/referrals/{item}", {"status": "contacted"}),
            ):
                status, answer = await sam.post(path, body)
                assert status == 404, (path, status, answer)


async def test_an_origin_that_cannot_be_read_is_refused_like_another_sites(
    sqlite_url: str, tmp_path: Path
) -> None:
    # urlsplit raises on an unclosed IPv6 bracket: that used to answer 500, not 403.
    settings = settings_for(sqlite_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True) as (app, _fake, url):
        await add_staff(app, "alice")
        conv_id = await person_asks_for_adviser(app, PHONE)
        bad = {"Origin": "http://[::1"}
        async with Console(url) as alice:
            async with alice.http.post(
                f"{url}/console/login",
                json={"username": "alice", "password": PASSWORD},
                headers=bad,
            ) as resp:
                assert resp.status == 403
            await alice.login("alice")
            async with alice.http.post(
                f"{url}/console/api/conversations/{conv_id}/claim",
                json={},
                headers={"X-CSRF-Token": alice.csrf, **bad},
            ) as resp:
                assert resp.status == 403
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await alice.http.ws_connect(url + "/console/ws", headers=bad)
            assert refused.value.status == 403
            assert await app[ROUTING].queue.claims() == {}


async def test_a_body_in_an_unknown_character_set_is_refused_as_a_bad_body(
    sqlite_url: str, tmp_path: Path
) -> None:
    # A charset Python has no codec for used to raise LookupError: a 500, not a 400.
    settings = settings_for(sqlite_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True) as (app, _fake, url):
        await add_staff(app, "alice")
        conv_id = await person_asks_for_adviser(app, PHONE)
        bogus = {"Content-Type": "application/json; charset=x-bogus"}
        async with Console(url) as alice:
            body = json.dumps({"username": "alice", "password": PASSWORD})
            async with alice.http.post(f"{url}/console/login", data=body, headers=bogus) as resp:
                assert resp.status == 400
            await alice.login("alice")
            async with alice.http.post(
                f"{url}/console/api/conversations/{conv_id}/say",
                data=json.dumps({"text": "Hello, I am here to listen."}),
                headers={"X-CSRF-Token": alice.csrf, **bogus},
            ) as resp:
                assert (resp.status, await resp.json()) == (400, {"error": "json"})


# Nested deeper than Python's JSON parser follows: it raises RecursionError, not ValueError.
TOO_DEEP = ["[" * 5000, '{"a":' * 5000]


def _errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_a_body_nested_too_deep_is_refused_as_a_bad_body(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # It used to answer 500, with a traceback in the log.
    settings = settings_for(sqlite_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True) as (app, fake, url):
        await add_staff(app, "alice")
        conv_id = await person_asks_for_adviser(app, PHONE)
        json_type = {"Content-Type": "application/json"}
        async with Console(url) as alice:
            for body in TOO_DEEP:
                async with alice.http.post(
                    f"{url}/console/login", data=body, headers=json_type
                ) as resp:
                    assert (resp.status, await resp.json()) == (400, {"error": "json"})
            await alice.login("alice")
            assert (await alice.post(f"/console/api/conversations/{conv_id}/claim"))[0] == 200
            for body in TOO_DEEP:
                async with alice.http.post(
                    f"{url}/console/api/conversations/{conv_id}/say",
                    data=body,
                    headers={"X-CSRF-Token": alice.csrf, **json_type},
                ) as resp:
                    assert (resp.status, await resp.json()) == (400, {"error": "json"})
            said = {"text": "Hello, I am here to listen."}
            assert (await alice.post(f"/console/api/conversations/{conv_id}/say", said))[0] == 200
            assert fake.texts(PHONE)[-1] == said["text"]
    assert _errors_logged(caplog) == []


async def test_a_console_frame_nested_too_deep_is_ignored_and_the_socket_carries_on(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # It used to end the socket without a close frame (1006), with a traceback in the log.
    settings = settings_for(sqlite_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True) as (app, _fake, url):
        await add_staff(app, "alice")
        conv_id = await person_asks_for_adviser(app, PHONE)
        async with Console(url) as alice:
            await alice.login("alice")
            ws = await alice.socket()
            await next_frame(ws, lambda f: f["type"] == "queue")
            for frame in TOO_DEEP:
                await ws.send_str(frame[: 15 * 1024])  # under the socket's 16 KB frames
            await ws.send_json({"type": "watch", "conversation": conv_id})
            await next_frame(ws, lambda f: f["type"] == "watching")
            await ws.close()
    assert _errors_logged(caplog) == []


async def test_an_audit_search_for_something_no_conversation_id_could_be_is_refused_clearly(
    database_url: str, tmp_path: Path
) -> None:
    # A NUL in ?conversation= reached the query: PostgreSQL refused it and the supervisor
    # got a server error instead of an answer.
    staff = ("sam", "supervisor")
    async with console_service(database_url, tmp_path, staff) as (app, _fake, url):
        conv_id = await person_asks_for_adviser(app, PHONE)
        async with Console(url) as sam:
            await sam.login("sam")
            assert (await sam.get(f"/console/api/conversations/{conv_id}"))[0] == 200
            for wrong in ("%00", f"{conv_id[:-1]}%00", conv_id.upper(), conv_id + "0", "x"):
                answer = await sam.get(f"/console/api/audit?conversation={wrong}")
                assert answer == (400, {"error": "conversation"}), wrong
            status, entries = await sam.get(f"/console/api/audit?conversation={conv_id}")
            assert status == 200 and [e["action"] for e in entries] == ["view"]
            status, entries = await sam.get("/console/api/audit?conversation=")
            assert status == 200 and "view" in [e["action"] for e in entries]


async def test_programme_staff_record_the_outcome_when_the_person_stops(
    database_url: str, tmp_path: Path
) -> None:
    async with console_service(
        database_url, tmp_path, ("pat", "programme", "north"), ("quinn", "programme", "north")
    ) as (app, _fake, url):
        conv_id = await person_asks_for_adviser(app, OTHER, queue="programme:north")
        await referrals.create_referral(app[STORE], conv_id, "north", {})
        base = f"/console/api/conversations/{conv_id}"
        async with Console(url) as pat, Console(url) as quinn:
            await pat.login("pat")
            await quinn.login("quinn")
            assert (await pat.post(base + "/claim"))[0] == 200
            await engine_of(app).handle(InboundMessage("test", OTHER, "stop"))
            assert (await quinn.post(base + "/end", {"outcome": "referred"}))[0] == 404
            assert (await pat.post(base + "/end", {"outcome": "referred"}))[0] == 200
            assert (await pat.get(base))[0] == 404  # and still nothing more to see
        async with app[STORE].session() as session:
            outcome = await session.scalar(
                select(HandoffRow.outcome)
                .where(HandoffRow.conversation_id == conv_id)
                .order_by(HandoffRow.id.desc())
                .limit(1)
            )
        assert outcome == "referred"


async def test_a_programme_that_ended_a_conversation_sees_nothing_said_with_the_helpline_after(
    database_url: str, tmp_path: Path
) -> None:
    # Their consent covered one stay with the programme: once its staff ended it, a
    # helpline adviser transferring it back used to show them everything said in between.
    async with console_service(
        database_url, tmp_path, ("pat", "programme", "north"), ("alice",)
    ) as (app, _fake, url):
        engine = engine_of(app)
        conv_id = await person_asks_for_adviser(app, OTHER, queue="programme:north")
        await referrals.create_referral(app[STORE], conv_id, "north", {"area": "Newport"})
        base = f"/console/api/conversations/{conv_id}"
        async with Console(url) as pat, Console(url) as alice:
            await pat.login("pat")
            await alice.login("alice")
            assert (await pat.post(base + "/claim"))[0] == 200
            assert (await pat.post(base + "/end", {"outcome": "referred"}))[0] == 200
            await engine.handle(InboundMessage("test", OTHER, "adviser"))
            assert (await alice.post(base + "/claim"))[0] == 200
            await engine.handle(InboundMessage("test", OTHER, "only for the helpline"))
            status, refused = await alice.post(base + "/transfer", {"queue": "programme:north"})
            assert (status, refused["error"]) == (409, "no_referral")  # ask them again
            assert (await pat.get(base))[0] == 404
            # Referred again with their consent: the programme sees from then on only.
            await referrals.create_referral(app[STORE], conv_id, "north", {"area": "Newport"})
            await engine.handle(InboundMessage("test", OTHER, "said after consenting again"))
            assert (await alice.post(base + "/transfer", {"queue": "programme:north"}))[0] == 200
            status, view = await pat.get(base)
            said = [m["text"] for m in view["messages"] if m["direction"] == "in"]
            assert status == 200 and said == ["said after consenting again"]


async def test_the_supervisors_urgent_list_puts_danger_before_suicide_whatever_came_last(
    database_url: str, tmp_path: Path
) -> None:
    # It was ordered by last activity alone: a suicide risk that wrote last was listed above
    # immediate danger (the console review).
    async with running(settings_for(database_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        _fake,
        url,
    ):
        await add_staff(app, "sam", "supervisor")
        engine = engine_of(app)
        danger = await engine.handle(InboundMessage("test", "+447700900301", "he has a knife now"))
        suicide = await engine.handle(
            InboundMessage("test", "+447700900302", "I want to kill myself")
        )
        await engine.handle(InboundMessage("test", "+447700900302", "are you there"))
        async with Console(url) as sam:
            await sam.login("sam")
            _, overview = await sam.get("/console/api/supervisor")
        order = [u["id"] for u in overview["urgent"]]
        assert order == [danger.conversation_id, suicide.conversation_id]
