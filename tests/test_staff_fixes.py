"""Staff-side fixes: labels without staff names, the idle timeout with a console tab open,
one-time codes used once, conversations held by an adviser who has gone, withdrawn
referral consent, and waiting people after Redis comes back empty."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from handoff import live
from helpline.metrics import queue_kind
from tests.console_support import PLUGINS, Console, add_staff, close_code, next_frame
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
