"""Anonymous statistics in the console, on SQLite and the real PostgreSQL: what a supervisor
or commissioner sees, that counts of 1-4 never show, that only supervisors and admins see it,
and that the counts outlive the transcripts retention deletes."""

from __future__ import annotations

import csv
import functools
import html
import io
import itertools
import json
import operator
import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select, update

from handoff import referrals
from handoff.stats_counts import Cell, month_of
from handoff.stats_counts import report as suppressed
from handoff.stats_models import StatsCountedRow, StatsCountRow
from helpline.app import BEFORE_PURGE, CONTENT, STORE, purge
from helpline.domain import InboundMessage, utcnow
from helpline.storage.models import ConversationRow
from tests.console_support import PLUGINS, Console, add_staff, person_asks_for_adviser
from tests.support import Clock, engine_of, eventually, running, settings_for

TUESDAY_NOON = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # GMT: noon in London too
NOT_BROKEN_DOWN = "not_broken_down"  # a month's table that could not be split safely
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
        if isinstance(count, str) and count.endswith("+"):  # "at least", over several months
            assert int(count[:-1]) >= 5, count
        else:
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
        # One in the victim journey: withholding family's 5 would leave "5 or more and 1 to 4,
        # making 6", so 5 and 1. Own's 6 is withheld instead: 12 - 5 leaves 6 and 1 or 5 and 2.
        assert ["journey", "own", "", "withheld"] in rows
        assert ["journey", "family", "", "5"] in rows
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
        # A month not broken down has its own name in the table, in the page's language.
        assert 'data-label-stats-not-broken-down="Heb ei ddadansoddi' in page
        assert "'not_broken_down'" in script
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


# -- no period can be subtracted from another to find a small number ------------------

MONTHS = ("2026-01", "2026-02", "2026-03")
Months = dict[str, dict[str, dict[str, int]]]


def cells_of(months: Months) -> Counter[Cell]:
    return Counter(
        {
            (month, dimension, value): n
            for month, dimensions in months.items()
            for dimension, values in dimensions.items()
            for value, n in values.items()
        }
    )


def every_period(months: Months) -> dict[tuple[str, str], dict[str, Any]]:
    """The suppressed report for every from/to a supervisor could choose."""
    cells = cells_of(months)
    return {
        (first, last): suppressed(
            Counter({c: n for c, n in cells.items() if first <= c[0] <= last})
        )
        for first, last in itertools.combinations_with_replacement(MONTHS, 2)
    }


QUIET_MONTHS = {"2026-01": 6, "2026-02": 7}


def months_with(march_own: int, march_family: int, march_area: int) -> Months:
    out: Months = {
        month: {"channel": {"sms": n}, "journey": {"own": n}, "area": {"Ceredigion": n - 1}}
        for month, n in QUIET_MONTHS.items()
    }
    out["2026-03"] = {
        "channel": {"sms": march_own + march_family},
        "journey": {"own": march_own, "family": march_family},
        "area": {"Ceredigion": march_area},
    }
    return out


def test_january_to_march_minus_january_to_february_does_not_give_march_away() -> None:
    # Two Marches a supervisor must not be able to tell apart: the same contacts, two or
    # three people in the family journey, two or three naming Ceredigion. Each is "<5".
    one = every_period(months_with(march_own=7, march_family=2, march_area=2))
    other = every_period(months_with(march_own=6, march_family=3, march_area=3))
    assert one == other
    march = one[("2026-03", "2026-03")]
    assert table(march, "journey") == {"own": "withheld", "family": "<5"}
    quarter, two_months = one[("2026-01", "2026-03")], one[("2026-01", "2026-02")]
    assert quarter["contacts"] == 22 and two_months["contacts"] == 13
    # March's own is withheld in March, so it is left out of the quarter: at least 6 + 7 + 5.
    assert table(quarter, "journey") == {"own": "18+", "family": "<5"}
    assert table(two_months, "journey") == {"own": 13}
    assert table(quarter, "area") == {"Ceredigion": "12+"}  # 5 + 6, and March at least 1
    for report in one.values():
        assert_nothing_small_shows(report)


def test_months_of_small_numbers_never_add_up_to_a_number_shown() -> None:
    few = {m: {"channel": {"sms": 2}, "referral": {"north|new": 1}} for m in MONTHS}
    quarter = every_period(few)[("2026-01", "2026-03")]
    # Six contacts in all, but from three months of 2: never a figure, nor "6+" or "3+".
    assert quarter["contacts"] == "withheld"
    assert quarter["referrals"] == [{"programme": "north", "status": "new", "count": "withheld"}]
    assert every_period(few)[("2026-02", "2026-02")]["contacts"] == "<5"


def test_waits_are_counted_and_summarised_only_from_months_of_five_or_more() -> None:
    months: Months = {
        "2026-01": {"channel": {"web": 6}, "wait": {"60": 3, "120": 3}},
        "2026-02": {"channel": {"web": 6}, "wait": {"600": 2}},  # two long waits: left out
    }
    both = suppressed(cells_of(months))
    # 6 in January and at least one in February; the median and p90 are January's alone.
    assert both["waits"] == {"claimed": "7+", "median_seconds": 90, "p90_seconds": 120}
    january = suppressed(cells_of({"2026-01": months["2026-01"]}))
    assert january["waits"]["median_seconds"] == both["waits"]["median_seconds"]


def test_whatever_the_counts_each_period_shows_only_true_bounds_and_no_small_number() -> None:
    dice = random.Random(20261124)
    values = ("web", "sms", "whatsapp", "telegram")
    for _ in range(200):
        months: Months = {
            m: {"channel": {v: dice.choice((0, 1, 2, 3, 4, 5, 6, 9, 30)) for v in values}}
            for m in MONTHS
        }
        periods = every_period(months)
        for (first, last), report in periods.items():
            assert_nothing_small_shows(report)
            within = [m for m in MONTHS if first <= m <= last]
            in_one_row = [m for m in within if NOT_BROKEN_DOWN in table(periods[(m, m)], "channel")]
            for row in report["tables"]["channel"]:
                if row["value"] == NOT_BROKEN_DOWN:  # those months' contacts, in one row
                    true = sum(sum(months[m]["channel"].values()) for m in in_one_row)
                else:
                    broken_down = [m for m in within if m not in in_one_row]
                    true = sum(months[m]["channel"][row["value"]] for m in broken_down)
                    true_most = true + sum(sum(months[m]["channel"].values()) for m in in_one_row)
                count = row["count"]
                if isinstance(count, int):
                    assert count == true
                    assert row["value"] == NOT_BROKEN_DOWN or true == true_most
                elif count == "<5":
                    assert 1 <= true <= 4 and (row["value"] == NOT_BROKEN_DOWN or true == true_most)
                elif count.endswith("+"):
                    assert 5 <= int(count[:-1]) <= true
            if first == last:  # in a month, one count hidden alone only if none is shown
                rows = report["tables"]["channel"]
                hidden = [r for r in rows if r["count"] in ("<5", "withheld")]
                shown = [r for r in rows if isinstance(r["count"], int) and r["count"] >= 5]
                assert len(hidden) != 1 or not shown, report


async def test_a_month_partly_kept_through_retention_is_suppressed_as_one_month(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Counts kept through retention and conversations still held are one month's cells:
    # three kept and two held in the family journey is five, and shows as 5.
    settings = settings_for(sqlite_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True) as (app, _fake, url):
        ids = await journeys(app, own=11, family=2)  # one call: each person a new number
        await began_at(app, ids[:6], datetime(2026, 1, 10, 12, 0, tzinfo=UTC))
        await began_at(app, ids[6:], datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
        await add_staff(app, "sam", "supervisor")
        async with Console(url) as sam:
            await sam.login("sam")
            _, held = await sam.get("/console/api/stats?from=2026-01&to=2026-03")
            _, january = await sam.get("/console/api/stats?from=2026-01&to=2026-02")
            async with app[STORE].session() as session, session.begin():
                for dimension, value in (("channel", "test"), ("journey", "family")):
                    session.add(
                        StatsCountRow(month="2026-03", dimension=dimension, value=value, count=3)
                    )
            _, kept = await sam.get("/console/api/stats?from=2026-01&to=2026-03")
            async with sam.http.get(url + "/console/api/stats.csv?from=2026-01") as resp:
                rows = list(csv.reader(io.StringIO(await resp.text())))
            async with sam.http.get(url + "/console/stats") as resp:
                page = await resp.text()
        assert table(held, "journey") == {"own": "11+", "family": "<5"}  # 6, and March withheld
        assert held["contacts"] == 13 and january["contacts"] == 6
        assert table(january, "journey") == {"own": 6}
        assert table(kept, "journey") == {"own": 11, "family": 5}
        assert kept["contacts"] == 16
        assert ["journey", "own", "", "11"] in rows
        rule = app[CONTENT].text("stats.rule", "en")
        assert rows[-1] == ["rule", "", rule, ""]
        assert html.escape(rule, quote=True) in page


# -- no count hidden in a month can be worked out from its total and the rest ----------


def month_report(**tables: dict[str, int]) -> dict[str, Any]:
    """What a supervisor sees for March alone, from March's true counts."""
    return suppressed(cells_of({"2026-03": tables}))


def could_be(count: Any, total: int) -> range:
    """Every number a count shown for one month stands for, in a table adding up to total:
    "<5" is 1 to 4 and "withheld" is a count of 5 or more (handoff/stats_counts.py)."""
    if isinstance(count, int):
        return range(count, count + 1)
    if count == "<5":
        return range(1, 5)
    assert count == "withheld", count
    return range(5, total + 1)


def sums_possible(options: list[range], most: int) -> int:
    """Every sum up to `most` that one choice from each option can make: bit s is set when
    the sum s is possible."""
    sums = 1
    for option in options:
        sums = functools.reduce(operator.or_, (sums << n for n in option), 0)
        sums &= (1 << (most + 1)) - 1
    return sums


def every_reading(report: dict[str, Any], dimensions: list[str]) -> dict[tuple[str, str], set[int]]:
    """Every number each count of a one-month report could be, by brute force: for every
    total the contacts figure allows, every way each table's counts can add up to it. A
    total one table cannot add up to is ruled out for every table."""
    found: dict[tuple[str, str], set[int]] = defaultdict(set)
    for total in could_be(report["contacts"], 0):
        readings: dict[tuple[str, str], set[int]] = {}
        for dimension in dimensions:
            rows = report["tables"][dimension]
            options = [could_be(row["count"], total) for row in rows]
            if not sums_possible(options, total) >> total & 1:
                break
            for i, row in enumerate(rows):
                others = sums_possible(options[:i] + options[i + 1 :], total)
                fits = {n for n in options[i] if n <= total and others >> (total - n) & 1}
                readings[(dimension, row["value"])] = fits
        else:
            for key, fits in readings.items():
                found[key] |= fits
    return found


def test_two_small_channels_cannot_be_worked_out_from_the_total() -> None:
    # 102 contacts, 100 by web chat: "<5" by SMS and "<5" by Telegram would add up to 2,
    # so one each. Web chat is withheld too, and the two could be anything from 1 to 4.
    report = month_report(channel={"web": 100, "sms": 1, "telegram": 1})
    assert report["contacts"] == 102
    assert table(report, "channel") == {"web": "withheld", "sms": "<5", "telegram": "<5"}
    readings = every_reading(report, ["channel"])
    assert readings[("channel", "sms")] == readings[("channel", "telegram")] == {1, 2, 3, 4}


def test_a_withheld_five_beside_a_small_count_does_not_give_both_away() -> None:
    # 106 contacts, 100 by web chat: SMS withheld (5 or more) and Telegram "<5" would add
    # up to 6, so SMS 5 and Telegram 1. Web chat is withheld instead, and SMS can be shown.
    report = month_report(channel={"web": 100, "sms": 5, "telegram": 1})
    assert report["contacts"] == 106
    assert table(report, "channel") == {"web": "withheld", "sms": 5, "telegram": "<5"}
    assert every_reading(report, ["channel"])[("channel", "telegram")] == {1, 2, 3, 4}


def test_a_table_too_small_to_split_safely_shows_that_month_in_one_row() -> None:
    # Five at no risk and one at immediate risk: withholding the 5 as well would still say
    # "5 or more, and 1 to 4, making 6", so 5 and 1. The risk table is not split that month,
    # and shows no zeros, which would say no one was at those levels.
    report = month_report(
        channel={"web": 6}, risk={"none": 5, "immediate": 1}, hour={str(h): 1 for h in range(6)}
    )
    assert report["contacts"] == 6
    assert table(report, "risk") == {NOT_BROKEN_DOWN: 6}
    assert table(report, "hour") == {NOT_BROKEN_DOWN: 6}  # six hours of one contact each
    assert table(report, "channel") == {"web": 6}
    # Over two months: February's 9 at no risk, and March's six in one row, some of whom
    # may be at no risk too, so "at least 9".
    two = suppressed(
        cells_of(
            {
                "2026-02": {"channel": {"web": 9}, "risk": {"none": 9}},
                "2026-03": {"channel": {"web": 6}, "risk": {"none": 5, "immediate": 1}},
            }
        )
    )
    assert table(two, "risk") == {"none": "9+", NOT_BROKEN_DOWN: 6}


def test_a_month_without_small_counts_shows_every_count_as_it_is() -> None:
    month = {
        "channel": {"web": 40, "sms": 7, "telegram": 5},
        "journey": {"own": 30, "family": 12, "professional": 10},
        "risk": {"none": 45, "concern": 7},
    }
    report = month_report(**month)
    assert report["contacts"] == 52
    for dimension, counts in month.items():
        shown = {k: v for k, v in table(report, dimension).items() if v != 0}
        assert shown == counts


TABLES = {
    "channel": ("web", "sms", "whatsapp", "telegram"),
    "journey": ("own", "family", "victim", "professional", "welcome"),
    "language": ("en", "cy"),
    "risk": ("none", "concern", "suicide", "immediate"),
    "hour": ("9", "12", "17", "21", "23"),
}


def random_month(dice: random.Random) -> dict[str, dict[str, int]]:
    """One month's true counts: each table splits the same contacts, in pieces chosen to
    make the awkward counts (1, 4, 5, 6) common."""
    total = dice.choice((1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15, 20, 31, 102, 106))
    month = {}
    for dimension, values in TABLES.items():
        counts = dict.fromkeys(values, 0)
        left = total
        while left:
            piece = min(left, dice.choice((1, 1, 1, 2, 3, 4, 4, 5, 5, 6, 10, 40)))
            counts[dice.choice(values)] += piece
            left -= piece
        month[dimension] = {value: n for value, n in counts.items() if n}
    return month


def test_no_count_hidden_in_a_month_can_be_worked_out_whatever_the_counts() -> None:
    dice = random.Random(20261201)
    for _ in range(400):
        month = random_month(dice)
        total = sum(month["channel"].values())
        report = month_report(**month)
        readings = every_reading(report, list(TABLES))
        for dimension, counts in month.items():
            for row in report["tables"][dimension]:
                value, count = row["value"], row["count"]
                true = total if value == NOT_BROKEN_DOWN else counts.get(value, 0)
                possible = readings[(dimension, value)]
                assert true in possible, (dimension, row, month)  # what is shown is true
                if isinstance(count, str):
                    assert len(possible) > 1, (dimension, row, month, report)
            if min(counts.values()) >= 5:  # nothing small: nothing hidden
                assert {k: v for k, v in table(report, dimension).items() if v} == counts
