"""Domain types shared by the core and its adapters: plain dataclasses that do no I/O."""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def utcnow() -> datetime:
    return datetime.now(UTC)


LANGUAGES = ("en", "cy")


class Owner(enum.StrEnum):
    """Who is responsible for a conversation right now: exactly one at a time."""

    BOT = "bot"
    QUEUE = "queue"
    ADVISER = "adviser"
    AFTERCARE = "aftercare"


class Direction(enum.StrEnum):
    IN = "in"
    OUT = "out"
    NOTE = "note"  # adviser's private note, never sent
    EVENT = "event"  # ownership change and similar, shown in the transcript


class Author(enum.StrEnum):
    PERSON = "person"
    BOT = "bot"
    ADVISER = "adviser"
    SYSTEM = "system"


class Delivery(enum.StrEnum):
    RECEIVED = "received"  # inbound, stored, not yet handled by the engine
    HANDLED = "handled"  # inbound, the engine has answered it
    PENDING = "pending"  # outbound, stored, not yet handed to the channel
    HELD = "held"  # outbound, waiting for the person's quiet hours to end
    # Outbound, refused until the person writes again (WhatsApp's 24-hour window): sent, in
    # order, when they do (Engine._turn).
    UNREACHABLE = "unreachable"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One message from a person, as a channel hands it to the engine.

    `address` is what the channel needs to reply (a phone number, a chat id, a web
    session token). It lives only in memory: it is hashed for lookup and stored sealed.
    """

    channel: str
    address: str
    text: str
    external_id: str | None = None
    received_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class Reply:
    """Something to say to a person: text, and quick-reply options if any."""

    text: str
    options: tuple[str, ...] = ()
    author: Author = Author.BOT


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A stored reply on its way out through a channel; `message_id` 0 for the erasure's
    confirmation and UNSTORED for another reply the store does not hold (a channel that can
    tidy a chat keeps the latter's ids for it)."""

    message_id: int
    conversation_id: str
    channel: str
    address: str
    reply: Reply
    language: str = "en"
    contact_key: str = ""  # the keyed hash: enough for a channel that addresses by it


UNSTORED = -1


@dataclass(eq=False)
class Conversation:
    """One person's conversation on one channel; identity equality (see TECH-NOTES)."""

    id: str
    contact_key: str
    channel: str
    reference: str
    language: str = "en"
    flow: str = "welcome"
    state: str = "start"
    owner: Owner = Owner.BOT
    risk_level: str = "none"
    answers: dict[str, Any] = field(default_factory=dict)
    adviser: str | None = None
    closed: bool = False
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    last_inbound_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    conversation_id: str
    direction: Direction
    author: Author
    text: str
    options: tuple[str, ...]
    status: Delivery
    created_at: datetime
    external_id: str | None = None
    author_name: str | None = None
    # A reply's claim: when an instance took it to send it (see SqlStore.claim).
    claimed_at: datetime | None = None


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """Text from outside (a person, an adviser) as any database can keep it: NUL (which
    PostgreSQL refuses) and lone surrogate halves (which no UTF-8 encoder takes) become
    U+FFFD. Every channel and the console pass what they receive through this."""
    return _UNSTORABLE.sub("\ufffd", text)


def json_object(raw: str | bytes) -> dict[str, Any] | None:
    """The JSON object sent from outside (a page's frame, a platform's update, a console's
    request), or None for anything else: not JSON, not UTF-8, not an object, or nested
    deeper than the parser can follow ("[" * 5000 raises RecursionError, not ValueError)."""
    try:
        data = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None
