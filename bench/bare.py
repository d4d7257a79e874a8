"""The raw echo plus a little of what the service does, for bench.floor: the risk screen of
each message (`--screen`); and/or the three writes a web chat message needs at the least,
on the standard library's sqlite3 with no framework (`--store`); or instead the service's
own store doing what a turn has it do (`--service-store`)."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from bench.server import greet
from helpline.storage.store import _resolve

_SCHEMA = (
    "CREATE TABLE conversations (id TEXT PRIMARY KEY, state TEXT, answers TEXT, updated_at TEXT)",
    "CREATE TABLE messages (id INTEGER PRIMARY KEY,"
    " conversation_id TEXT REFERENCES conversations (id) ON DELETE CASCADE, channel TEXT,"
    " direction TEXT, text TEXT, status TEXT, external_id TEXT, platform_id TEXT,"
    " created_at TEXT, sent_at TEXT, UNIQUE (channel, external_id))",
    "CREATE INDEX ix_conversation ON messages (conversation_id)",
    "CREATE INDEX ix_status ON messages (status)",
    "CREATE INDEX ix_platform ON messages (platform_id)",
)
_ARRIVAL = (
    "INSERT INTO messages (conversation_id, channel, direction, text, status, external_id,"
    " created_at) VALUES (?, 'web', 'in', ?, 'received', ?, ?)"
)
_STATE = "UPDATE conversations SET state = ?, answers = ?, updated_at = ? WHERE id = ?"
_HANDLED = "UPDATE messages SET status = 'handled' WHERE id = ?"
_REPLY = (
    "INSERT INTO messages (conversation_id, channel, direction, text, status, created_at)"
    " VALUES (?, 'web', 'out', ?, 'pending', ?)"
)
_SENT = "UPDATE messages SET status = 'sent', sent_at = ? WHERE id = ?"


class _BareStore:
    """The least a web chat message's storage can cost, with the service's table and its
    indexes and constraints: the message stored before it is answered; the turn's save (the
    conversation's state, the message handled, the reply); the reply marked sent. No reads.
    One writer thread (WAL, synchronous=NORMAL, BEGIN IMMEDIATE, as the service's), writes
    queued together sharing a transaction and one wake-up of the event loop (as the
    service's writer does)."""

    def __init__(self, path: Path) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[sqlite3.Connection], Any], Any, Any]]
        self._jobs = queue.SimpleQueue()
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            self._conn.execute(f"PRAGMA {pragma}")
        for statement in _SCHEMA:
            self._conn.execute(statement)
        threading.Thread(target=self._work, daemon=True).start()

    def run(self, fn: Callable[[sqlite3.Connection], Any]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put((fn, future, loop))
        return future

    def _work(self) -> None:
        while True:
            jobs = [self._jobs.get()]
            while len(jobs) < 64:
                try:
                    jobs.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                done = [(future, True, fn(self._conn)) for fn, future, _ in jobs]
                self._conn.execute("COMMIT")
            except Exception as exc:  # noqa: BLE001 - reported to every caller of the batch
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                done = [(future, False, exc) for _, future, _ in jobs]
            # Settled as the service's writer settles its batches.
            jobs[0][2].call_soon_threadsafe(_resolve, done)


def _now() -> str:
    return datetime.now(UTC).isoformat()


class _ServiceStore:
    """The service's own store (helpline.storage.SqlStore) doing, for each message, what the
    engine has it do: the arrival, the turn's read, the turn's save with one reply, and the
    reply marked sent; nothing else of the service."""

    def __init__(self, folder: str) -> None:
        from helpline.storage import SqlStore

        self.store = SqlStore(f"sqlite+aiosqlite:///{Path(folder) / 'helpline.db'}")

    async def start(self, _app: web.Application) -> None:
        from helpline.storage.migrate import upgrade

        await upgrade(self.store.engine)

    async def turn(self, conversation: str, text: str) -> int:
        from helpline.domain import Reply, utcnow

        accepted = await self.store.accept_inbound(
            contact_key=conversation.ljust(64, "0"),
            channel="web",
            sealed_address=None,
            text=text,
            external_id=None,
            received_at=utcnow(),
        )
        pending, conv = await self.store.pending_turn(accepted.conversation_id)
        assert conv is not None
        stored = await self.store.save_turn(conv, [m.id for m in pending], [Reply(text)])
        return stored[0].id

    async def sent(self, message_id: int) -> None:
        await self.store.mark_sent([message_id])


def bare_app(screen: bool, store_dir: str | None, service_dir: str | None) -> web.Application:
    store = _BareStore(Path(store_dir) / "bare.db") if store_dir else None
    service = _ServiceStore(service_dir) if service_dir else None
    assess: Callable[[str, str], Any] | None = None
    if screen:
        from helpline.risk import assess

        assess("hello", "en")  # the lexicon loaded and its patterns compiled once

    async def stored_turn(conversation: str, frame: dict[str, Any]) -> int:
        """The bare store's three writes around the work of a turn; the reply's id."""
        text, at = frame["text"], _now()
        arrival = (conversation, text, frame.get("id"), at)
        in_id = await store.run(lambda c: c.execute(_ARRIVAL, arrival).lastrowid)
        if assess is not None:
            assess(text, "en")
        state = ("menu", json.dumps({"_greeted": True}), _now(), conversation)
        reply = (conversation, text, _now())

        def save(c: sqlite3.Connection) -> int:
            c.execute(_STATE, state)
            c.execute(_HANDLED, (in_id,))
            return int(c.execute(_REPLY, reply).lastrowid or 0)

        return int(await store.run(save))

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=16 * 1024)
        await ws.prepare(request)
        conversation = os.urandom(16).hex()
        if store is not None:
            row = (conversation, "welcome", "{}", _now())
            await store.run(lambda c: c.execute("INSERT INTO conversations VALUES (?,?,?,?)", row))
        n = 1
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            if frame.get("type") == "hello":
                await greet(ws, "BARE")
                continue
            if frame.get("type") != "message":
                continue
            n += 1
            text = frame["text"]
            if store is not None:
                n = await stored_turn(conversation, frame)  # screened between its writes
            else:
                if assess is not None:
                    assess(text, "en")
                if service is not None:
                    n = await service.turn(conversation, text)
            await ws.send_json(
                {"type": "message", "id": n, "author": "bot", "text": text, "options": ["1"]}
            )
            if store is not None:
                sent = (_now(), n)
                await store.run(lambda c, sent=sent: c.execute(_SENT, sent).rowcount)
            elif service is not None:
                await service.sent(n)
        return ws

    app = web.Application()
    app.router.add_get("/chat/ws", socket)
    if service is not None:
        app.on_startup.append(service.start)
    return app
