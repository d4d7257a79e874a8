"""Staff access after the security review: a programme that declined a referral keeps nothing
of the conversation (and the person goes back to the helpline's queue), a call-back another
adviser holds stays theirs, a call-back is marked once, and failed logins cannot flood the
audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from handoff import accounts, callbacks, referrals
from helpline.app import CONTENT, HUB, PRIVACY, STORE
from helpline.domain import InboundMessage
from tests.console_support import (
    PASSWORD,
    Console,
    console_service,
    next_frame,
    person_asks_for_adviser,
)
from tests.support import engine_of

PERSON = "+447700900001"
OTHER = "+447700900002"
NUMBER = "07700900555"


async def _in_welsh(app: Any, conv_id: str) -> None:
    """The conversation is in Welsh from here on (as if the person had chosen it)."""
    engine = engine_of(app)
    async with engine.locks.hold(conv_id):
        conv = await app[STORE].conversation(conv_id)
        conv.language = "cy"
        await app[STORE].save_turn(conv, [], [])


def _ids(snapshot: dict[str, Any]) -> list[str]:
    return [i["id"] for i in snapshot["waiting"]] + [i["id"] for i in snapshot["claimed"]]


# -- 1. a declined referral ends the programme's access -------------------------------------


async def test_a_programme_that_declines_sees_nothing_more_and_the_person_goes_to_the_helpline(
    database_url: str, tmp_path: Path
) -> None:
    staff = (("pat", "programme", "north"), ("alice",))
    async with console_service(database_url, tmp_path, *staff) as (app, fake, url):
        engine = engine_of(app)
        conv_id = await person_asks_for_adviser(app, PERSON, queue="programme:north")
        await referrals.create_referral(app[STORE], conv_id, "north", {"area": "Newport"})
        base = f"/console/api/conversations/{conv_id}"
        async with Console(url) as pat, Console(url) as alice:
            await pat.login("pat")
            await alice.login("alice")
            [referral] = (await pat.get("/console/api/referrals"))[1]
            ws = await pat.socket()
            await ws.send_json({"type": "watch", "conversation": conv_id})
            await next_frame(ws, lambda f: f.get("type") == "watching")
            seen: list[dict[str, Any]] = []
            mark = f"/console/api/referrals/{referral['id']}"
            assert (await pat.post(mark, {"status": "declined"}))[0] == 200
            # The page stops streaming it at once, and nothing said after reaches the socket.
            await next_frame(
                ws, lambda f: f == {"type": "unwatched", "conversation": conv_id}, seen, 5
            )
            await engine.handle(
                InboundMessage("test", PERSON, "I hit her again, after the decline")
            )
            await ws.send_json({"type": "watch", "conversation": conv_id})
            await next_frame(ws, lambda f: f == {"type": "refused", "conversation": conv_id}, seen)
            assert not [f for f in seen if "after the decline" in str(f)]
            await ws.close()
            # Out of the programme's queue, its API refuses everything.
            assert conv_id not in _ids((await pat.get("/console/api/queue"))[1])
            assert (await pat.get(base))[0] == 404
            assert (await pat.post(base + "/claim"))[0] == 404
            assert (await pat.post(base + "/say", {"text": "after declining"}))[0] == 404
            assert (await pat.post("/console/api/claim-next"))[1] == {"conversation": None}
            # The person is told, and waits for the helpline's own advisers.
            told = app[CONTENT].text("referral.declined", "en")
            assert told in fake.texts(PERSON)
            assert not [t for t in fake.texts(PERSON) if "after declining" in t]
            _, queue = await alice.get("/console/api/queue")
            [item] = [i for i in queue["waiting"] if i["id"] == conv_id]
            assert item["queue"] == "helpline"
            status, view = await alice.post(base + "/claim")
            assert status == 200 and view["queue"] == "helpline"


async def test_a_programme_that_declines_a_conversation_it_holds_passes_it_back_in_welsh(
    database_url: str, tmp_path: Path
) -> None:
    staff = (("pat", "programme", "north"), ("alice",))
    async with console_service(database_url, tmp_path, *staff) as (app, fake, url):
        conv_id = await person_asks_for_adviser(app, PERSON, queue="programme:north")
        await _in_welsh(app, conv_id)
        await referrals.create_referral(app[STORE], conv_id, "north", {"area": "Newport"})
        base = f"/console/api/conversations/{conv_id}"
        async with Console(url) as pat, Console(url) as alice:
            await pat.login("pat")
            await alice.login("alice")
            assert (await pat.post(base + "/claim"))[0] == 200
            [referral] = (await pat.get("/console/api/referrals"))[1]
            mark = f"/console/api/referrals/{referral['id']}"
            assert (await pat.post(mark, {"status": "declined"}))[0] == 200
            assert (await pat.post(base + "/say", {"text": "still here"}))[0] == 404
            # Passed on as a transfer is, in their language, by "the person from the programme".
            told = app[CONTENT].text("programme.held_transferred", "cy")
            assert fake.texts(PERSON)[-1] == told
            assert "still here" not in fake.texts(PERSON)
            _, queue = await alice.get("/console/api/queue")
            [item] = [i for i in queue["waiting"] if i["id"] == conv_id]
            assert item["queue"] == "helpline"


async def test_a_programme_queue_conversation_with_no_consent_goes_back_to_the_helpline(
    database_url: str, tmp_path: Path
) -> None:
    # Put there with no referral at all (as a transfer could before consent was required).
    staff = (("pat", "programme", "north"), ("alice",))
    async with console_service(database_url, tmp_path, *staff) as (app, fake, url):
        conv_id = await person_asks_for_adviser(app, PERSON, queue="programme:north")
        await _in_welsh(app, conv_id)
        base = f"/console/api/conversations/{conv_id}"
        async with Console(url) as pat, Console(url) as alice:
            await pat.login("pat")
            await alice.login("alice")
            assert conv_id not in _ids((await pat.get("/console/api/queue"))[1])
            assert (await pat.get(base))[0] == 404
            assert (await pat.post(base + "/claim"))[0] == 404
            ws = await pat.socket()
            await ws.send_json({"type": "watch", "conversation": conv_id})
            await next_frame(ws, lambda f: f == {"type": "refused", "conversation": conv_id})
            await ws.close()
            # One a helpline adviser took from the programme's queue stays theirs.
            held = await person_asks_for_adviser(app, OTHER, queue="programme:north")
            held_base = f"/console/api/conversations/{held}"
            assert (await alice.post(held_base + "/claim"))[0] == 200
            # The housekeeping chore (or the programme's "claim next") hands it back.
            assert await referrals.hand_back_unconsented(app) == 1
            assert (await alice.post(held_base + "/say", {"text": "still with you"}))[0] == 200
            assert await referrals.hand_back_unconsented(app) == 0
            told = app[CONTENT].text("referral.handed_back", "cy")
            assert told in fake.texts(PERSON)[-2:]
            assert (await pat.post("/console/api/claim-next"))[1] == {"conversation": None}
            _, queue = await alice.get("/console/api/queue")
            [item] = [i for i in queue["waiting"] if i["id"] == conv_id]
            assert item["queue"] == "helpline"


# -- 2. a call-back another helpline adviser holds --------------------------------------------


async def test_a_call_back_held_by_another_helpline_adviser_is_theirs_even_from_a_programme_queue(
    database_url: str, tmp_path: Path
) -> None:
    staff = (("pat", "programme", "north"), ("alice",), ("bob",), ("sue", "supervisor"))
    async with console_service(database_url, tmp_path, *staff) as (app, _fake, url):
        conv_id = await person_asks_for_adviser(app, PERSON, queue="programme:north")
        await referrals.create_referral(app[STORE], conv_id, "north", {"area": "Newport"})
        sealed = callbacks.seal_number(app[PRIVACY], conv_id, NUMBER)
        cb = await callbacks.request_callback(app[STORE], conv_id, "after 6", sealed_number=sealed)
        base = f"/console/api/conversations/{conv_id}"
        async with Console(url) as alice, Console(url) as bob, Console(url) as sue:
            for console, name in ((alice, "alice"), (bob, "bob"), (sue, "sue")):
                await console.login(name)
            assert (await bob.post(base + "/claim"))[0] == 200
            assert (await alice.get(base))[0] == 403
            number, mark = f"/console/api/callbacks/{cb}/number", f"/console/api/callbacks/{cb}"
            assert await alice.post(number) == (403, {"error": "forbidden"})
            assert await alice.post(mark, {"status": "done"}) == (403, {"error": "forbidden"})
            assert await sue.post(number) == (200, {"number": NUMBER})
            assert await bob.post(number) == (200, {"number": NUMBER})


# -- 3. a call-back is marked once ---------------------------------------------------------


async def test_a_withdrawn_or_marked_call_back_cannot_be_marked_again(
    database_url: str, tmp_path: Path
) -> None:
    async with console_service(database_url, tmp_path, ("alice",), ("bob",)) as (app, _f, url):
        conv_id = await person_asks_for_adviser(app, PERSON)
        other = await person_asks_for_adviser(app, OTHER)
        withdrawn = await callbacks.request_callback(app[STORE], conv_id, "after 6")
        await callbacks.withdraw_callbacks(
            app[STORE], (await app[STORE].conversation(conv_id)).contact_key
        )
        made = await callbacks.request_callback(app[STORE], other, "mornings", hub=app[HUB])
        async with Console(url) as alice, Console(url) as bob:
            await alice.login("alice")
            await bob.login("bob")
            refused = (409, {"error": "callback_final"})
            assert await alice.post(f"/console/api/callbacks/{withdrawn}", {"status": "done"}) == (
                refused
            )
            assert await alice.post(f"/console/api/callbacks/{made}", {"status": "done"}) == (
                200,
                {"ok": True},
            )
            again = {"status": "not_reached"}
            assert await bob.post(f"/console/api/callbacks/{made}", again) == refused
        rows = {c["id"]: (c["status"], c["updated_by"]) for c in await _all_callbacks(app)}
        assert rows == {withdrawn: ("withdrawn", None), made: ("done", "alice")}
        # The console explains the refusal, in English and Welsh.
        for lang in ("en", "cy"):
            assert app[CONTENT].text("console.error_callback_final", lang)


async def _all_callbacks(app: Any) -> list[dict[str, Any]]:
    return await callbacks.callbacks(app[STORE], open_only=False)


# -- 4. failed logins and the audit log ----------------------------------------------------


async def test_a_locked_account_is_audited_once_per_lock_and_the_audit_can_be_paged(
    database_url: str, tmp_path: Path
) -> None:
    async with console_service(database_url, tmp_path, ("alice",), ("sue", "supervisor")) as (
        app,
        _fake,
        url,
    ):
        async with Console(url) as sue:
            await sue.login("sue")
            async with aiohttp.ClientSession() as anonymous:
                codes = []
                for _ in range(12):  # under the per-address throttle (20 in 5 minutes)
                    async with anonymous.post(
                        url + "/console/login", json={"username": "alice", "password": "wrong"}
                    ) as r:
                        codes.append(r.status)
            assert codes == [401] * 4 + [429] * 8
            _, entries = await sue.get("/console/api/audit?action=login_locked")
            assert [(e["actor"], e["action"]) for e in entries] == [("alice", "login_locked")]
            # Paging: everything stays in reach, newest first, a page at a time.
            for month in range(5):
                await accounts.audit(app[STORE], "sue", "stats_export", period=f"2026-0{month + 1}")
            _, first = await sue.get("/console/api/audit?limit=3")
            assert len(first) == 3
            _, older = await sue.get(f"/console/api/audit?limit=3&before={first[-1]['id']}")
            assert older and all(e["id"] < first[-1]["id"] for e in older)
            _, logins = await sue.get("/console/api/audit?actor=sue&action=login")
            assert [e["action"] for e in logins] == ["login"]
            for wrong in ("before=x", "limit=0", "limit=501", "actor=" + "a" * 81):
                assert await sue.get(f"/console/api/audit?{wrong}") == (
                    400,
                    {"error": wrong.partition("=")[0]},
                )
        # The right password is still refused while the lock lasts.
        async with aiohttp.ClientSession() as anonymous:
            body = {"username": "alice", "password": PASSWORD}
            async with anonymous.post(url + "/console/login", json=body) as r:
                assert r.status == 429


# -- 5. a programme's staff are not "an adviser" ---------------------------------------------


async def test_someone_waiting_for_a_programme_hears_of_its_staff_not_of_an_adviser(
    database_url: str, tmp_path: Path
) -> None:
    staff = (("pat", "programme", "north"), ("alice",))
    async with console_service(database_url, tmp_path, *staff) as (app, fake, url):
        t = app[CONTENT].text
        engine = engine_of(app)
        conv_id = await person_asks_for_adviser(app, PERSON, queue="programme:north")
        await referrals.create_referral(app[STORE], conv_id, "north", {"area": "Newport"})
        await engine.handle(InboundMessage("test", PERSON, "help"))
        assert fake.texts(PERSON)[-1] == t("programme.waiting_help", "en")
        base = f"/console/api/conversations/{conv_id}"
        before = len(fake.texts(PERSON))
        async with Console(url) as pat:
            await pat.login("pat")
            assert (await pat.post(base + "/claim"))[0] == 200
            assert fake.texts(PERSON)[-1] == t("programme.joined", "en")
            assert (await pat.post(base + "/release"))[0] == 200
            assert fake.texts(PERSON)[-1] == t("programme.held_released", "en")
            assert (await pat.post(base + "/claim"))[0] == 200
            assert (await pat.post(base + "/end", {"outcome": "referred"}))[0] == 200
            assert fake.texts(PERSON)[-1] == t("programme.held_ended", "en")
        assert not [t for t in fake.texts(PERSON)[before:] if "adviser" in t.lower()], (
            "nothing said to them while with the programme speaks of 'an adviser'"
        )
        # The helpline's own advisers are still "an adviser".
        other = await person_asks_for_adviser(app, OTHER)
        async with Console(url) as alice:
            await alice.login("alice")
            assert (await alice.post(f"/console/api/conversations/{other}/claim"))[0] == 200
        assert fake.texts(OTHER)[-1] == t("handoff.joined", "en")
