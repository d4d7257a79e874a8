"""The servers the load generator drives, each in a process of its own.

`echo`: raw aiohttp, no helpline code: a websocket that answers hello with session and
history frames and echoes every message frame, and an SMS webhook that parses the same form
and answers TwiML. `full`: the whole service built by run.py's build(), plus /bench/queue, a
websocket forwarding raw hub events on topic "queue" (the adviser console itself, /console/ws,
sends snapshots computed from them), and optionally an adviser account to log in with.
`bare`: the echo plus a little of the service's work and nothing else (bench/bare.py, for
bench.floor).

Prints one JSON line {"port": ...} once listening; stops on SIGTERM, when its standard input
closes (the load generator died) or after --deadline seconds, whichever comes first."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import sys
from pathlib import Path
from typing import Any

from bench.tree import isolate

TREE = isolate()

from aiohttp import WSMsgType, web  # noqa: E402

WELCOME = {"id": 1, "author": "bot", "text": "welcome", "options": ["1"]}
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Message>ok</Message></Response>'


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pin(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


# -- echo ----------------------------------------------------------------------------------


async def greet(ws: web.WebSocketResponse, conversation: str) -> None:
    """What the web chat answers a page's hello with: its session, then the history."""
    await ws.send_json({"type": "session", "token": "t" * 32, "conversation": conversation})
    await ws.send_json({"type": "history", "messages": [WELCOME]})


async def _echo_socket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=16 * 1024)
    await ws.prepare(request)
    n = 1
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            break
        frame = json.loads(msg.data)
        if frame.get("type") == "hello":
            await greet(ws, "ECHO")
        elif frame.get("type") == "message":
            n += 1
            await ws.send_json(
                {
                    "type": "message",
                    "id": n,
                    "author": "bot",
                    "text": frame["text"],
                    "options": ["1"],
                }
            )
    return ws


async def _echo_sms(request: web.Request) -> web.Response:
    form = await request.post()
    if not form.get("From") or not form.get("Body"):
        raise web.HTTPBadRequest()
    return web.Response(text=TWIML, content_type="application/xml")


def echo_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/chat/ws", _echo_socket)
    app.router.add_post("/sms", _echo_sms)
    return app


# -- the full service ----------------------------------------------------------------------


class _CountedNotEnforced:
    """The service's rate limiter, consulted as usual (so its cost is measured) but never
    refusing: every simulated person comes from the one loopback address."""

    def __init__(self, limiter: Any) -> None:
        self.limiter = limiter

    async def allow(self, key: str, limits: Any) -> bool:
        await self.limiter.allow(key, limits)
        return True

    async def refund(self, key: str, limits: Any) -> None:
        await self.limiter.refund(key, limits)


def _bench_console(app: web.Application, adviser: str | None) -> None:
    from helpline.app import ENGINE, HUB, STORE

    async def unlimited(app: web.Application) -> None:
        engine = app[ENGINE]
        if hasattr(engine, "limiter"):
            engine.limiter = _CountedNotEnforced(engine.limiter)

    app.on_startup.append(unlimited)

    async def add_adviser(app: web.Application) -> None:
        # An adviser account for the hand-off scenario, which logs in to the real console.
        from handoff import accounts

        assert adviser is not None
        name, password = adviser.split(":", 1)
        await accounts.add_user(app[STORE], name, "adviser", password)

    if adviser:
        app.on_startup.append(add_adviser)

    async def queue_events(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async with request.app[HUB].subscribe("queue") as events:
            await ws.send_json({"type": "ready"})
            async for event in events:
                await ws.send_json(event)
        return ws

    app.router.add_get("/bench/queue", queue_events)


def full_app(args: argparse.Namespace) -> web.Application:
    from helpline.config import Settings
    from helpline.logs import setup_logging
    from run import PLUGINS, build

    extra: dict[str, Any] = {}
    if args.redis_url:
        extra = {"redis_url": args.redis_url, "redis_prefix": args.redis_prefix}
    if args.twilio_api_base:
        extra |= {
            "twilio_account_sid": "AC" + "0" * 32,
            "twilio_auth_token": args.twilio_token,
            "twilio_from": "+447700900000",
            "twilio_api_base": args.twilio_api_base,
            "public_url": args.public_url,
        }
    settings = Settings(
        database_url=args.database_url,
        data_dir=Path(args.data_dir),
        secret_key="bench-secret-" + "x" * 40,
        port=0,
        log_level="INFO",
        **extra,
    )
    setup_logging(settings.log_level, settings.log_json)
    return build(settings, plugins=(*PLUGINS, lambda app: _bench_console(app, args.adviser)))


async def serve(args: argparse.Namespace) -> None:
    if args.mode == "echo":
        app = echo_app()
    elif args.mode == "bare":
        from bench.bare import bare_app

        app = bare_app(
            args.screen,
            args.store,
            args.service_store,
            sms_inline=args.sms_inline,
            twilio_api_base=args.twilio_api_base,
            twilio_token=args.twilio_token,
        )
    else:
        app = full_app(args)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=args.backlog)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(json.dumps({"port": port, "pid": os.getpid()}), flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    # The parent holds our stdin open; EOF means it has gone.
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not os.read(0, 1) else None)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), args.deadline)
    await runner.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("mode", choices=("echo", "bare", "full"))
    p.add_argument("--screen", action="store_true", help="bare: screen each message for risk")
    p.add_argument("--store", default=None, help="bare: store each message in SQLite here")
    p.add_argument("--service-store", default=None, help="bare: the service's store, here")
    p.add_argument("--sms-inline", action="store_true", help="bare: answer texts in TwiML")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--backlog", type=int, default=1024)
    p.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    p.add_argument("--deadline", type=float, default=600.0)
    p.add_argument("--database-url", default=None)
    p.add_argument("--data-dir", default=".")
    p.add_argument("--redis-url", default=None)
    p.add_argument("--redis-prefix", default="bench:")
    p.add_argument("--twilio-api-base", default=None)
    p.add_argument("--twilio-token", default="bench-token-" + "y" * 20)
    p.add_argument("--public-url", default=None)
    p.add_argument("--adviser", default=None, help="name:password of an adviser to create")
    p.add_argument("--cprofile", default=None, help="write cProfile stats here on stopping")
    args = p.parse_args()
    raise_fd_limit()
    pin(args.cpu)
    profiler = None
    if args.cprofile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        if args.loop == "uvloop":
            import uvloop

            uvloop.run(serve(args))
        else:
            asyncio.run(serve(args))
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.cprofile)


if __name__ == "__main__":
    main()
