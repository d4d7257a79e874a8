"""A recording loopback server for the SaaS we cannot reach in tests: it answers in the
Twilio REST shape (POST /2010-04-01/Accounts/{sid}/Messages.json) and the Telegram Bot API
shape (POST /bot<token>/<method>), records every call, and can be told to fail the next one."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_USER = {
    "id": 7000000001,
    "is_bot": True,
    "first_name": "Helpline",
    "username": "helpline_test_bot",
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}


@dataclass(frozen=True)
class Call:
    service: str  # "twilio" or "telegram"
    method: str  # "Messages.json" or a Bot API method name such as "sendMessage"
    params: dict[str, Any]


@dataclass
class Loopback:
    account_sid: str
    auth_token: str
    bot_token: str
    url: str = ""
    calls: list[Call] = field(default_factory=list)
    twilio_failures: deque[tuple[int, int]] = field(default_factory=deque)
    telegram_failures: deque[tuple[int, str]] = field(default_factory=deque)
    telegram_down: bool = False  # every Bot API call answers 502 Bad Gateway while True
    updates: list[dict[str, Any]] = field(default_factory=list)
    sids: list[str] = field(default_factory=list)  # Twilio message SIDs handed out, in order
    hold_twilio: asyncio.Event | None = None  # when set to an Event, answers wait for it
    held_sids: list[str] = field(default_factory=list)  # the SIDs answers held will give
    _update_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(100))

    # -- what a test reads -----------------------------------------------------------------

    def twilio_sent(self, to: str | None = None) -> list[dict[str, Any]]:
        return [
            c.params
            for c in self.calls
            if c.service == "twilio" and (to is None or c.params.get("To") == to)
        ]

    def sms_bodies(self, to: str | None = None) -> list[str]:
        return [p["Body"] for p in self.twilio_sent(to)]

    def telegram(self, method: str) -> list[dict[str, Any]]:
        return [c.params for c in self.calls if c.service == "telegram" and c.method == method]

    def telegram_texts(self) -> list[str]:
        return [str(p["text"]) for p in self.telegram("sendMessage")]

    # -- what a test arranges --------------------------------------------------------------

    def fail_twilio(self, code: int, status: int = 400) -> None:
        """The next Messages.json call answers with this Twilio error."""
        self.twilio_failures.append((status, code))

    def fail_telegram(self, error_code: int, description: str) -> None:
        self.telegram_failures.append((error_code, description))

    def queue_update(self, update: dict[str, Any]) -> None:
        """For getUpdates (polling)."""
        self.updates.append(update)
        self._update_arrived.set()

    # -- the server ------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._twilio_message)
        app.router.add_post("/bot{token}/{method}", self._telegram)
        return app

    async def _twilio_message(self, request: web.Request) -> web.Response:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return _twilio_error(401, 20003, "Authenticate")
        form = dict(await request.post())
        params = {k: str(v) for k, v in form.items()}
        self.calls.append(Call("twilio", "Messages.json", params))
        sid = "SM" + secrets.token_hex(16)
        if self.hold_twilio is not None:
            # Twilio being slow: the client must give up, or a report may come first.
            self.held_sids.append(sid)
            await self.hold_twilio.wait()
            self.held_sids.remove(sid)
        if self.twilio_failures:
            status, code = self.twilio_failures.popleft()
            return _twilio_error(status, code, "Refused by the loopback")
        self.sids.append(sid)
        now = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
        return web.json_response(
            {
                "account_sid": self.account_sid,
                "api_version": "2010-04-01",
                "body": params.get("Body"),
                "date_created": now,
                "date_sent": None,
                "date_updated": now,
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": params.get("From"),
                "messaging_service_sid": params.get("MessagingServiceSid"),
                "num_media": "0",
                "num_segments": "1",
                "price": None,
                "price_unit": "USD",
                "sid": sid,
                "status": "queued",
                "subresource_uris": {},
                "to": params.get("To"),
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
            },
            status=201,
        )

    async def _telegram(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.bot_token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        method = request.match_info["method"]
        params = await _telegram_params(request)
        self.calls.append(Call("telegram", method, params))
        if self.telegram_down:
            return web.json_response(
                {"ok": False, "error_code": 502, "description": "Bad Gateway"}, status=502
            )
        if self.telegram_failures and method == "sendMessage":
            code, description = self.telegram_failures.popleft()
            answer: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
            if code == 429:  # flood control: Telegram says when to try again
                after = description.rpartition(" ")[2]
                answer["parameters"] = {"retry_after": int(after) if after.isdigit() else 1}
            return web.json_response(answer, status=code)
        if method == "getMe":
            return _ok(BOT_USER)
        if method == "sendMessage":
            return _ok(
                {
                    "message_id": next(self._ids),
                    "date": int(time.time()),
                    "chat": {"id": int(params["chat_id"]), "type": "private"},
                    "from": BOT_USER,
                    "text": params.get("text"),
                }
            )
        if method == "getUpdates":
            return _ok(await self._get_updates(params))
        if method in (
            "answerCallbackQuery",
            "setWebhook",
            "deleteWebhook",
            "deleteMessage",
            "deleteMessages",
        ):
            return _ok(True)
        return web.json_response(
            {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
        )

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        ready = [u for u in self.updates if u["update_id"] >= offset]
        if not ready:
            # Long polling, as Telegram does (kept short so a test ends promptly).
            self._update_arrived.clear()
            try:
                await asyncio.wait_for(self._update_arrived.wait(), 0.5)
            except TimeoutError:
                return []
            ready = [u for u in self.updates if u["update_id"] >= offset]
        return ready


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _twilio_error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status=status,
    )


async def _telegram_params(request: web.Request) -> dict[str, Any]:
    """PTB sends JSON-encoded values in a form (or JSON); decode either to plain values."""
    if request.content_type == "application/json":
        data = await request.json()
        return dict(data) if isinstance(data, dict) else {}
    form = await request.post()
    params: dict[str, Any] = {}
    for key, value in form.items():
        try:
            params[key] = json.loads(str(value))
        except json.JSONDecodeError:
            params[key] = str(value)
    return params


@asynccontextmanager
async def loopback(
    account_sid: str = "AC" + "0" * 32,
    auth_token: str = "twilio-test-token",  # noqa: S107 - a test double's fake token
    bot_token: str = "",
) -> AsyncIterator[Loopback]:
    """A started loopback on a free port; `.url` is its base URL."""
    server = Loopback(account_sid, auth_token, bot_token or "123456:TEST-token_abc")
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()
