"""The console's live websocket (/console/ws): queue snapshots, transcripts as they happen,
safeguarding alerts, referrals and call-backs, all scoped to the logged-in user's role.

Events come from the hub, so a console on one instance sees what happens on another. The
socket never forwards a raw queue event: it sends a fresh snapshot computed for its user.
When the hub may have lost events (RESYNC), everything shown is sent afresh."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from handoff import accounts, callbacks, referrals, safeguarding
from handoff.accounts import SESSIONS_TOPIC, ConsoleSession
from handoff.views import (
    note_authors,
    queue_snapshot,
    shows_note,
    supervisor_view,
    transcript,
    visible,
)
from helpline.app import CLOCK, DRAINING, HUB, STORE, same_origin
from helpline.domain import Conversation, json_object
from helpline.errors import Forbidden, NotFound
from helpline.ports import ERASED_TOPIC, RESYNC
from helpline.routing import QUEUE_TOPIC
from helpline.tasks import cancel_and_wait

log = logging.getLogger(__name__)

SOCKETS = web.AppKey("console_sockets", weakref.WeakSet[web.WebSocketResponse])
MAX_FRAME = 16 * 1024
MAX_WATCHED = 12
RECHECK_SECONDS = 60
_ID = re.compile(r"^[0-9a-f]{32}$")
UNAUTHORISED = 4401  # application close code: the session ended


async def socket(request: web.Request) -> web.StreamResponse:
    from handoff.console import current_session

    if not same_origin(request):
        raise web.HTTPForbidden(text="cross-origin websocket refused")
    if request.app[DRAINING][0]:
        raise web.HTTPServiceUnavailable(text="restarting")
    session = await current_session(request)
    if session is None:
        raise web.HTTPUnauthorized(text="log in first")
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_FRAME)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    try:
        await LiveConsole(request.app, ws, session, request.cookies[_cookie()]).run()
    finally:
        request.app[SOCKETS].discard(ws)
    return ws


def _cookie() -> str:
    from handoff.console import COOKIE

    return COOKIE


class LiveConsole:
    def __init__(
        self, app: web.Application, ws: web.WebSocketResponse, session: ConsoleSession, token: str
    ) -> None:
        self.app = app
        self.ws = ws
        self.user = session.user
        self.token = token
        self.watched: dict[str, asyncio.Task[None]] = {}
        self.dirty = asyncio.Event()
        self.closed: set[str] = set()  # watched conversations the page was told are closed
        self.tasks: list[asyncio.Task[None]] = []
        self.topics: list[tuple[str, Callable[[dict[str, Any]], Awaitable[None]]]] = []

    async def send(self, frame: dict[str, Any]) -> None:
        if self.ws.closed:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_json(frame)

    async def run(self) -> None:
        topics: list[tuple[str, Callable[[dict[str, Any]], Awaitable[None]]]] = [
            (QUEUE_TOPIC, self._on_queue),
            (referrals.TOPIC, self._on_referral),
            (SESSIONS_TOPIC, self._on_session_ended),
            (ERASED_TOPIC, self._on_erased),
        ]
        if self.user.helpline:
            topics.append((callbacks.TOPIC, self._on_callback))
        if self.user.supervises:
            topics.append((safeguarding.TOPIC, self._on_safeguarding))
        self.topics = topics
        ready: list[asyncio.Event] = []
        for topic, handler in topics:
            started = asyncio.Event()
            ready.append(started)
            self.tasks.append(asyncio.create_task(self._pump(topic, handler, started)))
        self.tasks.append(asyncio.create_task(self._or_close(self._snapshots)))
        self.tasks.append(asyncio.create_task(self._or_close(self._recheck)))
        try:
            # Subscribed before the first snapshot: nothing can fall between the two.
            await asyncio.gather(*(e.wait() for e in ready))
            self.dirty.set()
            await self._or_close(self._lists)
            await self._read()
        finally:
            with contextlib.suppress(asyncio.CancelledError):
                # Again until they end: a snapshot may be inside a Redis call, and redis-py
                # can swallow a cancellation (helpline/tasks.py).
                await cancel_and_wait(*self.tasks, *self.watched.values())

    async def _lists(self) -> None:
        """The lists the page fetched as it opened may be older than its subscriptions: what
        was raised between the two (or while a dropped socket was away) would otherwise not
        show until the next change. Sent afresh once subscribed, with no alert; and again
        whenever someone's data is erased, so that nothing of theirs stays on a screen."""
        for topic, handler in self.topics:
            if topic not in (QUEUE_TOPIC, SESSIONS_TOPIC, ERASED_TOPIC):
                await handler({"type": RESYNC})

    async def _on_erased(self, event: dict[str, Any]) -> None:
        self.dirty.set()
        await self._lists()

    async def _pump(
        self,
        topic: str,
        handler: Callable[[dict[str, Any]], Awaitable[None]],
        started: asyncio.Event,
    ) -> None:
        async with self.app[HUB].subscribe(topic) as events:
            started.set()
            async for event in events:
                try:
                    await handler(event)
                except Exception:  # noqa: BLE001 - one bad event must not end the console
                    log.exception("a console event could not be handled")

    async def _or_close(self, work: Callable[[], Awaitable[object]]) -> None:
        """Run a background loop; if it fails, close the socket so the page reconnects.

        Carrying on without it would leave the console silently stale: a queue view that no
        longer moves, watches of conversations that left the user's scope never dropped, a
        disabled user or an ended session never cut off. Reconnecting checks all of that
        afresh (the page asks whether the session still holds first)."""
        try:
            await work()
        except Exception:  # noqa: BLE001 - any failure: the socket must not stay open stale
            log.exception("the live console failed; closing it for the page to reconnect")
            await self.ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"try again")

    # -- hub events ------------------------------------------------------------------------

    async def _on_queue(self, event: dict[str, Any]) -> None:
        self.dirty.set()
        if event.get("type") == "quick_exit" and self.user.helpline:
            # Marked on a call-back they booked (callbacks.callbacks): whoever phones is told.
            await self._on_callback(event)

    async def _on_referral(self, event: dict[str, Any]) -> None:
        mine = event.get("type") == RESYNC or event.get("programme") == self.user.programme
        if self.user.role == "programme" and not mine:
            return
        if self.user.role == "programme":
            # A referral declined: its conversation stops streaming to the programme now.
            self.dirty.set()
        scope = self.user.programme if self.user.role == "programme" else None
        await self.send(
            {"type": "referrals", "items": await referrals.referrals(self.app[STORE], scope)}
        )

    async def _on_callback(self, event: dict[str, Any]) -> None:
        await self.send({"type": "callbacks", "items": await callbacks.callbacks(self.app[STORE])})

    async def _on_safeguarding(self, event: dict[str, Any]) -> None:
        await self.send(
            {
                "type": "safeguarding",
                "alert": event.get("type") == "safeguarding",
                "items": await safeguarding.concerns(self.app[STORE]),
            }
        )

    async def _snapshots(self) -> None:
        """Coalesce bursts of queue events into one snapshot, computed for this user."""
        while True:
            await self.dirty.wait()
            self.dirty.clear()
            now = self.app[CLOCK]()
            await self.send(await queue_snapshot(self.app, self.user, now=now))
            if self.user.supervises:
                await self.send(await supervisor_view(self.app, now=now))
            await self._drop_lost_watches()

    async def _drop_lost_watches(self) -> None:
        # A conversation transferred out of a programme's queue stops streaming to its staff.
        for conv_id in list(self.watched):
            try:
                conv, _ = await visible(self.app, self.user, conv_id)
            except (NotFound, Forbidden):
                self._forget(conv_id, cancel=True)
                await self.send({"type": "unwatched", "conversation": conv_id})
                continue
            await self._tell_if_closed(conv)

    async def _tell_if_closed(self, conv: Conversation) -> None:
        # It ended (the person said "stop", or it closed as idle): the page stops offering
        # replies, once. (If they write again it is the bot's, not this adviser's: the
        # page's replies stay hidden.)
        if conv.closed and conv.id not in self.closed:
            self.closed.add(conv.id)
            await self.send(_closed_frame(conv))
        elif not conv.closed:
            self.closed.discard(conv.id)

    async def _on_session_ended(self, event: dict[str, Any]) -> None:
        # A check that fails closes the socket too (the page reconnects and checks afresh).
        await self._or_close(self._still_logged_in)

    async def _recheck(self) -> None:
        """A disabled user or an expired session is cut off within a minute (a logout at
        once: _on_session_ended). The queue is shown afresh each time too: an event lost
        on the way (the hub unreachable for a moment) leaves a console behind a minute at
        most, not until the next change."""
        while True:
            await asyncio.sleep(RECHECK_SECONDS)
            if not await self._still_logged_in():
                return
            self.dirty.set()

    async def _still_logged_in(self) -> bool:
        """Whether the session still holds; if not, the socket is closed. Looking does not
        touch the session: an open tab alone must not keep an idle console logged in."""
        now = self.app[CLOCK]()
        found = await accounts.session_for(self.app[STORE], self.token, now=now, touch=False)
        if found is not None:
            return True
        await self.ws.close(code=UNAUTHORISED, message=b"session ended")
        return False

    # -- frames from the console -----------------------------------------------------------

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != WSMsgType.TEXT:
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.ERROR):
                    return
                continue
            frame = json_object(msg.data)
            if frame is None:
                continue
            conv_id = frame.get("conversation")
            if not isinstance(conv_id, str) or not _ID.match(conv_id):
                continue
            if frame.get("type") == "watch":
                await self._watch(conv_id)
            elif frame.get("type") == "unwatch" and conv_id in self.watched:
                self.watched.pop(conv_id).cancel()
                self.closed.discard(conv_id)

    async def _watch(self, conv_id: str) -> None:
        """Stream a conversation's transcript, starting with all of it so far: each `watch`
        is answered with a `transcript` frame (the page drops the messages it shows already)."""
        try:
            conv, _ = await visible(self.app, self.user, conv_id)
        except (NotFound, Forbidden):
            # Asked again, its access is checked again: a conversation that left this user's
            # scope since (transferred, ended) stops streaming now, not at the next snapshot.
            self._forget(conv_id, cancel=True)
            await self.send({"type": "refused", "conversation": conv_id})
            return
        if conv_id in self.watched:
            # Shown afresh on the page (opened again): what it fetched may already be behind.
            await self._or_close(lambda: self._send_transcript(conv_id))
            return
        if len(self.watched) >= MAX_WATCHED:
            oldest = next(iter(self.watched))
            self.watched.pop(oldest).cancel()
        await accounts.audit(self.app[STORE], self.user.name, "watch", conv_id)
        self.watched[conv_id] = asyncio.create_task(
            self._or_close(lambda: self._transcript(conv_id))
        )

    async def _transcript(self, conv_id: str) -> None:
        async with self.app[HUB].subscribe(f"transcript:{conv_id}") as events:
            # Read after subscribing, so nothing falls between the two: not what was said
            # after the page fetched the conversation, nor while its socket was down (the
            # page sends `watch` again on reconnecting), nor what the hub lost (RESYNC).
            await self._send_transcript(conv_id)
            # Whether it has ended, read now too: it may have ended since the watch found it
            # open, before this watch was listed for the queue's snapshots to check.
            try:
                conv, _ = await visible(self.app, self.user, conv_id)
            except (NotFound, Forbidden):  # and it left this user's scope meanwhile
                await self.send({"type": "unwatched", "conversation": conv_id})
                self._forget(conv_id, cancel=False)  # this task ends here by itself
                return
            if conv.closed:  # (an open reading is left to the snapshots: it may be stale)
                await self._tell_if_closed(conv)
            await self.send({"type": "watching", "conversation": conv_id})
            authors = await note_authors(self.app, self.user)
            async for event in events:
                if authors is not None and not await self._still_visible(conv_id):
                    # Programme staff: every line is checked against their scope first, so
                    # a conversation passed back to the helpline shows them nothing more even
                    # when the queue's event that drops the watch is lost on the way.
                    await self.send({"type": "unwatched", "conversation": conv_id})
                    self._forget(conv_id, cancel=False)  # this task ends here by itself
                    return
                if event.get("type") == RESYNC:
                    await self._send_transcript(conv_id)
                elif shows_note(
                    str(event.get("direction")), event.get("author_name"), authors
                ):  # never a helpline note to a programme's staff
                    await self.send({**event, "conversation": conv_id})

    def _forget(self, conv_id: str, *, cancel: bool) -> None:
        """Stop streaming a watched conversation (it may have stopped by itself already)."""
        watched = self.watched.pop(conv_id, None)
        if watched is not None and cancel:
            watched.cancel()
        self.closed.discard(conv_id)

    async def _still_visible(self, conv_id: str) -> bool:
        try:
            await visible(self.app, self.user, conv_id)
        except (NotFound, Forbidden):
            return False
        return True

    async def _send_transcript(self, conv_id: str) -> None:
        messages = await transcript(self.app, self.user, conv_id)
        await self.send(
            {
                "type": "transcript",
                "conversation": conv_id,
                "messages": messages,
            }
        )


async def close_sockets(app: web.Application) -> None:
    sockets: weakref.WeakSet[web.WebSocketResponse] = app[SOCKETS]
    for ws in list(sockets):
        with contextlib.suppress(Exception):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"restarting")


def _closed_frame(conv: Conversation) -> dict[str, Any]:
    """A watched conversation has ended: by the person ("stop") or otherwise (idle)."""
    return {
        "type": "closed",
        "conversation": conv.id,
        "by": "person" if conv.flow == "stop" else "service",
    }
