"""Console accounts: argon2 hashes, user rules, lock-out, TOTP, disabling and idle sessions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from sqlalchemy import select

import run
from handoff import accounts, live
from handoff.accounts import MAX_FAILURES, AccountError, LoginRefused
from handoff.console import THROTTLE, LoginThrottle
from handoff.models import SessionRow, UserRow
from helpline.app import STORE
from helpline.domain import utcnow
from tests.conftest import SERVICE_HASHER
from tests.console_support import (
    PASSWORD,
    PLUGINS,
    Console,
    add_staff,
    close_code,
    console_service,
    next_frame,
)
from tests.support import SECRET, Clock, running, settings_for


async def test_passwords_are_kept_only_as_argon2_hashes(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accounts, "_hasher", SERVICE_HASHER)  # the tests' own is cheaper
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS) as (app, _fake, _):
        await add_staff(app, "alice")
        async with app[STORE].session() as session:
            stored = await session.scalar(select(UserRow.password_hash))
        assert stored is not None and stored.startswith("$argon2id$")
        assert PASSWORD not in stored
        # At least OWASP's least cost for argon2id (19 MiB of memory, two passes).
        cost = dict(p.split("=") for p in stored.split("$")[3].split(","))
        assert int(cost["m"]) >= 19 * 1024 and int(cost["t"]) >= 2, cost
        user = await accounts.authenticate(app[STORE], "alice", PASSWORD, now=utcnow())
        assert user.name == "alice"
        users = await accounts.list_users(app[STORE])
        assert [(u.name, u.role, u.disabled) for u in users] == [("alice", "adviser", False)]


@pytest.mark.parametrize(
    ("name", "role", "password", "programme"),
    [
        ("bob", "adviser", "short", None),
        ("bob", "boss", PASSWORD, None),
        ("bob", "programme", PASSWORD, None),
        ("bob", "adviser", PASSWORD, "north"),
        ("<b>", "adviser", PASSWORD, None),
        ("pat", "programme", PASSWORD, "North Wales!"),
    ],
)
async def test_a_user_that_breaks_the_rules_is_not_added(
    sqlite_url: str, tmp_path: Path, name: str, role: str, password: str, programme: str | None
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS) as (app, _fake, _):
        with pytest.raises(AccountError):
            await accounts.add_user(app[STORE], name, role, password, programme)
        assert await accounts.list_users(app[STORE]) == []


async def test_the_same_name_cannot_be_added_twice(sqlite_url: str, tmp_path: Path) -> None:
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS) as (app, _fake, _):
        await add_staff(app, "alice")
        with pytest.raises(AccountError):
            await add_staff(app, "alice", "supervisor")


async def test_five_wrong_passwords_lock_the_account_for_fifteen_minutes(
    database_url: str, tmp_path: Path
) -> None:
    clock = Clock()
    settings = settings_for(database_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True, clock=clock) as (app, _fake, url):
        await add_staff(app, "alice")
        async with Console(url) as browser:
            login = f"{url}/console/login"
            statuses = []
            for _ in range(5):
                async with browser.http.post(
                    login, json={"username": "alice", "password": "wrong password!"}
                ) as resp:
                    statuses.append((resp.status, (await resp.json())["error"]))
            assert statuses == [(401, "invalid")] * 4 + [(429, "locked")]
            async with browser.http.post(
                login, json={"username": "alice", "password": PASSWORD}
            ) as resp:
                assert (resp.status, (await resp.json())["error"]) == (429, "locked")
            clock.now += timedelta(minutes=14)
            async with browser.http.post(
                login, json={"username": "alice", "password": PASSWORD}
            ) as resp:
                assert resp.status == 429
            clock.now += timedelta(minutes=2)
            await browser.login("alice")
            # An unknown name is refused exactly like a wrong password.
            async with browser.http.post(
                login, json={"username": "nobody", "password": PASSWORD}
            ) as resp:
                assert (resp.status, (await resp.json())["error"]) == (401, "invalid")


async def _login(app: Any, password: str, now: datetime) -> str:
    """How a login as alice ends: "ok", or the reason it was refused."""
    try:
        await accounts.authenticate(app[STORE], "alice", password, now=now)
    except LoginRefused as refused:
        return refused.reason
    return "ok"


def _checks_end_together(monkeypatch: pytest.MonkeyPatch, verify: Any, parties: int) -> None:
    """Hold each password check until `parties` have finished, then let them all go on at
    once: an attacker's parallel guesses, without waiting for the timing to line up."""
    barrier = asyncio.Barrier(parties)

    async def together(stored: str, password: str) -> bool:
        ok = await verify(stored, password)
        await barrier.wait()
        return bool(ok)

    monkeypatch.setattr(accounts, "_verify", together)


async def test_wrong_passwords_sent_all_at_once_still_lock_the_account(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each failure was counted by read-modify-write: parallel guesses overwrote each other's
    # count, so the account never locked however many were sent.
    verify, now = accounts._verify, datetime.now(UTC)
    async with running(settings_for(database_url, tmp_path), plugins=PLUGINS) as (app, _f, _u):
        await add_staff(app, "alice")
        _checks_end_together(monkeypatch, verify, MAX_FAILURES - 1)
        guesses = [_login(app, f"wrong password {i}", now) for i in range(MAX_FAILURES - 1)]
        assert await asyncio.gather(*guesses) == ["invalid"] * (MAX_FAILURES - 1)
        async with app[STORE].session() as session:
            row = await session.scalar(select(UserRow).where(UserRow.name == "alice"))
            assert row is not None
            assert (row.failed_logins, row.locked_until) == (MAX_FAILURES - 1, None)
        _checks_end_together(monkeypatch, verify, MAX_FAILURES)
        guesses = [_login(app, f"wrong password {i}", now) for i in range(MAX_FAILURES)]
        assert "locked" in await asyncio.gather(*guesses)
        monkeypatch.setattr(accounts, "_verify", verify)
        assert await _login(app, PASSWORD, now) == "locked"
        assert await _login(app, PASSWORD, now + accounts.LOCK_FOR + timedelta(seconds=1)) == "ok"


async def test_the_right_password_checked_while_the_account_locks_is_refused(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The lock was looked at only before the slow password check; a guess already past it
    # logged in even if parallel failures locked the account meanwhile.
    verify = accounts._verify
    checking, locked = asyncio.Event(), asyncio.Event()

    async def verify_once_locked(stored: str, password: str) -> bool:
        if password == PASSWORD:
            checking.set()
            await locked.wait()
        return await verify(stored, password)

    monkeypatch.setattr(accounts, "_verify", verify_once_locked)
    now = datetime.now(UTC)
    async with running(settings_for(database_url, tmp_path), plugins=PLUGINS) as (app, _f, _u):
        await add_staff(app, "alice")
        right = asyncio.create_task(_login(app, PASSWORD, now))
        await checking.wait()
        wrong = [_login(app, f"wrong password {i}", now) for i in range(MAX_FAILURES)]
        assert "locked" in await asyncio.gather(*wrong)
        locked.set()
        assert await right == "locked"


async def test_many_attempts_from_one_address_are_throttled(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        _fake,
        url,
    ):
        app[THROTTLE].limit = 4  # the real limit is 20; each refused guess costs an argon2 hash
        async with Console(url) as browser:
            seen = []
            for i in range(5):
                async with browser.http.post(
                    f"{url}/console/login", json={"username": f"user{i}", "password": "x"}
                ) as resp:
                    seen.append(resp.status)
        assert seen == [401] * 4 + [429]


async def test_a_supervisor_with_a_second_factor_needs_the_code(
    sqlite_url: str, tmp_path: Path
) -> None:
    # The wall clock, which the authenticator app's codes follow.
    settings = settings_for(sqlite_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True, clock=utcnow) as (app, _fake, url):
        await add_staff(app, "sam", "supervisor")
        await add_staff(app, "alice")
        with pytest.raises(AccountError):
            await accounts.enable_totp(app[STORE], "alice")
        uri = await accounts.enable_totp(app[STORE], "sam")
        secret = parse_qs(urlsplit(uri).query)["secret"][0]
        async with Console(url) as browser:
            login = f"{url}/console/login"
            body = {"username": "sam", "password": PASSWORD}
            async with browser.http.post(login, json=body) as resp:
                assert (resp.status, (await resp.json())["error"]) == (401, "code")
            async with browser.http.post(login, json={**body, "code": "000000"}) as resp:
                assert resp.status == 401
            data = await browser.login("sam", code=pyotp.TOTP(secret).now())
            assert data["role"] == "supervisor"


async def test_disabling_a_user_ends_their_session_at_once(sqlite_url: str, tmp_path: Path) -> None:
    async with running(settings_for(sqlite_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        _fake,
        url,
    ):
        await add_staff(app, "alice")
        async with Console(url) as alice:
            await alice.login("alice")
            assert (await alice.get("/console/api/me"))[0] == 200
            await accounts.disable_user(app[STORE], "alice")
            assert (await alice.get("/console/api/me"))[0] == 401
            async with alice.http.post(
                f"{url}/console/login", json={"username": "alice", "password": PASSWORD}
            ) as resp:
                assert resp.status == 401


async def test_a_new_password_or_second_factor_ends_the_sessions_opened_before_it(
    sqlite_url: str, tmp_path: Path
) -> None:
    # A reset password left an old, perhaps stolen, session cookie working for 12 hours.
    staff = (("alice",), ("sam", "supervisor"))
    async with console_service(sqlite_url, tmp_path, *staff) as (app, _fake, url):
        async with Console(url) as alice, Console(url) as sam:
            await alice.login("alice")
            await sam.login("sam")
            await accounts.set_password(app[STORE], "alice", "a different horse battery staple")
            await accounts.enable_totp(app[STORE], "sam")
            assert (await alice.get("/console/api/me"))[0] == 401
            assert (await sam.get("/console/api/me"))[0] == 401


@pytest.mark.parametrize(
    ("command", "role"), [("password", "adviser"), ("totp", "supervisor"), ("disable", "adviser")]
)
async def test_an_account_changed_from_the_command_line_is_logged_out_everywhere_at_once(
    pg_url: str,
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    role: str,
) -> None:
    # A new password or second factor left every session opened before it working, a
    # stolen cookie for up to 12 hours; and a live console stayed open until its next check
    # of the session, a minute later, even for a disabled account.
    settings = settings_for(pg_url, tmp_path, redis_url=redis_url, redis_prefix=redis_prefix)
    cli = ["--database-url", pg_url, "--data-dir", str(tmp_path), "--redis-url", redis_url]
    cli += ["--secret-key", SECRET]  # shared PostgreSQL and Redis: required
    cli += ["--redis-prefix", redis_prefix, "user", command, "kim"]
    new_password = "a different horse battery staple"
    monkeypatch.setenv("HELPLINE_NEW_PASSWORD", new_password)
    async with running(settings, plugins=PLUGINS, serve=True) as (app, _fake, url):
        await add_staff(app, "kim", role)
        async with Console(url) as kim:
            await kim.login("kim")
            ws = await kim.socket()
            await next_frame(ws, lambda f: f["type"] == "queue")
            assert await asyncio.to_thread(run.main, cli) == 0
            assert await close_code(ws, timeout=5) == live.UNAUTHORISED
            assert (await kim.get("/console/api/me"))[0] == 401
            if command == "password":
                await kim.login("kim", new_password)


async def test_an_idle_session_ends_after_an_hour(sqlite_url: str, tmp_path: Path) -> None:
    clock = Clock()
    settings = settings_for(sqlite_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True, clock=clock) as (app, _fake, url):
        await add_staff(app, "alice")
        async with Console(url) as alice:
            await alice.login("alice")
            clock.now += timedelta(minutes=59)
            assert (await alice.get("/console/api/me"))[0] == 200
            clock.now += timedelta(minutes=61)
            assert (await alice.get("/console/api/me"))[0] == 401


async def test_the_audit_log_is_kept_for_its_own_period_then_pruned(
    sqlite_url: str, tmp_path: Path
) -> None:
    from helpline.app import purge

    now = [datetime.now(UTC)]
    settings = settings_for(sqlite_url, tmp_path, audit_retention_days=365)
    async with running(settings, plugins=PLUGINS, clock=lambda: now[0]) as (app, _fake, _url):
        store = app[STORE]
        await accounts.audit(store, "alice", "view", None)
        now[0] += timedelta(days=364)
        await purge(app)  # transcripts are long gone by now; the audit log is not
        assert [e["actor"] for e in await accounts.audit_entries(store)] == ["alice"]
        now[0] += timedelta(days=2)
        await purge(app)
        assert await accounts.audit_entries(store) == []


async def test_ended_console_sessions_are_deleted_by_retention_and_live_ones_kept(
    database_url: str, tmp_path: Path
) -> None:
    # Sessions went only on logout, on disabling, or when their cookie came back: the login
    # and last-seen times of every other one were kept for good.
    from helpline.app import purge

    clock = Clock()
    settings = settings_for(database_url, tmp_path)
    async with running(settings, plugins=PLUGINS, clock=clock) as (app, _fake, _url):
        store = app[STORE]
        await add_staff(app, "alice")
        (alice,) = await accounts.list_users(store)
        now = clock.now
        await accounts.open_session(store, alice, now=now - timedelta(days=40))
        await accounts.open_session(store, alice, now=now - timedelta(minutes=61))  # idle
        await accounts.open_session(store, alice, now=now - accounts.SESSION_MAX)  # expired
        live_token, _ = await accounts.open_session(store, alice, now=now - timedelta(minutes=59))
        await purge(app)
        async with store.session() as session:
            kept = list(await session.scalars(select(SessionRow.id)))
        assert kept == [accounts._token_id(live_token)]
        assert await accounts.session_for(store, live_token, now=now) is not None


def test_the_login_throttle_forgets_addresses_once_their_window_has_passed() -> None:
    # Only the address trying now had its old attempts dropped, and its list was never
    # empty afterwards: every address that ever tried was remembered for good.
    now = [0.0]
    throttle = LoginThrottle(limit=2, window=300.0, clock=lambda: now[0])
    for address in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        assert throttle.allow(address)
    assert throttle.allow("192.0.2.1") and not throttle.allow("192.0.2.1")
    assert throttle.remembered() == 3
    now[0] += 301.0
    assert throttle.allow("198.51.100.7")
    assert throttle.remembered() == 1
    assert throttle.allow("192.0.2.1") and throttle.allow("192.0.2.1")
    assert not throttle.allow("192.0.2.1")


def test_the_login_throttle_remembers_a_bounded_number_of_addresses_within_a_window() -> None:
    throttle = LoginThrottle(limit=2, window=300.0, clock=lambda: 0.0, most=3)
    for n in range(10):
        assert throttle.allow(f"2001:db8::{n}")
    assert throttle.remembered() == 3
    assert throttle.allow("2001:db8::9") and not throttle.allow("2001:db8::9")
