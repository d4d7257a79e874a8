"""Helpers for console tests: the app with the console plugged in, a logged-in HTTP client
and a reader for the console's websocket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

import channels
import handoff
from handoff import accounts
from helpline.app import STORE
from helpline.domain import InboundMessage
from tests.support import engine_of, running, settings_for

PLUGINS = (*channels.PLUGINS, *handoff.PLUGINS)
PASSWORD = "correct horse battery staple"


class Console:
    """One member of staff's browser, as far as the server can tell."""

    def __init__(self, url: str) -> None:
        self.url = url
        # Cookies for 127.0.0.1 need the "unsafe" jar (aiohttp refuses IP hosts otherwise).
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def close(self) -> None:
        await self.http.close()

    async def __aenter__(self) -> Console:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def login(self, name: str, password: str = PASSWORD, **extra: str) -> dict[str, Any]:
        async with self.http.post(
            f"{self.url}/console/login", json={"username": name, "password": password, **extra}
        ) as resp:
            data = await resp.json()
            assert resp.status == 200, data
            self.csrf = data["csrf"]
            return dict(data)

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.http.get(self.url + path) as resp:
            return resp.status, await resp.json()

    async def post(
        self, path: str, body: dict[str, Any] | None = None, *, csrf: str | None = None
    ) -> tuple[int, Any]:
        headers = {"X-CSRF-Token": self.csrf if csrf is None else csrf}
        async with self.http.post(self.url + path, json=body or {}, headers=headers) as resp:
            return resp.status, await resp.json()

    async def socket(self) -> aiohttp.ClientWebSocketResponse:
        return await self.http.ws_connect(self.url + "/console/ws", origin=self.url)


async def next_frame(
    ws: aiohttp.ClientWebSocketResponse,
    wanted: Callable[[dict[str, Any]], bool],
    seen: list[dict[str, Any]] | None = None,
    timeout: float = 10,
) -> dict[str, Any]:
    """Read frames until one matches; every frame read is appended to `seen`."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"socket closed: {msg.type} {msg.data}")
            frame = json.loads(msg.data)
            if seen is not None:
                seen.append(frame)
            if wanted(frame):
                return dict(frame)


async def close_code(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10) -> int:
    """Read (and drop) frames until the server closes the socket; the code it closed with."""
    async with asyncio.timeout(timeout):
        while (msg := await ws.receive()).type != aiohttp.WSMsgType.CLOSE:
            if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                raise AssertionError(f"the connection ended without a close frame: {msg}")
    return int(msg.data)


def waiting_refs(frame: dict[str, Any]) -> list[str]:
    return [item["reference"] for item in frame.get("waiting", [])]


async def add_staff(
    app: Any, name: str, role: str = "adviser", programme: str | None = None
) -> None:
    await accounts.add_user(app[STORE], name, role, PASSWORD, programme)


async def person_asks_for_adviser(app: Any, address: str, queue: str | None = None) -> str:
    """A person on the test channel says hello and asks for an adviser; returns the
    conversation id. With `queue`, an adviser's transfer is simulated by the handoff request."""
    engine = engine_of(app)
    accepted = await engine.handle(InboundMessage("test", address, "hello"))
    if queue is None:
        await engine.handle(InboundMessage("test", address, "adviser"))
    else:
        from helpline.app import ROUTING

        routing = app[ROUTING]
        async with engine.locks.hold(accepted.conversation_id):
            conv = await app[STORE].conversation(accepted.conversation_id)
            replies = await routing.request(conv, queue, "test")
            await app[STORE].save_turn(conv, [], replies)
    return accepted.conversation_id


@asynccontextmanager
async def console_service(
    database_url: str, tmp_path: Path, *staff: tuple[str, ...]
) -> AsyncIterator[tuple[Any, Any, str]]:
    """The service with the console, served on a loopback port, and these members of staff
    (name, and role and programme if not an adviser): (app, fake channel, url)."""
    async with running(settings_for(database_url, tmp_path), plugins=PLUGINS, serve=True) as (
        app,
        fake,
        url,
    ):
        for member in staff:
            await add_staff(app, *member)
        yield app, fake, url
