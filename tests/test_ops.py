"""Operating it: metrics without personal data, health and readiness, draining."""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
import pytest

from helpline.app import DRAINING, ENGINE
from helpline.domain import InboundMessage
from helpline.logs import setup_logging
from tests.support import running, settings_for

PHONE = "+447700900321"


async def test_metrics_count_messages_and_carry_no_personal_data(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _fake, url):
        await app[ENGINE].handle(InboundMessage("test", PHONE, "my secret words"))
        await app[ENGINE].handle(InboundMessage("test", PHONE, "talk to someone"))
        async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as resp:
            body = await resp.text()
        assert resp.status == 200
        assert 'helpline_messages_in_total{channel="test"} 2.0' in body
        assert 'helpline_queue_depth{queue="helpline"} 1.0' in body
        assert 'helpline_handoffs_total{queue="helpline",reason="asked"} 1.0' in body
        assert PHONE not in body and PHONE[1:] not in body
        assert "secret words" not in body


async def test_health_and_readiness_answer_and_readiness_turns_off_when_draining(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path), serve=True) as (app, _fake, url):
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/healthz") as resp:
                assert resp.status == 200
                assert (await resp.json())["status"] == "ok"
            async with http.get(f"{url}/readyz") as resp:
                assert resp.status == 200
            app[DRAINING][0] = True
            async with http.get(f"{url}/readyz") as resp:
                assert resp.status == 503
            async with http.get(f"{url}/healthz") as resp:
                assert resp.status == 200


@pytest.mark.parametrize("as_json", [False, True])
async def test_logs_of_a_journey_hold_no_address_and_no_message_text(
    as_json: bool, sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    setup_logging("DEBUG", as_json)
    logging.getLogger().addHandler(caplog.handler)  # setup_logging replaced the handlers
    async with running(settings_for(sqlite_url, tmp_path)) as (app, _fake, _):
        engine = app[ENGINE]
        for text in ("hello there", "1", "I want to kill myself", "talk to someone", "stop"):
            await engine.handle(InboundMessage("test", PHONE, text))
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert PHONE not in logged and PHONE[1:] not in logged
    for text in ("hello there", "kill myself", "talk to someone"):
        assert text not in logged
