"""The small interfaces the core owns; their implementations live beside them or at the edge."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Collection, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web

from helpline.domain import OutboundMessage


class Priority(enum.IntEnum):
    """Order in the adviser queue: lower is more urgent."""

    IMMEDIATE = 0
    SUICIDE = 1
    CONCERN = 2
    NORMAL = 3

    @classmethod
    def for_risk(cls, level: str) -> Priority:
        return {
            "immediate": cls.IMMEDIATE,
            "suicide": cls.SUICIDE,
            "concern": cls.CONCERN,
        }.get(level, cls.NORMAL)


# The helpline's own queue: where a conversation goes unless a journey names another.
DEFAULT_QUEUE = "helpline"
# Kept in a conversation's answers while one of a programme's staff holds it (routing's
# claim with `programme`): what the person is then told says so, and leaving the queue
# withdraws a referral only before they took it up (Engine._back_from_queue).
PROGRAMME_HOLDS = "_programme_holds"
# The longest call-back time kept (callbacks.window): the journey that books one fits what it
# adds to the time in it; the console's side cuts anything longer.
CALLBACK_WINDOW_LONGEST = 200


def programme_of(queue: str) -> str | None:
    """The programme whose queue this is ("programme:<id>"), or None for any other queue."""
    return queue.removeprefix("programme:") if queue.startswith("programme:") else None


def adviser_of(queue: object) -> str | None:
    """The adviser whose own queue this is ("adviser:<name>", a conversation transferred to
    them by name), or None for any other queue (or none)."""
    if isinstance(queue, str) and queue.startswith("adviser:"):
        return queue.removeprefix("adviser:")
    return None


def helpline_queue(queue: object) -> str:
    """The queue someone asking for an adviser joins, given the last one their conversation
    was in: the journey's own ("helpline", "family"), never a programme's ("programme:<id>",
    which only a consented referral sends a conversation to) nor one adviser's own
    ("adviser:<name>", a hand-on that ended with that conversation)."""
    if not isinstance(queue, str) or not queue or queue.startswith(("programme:", "adviser:")):
        return DEFAULT_QUEUE
    return queue


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """A conversation waiting for (or claimed by) a human.

    `queue` is "helpline", "family" or "programme:<id>". `joined_at` is timezone-aware UTC.
    """

    conversation_id: str
    queue: str
    language: str
    priority: Priority
    joined_at: datetime
    channel: str


class RoutingQueue(Protocol):
    """Conversations waiting for an adviser, most urgent first, longest wait first within a level.

    Claims are atomic: whatever the number of concurrent claimers, each conversation goes to
    exactly one adviser.
    """

    async def enqueue(self, entry: QueueEntry) -> None:
        """Add a waiting conversation. If it is already waiting, keep its place and only ever
        raise its priority; if it is claimed, do nothing."""

    async def escalate(self, conversation_id: str, priority: Priority) -> bool:
        """Raise (never lower) the priority of a waiting conversation; False if not waiting."""

    async def remove(self, conversation_id: str) -> bool:
        """Take a conversation out of the queue or out of its claim (cancel or end)."""

    async def claim(self, conversation_id: str, adviser: str, capacity: int) -> QueueEntry | None:
        """Claim one waiting conversation; None if it is not waiting (already taken) or the
        adviser is at capacity."""

    async def claim_next(
        self, adviser: str, queues: Collection[str], capacity: int
    ) -> QueueEntry | None:
        """Claim the most urgent waiting conversation in any of `queues`; None when there is
        none or the adviser already holds `capacity` conversations."""

    async def release(self, conversation_id: str, adviser: str) -> bool:
        """Put a claimed conversation back in the queue with its original place."""

    async def transfer(self, conversation_id: str, queue: str) -> bool:
        """Move a waiting or claimed conversation to another queue (it waits there)."""

    async def waiting(self, queues: Collection[str] | None = None) -> list[QueueEntry]:
        """Waiting conversations in queue order."""

    async def board(self) -> tuple[list[QueueEntry], list[tuple[QueueEntry, str]]]:
        """The whole queue as it stands at one instant, in one read: the waiting
        conversations and the claimed ones with the adviser holding each, both in queue
        order (what every adviser's console shows again at each change)."""

    async def position(self, conversation_id: str) -> int | None:
        """1-based place among the conversations in the same queue, None if not waiting."""

    async def claims(self, adviser: str | None = None) -> dict[str, str]:
        """Conversation id -> adviser for claimed conversations (all, or one adviser's)."""

    async def entry(self, conversation_id: str) -> QueueEntry | None:
        """The entry for a waiting or claimed conversation."""

    async def restore(self, waiting: Iterable[QueueEntry], claims: dict[str, str]) -> None:
        """Load state from the database at start (the in-process queue); idempotent."""


class Locks(Protocol):
    """A per-conversation lock around load -> step -> save, across processes where needed."""

    def hold(self, key: str) -> AbstractAsyncContextManager[None]: ...


# The type of the event a hub sends every subscriber when events may have been lost.
RESYNC = "resync"
# Published when someone's data was erased, or retention deleted some: whatever shows lists
# of people's words (the consoles' call-backs, referrals, concerns) reads them again.
ERASED_TOPIC = "erased"


class Hub(Protocol):
    """Live events between the engine, web chat sockets and adviser consoles, across instances."""

    async def publish(self, topic: str, event: dict[str, Any]) -> None: ...

    def subscribe(self, *topics: str) -> AbstractAsyncContextManager[AsyncIterator[dict[str, Any]]]:
        """Yields an async iterator of events published to any of `topics` from now on, and
        `{"type": RESYNC}` whenever some may have been lost on the way (the hub lost its
        connection for a moment): the subscriber then reads again what it shows."""
        ...


class Sender(Protocol):
    """What the engine needs of a channel: a name and a way to deliver one stored reply.

    Optional, looked up by name: `live` (a page the person is looking at: no quiet hours),
    `by_key` (it reaches the person by `OutboundMessage.contact_key`, so the engine does not
    open the sealed address),
    `notify(address, kind, data)` (tell a live page about a change of state: "ended",
    "stopped", "erased", "language", "idle_warning"...),
    `own_words(conv, text)` (the channel's answer, as replies, if the whole message is one of
    its own words, such as HELP or QUIET on the text channels; else None: asked in the
    conversation's turn, so a word is answered once and never read by the journey) and
    `tidy(address, sent_ids, received_ids)` (remove an erased conversation's messages from
    the person's own chat app, where the platform allows it) and
    `reply_window` (a timedelta: the platform takes replies only this long after the
    person's last message, as WhatsApp does for 24 hours; a send after it raises
    helpline.errors.OutsideReplyWindow, and someone waiting is told how to keep the way
    open: Routing.window_note)."""

    name: str

    async def send(self, message: OutboundMessage) -> str | None:
        """Deliver; return the platform's id for the sent message if it has one.

        Raise helpline.errors.DeliveryError when the platform refuses or cannot be reached."""
        ...


class Channel(Sender, Protocol):
    """A channel adapter: turns a platform's requests into InboundMessages and back."""

    def routes(self) -> list[web.AbstractRouteDef]: ...


class Hours(Protocol):
    """When each queue is open (helpline.hours.OpeningHours, or an overlay of it)."""

    def is_open(self, queue: str, at: datetime) -> bool: ...

    def next_opening(self, queue: str, at: datetime) -> datetime | None: ...
