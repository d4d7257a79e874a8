"""The admin page and `run.py hours`: the content version and directory check date, and
opening hours changed without editing files, which every instance then applies at hand-off."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import run
from handoff import admin
from helpline.app import CONTENT, HOURS
from helpline.domain import InboundMessage
from tests.console_support import PLUGINS, Console, add_staff
from tests.support import Clock, engine_of, eventually, running, settings_for

TUESDAY_NOON = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # GMT: noon in London too
ADMIN_GETS = ("/console/admin", "/console/api/admin")
ADMIN_POSTS = (
    "/console/api/admin/closures",
    "/console/api/admin/weekly",
    "/console/api/admin/overrides/1/remove",
)
CLOSE_HELPLINE = {
    "from": "2026-11-24T11:00",
    "to": "2026-11-24T15:30",
    "queue": "helpline",
    "name": "Team training",
}


async def asks_for_adviser(app: Any, fake: Any, address: str) -> list[str]:
    """A person asks for an adviser; what they were told."""
    before = len(fake.sent)
    await engine_of(app).handle(InboundMessage("test", address, "hello"))
    await engine_of(app).handle(InboundMessage("test", address, "adviser"))
    return [m.reply.text for m in fake.sent[before:]]


def closed_message(app: Any, opens: str) -> str:
    return str(app[CONTENT].text("handoff.closed", "en", opens=opens))


def told_closed(app: Any, texts: list[str]) -> bool:
    opening_words = app[CONTENT].messages["handoff.closed"]["en"].split("{")[0]
    return any(t.startswith(opening_words) for t in texts)


async def test_an_admin_sees_the_content_version_and_when_the_directory_was_checked(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        _fake,
        url,
    ):
        await add_staff(app, "ada", "admin")
        directory = app[CONTENT].directory
        checked = [e.verified_on for e in (*directory.services, *directory.programmes)]
        newest = max(d for d in checked if d)
        async with Console(url) as ada:
            await ada.login("ada")
            status, view = await ada.get("/console/api/admin")
            async with ada.http.get(url + "/console/admin") as resp:
                page = await resp.text()
                csp = resp.headers["Content-Security-Policy"]
        assert status == 200
        assert view["content_version"] == app[CONTENT].version
        assert view["directory"]["checked_on"] == newest.isoformat()
        assert view["directory"]["unconfirmed"] == len(directory.unconfirmed_entries())
        weekly = {w["queue"]: w for w in view["weekly"]}
        assert weekly["helpline"]["weekly"]["mon"] == ["09:00-20:00"]
        assert weekly["helpline"]["override"] is None
        assert "helpline" in view["queues"]
        assert '<script src="/console/static/admin.js" defer></script>' in page
        assert "<script>" not in page and "style=" not in page and "{{" not in page
        assert "'unsafe-inline'" not in csp


async def test_a_closure_an_admin_sets_gives_people_the_closed_message_until_it_ends(
    database_url: str, tmp_path: Path
) -> None:
    clock = Clock(TUESDAY_NOON)
    settings = settings_for(database_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True, clock=clock) as (app, fake, url):
        await add_staff(app, "ada", "admin")
        before = await asks_for_adviser(app, fake, "+447700900001")
        assert not told_closed(app, before)
        async with Console(url) as ada:
            await ada.login("ada")
            status, made = await ada.post("/console/api/admin/closures", CLOSE_HELPLINE)
            assert status == 200
            told = await asks_for_adviser(app, fake, "+447700900002")
            assert closed_message(app, "Tuesday 24 November, 15:30") in told
            _, view = await ada.get("/console/api/admin")
            assert [c["name"] for c in view["closures"]] == ["Team training"]
            now = {s["queue"]: s for s in view["status"]}
            assert now["helpline"]["open"] is False and now["family"]["open"] is True
            assert now["helpline"]["opens"] == "2026-11-24T15:30"

            path = f"/console/api/admin/overrides/{made['id']}/remove"
            assert (await ada.post(path))[0] == 200
            after = await asks_for_adviser(app, fake, "+447700900003")
            assert after and not told_closed(app, after)
            _, audit = await ada.get("/console/api/audit")
        actions = [(e["actor"], e["action"]) for e in audit]
        assert ("ada", "hours_closure") in actions and ("ada", "hours_removed") in actions


async def test_weekly_hours_an_admin_sets_replace_the_content_files(
    sqlite_url: str, tmp_path: Path
) -> None:
    clock = Clock(TUESDAY_NOON)
    settings = settings_for(sqlite_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True, clock=clock) as (app, fake, url):
        await add_staff(app, "ada", "admin")
        week = {d: "09:00-17:00" for d in ("mon", "wed", "thu", "fri")} | {
            "tue": "",
            "sat": "closed",
            "sun": [],
        }
        async with Console(url) as ada:
            await ada.login("ada")
            status, _ = await ada.post(
                "/console/api/admin/weekly", {"queue": "helpline", "weekly": week}
            )
            assert status == 200
            _, view = await ada.get("/console/api/admin")
        told = await asks_for_adviser(app, fake, "+447700900004")
        assert closed_message(app, "Wednesday 25 November, 09:00") in told
        weekly = {w["queue"]: w for w in view["weekly"]}
        assert weekly["helpline"]["weekly"]["tue"] == []
        assert weekly["helpline"]["weekly"]["mon"] == ["09:00-17:00"]
        assert weekly["helpline"]["override"] is not None
        assert weekly["family"]["weekly"]["tue"] == ["09:00-20:00"]


async def test_only_admins_may_see_or_change_opening_hours_and_bad_times_are_refused(
    sqlite_url: str, tmp_path: Path
) -> None:
    clock = Clock(TUESDAY_NOON)
    settings = settings_for(sqlite_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True, clock=clock) as (app, _fake, url):
        await add_staff(app, "alice")
        await add_staff(app, "pat", "programme", "north")
        await add_staff(app, "sam", "supervisor")
        await add_staff(app, "ada", "admin")
        for name in ("alice", "pat", "sam"):
            async with Console(url) as staff:
                await staff.login(name)
                for path in ADMIN_GETS:
                    async with staff.http.get(url + path, allow_redirects=False) as resp:
                        assert resp.status == 403, (name, path)
                for path in ADMIN_POSTS:
                    assert (await staff.post(path, CLOSE_HELPLINE))[0] == 403, (name, path)
        async with Console(url) as ada:
            await ada.login("ada")
            closures = "/console/api/admin/closures"
            assert (await ada.post(closures, CLOSE_HELPLINE, csrf=""))[0] == 403
            for bad in (
                {**CLOSE_HELPLINE, "to": "2026-11-24T10:00"},  # ends before it starts
                {**CLOSE_HELPLINE, "from": "2026-11-24T11:00", "to": "2027-03-01T11:00"},
                {**CLOSE_HELPLINE, "queue": "everyone's"},
                {**CLOSE_HELPLINE, "from": "24/11/2026 11:00"},
                {**CLOSE_HELPLINE, "to": "2026-11-24T11:30", "from": "2026-11-23T09:00"},
            ):
                assert (await ada.post(closures, bad))[0] == 400, bad
            never_open = {d: "" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
            weekly = "/console/api/admin/weekly"
            assert (await ada.post(weekly, {"queue": "helpline", "weekly": never_open}))[0] == 400
            half = {"queue": "helpline", "weekly": {"mon": "09:00-17:00"}}
            assert (await ada.post(weekly, half))[0] == 400
            assert (await ada.post("/console/api/admin/overrides/999/remove"))[0] == 404
            _, view = await ada.get("/console/api/admin")
        assert view["closures"] == []
        assert all(w["override"] is None for w in view["weekly"])
        assert app[HOURS] is not None and app[HOURS].is_open("helpline", TUESDAY_NOON)
        async with aiohttp.ClientSession() as anyone:
            async with anyone.get(url + "/console/api/admin") as resp:
                assert resp.status == 401


@pytest.mark.redis
@pytest.mark.postgres
async def test_a_closure_made_on_one_instance_applies_on_another_at_once(
    pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    clock = Clock(TUESDAY_NOON)
    settings = settings_for(pg_url, tmp_path, redis_url=redis_url, redis_prefix=redis_prefix)
    async with (
        running(settings, plugins=PLUGINS, clock=clock) as (app_a, fake_a, _),
        running(settings, plugins=PLUGINS, serve=True, clock=clock) as (app_b, _fake_b, url_b),
    ):
        await add_staff(app_b, "ada", "admin")
        async with Console(url_b) as ada:
            await ada.login("ada")
            assert (await ada.post("/console/api/admin/closures", CLOSE_HELPLINE))[0] == 200
        # Well before the periodic reload: the hub's announcement did it.
        assert admin.RELOAD_SECONDS >= 30

        async def closed_on_a() -> bool:
            hours = app_a[HOURS]
            return hours is not None and not hours.is_open("helpline", clock.now)

        await eventually(closed_on_a, timeout=5)
        told = await asks_for_adviser(app_a, fake_a, "+447700900005")
        assert closed_message(app_a, "Tuesday 24 November, 15:30") in told


def test_hours_commands_close_list_reopen_and_change_the_week(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--database-url", sqlite_url, "--data-dir", str(tmp_path), "hours"]
    assert run.main([*base, "list"]) == 0
    assert "No closures" in capsys.readouterr().out
    start, end = "2027-12-24T13:00", "2027-12-27T09:00"
    closing = [*base, "close", "--from", start, "--to", end, "--queue", "family"]
    assert run.main([*closing, "--reason", "Christmas"]) == 0
    closure_id = capsys.readouterr().out.split()[1]
    assert run.main([*base, "weekly", "helpline", "--sat", "closed"]) == 0
    capsys.readouterr()
    assert run.main([*base, "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0] == f"{closure_id}\tclosed\tfamily\t{start} to {end}\tChristmas"
    assert "\tweekly\thelpline\tmon=09:00-20:00 " in listed[1] and "sat=closed" in listed[1]
    assert run.main([*base, "close", "--from", end, "--to", start]) == 2
    assert "end after it starts" in capsys.readouterr().err
    assert run.main([*base, "open", closure_id]) == 0
    capsys.readouterr()
    assert run.main([*base, "list"]) == 0
    assert "closed\tfamily" not in capsys.readouterr().out


async def test_a_change_from_the_command_line_reaches_a_running_service(
    sqlite_url: str, tmp_path: Path
) -> None:
    # The command line checks against the real time: a Tuesday next year.
    clock = Clock(datetime(2027, 11, 23, 12, 0, tzinfo=UTC))
    settings = settings_for(sqlite_url, tmp_path)
    async with running(settings, plugins=PLUGINS, clock=clock) as (app, fake, _):
        args = ["--database-url", sqlite_url, "--data-dir", str(tmp_path), "hours", "close"]
        args += ["--from", "2027-11-23T11:00", "--to", "2028-11-23T12:00"]
        # Over 90 days: refused, and the service stays open.
        assert await asyncio.to_thread(run.main, args) == 2
        args[-1] = "2027-11-23T17:00"
        assert await asyncio.to_thread(run.main, args) == 0
        await admin.reload_hours(app)  # what the service does every RELOAD_SECONDS
        told = await asks_for_adviser(app, fake, "+447700900006")
        assert closed_message(app, "Tuesday 23 November, 17:00") in told


async def test_closures_one_after_another_past_a_year_still_show_and_can_be_removed(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Each closure may last 90 days, but several in a row can close a queue for longer than
    # opening hours look ahead: the page must still load so that they can be taken away.
    clock = Clock(TUESDAY_NOON)
    settings = settings_for(sqlite_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True, clock=clock) as (app, fake, url):
        await add_staff(app, "ada", "admin")
        start = datetime(2026, 11, 24, 11, 0)
        made = []
        async with Console(url) as ada:
            await ada.login("ada")
            for n in range(5):
                first, last = start + timedelta(days=89 * n), start + timedelta(days=89 * (n + 1))
                status, body = await ada.post(
                    "/console/api/admin/closures",
                    {
                        "from": first.strftime("%Y-%m-%dT%H:%M"),
                        "to": last.strftime("%Y-%m-%dT%H:%M"),
                        "queue": "helpline",
                        "name": f"Closed, part {n + 1}",
                    },
                )
                assert status == 200, body
                made.append(body["id"])
            status, view = await ada.get("/console/api/admin")
            assert status == 200
            assert len(view["closures"]) == 5
            now = {s["queue"]: s for s in view["status"]}
            assert now["helpline"] == {"queue": "helpline", "open": False, "opens": None}
            assert now["family"]["open"] is True
            async with ada.http.get(url + "/console/admin") as resp:
                page = await resp.text()
            # The hand-off still works (what routing then says is routing's own test).
            assert await asks_for_adviser(app, fake, "+447700900005")

            path = f"/console/api/admin/overrides/{made[-1]}/remove"
            assert (await ada.post(path))[0] == 200
            _, view = await ada.get("/console/api/admin")
        now = {s["queue"]: s for s in view["status"]}
        assert now["helpline"]["opens"] is not None and now["helpline"]["opens"] > "2027-11-"
        no_opening = app[CONTENT].text("admin.closed_no_opening", "en")
        assert f'data-label-admin-closed-no-opening="{no_opening}"' in page


async def test_weekly_hours_given_as_anything_but_text_are_refused(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = settings_for(sqlite_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True) as (app, _fake, url):
        await add_staff(app, "ada", "admin")
        week = {d: "09:00-17:00" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
        async with Console(url) as ada:
            await ada.login("ada")
            for day in ([9], [None], ["09:00-12:00", {"from": "13:00"}], [["09:00-17:00"]]):
                body = {"queue": "helpline", "weekly": {**week, "mon": day}}
                status, answer = await ada.post("/console/api/admin/weekly", body)
                assert status == 400 and answer["error"] == "invalid", (day, answer)
            good = {"queue": "helpline", "weekly": {**week, "mon": ["09:00-12:00", "13:00-17:00"]}}
            assert (await ada.post("/console/api/admin/weekly", good))[0] == 200


@pytest.mark.parametrize("override", ["99999999999999999999", str(2**31), "0", "-5"])
async def test_removing_an_override_no_row_could_have_is_not_found(
    database_url: str, tmp_path: Path, override: str
) -> None:
    settings = settings_for(database_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True) as (app, _fake, url):
        await add_staff(app, "ada", "admin")
        async with Console(url) as ada:
            await ada.login("ada")
            status, _ = await ada.post(f"/console/api/admin/overrides/{override}/remove")
        assert status == 404


@pytest.mark.parametrize("lang", ["en", "cy"])
async def test_every_staff_page_has_the_quick_exit_and_links_to_itself_in_both_languages(
    lang: str, sqlite_url: str, tmp_path: Path
) -> None:
    # The console, statistics and admin pages share one layout (handoff/static/layout.html).
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        _fake,
        url,
    ):
        await add_staff(app, "ada", "admin")
        content = app[CONTENT]
        async with Console(url) as ada:
            await ada.login("ada")
            for path, title in (
                ("/console", "console.page_title"),
                ("/console/stats", "stats.page_title"),
                ("/console/admin", "admin.page_title"),
            ):
                async with ada.http.get(f"{url}{path}?lang={lang}") as resp:
                    page = await resp.text()
                assert f'<html lang="{lang}">' in page, path
                assert content.text(title, lang) in page.split("</title>")[0], path
                assert (
                    "data-helpline-exit" in page and content.text("web.exit_button", lang) in page
                )
                assert f'href="{path}?lang=en"' in page and f'href="{path}?lang=cy"' in page
                assert "{{" not in page and page.count("<main") == 1, path


async def test_hours_sent_in_an_unknown_character_set_are_refused_as_a_bad_body(
    sqlite_url: str, tmp_path: Path
) -> None:
    # A charset Python has no codec for used to raise LookupError: a 500, not a 400.
    settings = settings_for(sqlite_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True) as (app, _fake, url):
        await add_staff(app, "ada", "admin")
        async with Console(url) as ada:
            await ada.login("ada")
            async with ada.http.post(
                url + "/console/api/admin/closures",
                data=json.dumps(CLOSE_HELPLINE),
                headers={
                    "X-CSRF-Token": ada.csrf,
                    "Content-Type": "application/json; charset=x-bogus",
                },
            ) as resp:
                assert (resp.status, await resp.json()) == (400, {"error": "json"})
            assert (await ada.get("/console/api/admin"))[1]["closures"] == []
