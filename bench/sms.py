"""SMS webhooks: signed Twilio webhooks posted back to back by simulated phones, against the
full service and against a raw aiohttp handler that parses the same form and answers TwiML.

The service's replies go to a loopback stand-in for Twilio's REST API (HELPLINE_TWILIO_API_BASE)
running in the load generator's process, which counts them."""

from __future__ import annotations

import asyncio
import secrets
import socket
from typing import TYPE_CHECKING, Any

from aiohttp import web
from twilio.request_validator import RequestValidator

from bench import load

if TYPE_CHECKING:
    from bench.run import Bench

PHONES = 50
TOKEN = "bench-token-" + "y" * 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TwilioStandIn:
    """Answers Messages.json like Twilio does (201 and a message resource)."""

    def __init__(self) -> None:
        self.sent = 0
        self.runner: web.AppRunner | None = None
        self.base = ""

    async def create(self, request: web.Request) -> web.Response:
        await request.post()
        self.sent += 1
        sid = "SM" + secrets.token_hex(16)
        return web.json_response({"sid": sid, "status": "queued"}, status=201)

    async def __aenter__(self) -> TwilioStandIn:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", self.create)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


def measure(bench: Bench, kind: str) -> dict[str, float]:
    from bench.run import Backend

    seconds = bench.args.seconds
    with bench.echo() as echo:
        e, _, _ = asyncio.run(load.sms_load(f"{echo.base}/sms", lambda form: None, PHONES, seconds))

    async def full_run(backend: list[str]) -> tuple[float, int, int, int]:
        async with TwilioStandIn() as twilio:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            url = f"{base}/channels/twilio/sms"
            validator = RequestValidator(TOKEN)

            def sign(form: dict[str, Any]) -> str:
                return str(validator.compute_signature(url, form))

            extra = [
                "--port", str(port), "--public-url", base,
                "--twilio-api-base", twilio.base, "--twilio-token", TOKEN,
            ]  # fmt: skip
            loop = asyncio.get_running_loop()
            running = bench.full([*backend, *extra])
            running.__enter__()
            try:
                before = twilio.sent
                rate, ok, bad = await load.sms_load(url, sign, PHONES, seconds)
                replies = twilio.sent - before
            finally:
                # Stop the server off the loop: the stand-in must keep answering its last sends.
                await loop.run_in_executor(None, running.__exit__, None, None, None)
            return rate, ok, bad, replies

    with Backend(kind, bench.workdir) as backend:
        f, _ok, bad, replies = asyncio.run(full_run(backend))
    return {"echo": e, "full": f, "ratio": f / e, "bad": bad, "replies": replies}
