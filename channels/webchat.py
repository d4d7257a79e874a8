"""Web chat: the chat page, its static files, and the JSON-over-websocket protocol
(docs/webchat.md). The web channel's 'address' is a random token kept in the tab's
sessionStorage, so a reload resumes and closing the tab forgets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from channels import error_pages
from helpline.app import (
    CONTENT,
    DRAINING,
    ENGINE,
    HUB,
    PRIVACY,
    SENDERS,
    SETTINGS,
    STORE,
    assets,
    same_origin,
)
from helpline.content import fill_page
from helpline.domain import (
    Direction,
    InboundMessage,
    OutboundMessage,
    json_object,
    storable,
)
from helpline.engine import SEALED_TEXT
from helpline.errors import DuplicateMessage, HelplineError
from helpline.ports import RESYNC
from helpline.ratelimit import NEW_CHATS, RateLimited

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
MAX_TEXT = 4000  # characters a message; a frame of them in UTF-8 fits in MAX_FRAME
MAX_FRAME = 16 * 1024
HELLO_TIMEOUT = 15
TOO_MANY_NEW_CHATS = 4429  # application close code: too many new chats from one address
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# When a refused message may be sent again, in seconds: the limit on messages counts in
# windows of a minute; a database that failed may well be back in a few seconds.
RETRY_LIMITED = 60
RETRY_STORE = 10
# Each open socket, with the language its page said hello in (for the restart notice).
SOCKETS: web.AppKey[weakref.WeakKeyDictionary[web.WebSocketResponse, str]] = web.AppKey(
    "web_sockets"
)


@dataclass(frozen=True)
class Refused:
    """A message not stored: what the page is told, and when it may send it again."""

    text: str
    retry_after: int


class WebChat:
    """The web channel: `send` publishes to the person's open sockets through the hub,
    which reaches them whichever instance they are connected to."""

    name = "web"
    live = True  # the person is looking at the page: quiet hours do not apply
    by_key = True  # reaches the page by the contact key: the engine need not open the address

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self._pages: dict[tuple[str, bool], str] = {}

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/", self.page),
            web.get("/chat/ws", self.socket),
            web.get("/chat/widget.json", self.widget_words),
            web.get("/exit", self.leave),
            assets("/static", STATIC),
        ]

    async def leave(self, request: web.Request) -> web.Response:
        """Quick exit without JavaScript (before exit.js has loaded on a slow network): the
        browser is told to forget this site's storage (the chat's token, so Back cannot
        resume it) and sent to the neutral site."""
        return web.Response(
            status=303,
            headers={
                "Location": self.app[SETTINGS].exit_url,
                "Clear-Site-Data": '"storage"',
                "Cache-Control": "no-store",
                "Referrer-Policy": "no-referrer",
            },
        )

    async def send(self, message: OutboundMessage) -> str | None:
        key = message.contact_key or self.app[PRIVACY].contact_key(self.name, message.address)
        reply = message.reply
        await self.app[HUB].publish(
            f"web:{key}",
            {
                "type": "message",
                "id": message.message_id,
                "author": reply.author.value,
                "text": reply.text,
                "options": list(reply.options),
                "urgent": self.app[CONTENT].is_guidance(reply.text),
            },
        )
        return None

    async def notify(self, address: str, kind: str, data: dict[str, Any]) -> None:
        key = self.app[PRIVACY].contact_key(self.name, address)
        if kind == "language":
            event = {"type": "language", "lang": data.get("lang", "en")}
        else:
            event = {"type": "status", "state": kind, "text": data.get("text", "")}
        await self.app[HUB].publish(f"web:{key}", event)

    # -- the page --------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.Response:
        lang = "cy" if request.query.get("lang") == "cy" else "en"
        embed = request.query.get("embed") == "1"
        body = self._pages.get((lang, embed))
        if body is None:
            body = self._render(lang, embed)
            self._pages[(lang, embed)] = body
        return web.Response(text=body, content_type="text/html")

    def _render(self, lang: str, embed: bool) -> str:
        content = self.app[CONTENT]
        settings = self.app[SETTINGS]
        template = (STATIC / "chat.html").read_text(encoding="utf-8")
        values = {"lang": lang, "exit_url": settings.exit_url, "embed": "1" if embed else "0"}
        return fill_page(
            template, lambda key: values[key] if key in values else content.text(key, lang)
        )

    async def widget_words(self, request: web.Request) -> web.Response:
        lang = "cy" if request.query.get("lang") == "cy" else "en"
        content = self.app[CONTENT]
        return web.json_response(
            {
                "open": content.text("web.widget_open", lang),
                "close": content.text("web.widget_close", lang),
                "title": content.text("web.page_title", lang),
                # Where the widget's quick exit goes if the chat in its frame cannot answer.
                "exit": self.app[SETTINGS].exit_url,
            },
            headers={"Access-Control-Allow-Origin": "*"},
        )

    # -- the socket ------------------------------------------------------------------------

    async def socket(self, request: web.Request) -> web.StreamResponse:
        if not same_origin(request):
            raise web.HTTPForbidden(text="cross-origin websocket refused")
        if request.app[DRAINING][0]:
            raise web.HTTPServiceUnavailable(text="restarting")
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_FRAME)
        await ws.prepare(request)
        request.app[SOCKETS][ws] = "en"
        try:
            hello = await self._hello(ws, request.remote or "unknown")
            if hello is not None:
                request.app[SOCKETS][ws] = hello[1]
                await self._converse(ws, *hello)
        except ConnectionResetError:
            # The page went while it was being answered (a reload, a phone losing signal):
            # what it sent is stored, and it is shown the chat again when it comes back.
            log.debug("a web chat page went while it was answered")
        finally:
            request.app[SOCKETS].pop(ws, None)
        return ws

    async def _hello(self, ws: web.WebSocketResponse, peer: str) -> tuple[str, str] | None:
        try:
            # One deadline for the whole wait: receive(timeout=) starts its own again after
            # each ping it answers, so a page pinging and never saying hello would hold its
            # socket open for ever, outside the new-chats limit (counted from the hello).
            async with asyncio.timeout(HELLO_TIMEOUT):
                msg = await ws.receive()
        except TimeoutError:
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"hello expected")
            return None
        frame = _frame(msg)
        if frame is None or frame.get("type") != "hello":
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"hello expected")
            return None
        token = frame.get("token")
        lang = "cy" if frame.get("lang") == "cy" else "en"
        from helpline.privacy import new_token

        engine = self.app[ENGINE]
        if isinstance(token, str) and await self._known(token):
            # A chat resumed (a reload, a new network) at most as often as its person may
            # write: one token opening hundreds of sockets would slow everyone else's.
            resumes = engine.message_limits[:1]
            if not await engine.limiter.allow(
                self.app[PRIVACY].contact_key("resume", token), resumes
            ):
                await self._slow_down(ws, lang)
                return None
        else:
            # Only a token this service handed out resumes a chat: a made-up one would
            # otherwise open new chats past the limit below.
            # New chats are limited per network address (hashed, never stored or logged).
            if not await engine.limiter.allow(self.app[PRIVACY].contact_key("ip", peer), NEW_CHATS):
                await self._slow_down(ws, lang)
                return None
            token = new_token()
        return str(token), lang

    async def _slow_down(self, ws: web.WebSocketResponse, lang: str) -> None:
        content = self.app[CONTENT]
        await ws.send_json({"type": "error", "text": content.text("web.error_slow_down", lang)})
        # A code of its own: the page keeps this notice (and its 999) on screen and waits a
        # minute, rather than showing "reconnecting" and trying again at once, each try
        # counting against the same limit.
        await ws.close(code=TOO_MANY_NEW_CHATS, message=b"slow down")

    async def _known(self, token: Any) -> bool:
        if not isinstance(token, str) or not _TOKEN.match(token):
            return False
        key = self.app[PRIVACY].contact_key(self.name, token)
        return await self.app[STORE].sealed_address(key) is not None

    async def _converse(self, ws: web.WebSocketResponse, token: str, lang: str) -> None:
        key = self.app[PRIVACY].contact_key(self.name, token)
        # Subscribe before opening, so nothing published in between is missed; what the
        # history already shows is skipped by message id.
        async with self.app[HUB].subscribe(f"web:{key}") as events:
            conversation_id, shown = await self._start(ws, token, lang)
            forward = asyncio.create_task(self._forward(ws, events, conversation_id, shown))
            try:
                await self._read(ws, token, key, lang)
            finally:
                forward.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await forward

    async def _start(self, ws: web.WebSocketResponse, token: str, lang: str) -> tuple[str, int]:
        """Open the conversation and show it so far; its id and the newest message id shown.
        (Its own method, so that the history is not kept for as long as the chat stays open.)"""
        engine = self.app[ENGINE]
        conv = await engine.open(self.name, token, language=lang)
        if conv.language != lang:
            # The page's language link was followed: the conversation follows the page, as
            # it would had the person typed "Cymraeg" or "English".
            await engine.switch_language(conv.id, lang)
        # `acks`: each message is acknowledged by its id once stored (docs/webchat.md).
        await ws.send_json(
            {"type": "session", "token": token, "conversation": conv.reference, "acks": True}
        )
        history = await self._history(conv.id, token)
        await ws.send_json({"type": "history", "messages": history})
        return conv.id, max((m["id"] for m in history), default=0)

    async def _history(
        self, conversation_id: str, token: str | None = None
    ) -> list[dict[str, Any]]:
        """The conversation as the page shows it; with the `token`, each of the page's own
        messages names its client id, so a reconnecting page knows which it need not resend."""
        prefix = None
        if token is not None:
            prefix = self.app[PRIVACY].contact_key(self.name, token)[:24] + ":"
        shown = []
        messages = await self.app[STORE].transcript(conversation_id)
        # A message stored sealed that its turn has not read yet (a number asked for) is shown
        # as the transcript will keep it, never as the sealed text (Engine.kept).
        if any(m.direction == Direction.IN and m.text.startswith(SEALED_TEXT) for m in messages):
            conv = await self.app[STORE].conversation(conversation_id)
            engine = self.app[ENGINE]
            messages = [
                replace(m, text=engine.kept(conv, m.text)) if m.direction == Direction.IN else m
                for m in messages
            ]
        for m in messages:
            if m.direction in (Direction.IN, Direction.OUT):
                item = {
                    "id": m.id,
                    "author": m.author.value,
                    "text": m.text,
                    "options": list(m.options),
                    "urgent": self.app[CONTENT].is_guidance(m.text),
                }
                client_id = _client_id(m.external_id, prefix)
                if m.direction == Direction.IN and client_id is not None:
                    item["client_id"] = client_id
                shown.append(item)
        # Only the newest message's options are still live.
        for item in shown[:-1]:
            item["options"] = []
        return shown

    async def _forward(
        self, ws: web.WebSocketResponse, events: Any, conversation_id: str, shown: int
    ) -> None:
        """Send the page what the hub brings. `shown` is the newest message id in the
        history the page was sent (the page skips a message not newer than that, and so does
        this); `last`, the newest it has been sent since."""
        last = shown
        ended = False  # the page has been told the conversation ended
        # Replies a catch-up sent whose own events may still come (saved before the hub was
        # back, published after): each is sent once.
        caught: set[int] = set()
        async for event in events:
            if ws.closed:
                return
            if event.get("type") == RESYNC:
                last, ended = await self._catch_up(ws, conversation_id, last, ended, caught)
                continue
            ended = ended or event.get("state") in ("ended", "stopped", "erased")
            if event.get("type") == "message":
                if 0 < event.get("id", 0) <= shown or event.get("id") in caught:
                    continue
                last = max(last, event.get("id", 0))
            with contextlib.suppress(ConnectionError, RuntimeError):
                if event.get("type") != "message":
                    # A message ends "typing…" on the page by itself (chat.js).
                    await ws.send_json({"type": "typing", "on": False})
                await ws.send_json(event)

    async def _catch_up(
        self,
        ws: web.WebSocketResponse,
        conversation_id: str,
        last: int,
        ended: bool,
        caught: set[int],
    ) -> tuple[int, bool]:
        """What the hub may have lost on the way (it reconnected): the replies after the last
        one the page was sent, read from the conversation as a reconnecting page's history
        is (the person's own words are on the page already), and its end if it has ended;
        the ids sent join `caught`. If they cannot be read, the socket closes: the page
        reconnects and gets the history."""
        try:
            missed = [
                m
                for m in await self._history(conversation_id)
                if m["id"] > last and m["author"] != "person"
            ]
            closed = (await self.app[STORE].conversation(conversation_id)).closed
        except Exception:  # noqa: BLE001 - any failure: the page must not miss replies silently
            log.exception("a web chat could not catch up; closing it for the page to reconnect")
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"try again")
            return last, ended
        with contextlib.suppress(ConnectionError, RuntimeError):
            for m in missed:
                await ws.send_json({"type": "message", **m})
                caught.add(m["id"])
            if closed and not ended:
                await ws.send_json({"type": "status", "state": "ended", "text": ""})
        return max((m["id"] for m in missed), default=last), ended or closed

    async def _read(self, ws: web.WebSocketResponse, token: str, key: str, lang: str) -> None:
        """The person's frames; `lang` is the page's (its hello's), for answers that do not
        read the conversation."""
        engine = self.app[ENGINE]
        content = self.app[CONTENT]
        async for msg in ws:
            frame = _frame(msg)
            if frame is None:
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.ERROR):
                    return
                await ws.send_json(
                    {"type": "error", "text": content.text("web.error_format", lang)}
                )
                continue
            if frame.get("type") == "keepalive":
                await engine.keepalive(self.name, token)
                continue
            if frame.get("type") == "exit":
                # The quick exit, said on its way out: the page has forgotten the token.
                await engine.quick_exit(self.name, token)
                return
            if frame.get("type") != "message":
                continue
            text = frame.get("text")
            client_id = frame.get("id")
            if not isinstance(text, str) or not text.strip():
                continue
            if not isinstance(client_id, str) or not _CLIENT_ID.match(client_id):
                client_id = None
            await self._message(ws, key, token, lang, storable(text), client_id)

    async def _message(
        self,
        ws: web.WebSocketResponse,
        key: str,
        token: str,
        lang: str,
        text: str,
        client_id: str | None,
    ) -> None:
        """Take one message frame: `ack` with its id once all of it is stored (or was
        already), or an `error` naming its id, for the page to keep it and send it again."""
        base = None if client_id is None else f"{key[:24]}:{client_id}"
        # Longer than a message may be (a client other than our page, which splits it
        # itself): taken in pieces as the page would send them, never refused, since
        # what comes last may be about danger. (A frame is at most MAX_FRAME bytes.)
        # A piece refused stops the rest, which come again, in order, with the resend.
        pieces = _pieces(text)
        taken = False
        refused = None
        for n, piece in enumerate(pieces):
            external = base if base is None or len(pieces) == 1 else f"{base}:{n}"
            outcome = await self._take(key, token, lang, piece, external)
            if isinstance(outcome, Refused):
                refused = outcome
                break
            taken = taken or outcome
        if refused is not None:
            error: dict[str, Any] = {"type": "error", "text": refused.text}
            if client_id is not None:
                error |= {"id": client_id, "retry_after": refused.retry_after}
            await _send_quietly(ws, error)
        elif client_id is not None:
            await _send_quietly(ws, {"type": "ack", "id": client_id})
        if taken:
            await _send_quietly(ws, {"type": "typing", "on": True})

    async def _take(
        self, key: str, token: str, lang: str, text: str, external: str | None
    ) -> bool | Refused:
        """Store one message and have it handled: True once stored, False if it was stored
        already (a resend), or why it was refused (too fast, or the store failing)."""
        content = self.app[CONTENT]
        try:
            await self.app[ENGINE].submit(InboundMessage(self.name, token, text, external))
        except DuplicateMessage:
            return False
        except RateLimited:
            conv = await self.app[STORE].open_conversation(key)
            said = content.text("web.error_slow_down", conv.language if conv else lang)
            return Refused(said, RETRY_LIMITED)
        except HelplineError:
            log.exception("a web chat message could not be stored")
            return Refused(content.text("web.error_store", lang), RETRY_STORE)
        return True


def _client_id(external_id: str | None, prefix: str | None) -> str | None:
    """The page's own id of a message it sent whole (not one taken in pieces)."""
    if prefix is None or external_id is None or not external_id.startswith(prefix):
        return None
    rest = external_id[len(prefix) :]
    return rest if _CLIENT_ID.match(rest) else None


def _pieces(text: str) -> list[str]:
    """Text in pieces of at most MAX_TEXT characters, each cut after a space or a line end
    in its second half where there is one (as the page's splitLong does)."""
    pieces: list[str] = []
    rest = text
    while len(rest) > MAX_TEXT:
        space = max(rest.rfind(c, MAX_TEXT // 2, MAX_TEXT) for c in " \n\t")
        cut = space + 1 if space >= 0 else MAX_TEXT
        pieces.append(rest[:cut])
        rest = rest[cut:]
    pieces.append(rest)
    return [p for p in pieces if p.strip()]


async def _send_quietly(ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
    """A frame that may meet a closing socket (the page left, the service is stopping): the
    message it follows is stored already, so a closed connection is no error here."""
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_json(frame)


def _frame(msg: Any) -> dict[str, Any] | None:
    return json_object(msg.data) if msg.type == WSMsgType.TEXT else None


async def _close_sockets(app: web.Application) -> None:
    """Tell connected people the service is restarting and that the page will reconnect."""
    content = app[CONTENT]
    sockets = app[SOCKETS]
    for ws, lang in list(sockets.items()):
        with contextlib.suppress(Exception):
            await ws.send_json(
                {
                    "type": "status",
                    "state": "restarting",
                    "text": content.text("web.restarting", lang),
                }
            )
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"restarting")


def setup(app: web.Application) -> None:
    chat = WebChat(app)
    app[SOCKETS] = weakref.WeakKeyDictionary()
    app[SENDERS][chat.name] = chat
    app.router.add_routes(chat.routes())
    app.on_shutdown.append(_close_sockets)
    # Its quick exit and styles are the chat page's.
    error_pages.setup(app)
