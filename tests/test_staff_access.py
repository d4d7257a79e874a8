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
from tests.console_support import (
    PASSWORD,
    Console,
    console_service,
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
