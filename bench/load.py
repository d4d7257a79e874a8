"""The load generator's scenarios: each drives one server (echo or full) over loopback and
returns plain numbers. The same client code drives both servers."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.stats import percentile

__all__ = ["percentile"]

# "menu" is a command (back to the welcome's question), "1" a numbered option that fires a
# transition into another journey: a turn that runs the flow machine, and one that does not.
CYCLE = ("menu", "1")
TURN_TIMEOUT = 15.0


class Lost(Exception):
    """No reply in time: the conversation is counted as lost."""


@dataclass
class Chat:
    """One person on the web chat."""

    ws: aiohttp.ClientWebSocketResponse
    welcomed: bool = False
    n: int = 0

    @classmethod
    async def open(cls, session: aiohttp.ClientSession, base: str) -> Chat:
        ws = await session.ws_connect(f"{base}/chat/ws", max_msg_size=0, autoping=True)
        chat = cls(ws)
        await ws.send_json({"type": "hello", "token": None, "lang": "en"})
        while True:
            frame = await chat.frame()
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
    gate = asyncio.Semaphore(parallel)

    async def one() -> Chat:
        async with gate:
            return await Chat.open(http, base)

    return list(await asyncio.gather(*(one() for _ in range(count))))


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
        lost = 0

        async def run(chat: Chat, offset: int) -> None:
            nonlocal lost
            i = offset
            try:
                while time.perf_counter() < end:
                    latency = await chat.turn(cycle[i % len(cycle)])
                    i += 1
                    if start <= time.perf_counter() <= end:
                        latencies.append(latency)
            except Lost:
                lost += 1

        await asyncio.gather(*(run(c, i) for i, c in enumerate(chats)))
        await asyncio.gather(*(c.close() for c in chats))
    return ChatResult(conversations, seconds, len(latencies), latencies, lost)


# -- hand-off under load ---------------------------------------------------------------------


async def handoff_under_load(
    base: str, conversations: int, seconds: float, risk_text: str
) -> tuple[ChatResult, list[float], int]:
    """Chat load as above while, one at a time, a new person sends a risk message; each
    sample is the time to the "joined" event on a connected console socket."""
    samples: list[float] = []
    missed = 0

    async def sampler() -> None:
        nonlocal missed
        async with session() as http:
            console = await http.ws_connect(f"{base}/bench/queue")
            await console.receive_json()  # ready
            await asyncio.sleep(2.0)  # the load's warm-up
            deadline = time.perf_counter() + seconds - 1.0
            while time.perf_counter() < deadline:
                chat = await Chat.open(http, base)
                sent = time.perf_counter()
                await chat.ws.send_json(
                    {"type": "message", "text": risk_text, "id": secrets.token_hex(16)}
                )
                try:
                    while True:
                        event = await console.receive_json(timeout=TURN_TIMEOUT)
                        if event.get("type") == "joined":
                            samples.append(time.perf_counter() - sent)
                            break
                except TimeoutError:
                    missed += 1
                await chat.close()
                await asyncio.sleep(0.05)
            await console.close()

    result, _ = await asyncio.gather(chat_load(base, conversations, seconds), sampler())
    return result, samples, missed


# -- arrivals ------------------------------------------------------------------------------


@dataclass
class BurstResult:
    people: int
    welcomed: int
    waits: list[float] = field(repr=False)
    spread: float

    @property
    def p50_ms(self) -> float:
        return percentile(self.waits, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.waits, 99) * 1000


async def burst(base: str, people: int, within: float) -> BurstResult:
    """People arriving evenly within `within` seconds; each waits for the welcome (in the
    history frame or as the first message). Everyone stays connected until the end."""
    waits: list[float] = []
    chats: list[Chat] = []
    began = time.perf_counter()

    async def person(i: int, http: aiohttp.ClientSession) -> None:
        await asyncio.sleep(i * within / people)
        arrived = time.perf_counter()
        try:
            chat = await Chat.open(http, base)
            chats.append(chat)
            if not chat.welcomed:
                await chat.first_message()
        except (Lost, aiohttp.ClientError, TimeoutError):
            return
        waits.append(time.perf_counter() - arrived)

    async with session() as http:
        await asyncio.gather(*(person(i, http) for i in range(people)))
        spread = time.perf_counter() - began
        await asyncio.gather(*(c.close() for c in chats))
    return BurstResult(people, len(waits), waits, spread)


# -- idle connections ----------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def idle(base: str, pid: int, count: int) -> tuple[int, float]:
    """Open `count` web chats and leave them idle; server memory per connection in bytes."""
    async with session() as http:
        warm = await open_many(http, base, 50)  # lazy imports and caches, not per connection
        await asyncio.gather(*(c.close() for c in warm))
        await asyncio.sleep(1.0)
        before = rss_kib(pid)
        chats = await open_many(http, base, count, parallel=200)
        await asyncio.sleep(2.0)
        after = rss_kib(pid)
        opened = len(chats)
        await asyncio.gather(*(c.close() for c in chats))
    return opened, (after - before) * 1024 / opened


# -- SMS webhooks --------------------------------------------------------------------------


async def sms_load(
    url: str, signer: Any, senders: int, seconds: float, warmup: float = 2.0
) -> tuple[float, int, int]:
    """`senders` phones posting signed webhooks back to back; returns (requests/s, ok, bad).
    `signer(form) -> signature header or None` signs the exact form that is posted."""
    ok = bad = 0
    start = time.perf_counter() + warmup
    end = start + seconds
    counted = 0

    async def phone(i: int, http: aiohttp.ClientSession) -> None:
        nonlocal ok, bad, counted
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
            headers = {}
            signature = signer(form)
            if signature:
                headers["X-Twilio-Signature"] = signature
            async with http.post(url, data=form, headers=headers) as resp:
                await resp.read()
                if resp.status < 300:
                    ok += 1
                else:
                    bad += 1
            if start <= time.perf_counter() <= end:
                counted += 1

    async with session() as http:
        await asyncio.gather(*(phone(i, http) for i in range(senders)))
    return counted / seconds, ok, bad
