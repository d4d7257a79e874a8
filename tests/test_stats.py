"""Anonymous statistics in the console, on SQLite and the real PostgreSQL: what a supervisor
or commissioner sees, that counts of 1-4 never show, that only supervisors and admins see it,
and that the counts outlive the transcripts retention deletes."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select, update

from handoff import referrals
from handoff.stats_counts import month_of
from handoff.stats_models import StatsCountedRow, StatsCountRow
from helpline.app import BEFORE_PURGE, STORE, purge
from helpline.domain import InboundMessage, utcnow
from helpline.storage.models import ConversationRow
from tests.console_support import PLUGINS, Console, add_staff, person_asks_for_adviser
from tests.support import engine_of, eventually, running, settings_for


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


TUESDAY_NOON = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # GMT: noon in London too
STATS_ROUTES = ("/console/stats", "/console/api/stats", "/console/api/stats.csv")


async def journeys(app: Any, **people: int) -> list[str]:
    """People walk into journeys (own=3 means three people choose 'my own behaviour')."""
    choice = {"own": "1", "family": "2", "victim": "3"}
    ids = []
    for journey, count in people.items():
        for _ in range(count):
            address = f"+4477009{len(ids):05d}"
            engine = engine_of(app)
            accepted = await engine.handle(InboundMessage("test", address, "hello"))
            await engine.handle(InboundMessage("test", address, "1"))
            await engine.handle(InboundMessage("test", address, choice[journey]))
            ids.append(accepted.conversation_id)
    return ids


async def began_at(app: Any, ids: list[str], when: datetime) -> None:
    """The store stamps conversations with the real time, not the app's clock: say when
    these began, as if they had written then."""
    async with app[STORE].session() as session, session.begin():
        await session.execute(
            update(ConversationRow).where(ConversationRow.id.in_(ids)).values(created_at=when)
        )


def table(report: dict[str, Any], dimension: str) -> dict[str, Any]:
    return {row["value"]: row["count"] for row in report["tables"][dimension]}


def counts_shown(report: dict[str, Any]) -> list[Any]:
    found = [report["contacts"], report["waits"]["claimed"]]
    for rows in report["tables"].values():
        found.extend(row["count"] for row in rows)
    found.extend(row["count"] for row in report["referrals"])
    return found


def assert_nothing_small_shows(report: dict[str, Any]) -> None:
    for count in counts_shown(report):
        assert count in ("<5", "withheld") or count == 0 or count >= 5, count


async def test_a_supervisor_sees_contacts_by_journey_channel_and_time_with_small_numbers_hidden(
    database_url: str, tmp_path: Path
) -> None:
    clock = Clock(TUESDAY_NOON)
    settings = settings_for(database_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True, clock=clock) as (app, _fake, url):
        ids = await journeys(app, own=7, family=5, victim=2)
        await began_at(app, ids, TUESDAY_NOON)
        await add_staff(app, "sam", "supervisor")
        async with Console(url) as sam:
            await sam.login("sam")
            status, report = await sam.get("/console/api/stats")
        assert status == 200
        assert report["contacts"] == 14
        # Two people in one journey is "<5"; the next smallest is withheld too, or the total
        # minus the rest would give the two away.
        assert table(report, "journey") == {"own": 7, "family": "withheld", "victim": "<5"}
        assert table(report, "channel") == {"test": 14}
        assert table(report, "language") == {"en": 14}
        assert table(report, "risk") == {"none": 14, "concern": 0, "suicide": 0, "immediate": 0}
        assert table(report, "hour")["12"] == 14 and len(report["tables"]["hour"]) == 24
        assert table(report, "weekday") == {
            "mon": 0, "tue": 14, "wed": 0, "thu": 0, "fri": 0, "sat": 0, "sun": 0
        }  # fmt: skip
        assert table(report, "outcome") == {"bot_only": 14}
        assert_nothing_small_shows(report)
        text = json.dumps(report)
        references = [(await app[STORE].conversation(i)).reference for i in ids]
        assert not any(i in text or r in text for i, r in zip(ids, references, strict=True))


async def test_the_csv_export_has_every_table_and_never_a_count_under_five(
    sqlite_url: str, tmp_path: Path
) -> None:
    clock = Clock(TUESDAY_NOON)
    settings = settings_for(sqlite_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True, clock=clock) as (app, _fake, url):
        await journeys(app, own=6, family=5, victim=1)
        await add_staff(app, "sam", "supervisor")
        async with Console(url) as sam:
            await sam.login("sam")
            async with sam.http.get(f"{url}/console/api/stats.csv") as resp:
                assert resp.status == 200
                assert resp.content_type == "text/csv"
                assert "attachment" in resp.headers["Content-Disposition"]
                rows = list(csv.reader(io.StringIO(await resp.text())))
            _, audit = await sam.get("/console/api/audit")
        assert rows[0] == ["section", "value", "detail", "count"]
        assert ["contacts", "all", "", "12"] in rows
        assert ["journey", "own", "", "6"] in rows
        assert ["journey", "family", "", "withheld"] in rows
        assert ["journey", "victim", "", "<5"] in rows
        assert {"channel", "journey", "outcome", "language", "risk", "hour", "weekday"} <= {
            r[0] for r in rows
        }
        for row in rows[1:]:
            count = row[3]
            assert count in ("<5", "withheld", "", "0") or int(count) >= 5, row
        assert any(e["action"] == "stats_export" and e["actor"] == "sam" for e in audit)


async def test_hour_and_day_are_counted_in_london_time_and_areas_where_named(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = settings_for(sqlite_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True) as (app, _fake, url):
        ids = await journeys(app, own=6)
        # 23:30 UTC on Monday 15 June is 00:30 on Tuesday in London (BST).
        await began_at(app, ids, datetime(2026, 6, 15, 23, 30, tzinfo=UTC))
        engine = engine_of(app)
        for conv_id in ids[:5]:  # as the programme journey records it
            async with engine.locks.hold(conv_id):
                conv = await app[STORE].conversation(conv_id)
                conv.answers["area"] = {
                    "force": "dyfed-powys",
                    "la": "Ceredigion",
                    "nation": "wales",
                }
                await app[STORE].save_turn(conv, [], [])
        await add_staff(app, "ada", "admin")
        async with Console(url) as ada:
            await ada.login("ada")
            _, report = await ada.get("/console/api/stats")
            _, june = await ada.get("/console/api/stats?from=2026-06&to=2026-06")
            _, july = await ada.get("/console/api/stats?from=2026-07")
            assert (await ada.get("/console/api/stats?from=2026-13"))[0] == 400
            assert (await ada.get("/console/api/stats?from=2026-07&to=2026-06"))[0] == 400
        assert table(report, "hour")["0"] == 6 and table(report, "hour")["23"] == 0
        assert table(report, "weekday")["tue"] == 6 and table(report, "weekday")["mon"] == 0
        assert table(report, "area") == {"Ceredigion": 5}
        assert june["contacts"] == 6 and july["contacts"] == 0


async def test_counts_waits_and_referrals_survive_retention_and_are_counted_once(
    database_url: str, tmp_path: Path
) -> None:
    clock = Clock(utcnow())  # the store stamps real time; retention compares with the clock
    settings = settings_for(database_url, tmp_path, retention_days=30)
    async with running(settings, plugins=PLUGINS, serve=True, clock=clock) as (app, _fake, url):
        await journeys(app, own=5)
        await add_staff(app, "alice")
        await add_staff(app, "sam", "supervisor")
        async with Console(url) as alice, Console(url) as sam:
            await alice.login("alice")
            await sam.login("sam")
            waited = []
            for n, minutes in enumerate((1, 2, 3, 4, 10)):
                conv_id = await person_asks_for_adviser(app, f"+4477009100{n:02d}")
                waited.append(conv_id)
                clock.now += timedelta(minutes=minutes)
                path = f"/console/api/conversations/{conv_id}"
                assert (await alice.post(path + "/claim"))[0] == 200
                assert (await alice.post(path + "/end", {"outcome": "signposted"}))[0] == 200
                clock.now -= timedelta(minutes=minutes)
            for conv_id in waited[:4]:
                await referrals.create_referral(app[STORE], conv_id, "north", {})
            await referrals.create_referral(app[STORE], waited[4], "south", {})
            _, before = await sam.get("/console/api/stats")
            assert before["contacts"] == 10
            assert before["waits"] == {"claimed": 5, "median_seconds": 180, "p90_seconds": 456}
            assert table(before, "outcome") == {"signposted": 5, "bot_only": 5}
            assert before["referrals"] == [
                {"programme": "north", "status": "new", "count": "<5"},
                {"programme": "south", "status": "new", "count": "<5"},
            ]

        clock.now += timedelta(days=31)
        shown = ("contacts", "tables", "waits", "referrals")
        async with Console(url) as sam:  # a month on: a new login
            await sam.login("sam")
            # Two instances' hooks, or a purge that failed after its hook: counted once.
            for _ in range(2):
                for hook in app[BEFORE_PURGE]:
                    await hook(clock.now - timedelta(days=30))
            _, rolled = await sam.get("/console/api/stats")
            assert {k: rolled[k] for k in shown} == {k: before[k] for k in shown}
            deleted = await purge(app)
            assert deleted["conversations"] == 10
            async with app[STORE].session() as session:
                assert await session.scalar(select(func.count(ConversationRow.id))) == 0
                assert await session.scalar(select(func.count()).select_from(StatsCountedRow)) == 0
                kept = list(await session.scalars(select(StatsCountRow)))
            _, after = await sam.get("/console/api/stats")
            assert {k: after[k] for k in shown} == {k: before[k] for k in shown}
            await purge(app)  # nothing left to count: nothing counted twice
            _, again = await sam.get("/console/api/stats")
            assert again["contacts"] == 10 and again["waits"] == before["waits"]
            await journeys(app, own=1)  # someone new, after the purge
            _, later = await sam.get("/console/api/stats")
            assert later["contacts"] == 11
        # The kept counts are months, dimensions, values and numbers: nothing about a person.
        dimensions = {r.dimension for r in kept}
        assert dimensions == {
            "channel", "journey", "outcome", "language", "risk", "hour", "weekday", "wait",
            "referral",
        }  # fmt: skip
        assert {r.month for r in kept} == {month_of(utcnow())}
        for row in kept:
            assert not any(conv_id in row.value for conv_id in waited)


async def test_programme_staff_and_advisers_are_refused_the_statistics(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        _fake,
        url,
    ):
        await add_staff(app, "alice")
        await add_staff(app, "pat", "programme", "north")
        await add_staff(app, "sam", "supervisor")
        await add_staff(app, "ada", "admin")
        for name, allowed in (("alice", False), ("pat", False), ("sam", True), ("ada", True)):
            async with Console(url) as staff:
                await staff.login(name)
                for path in STATS_ROUTES:
                    async with staff.http.get(url + path, allow_redirects=False) as resp:
                        assert resp.status == (200 if allowed else 403), (name, path)
        async with aiohttp.ClientSession() as anyone:
            for path in STATS_ROUTES[1:]:
                async with anyone.get(url + path) as resp:
                    assert resp.status == 401
            async with anyone.get(url + "/console/stats", allow_redirects=False) as resp:
                assert resp.status == 302 and resp.headers["Location"] == "/console"


async def test_the_statistics_page_draws_charts_with_its_own_script_and_no_inline_code(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        _fake,
        url,
    ):
        await add_staff(app, "sam", "supervisor")
        async with Console(url) as sam:
            await sam.login("sam")
            async with sam.http.get(url + "/console/stats?lang=cy") as resp:
                page = await resp.text()
                csp = resp.headers["Content-Security-Policy"]
            async with sam.http.get(url + "/console/static/stats.js") as resp:
                assert resp.status == 200
                script = await resp.text()
            async with sam.http.get(url + "/console") as resp:
                console_page = await resp.text()
        assert "'unsafe-inline'" not in csp
        assert '<script src="/console/static/stats.js" defer></script>' in page
        assert "<script>" not in page and "style=" not in page and "{{" not in page
        assert "Ystadegau" in page and 'data-label-stats-heading-risk="' in page
        assert "createElementNS" in script and "<table" not in script
        assert 'href="/console/stats?lang=en"' in console_page


async def test_advisers_online_counts_consoles_connected_to_this_instance(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        _fake,
        url,
    ):
        await add_staff(app, "alice")

        async def gauge() -> float:
            async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as resp:
                for line in (await resp.text()).splitlines():
                    if line.startswith("helpline_advisers_online "):
                        return float(line.split()[1])
            raise AssertionError("no advisers_online gauge")

        assert await gauge() == 0
        async with Console(url) as alice:
            await alice.login("alice")
            ws = await alice.socket()
            assert await gauge() == 1
            await ws.close()

        async def none_online() -> bool:
            return await gauge() == 0

        await eventually(none_online)


async def test_the_statistics_migration_goes_down_and_up_again(
    database_url: str, tmp_path: Path
) -> None:
    from alembic import command
    from sqlalchemy import inspect
    from sqlalchemy.ext.asyncio import create_async_engine

    from helpline.storage.migrate import alembic_config, upgrade

    engine = create_async_engine(database_url)
    try:
        await upgrade(engine)

        def tables(connection: Any) -> set[str]:
            return set(inspect(connection).get_table_names())

        def down(connection: Any) -> None:
            command.downgrade(alembic_config(connection), "0002")

        def up(connection: Any) -> None:
            command.upgrade(alembic_config(connection), "head")

        ours = {"stats_counts", "stats_counted", "hours_overrides"}
        async with engine.connect() as conn:
            await conn.run_sync(down)
            await conn.commit()
            assert not ours & await conn.run_sync(tables)
            await conn.run_sync(up)
            await conn.commit()
            assert ours <= await conn.run_sync(tables)
    finally:
        await engine.dispose()
