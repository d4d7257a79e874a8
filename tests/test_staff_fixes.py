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

from handoff import accounts, live
from helpline.app import STORE
from helpline.metrics import queue_kind
from tests.console_support import PASSWORD, PLUGINS, Console, add_staff, close_code, next_frame
from tests.support import Clock, running, settings_for

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
