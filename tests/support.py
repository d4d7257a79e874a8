"""Test support: run the real app in-process and record what channels would have sent."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import redis.asyncio as redis
from aiohttp import web
from redis.backoff import NoBackoff
from redis.retry import Retry

from helpline.app import ENGINE, SENDERS
from helpline.config import Settings
from helpline.content import DEFAULT_ROOT
from helpline.domain import OutboundMessage
from helpline.engine import Engine
from helpline.errors import QueueError
from helpline.hours import OpeningHours
from run import PLUGINS, build

SECRET = "test-secret-" + "x" * 40


def _open_noon() -> datetime:
    """Midday in London on the latest day on or before today when every queue is open
    (content/hours.yaml: a weekday that is no bank holiday)."""
    hours = OpeningHours.load(DEFAULT_ROOT)
    london = ZoneInfo("Europe/London")
    now = datetime.now(london)
    day = now.date()
    while True:
        noon = datetime.combine(day, clock_time(12), london)
        if noon <= now and all(hours.is_open(q, noon) for q in ("helpline", "family", "programme")):
            return noon.astimezone(UTC)
        day -= timedelta(days=1)


OPEN_NOON = _open_noon()
_STARTED = time.monotonic()


def open_clock() -> datetime:
    """The app's default clock in tests: real time passing, but from a moment when the lines
    are open and no quiet-hours window set in a test applies (the wall clock would make
    hand-off tests fail at night and on Sundays). In the past, so nothing looks idle."""
    return OPEN_NOON + timedelta(seconds=time.monotonic() - _STARTED)


class Clock:
    """A clock a test moves by hand (`clock.now += timedelta(...)`); starts now by default."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def settings_for(database_url: str, tmp: Path, **extra: Any) -> Settings:
    return Settings(database_url=database_url, data_dir=tmp, secret_key=SECRET, port=0, **extra)


class FakeChannel:
    """A channel that records what it would have sent (for core tests with no transport)."""

    def __init__(self, name: str = "test") -> None:
        self.name = name
        self.sent: list[OutboundMessage] = []
        self.arrived = asyncio.Event()

    async def send(self, message: OutboundMessage) -> str | None:
        self.sent.append(message)
        self.arrived.set()
        return f"fake-{len(self.sent)}"

    def texts(self, address: str | None = None) -> list[str]:
        return [m.reply.text for m in self.sent if address is None or m.address == address]


@asynccontextmanager
async def running(
    settings: Settings,
    *,
    journeys: Sequence[Any] | None = None,
    plugins: Sequence[Callable[[web.Application], None]] = PLUGINS,
    serve: bool = False,
    clock: Callable[[], Any] | None = None,
) -> AsyncIterator[tuple[web.Application, FakeChannel, str]]:
    """The whole app started (resources up); with serve=True also listening on a free port."""
    kwargs: dict[str, Any] = {"plugins": plugins, "clock": open_clock}
    if journeys is not None:
        kwargs["journeys"] = journeys
    if clock is not None:
        kwargs["clock"] = clock
    app = build(settings, **kwargs)
    fake = FakeChannel()
    app[SENDERS][fake.name] = fake
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    url = ""
    try:
        if serve:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            url = f"http://127.0.0.1:{port}"
        yield app, fake, url
    finally:
        await runner.cleanup()


def engine_of(app: web.Application) -> Engine:
    return app[ENGINE]


async def wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> None:
    """Wait until condition() is truthy (polling a cheap in-memory check), or fail."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """Await check() until it returns something truthy (a condition, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


# When, where and in which thread a record was made: numbers that say nothing about anyone,
# and that now and then contain any given run of digits (a phone number's last six, say).
_RECORD_METADATA = {"created", "msecs", "relativeCreated", "thread", "process", "lineno"}


def log_text(record: logging.LogRecord) -> str:
    """Everything a log record could carry from a person: its message and every attribute
    but the record's own time, place and thread numbers."""
    kept = {k: v for k, v in record.__dict__.items() if k not in _RECORD_METADATA}
    return f"{record.getMessage()} {kept!r}"


class QueueThatCannotEnqueue:
    """The app's real queue, except that while `down` adding to it fails as a queue that has
    lost Redis does (RedisQueue turns that into a QueueError)."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.down = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.queue, name)

    async def enqueue(self, entry: Any) -> None:
        if self.down:
            raise QueueError("the routing queue is unavailable")
        await self.queue.enqueue(entry)


def redis_not_answering() -> redis.Redis:
    """A client for a port nothing listens on: every command fails, as in a Redis outage."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return redis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))


class HubLink:
    """The live-events subscription of an app running with a given Redis key prefix, as Redis
    sees it (the connection is named "<prefix>hub"): a test can cut that one connection,
    as a network fault or a Redis fail-over would, without touching anyone else's."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.name = f"{prefix}hub"

    async def _ids(self) -> list[int]:
        clients = await self.client.client_list(_type="pubsub")
        return [int(c["id"]) for c in clients if c.get("name") == self.name]

    async def subscribed(self) -> bool:
        return bool(await self._ids())

    async def cut(self) -> None:
        ids = await self._ids()
        assert ids, f"no subscription named {self.name}"
        for client_id in ids:
            await self.client.client_kill_filter(_id=client_id)

    @asynccontextmanager
    async def cut_off(self, hub: Any) -> AsyncIterator[None]:
        """Cut the subscription, and keep `hub` (the app's RedisHub) from subscribing again
        until the block ends: whatever the block publishes reaches no one, however long it
        takes. (By itself the hub is back after a pause of a second, which a few turns on
        a busy machine, or a slow Redis, can outlast.)"""
        back = asyncio.Event()
        listen_once = hub._listen_once

        async def after_the_gap() -> None:
            await back.wait()
            await listen_once()

        hub._listen_once = after_the_gap  # the hub's next try at subscribing waits for `back`
        try:
            await self.cut()
            yield
            assert not await self.subscribed(), "the hub subscribed again inside the gap"
        finally:
            del hub._listen_once
            back.set()


@asynccontextmanager
async def hub_link(redis_url: str, prefix: str) -> AsyncIterator[HubLink]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield HubLink(client, prefix)
    finally:
        await client.aclose()


class LoopbackProxy:
    """A loopback proxy to a local server (PostgreSQL, Redis) that can hold each packet a
    while (long enough to cancel a statement while it is on the wire), or be cut off for a
    moment as a network blip or a fail-over would: open connections dropped and new ones
    refused until `cut` is false again."""

    def __init__(self, port: int, *, delay: float = 0.0) -> None:
        self._port = port
        self._delay = delay
        self._open: set[asyncio.StreamWriter] = set()
        self.cut = False
        # Frozen: what is sent is dropped and nothing is closed, as on a connection that died
        # without a word (a phone changing network); new connections are refused meanwhile.
        self.frozen = False
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        """Start listening; the port to connect to instead of the server's."""
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    def cut_off(self) -> None:
        self.cut = True
        for writer in list(self._open):
            writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while not self.cut and (data := await reader.read(65536)):
                if self.frozen:
                    continue
                if self._delay:
                    await asyncio.sleep(self._delay)
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.cut or self.frozen:
            client_w.close()
            return
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self._port)
        self._open |= {client_w, server_w}
        try:
            await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w))
        finally:
            self._open -= {client_w, server_w}
