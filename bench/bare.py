"""The raw echo plus a little of what the service does, for bench.floor: the risk screen of
each message (`--screen`); and/or the three writes a message needs at the least, on the
standard library's sqlite3 with no framework (`--store`); or instead the service's own store
doing what a turn has it do (`--service-store`, web chat only).

Texts (POST /sms, Twilio's webhook form) are checked against their signature with the
twilio package's RequestValidator, as the service checks them, then screened and stored as
above. The reply goes in the TwiML answer (`--sms-inline`) or, as the service sends it, in
a Twilio REST API call after an empty TwiML answer (`--twilio-api-base`: the stand-in)."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

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
    " created_at) VALUES (?, ?, 'in', ?, 'received', ?, ?)"
)
_STATE = "UPDATE conversations SET state = ?, answers = ?, updated_at = ? WHERE id = ?"
_HANDLED = "UPDATE messages SET status = 'handled' WHERE id = ?"
_REPLY = (
    "INSERT INTO messages (conversation_id, channel, direction, text, status, created_at)"
    " VALUES (?, ?, 'out', ?, 'pending', ?)"
)
_NEW_CONVERSATION = "INSERT INTO conversations VALUES (?, ?, ?, ?)"
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
        pending, conv = (await self.store.pending_turn(accepted.conversation_id))[:2]
        assert conv is not None
        stored = await self.store.save_turn(conv, [m.id for m in pending], [Reply(text)])
        return stored[0].id

    async def sent(self, message_id: int) -> None:
        await self.store.mark_sent([message_id])


def bare_app(
    screen: bool,
    store_dir: str | None,
    service_dir: str | None,
    *,
    sms_inline: bool = False,
    twilio_api_base: str | None = None,
    twilio_token: str = "",
) -> web.Application:
    store = _BareStore(Path(store_dir) / "bare.db") if store_dir else None
    service = _ServiceStore(service_dir) if service_dir else None
    assess: Callable[[str, str], Any] | None = None
    if screen:
        from helpline.risk import assess

        assess("hello", "en")  # the lexicon loaded and its patterns compiled once

    async def new_conversation() -> str:
        conversation = os.urandom(16).hex()
        if store is not None:
            row = (conversation, "welcome", "{}", _now())
            await store.run(lambda c: c.execute(_NEW_CONVERSATION, row))
        return conversation

    async def arrive(conversation: str, channel: str, text: str, external: Any) -> int:
        """The bare store's first write: the message, before it is answered; its id."""
        assert store is not None
        arrival = (conversation, channel, text, external, _now())
        return int(await store.run(lambda c: c.execute(_ARRIVAL, arrival).lastrowid))

    async def save(conversation: str, channel: str, in_id: int, text: str) -> int:
        """The second: the turn's save (state, the message handled, the reply); its id."""
        assert store is not None
        state = ("menu", json.dumps({"_greeted": True}), _now(), conversation)
        reply = (conversation, channel, text, _now())

        def run(c: sqlite3.Connection) -> int:
            c.execute(_STATE, state)
            c.execute(_HANDLED, (in_id,))
            return int(c.execute(_REPLY, reply).lastrowid or 0)

        return int(await store.run(run))

    async def mark_sent(message_id: int) -> None:
        assert store is not None
        sent = (_now(), message_id)
        await store.run(lambda c: c.execute(_SENT, sent).rowcount)

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=16 * 1024)
        await ws.prepare(request)
        conversation = await new_conversation()
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
                in_id = await arrive(conversation, "web", text, frame.get("id"))
                if assess is not None:
                    assess(text, "en")
                n = await save(conversation, "web", in_id, text)
            else:
                if assess is not None:
                    assess(text, "en")
                if service is not None:
                    n = await service.turn(conversation, text)
            await ws.send_json(
                {"type": "message", "id": n, "author": "bot", "text": text, "options": ["1"]}
            )
            if store is not None:
                await mark_sent(n)
            elif service is not None:
                await service.sent(n)
        return ws

    app = web.Application()
    app.router.add_get("/chat/ws", socket)
    if service is not None:
        app.on_startup.append(service.start)
    if sms_inline or twilio_api_base:
        _add_sms(app, store is not None, assess, twilio_api_base, twilio_token, new_conversation,
                 arrive, save, mark_sent)  # fmt: skip
    return app


def _add_sms(
    app: web.Application,
    storing: bool,
    assess: Callable[[str, str], Any] | None,
    api_base: str | None,
    token: str,
    new_conversation: Callable[[], Awaitable[str]],
    arrive: Callable[[str, str, str, Any], Awaitable[int]],
    save: Callable[[str, str, int, str], Awaitable[int]],
    mark_sent: Callable[[int], Awaitable[None]],
) -> None:
    """POST /sms: the signature checked, then the text screened and stored; the reply in the
    TwiML answer, or (with `api_base`) sent through Twilio's REST API after an empty one."""
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(token)
    conversations: dict[str, str] = {}  # by phone number (the service reads the contact's)
    tasks: set[asyncio.Task[None]] = set()
    state: dict[str, Any] = {}

    async def twilio_client(app: web.Application) -> AsyncIterator[None]:
        # The service's own REST client: the twilio package's, on aiohttp (channels/twilio.py).
        from twilio.rest import Client

        from channels.twilio import _HttpClient

        http = _HttpClient()
        state["client"] = Client("AC" + "0" * 32, token, http_client=http)
        state["client"].api.base_url = str(api_base).rstrip("/")
        yield
        await asyncio.gather(*tasks, return_exceptions=True)
        await http.close()

    async def turn(conversation: str, in_id: int, text: str) -> tuple[str, int]:
        """The turn: the screen and (if storing) its save; the reply's words and id."""
        if assess is not None:
            assess(text, "en")
        reply = f"{text}\n1. Menu"
        return reply, await save(conversation, "sms", in_id, reply) if storing else 0

    def later(coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def in_background(conversation: str, number: str, in_id: int, text: str) -> None:
        reply, message_id = await turn(conversation, in_id, text)
        await state["client"].messages.create_async(to=number, from_="+447700900000", body=reply)
        if storing:
            await mark_sent(message_id)

    async def sms(request: web.Request) -> web.Response:
        form = await request.post()
        params = {k: str(v) for k, v in form.items()}
        signature = request.headers.get("X-Twilio-Signature", "")
        if not validator.validate(str(request.url), params, signature):
            raise web.HTTPForbidden()
        number, text, sid = params.get("From", ""), params.get("Body", ""), params["MessageSid"]
        if not number or not text:
            raise web.HTTPBadRequest()
        conversation = conversations.get(number)
        if conversation is None:
            conversation = conversations[number] = await new_conversation()
        # Stored before it is answered, as the service stores it.
        in_id = await arrive(conversation, "sms", text, sid) if storing else 0
        if api_base:
            later(in_background(conversation, number, in_id, text))
            return web.Response(text=_EMPTY_TWIML, content_type="application/xml")
        reply, message_id = await turn(conversation, in_id, text)
        if storing:
            later(mark_sent(message_id))  # after the answer, as web chat's is after its frame
        return web.Response(text=_TWIML.format(escape(reply)), content_type="application/xml")

    app.router.add_post("/sms", sms)
    if api_base:
        app.cleanup_ctx.append(twilio_client)


_EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Message>{}</Message></Response>'
