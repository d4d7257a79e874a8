"""Behind the reverse proxy: the client's address is believed only as the proxy forwards it.
Anything else (a client's own X-Forwarded-For, a header sent twice, something that is not an
address) is refused with 400 on every path, logged as one warning at most, never an address.

That the per-address limits key on the forwarded address is
tests/test_ratelimit.py::test_behind_a_proxy_new_chats_are_limited_per_client_not_for_everyone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict
from twilio.request_validator import RequestValidator

from helpline.app import ENGINE
from helpline.logs import setup_logging
from tests.loopback import loopback
from tests.support import log_text, running, settings_for

FIXTURES = Path(__file__).parent / "fixtures"
ACCOUNT = "AC" + "0" * 32
TWILIO_TOKEN = "twilio-test-token"
BOT_TOKEN = "123456:TEST-token_abc"
TELEGRAM_SECRET = "telegram-webhook-secret-0123456789"
PUBLIC = "https://helpline.example.org"

PROXY = "127.0.0.1"  # the tests connect from here: they are the proxy
CLIENT = "203.0.113.9"  # the person's address, as the proxy forwards it
SPOOFED = "198.51.100.7"  # an address the person's own X-Forwarded-For claims
ADDRESSES = (PROXY, CLIENT, SPOOFED)

# The web chat page, its socket, and the Twilio and Telegram webhooks.
PATHS = ("/", "/chat/ws", "/channels/twilio/sms", "/channels/telegram")

Headers = Sequence[tuple[str, str]]

# What the proxy passes on that does not come from it alone (docs/deployment.md).
REFUSED: dict[str, Headers] = {
    # A proxy that appends to the client's header instead of replacing it.
    "the client's own address before the proxy's": [("X-Forwarded-For", f"{SPOOFED}, {CLIENT}")],
    "two X-Forwarded-For headers": [("X-Forwarded-For", SPOOFED), ("X-Forwarded-For", CLIENT)],
    "not an address": [("X-Forwarded-For", f"{CLIENT} (home)")],
    "no X-Forwarded-For": [],
    "two schemes": [("X-Forwarded-For", CLIENT), ("X-Forwarded-Proto", "http, https")],
    "two hosts": [("X-Forwarded-For", CLIENT), ("X-Forwarded-Host", "evil.example, x.example")],
}
FORWARDED: Headers = [
    ("X-Forwarded-For", CLIENT),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "helpline.example.org"),
]


@asynccontextmanager
async def behind_the_proxy(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, proxy: str = PROXY
) -> AsyncIterator[tuple[web.Application, str, aiohttp.ClientSession]]:
    """The app with web chat, SMS and Telegram on, trusting `proxy` (by default this test)
    as its proxy, logging as in production (into caplog too)."""
    setup_logging("INFO")
    logging.getLogger().addHandler(caplog.handler)  # setup_logging replaced the handlers
    async with loopback(ACCOUNT, TWILIO_TOKEN, BOT_TOKEN) as lb:
        settings = settings_for(
            sqlite_url,
            tmp_path,
            trusted_proxies=proxy,
            twilio_account_sid=ACCOUNT,
            twilio_auth_token=TWILIO_TOKEN,
            twilio_from="+447700900000",
            twilio_api_base=lb.url,
            telegram_token=BOT_TOKEN,
            telegram_secret=TELEGRAM_SECRET,
            telegram_api_base=lb.url,
            public_url=PUBLIC,
        )
        async with (
            running(settings, serve=True) as (app, _fake, url),
            aiohttp.ClientSession() as http,
        ):
            yield app, url, http


async def send(http: aiohttp.ClientSession, url: str, path: str, forwarded: Headers) -> int:
    """One request to `path` in the shape its callers send (a browser, the chat page's
    socket, a signed Twilio webhook, Telegram's): the status it got, 101 for a socket that
    opened a chat."""
    headers = CIMultiDict(forwarded)
    if path == "/chat/ws":
        try:
            async with http.ws_connect(url + path, headers=headers) as ws:
                await ws.send_json({"type": "hello", "token": None, "lang": "en"})
                assert (await ws.receive_json(timeout=10))["type"] == "session"
                return 101
        except aiohttp.WSServerHandshakeError as refused:
            return refused.status
    if path == "/":
        headers["Accept"] = "text/html"
        async with http.get(url + path, headers=headers) as resp:
            return resp.status
    if path == "/channels/telegram":
        update = json.loads((FIXTURES / "telegram_text_message.json").read_text())
        headers["X-Telegram-Bot-Api-Secret-Token"] = TELEGRAM_SECRET
        async with http.post(url + path, json=update, headers=headers) as resp:
            return resp.status
    form = json.loads((FIXTURES / "twilio_sms_inbound.json").read_text())
    headers["X-Twilio-Signature"] = RequestValidator(TWILIO_TOKEN).compute_signature(
        PUBLIC + path, form
    )
    async with http.post(url + path, data=form, headers=headers) as resp:
        return resp.status


def assert_refused_quietly(statuses: dict[str, int], caplog: pytest.LogCaptureFixture) -> None:
    """Every path answered 400, with no ERROR logged, one WARNING at most for each request
    and no address in any log record."""
    assert statuses == {path: 400 for path in PATHS}
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) <= len(PATHS)
    assert all("refused by the proxy check" in r.getMessage() for r in warnings)
    for record in caplog.records:
        logged = log_text(record)
        for address in ADDRESSES:
            assert address not in logged, f"{record.name} logged {address}"


@pytest.mark.parametrize("forwarded", REFUSED.values(), ids=REFUSED.keys())
async def test_a_forwarded_address_the_proxy_did_not_give_alone_is_refused_without_an_error(
    forwarded: Headers, sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # aiohttp-remotes logged each of these as an ERROR, with every address it was sent:
    # anyone can send them, as often as they like. A spoofed address is never believed.
    async with behind_the_proxy(sqlite_url, tmp_path, caplog) as (app, url, http):
        statuses = {path: await send(http, url, path, forwarded) for path in PATHS}
        await app[ENGINE].drain()
    assert_refused_quietly(statuses, caplog)


async def test_a_request_that_did_not_come_through_the_proxy_is_refused_without_an_error(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Straight to the service, round the proxy, with the header the proxy would have set.
    elsewhere = "192.0.2.1"
    async with behind_the_proxy(sqlite_url, tmp_path, caplog, proxy=elsewhere) as (
        app,
        url,
        http,
    ):
        statuses = {path: await send(http, url, path, FORWARDED) for path in PATHS}
        async with http.get(f"{url}/healthz") as resp:
            assert resp.status == 200  # a balancer's health check is still answered
        await app[ENGINE].drain()
    assert_refused_quietly(statuses, caplog)
    assert all(elsewhere not in log_text(r) for r in caplog.records)


async def test_what_the_proxy_forwards_is_served_on_every_path_without_a_warning(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with behind_the_proxy(sqlite_url, tmp_path, caplog) as (app, url, http):
        statuses = {path: await send(http, url, path, FORWARDED) for path in PATHS}
        await app[ENGINE].drain()
    # The Twilio signature is still checked against the public URL, whatever scheme and host
    # the proxy forwards.
    assert statuses == {
        "/": 200,
        "/chat/ws": 101,
        "/channels/twilio/sms": 200,
        "/channels/telegram": 200,
    }
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    for record in caplog.records:
        assert CLIENT not in log_text(record)
