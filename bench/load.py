"""The load generator's scenarios: each drives one server (echo or full) over loopback and
returns plain numbers. The same client code drives both servers."""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.stats import percentile

__all__ = ["percentile"]

# "menu" is a command (back to the welcome's question), "1" a numbered option that fires a
# transition into another journey: a turn that runs the flow machine, and one that does not.
CYCLE = ("menu", "1")
TURN_TIMEOUT = 15.0
BURST_PATIENCE = 60.0
CONSOLE_COOKIE = "helpline_console"


class Lost(Exception):
    """No reply in time: the conversation is counted as lost."""


# What can end one simulated person's conversation: counted as lost, never ends the run.
ENDED = (Lost, aiohttp.ClientError, ConnectionError, TimeoutError, RuntimeError)


@dataclass
class Chat:
    """One person on the web chat."""

    ws: aiohttp.ClientWebSocketResponse
    welcomed: bool = False
    n: int = 0
    reference: str = ""

    @classmethod
    async def open(
        cls, session: aiohttp.ClientSession, base: str, patience: float = TURN_TIMEOUT
    ) -> Chat:
        async with asyncio.timeout(patience):  # the connection and handshake included
            ws = await session.ws_connect(f"{base}/chat/ws", max_msg_size=0, autoping=True)
            chat = cls(ws)
            await ws.send_json({"type": "hello", "token": None, "lang": "en"})
            while True:
                frame = await chat.frame(patience)
                if frame.get("type") == "session":
                    chat.reference = str(frame.get("conversation", ""))
                if frame.get("type") == "history":
                    chat.welcomed = any(m.get("author") == "bot" for m in frame["messages"])
                    return chat

    async def frame(self, timeout: float = TURN_TIMEOUT) -> dict[str, Any]:
        try:
            msg = await self.ws.receive(timeout=timeout)
        except TimeoutError:
            raise Lost("no frame in time") from None
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise Lost(f"socket ended: {msg.type!r} {msg.data!r} {msg.extra!r}")
        frame: dict[str, Any] = json.loads(msg.data)
        return frame

    async def first_message(self) -> dict[str, Any]:
        while True:
            frame = await self.frame()
            if frame.get("type") == "message":
                return frame

    async def turn(self, text: str) -> float:
        """Send, return seconds to the first reply, then read on to the end of the reply
        (the frame that carries quick replies), so the next turn starts clean."""
        self.n += 1
        sent = time.perf_counter()
        await self.ws.send_json({"type": "message", "text": text, "id": secrets.token_hex(16)})
        frame = await self.first_message()
        latency = time.perf_counter() - sent
        while not frame.get("options"):
            frame = await self.first_message()
        return latency

    async def close(self) -> None:
        await self.ws.close()


def session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    return aiohttp.ClientSession(connector=connector)


async def open_many(
    http: aiohttp.ClientSession, base: str, count: int, parallel: int = 100
) -> list[Chat]:
    """Open `count` chats, `parallel` at a time; those that fail to open are left out (the
    caller counts them as lost)."""
    gate = asyncio.Semaphore(parallel)

    async def one() -> Chat | None:
        async with gate:
            try:
                return await Chat.open(http, base)
            except ENDED:
                return None

    return [c for c in await asyncio.gather(*(one() for _ in range(count))) if c is not None]


@dataclass
class ChatResult:
    conversations: int
    seconds: float
    turns: int
    latencies: list[float] = field(repr=False)
    lost: int

    @property
    def rate(self) -> float:
        return self.turns / self.seconds

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1000


async def chat_load(
    base: str, conversations: int, seconds: float, warmup: float = 2.0, cycle: Sequence[str] = CYCLE
) -> ChatResult:
    """C conversations, each sending and waiting for the reply, for warmup + seconds; only
    turns that end inside the measured window count."""
    async with session() as http:
        chats = await open_many(http, base, conversations)
        start = time.perf_counter() + warmup
        end = start + seconds
        latencies: list[float] = []
        lost = conversations - len(chats)

        async def run(chat: Chat, offset: int) -> None:
            nonlocal lost
            i = offset
            try:
                while time.perf_counter() < end:
                    latency = await chat.turn(cycle[i % len(cycle)])
                    i += 1
                    if start <= time.perf_counter() <= end:
                        latencies.append(latency)
            except ENDED:
                lost += 1

        await asyncio.gather(*(run(c, i) for i, c in enumerate(chats)))
        await asyncio.gather(*(c.close() for c in chats), return_exceptions=True)
    return ChatResult(conversations, seconds, len(latencies), latencies, lost)


# -- hand-off under load ---------------------------------------------------------------------


@dataclass
class HandoffResult:
    load: ChatResult
    console: list[float] = field(repr=False)  # risk message -> queue snapshot on the console
    hub: list[float] = field(repr=False)  # risk message -> raw "joined" event on the hub
    missed: int = 0


async def console_cookie(http: aiohttp.ClientSession, base: str, name: str, password: str) -> str:
    """Log in to the adviser console as a person would; the session cookie's value."""
    async with http.post(
        f"{base}/console/login", json={"username": name, "password": password}
    ) as resp:
        if resp.status != 200:
            raise RuntimeError(f"console login refused: HTTP {resp.status}")
        return resp.cookies[CONSOLE_COOKIE].value


async def handoff_under_load(
    base: str, conversations: int, seconds: float, risk_text: str, adviser: tuple[str, str]
) -> HandoffResult:
    """Chat load as above while, one at a time, a new person sends a risk message. Each
    sample is the time until a logged-in adviser's console socket (/console/ws) shows that
    conversation in its queue snapshot: what an adviser actually sees. The raw hub event
    (/bench/queue) is timed beside it, to show what the snapshot itself costs."""
    result = HandoffResult(ChatResult(conversations, seconds, 0, [], 0), [], [])
    joined: list[float] = []

    async def hub_events(hub: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in hub:
            if msg.type == aiohttp.WSMsgType.TEXT and json.loads(msg.data).get("type") == "joined":
                joined.append(time.perf_counter())

    async def on_console(console: aiohttp.ClientWebSocketResponse, reference: str) -> bool:
        while True:
            frame = await console.receive_json(timeout=TURN_TIMEOUT)
            if frame.get("type") == "queue" and any(
                item.get("reference") == reference for item in frame.get("waiting", ())
            ):
                return True

    async def sampler() -> None:
        async with session() as http:
            cookie = await console_cookie(http, base, *adviser)
            console = await http.ws_connect(
                f"{base}/console/ws", headers={"Cookie": f"{CONSOLE_COOKIE}={cookie}"}
            )
            hub = await http.ws_connect(f"{base}/bench/queue")
            await hub.receive_json()  # ready
            listening = asyncio.create_task(hub_events(hub))
            await asyncio.sleep(2.0)  # the load's warm-up
            deadline = time.perf_counter() + seconds - 1.0
            while time.perf_counter() < deadline:
                try:
                    chat = await Chat.open(http, base)
                except ENDED:
                    result.missed += 1
                    continue
                sent = time.perf_counter()
                await chat.ws.send_json(
                    {"type": "message", "text": risk_text, "id": secrets.token_hex(16)}
                )
                try:
                    await on_console(console, chat.reference)
                    result.console.append(time.perf_counter() - sent)
                    first = next((t for t in joined if t >= sent), None)
                    if first is not None:
                        result.hub.append(first - sent)
                except (TimeoutError, *ENDED):
                    result.missed += 1
                await chat.close()
                await asyncio.sleep(0.05)
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
            await hub.close()
            await console.close()

    result.load, _ = await asyncio.gather(chat_load(base, conversations, seconds), sampler())
    return result


# -- arrivals ------------------------------------------------------------------------------


@dataclass
class BurstResult:
    people: int
    welcomed: int
    waits: list[float] = field(repr=False)
    spread: float

    def _everyone(self) -> list[float]:
        # Someone never welcomed waited for ever: they count, as infinity, in the percentiles.
        return self.waits + [math.inf] * (self.people - self.welcomed)

    @property
    def p50_ms(self) -> float:
        return percentile(self._everyone(), 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self._everyone(), 99) * 1000


async def burst(
    base: str, people: int, within: float, patience: float = BURST_PATIENCE
) -> BurstResult:
    """People arriving evenly within `within` seconds; each waits up to `patience` seconds
    for the welcome (in the history frame or as the first message), longer than a turn's
    timeout: someone who came from a television appeal waits a while before giving up, and
    a welcome that comes late is slow, not lost. Everyone stays connected until the end."""
    waits: list[float] = []
    chats: list[Chat] = []
    began = time.perf_counter()

    async def person(i: int, http: aiohttp.ClientSession) -> None:
        await asyncio.sleep(i * within / people)
        arrived = time.perf_counter()
        try:
            async with asyncio.timeout(patience):
                chat = await Chat.open(http, base, patience)
                chats.append(chat)
                if not chat.welcomed:
                    await chat.first_message()
        except ENDED:
            return
        waits.append(time.perf_counter() - arrived)

    async with session() as http:
        await asyncio.gather(*(person(i, http) for i in range(people)))
        spread = time.perf_counter() - began
        await asyncio.gather(*(c.close() for c in chats), return_exceptions=True)
    return BurstResult(people, len(waits), waits, spread)


# -- idle connections ----------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def idle(base: str, pid: int, count: int) -> tuple[int, float, float]:
    """Open `count` web chats and leave them idle; server memory per connection in bytes:
    over all of them, and over the second half alone. A process that has freed memory before
    (the full service at start) reuses it for the first connections without growing, so the
    second half's growth is the fairer figure."""
    async with session() as http:
        warm = await open_many(http, base, 50)  # lazy imports and caches, not per connection
        await asyncio.gather(*(c.close() for c in warm), return_exceptions=True)
        await asyncio.sleep(1.0)
        before = rss_kib(pid)
        first = await open_many(http, base, count // 2, parallel=200)
        await asyncio.sleep(2.0)
        middle = rss_kib(pid)
        second = await open_many(http, base, count - count // 2, parallel=200)
        await asyncio.sleep(2.0)
        after = rss_kib(pid)
        chats = first + second
        await asyncio.gather(*(c.close() for c in chats), return_exceptions=True)
    opened = len(chats)
    overall = (after - before) * 1024 / opened if opened else float("nan")
    marginal = (after - middle) * 1024 / len(second) if second else float("nan")
    return opened, overall, marginal


# -- SMS webhooks --------------------------------------------------------------------------


@dataclass
class SmsResult:
    seconds: float
    latencies: list[float] = field(repr=False)  # webhook posted -> the turn's last reply
    acks: list[float] = field(repr=False)  # webhook posted -> HTTP answer
    bad: int = 0
    lost: int = 0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds


async def sms_load(
    url: str,
    signer: Callable[[dict[str, str]], str],
    senders: int,
    seconds: float,
    expect: Callable[[str], Awaitable[None]] | None = None,
    warmup: float = 2.0,
) -> SmsResult:
    """`senders` phones, each posting a signed webhook and waiting for its answer before
    the next, as a person texting does. For the raw handler the answer is the TwiML; for the
    service it is the last reply of the turn reaching the Twilio stand-in (`expect(number)`
    is called before posting and returns what to await). Only exchanges that end inside the
    measured window count, so a backlog of acknowledged but unanswered texts cannot pass
    for throughput."""
    result = SmsResult(seconds, [], [])
    start = time.perf_counter() + warmup
    end = start + seconds

    async def phone(i: int, http: aiohttp.ClientSession) -> None:
        number = f"+4477009{i:05d}"
        n = 0
        while time.perf_counter() < end:
            n += 1
            form = {
                "MessageSid": "SM" + secrets.token_hex(16),
                "AccountSid": "AC" + "0" * 32,
                "From": number,
                "To": "+447700900000",
                "Body": "menu" if n % 2 else "1",
                "NumMedia": "0",
            }
            answered = expect(number) if expect is not None else None
            sent = time.perf_counter()
            try:
                async with http.post(
                    url, data=form, headers={"X-Twilio-Signature": signer(form)}
                ) as resp:
                    await resp.read()
                    if resp.status >= 300:
                        result.bad += 1
                        return
                acked = time.perf_counter()
                if answered is not None:
                    await asyncio.wait_for(answered, TURN_TIMEOUT)
            except (aiohttp.ClientError, ConnectionError, TimeoutError):
                result.lost += 1
                return
            done = time.perf_counter()
            if start <= done <= end:
                result.latencies.append(done - sent)
                result.acks.append(acked - sent)

    async with session() as http:
        await asyncio.gather(*(phone(i, http) for i in range(senders)))
    return result
