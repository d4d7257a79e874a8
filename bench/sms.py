"""SMS webhooks: signed Twilio webhooks posted by simulated phones, each waiting for its
answer, against the full service and against a raw aiohttp handler that parses the same form
and answers TwiML.

The service answers a webhook with an empty TwiML and sends its replies through Twilio's REST
API, here a loopback stand-in (HELPLINE_TWILIO_API_BASE) in the load generator's process: an
exchange ends when the turn's last reply (the one listing numbered options) reaches it."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web
from twilio.request_validator import RequestValidator

from bench import load

if TYPE_CHECKING:
    from bench.run import Bench

PHONES = 50
TOKEN = "bench-token-" + "y" * 20
OPTIONS = "\n1. "  # channels/texting.py numbers the options of a turn's last reply


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TwilioStandIn:
    """Answers Messages.json like Twilio does (201 and a message resource), and tells the
    phone waiting on a number when its turn's last reply has come."""

    def __init__(self) -> None:
        self.sent = 0
        self.waiting: dict[str, asyncio.Future[None]] = {}
        self.runner: web.AppRunner | None = None
        self.base = ""

    def expect(self, number: str) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting[number] = done
        return done

    async def create(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.sent += 1
        if OPTIONS in str(form.get("Body", "")):
            done = self.waiting.pop(str(form.get("To", "")), None)
            if done is not None and not done.done():
                done.set_result(None)
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


def signer(url: str) -> Callable[[dict[str, str]], str]:
    """The same signing work for both servers (the raw handler does not check it)."""
    validator = RequestValidator(TOKEN)
    return lambda form: str(validator.compute_signature(url, form))


def measure(bench: Bench, kind: str) -> dict[str, float]:
    from bench.run import Backend

    seconds = bench.args.seconds
    with bench.echo() as echo:
        url = f"{echo.base}/sms"
        e = bench.run_async(load.sms_load(url, signer(url), PHONES, seconds))

    async def full_run(backend: list[str]) -> tuple[load.SmsResult, int]:
        async with TwilioStandIn() as twilio:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            url = f"{base}/channels/twilio/sms"
            extra = [
                "--port", str(port), "--public-url", base,
                "--twilio-api-base", twilio.base, "--twilio-token", TOKEN,
            ]  # fmt: skip
            loop = asyncio.get_running_loop()
            running = bench.full([*backend, *extra])
            running.__enter__()
            try:
                result = await load.sms_load(url, signer(url), PHONES, seconds, twilio.expect)
            finally:
                # Stop the server off the loop: the stand-in must keep answering its last sends.
                await loop.run_in_executor(None, running.__exit__, None, None, None)
            return result, twilio.sent

    with Backend(kind, bench.workdir) as backend:
        f, replies = bench.run_async(full_run(backend))
    return {
        "echo": e.rate,
        "echo_p99": 1000 * load.percentile(e.latencies, 99),
        "full": f.rate,
        "p50": 1000 * load.percentile(f.latencies, 50),
        "p99": 1000 * load.percentile(f.latencies, 99),
        "ack_p99": 1000 * load.percentile(f.acks, 99),
        "ratio": f.rate / e.rate if e.rate else float("nan"),
        "bad": f.bad + e.bad,
        "lost": f.lost + e.lost,
        "replies": replies,
    }
