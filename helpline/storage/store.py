"""SqlStore: the repository the engine uses; one short transaction per operation."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from helpline.domain import (
    Author,
    Conversation,
    Delivery,
    Direction,
    Owner,
    Reply,
    StoredMessage,
    utcnow,
)
from helpline.errors import DuplicateMessage, NotFound
from helpline.privacy import new_reference
from helpline.storage.engine import READ_ONLY, create_engine, is_sqlite
from helpline.storage.models import (
    ContactRow,
    ConversationRow,
    HandoffRow,
    HandoverRow,
    MessageRow,
)


@dataclass(frozen=True, slots=True)
class Accepted:
    """An inbound message safely stored: what the channel may now acknowledge."""

    conversation_id: str
    message_id: int
    new_conversation: bool


@dataclass(frozen=True, slots=True)
class HandoffRecord:
    conversation_id: str
    queue: str
    language: str
    channel: str
    priority: int
    reason: str
    joined_at: datetime
    claimed_by: str | None


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes even for timezone-aware columns.
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _conversation(row: ConversationRow) -> Conversation:
    return Conversation(
        id=row.id,
        contact_key=row.contact_key,
        channel=row.channel,
        reference=row.reference,
        language=row.language,
        flow=row.flow,
        state=row.state,
        owner=Owner(row.owner),
        risk_level=row.risk_level,
        answers=dict(row.answers or {}),
        adviser=row.adviser,
        closed=row.closed,
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
        last_inbound_at=_aware(row.last_inbound_at) if row.last_inbound_at else None,
    )


def _message(row: MessageRow) -> StoredMessage:
    return StoredMessage(
        id=row.id,
        conversation_id=row.conversation_id,
        direction=Direction(row.direction),
        author=Author(row.author),
        text=row.text,
        options=tuple(row.options or ()),
        status=Delivery(row.status),
        created_at=_aware(row.created_at),
        external_id=row.external_id,
        author_name=row.author_name,
    )


class SqlStore:
    """Conversations, messages and handoffs on SQLite or PostgreSQL through SQLAlchemy."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine: AsyncEngine = create_engine(url, pool_size=pool_size)
        self._session = async_sessionmaker(self.engine, expire_on_commit=False)
        self._reader = async_sessionmaker(
            self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )
        # SQLite has one writer at a time, and a connection that finds the lock taken sleeps
        # in SQLite's busy handler (backing off to 100 ms a try), so under load writers
        # mostly sleep. Writers in this process take turns here instead, woken at once.
        self._writer: contextlib.AbstractAsyncContextManager[object] = (
            asyncio.Lock() if is_sqlite(url) else contextlib.nullcontext()
        )

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> None:
        async with self._read() as session:
            await session.execute(select(1))

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncSession]:
        """One write transaction, committed on leaving (rolled back on an error)."""
        async with self._writer, self._session() as session, session.begin():
            yield session

    def _read(self) -> AsyncSession:
        """A session that only reads (on SQLite it does not take the write lock)."""
        return self._reader()

    def session(self) -> AsyncSession:
        """For adapters that own tables of their own (console, referrals)."""
        return self._session()

    # -- inbound ---------------------------------------------------------------------------

    async def accept_inbound(
        self,
        *,
        contact_key: str,
        channel: str,
        sealed_address: str | None,
        text: str,
        external_id: str | None,
        received_at: datetime,
        language: str = "en",
        flow: str = "welcome",
        state: str = "start",
        private: Callable[[str, str, str, bool], str | None] | None = None,
    ) -> Accepted:
        """Store an inbound message, creating the contact and an open conversation if needed.

        `private(flow, state, owner, queued)` of the open conversation (queued: earlier messages
        still wait to be handled) may return what to store instead of the text (it sealed,
        when the text may answer a question whose answer is not kept in clear).
        Raises DuplicateMessage when (channel, external_id) was stored before."""
        try:
            async with self._write() as session:
                if external_id is not None:
                    seen = await session.scalar(
                        select(MessageRow.id).where(
                            MessageRow.channel == channel, MessageRow.external_id == external_id
                        )
                    )
                    if seen is not None:
                        raise DuplicateMessage(f"{channel} message already stored")
                await self._touch_contact(
                    session, contact_key, channel, sealed_address, received_at
                )
                found = (
                    await session.execute(
                        select(
                            ConversationRow.id,
                            ConversationRow.flow,
                            ConversationRow.state,
                            ConversationRow.owner,
                        )
                        .where(ConversationRow.contact_key == contact_key, ~ConversationRow.closed)
                        .order_by(ConversationRow.created_at.desc())
                        .limit(1)
                    )
                ).first()
                conv_id = found[0] if found is not None else None
                if found is not None and private is not None:
                    # Messages still waiting before this one may move the journey on to a
                    # question whose answer is not kept (the number question).
                    queued = (
                        await session.scalar(
                            select(MessageRow.id)
                            .where(
                                MessageRow.conversation_id == found[0],
                                MessageRow.direction == Direction.IN.value,
                                MessageRow.status == Delivery.RECEIVED.value,
                            )
                            .limit(1)
                        )
                        is not None
                    )
                    text = private(found[1], found[2], found[3], queued) or text
                created = conv_id is None
                if conv_id is None:
                    conv_id = uuid.uuid4().hex
                    session.add(
                        ConversationRow(
                            id=conv_id,
                            contact_key=contact_key,
                            channel=channel,
                            reference=new_reference(),
                            language=language,
                            flow=flow,
                            state=state,
                            owner=Owner.BOT.value,
                            risk_level="none",
                            answers={},
                            closed=False,
                            created_at=received_at,
                            updated_at=received_at,
                            last_inbound_at=received_at,
                        )
                    )
                else:
                    await session.execute(
                        update(ConversationRow)
                        .where(ConversationRow.id == conv_id)
                        .values(last_inbound_at=received_at)
                    )
                row = MessageRow(
                    conversation_id=conv_id,
                    channel=channel,
                    direction=Direction.IN.value,
                    author=Author.PERSON.value,
                    text=text,
                    options=[],
                    status=Delivery.RECEIVED.value,
                    external_id=external_id,
                    created_at=received_at,
                )
                session.add(row)
                await session.flush()
                return Accepted(conv_id, row.id, created)
        except IntegrityError as exc:
            # Two instances raced on the same redelivered webhook: the constraint decided.
            if external_id is not None:
                raise DuplicateMessage(f"{channel} message already stored") from exc
            raise

    async def _touch_contact(
        self,
        session: AsyncSession,
        key: str,
        channel: str,
        sealed_address: str | None,
        now: datetime,
    ) -> None:
        contact = await session.get(ContactRow, key)
        if contact is None:
            session.add(
                ContactRow(
                    key=key,
                    channel=channel,
                    sealed_address=sealed_address,
                    opted_out=False,
                    settings={},
                    created_at=now,
                    last_seen_at=now,
                )
            )
            await session.flush()
            return
        contact.last_seen_at = now
        contact.opted_out = False if contact.opted_out is None else contact.opted_out
        if sealed_address is not None:
            contact.sealed_address = sealed_address

    async def ensure_conversation(
        self,
        *,
        contact_key: str,
        channel: str,
        sealed_address: str | None,
        language: str,
        flow: str = "welcome",
        state: str = "start",
    ) -> tuple[str, bool]:
        """The contact's open conversation, created if there is none (web chat opens one as
        soon as the page connects, so the welcome is there before anyone types)."""
        now = utcnow()
        async with self._write() as session:
            await self._touch_contact(session, contact_key, channel, sealed_address, now)
            conv_id = await session.scalar(
                select(ConversationRow.id)
                .where(ConversationRow.contact_key == contact_key, ~ConversationRow.closed)
                .limit(1)
            )
            if conv_id is not None:
                return conv_id, False
            conv_id = uuid.uuid4().hex
            session.add(
                ConversationRow(
                    id=conv_id,
                    contact_key=contact_key,
                    channel=channel,
                    reference=new_reference(),
                    language=language,
                    flow=flow,
                    state=state,
                    owner=Owner.BOT.value,
                    risk_level="none",
                    answers={},
                    closed=False,
                    created_at=now,
                    updated_at=now,
                    last_inbound_at=None,
                )
            )
            return conv_id, True

    # -- conversations ---------------------------------------------------------------------

    async def conversation(self, conversation_id: str) -> Conversation:
        async with self._read() as session:
            row = await session.get(ConversationRow, conversation_id)
            if row is None:
                raise NotFound("no such conversation")
            return _conversation(row)

    async def conversation_by_reference(self, reference: str) -> Conversation:
        async with self._read() as session:
            row = await session.scalar(
                select(ConversationRow).where(ConversationRow.reference == reference.upper())
            )
            if row is None:
                raise NotFound("no such conversation")
            return _conversation(row)

    async def open_conversation(self, contact_key: str) -> Conversation | None:
        async with self._read() as session:
            row = await session.scalar(
                select(ConversationRow)
                .where(ConversationRow.contact_key == contact_key, ~ConversationRow.closed)
                .order_by(ConversationRow.created_at.desc())
                .limit(1)
            )
            return _conversation(row) if row else None

    async def pending_inbound(self, conversation_id: str) -> list[StoredMessage]:
        async with self._read() as session:
            rows = await session.scalars(
                select(MessageRow)
                .where(
                    MessageRow.conversation_id == conversation_id,
                    MessageRow.status == Delivery.RECEIVED.value,
                )
                .order_by(MessageRow.id)
            )
            return [_message(r) for r in rows]

    async def conversations_with_pending_inbound(self) -> list[str]:
        async with self._read() as session:
            rows = await session.scalars(
                select(MessageRow.conversation_id)
                .where(MessageRow.status == Delivery.RECEIVED.value)
                .distinct()
            )
            return list(rows)

    async def save_turn(
        self,
        conversation: Conversation,
        handled: Sequence[int],
        replies: Iterable[Reply],
        *,
        author_name: str | None = None,
        status: Delivery = Delivery.PENDING,
        touch: bool = True,
        redact: Mapping[int, str] | None = None,
    ) -> list[StoredMessage]:
        """Save the conversation's new state, mark inbound messages handled and store replies,
        all in one transaction: a crash before commit means the turn is simply run again.
        `redact` replaces the stored text of handled messages (answers not to be kept)."""
        now = utcnow()
        async with self._write() as session:
            await session.execute(
                update(ConversationRow)
                .where(ConversationRow.id == conversation.id)
                .values(
                    language=conversation.language,
                    flow=conversation.flow,
                    state=conversation.state,
                    owner=conversation.owner.value,
                    risk_level=conversation.risk_level,
                    answers=conversation.answers,
                    adviser=conversation.adviser,
                    closed=conversation.closed,
                    # A warning is not activity: it must not postpone the close it announces.
                    updated_at=now if touch else conversation.updated_at,
                )
            )
            if handled:
                await session.execute(
                    update(MessageRow)
                    .where(MessageRow.id.in_(list(handled)))
                    .values(status=Delivery.HANDLED.value)
                )
            for message_id, text in (redact or {}).items():
                await session.execute(
                    update(MessageRow).where(MessageRow.id == message_id).values(text=text)
                )
            rows = [
                MessageRow(
                    conversation_id=conversation.id,
                    channel=conversation.channel,
                    direction=(
                        Direction.EVENT.value if r.author is Author.SYSTEM else Direction.OUT.value
                    ),
                    author=r.author.value,
                    author_name=author_name,
                    text=r.text,
                    options=list(r.options),
                    # Transcript events (ownership changes) are never sent to the person.
                    status=Delivery.HANDLED.value if r.author is Author.SYSTEM else status.value,
                    created_at=now,
                )
                for r in replies
            ]
            session.add_all(rows)
            await session.flush()
            conversation.updated_at = now
            return [_message(r) for r in rows]

    async def add_note(self, conversation_id: str, text: str, author_name: str) -> StoredMessage:
        """A private note or an event line in the transcript; never sent to the person."""
        async with self._write() as session:
            conv = await session.get(ConversationRow, conversation_id)
            if conv is None:
                raise NotFound("no such conversation")
            row = MessageRow(
                conversation_id=conversation_id,
                channel=conv.channel,
                direction=Direction.NOTE.value,
                author=Author.ADVISER.value,
                author_name=author_name,
                text=text,
                options=[],
                status=Delivery.HANDLED.value,
                created_at=utcnow(),
            )
            session.add(row)
            await session.flush()
            return _message(row)

    async def transcript(self, conversation_id: str) -> list[StoredMessage]:
        async with self._read() as session:
            rows = await session.scalars(
                select(MessageRow)
                .where(MessageRow.conversation_id == conversation_id)
                .order_by(MessageRow.id)
            )
            return [_message(r) for r in rows]

    # -- delivery --------------------------------------------------------------------------

    async def sealed_address(self, contact_key: str) -> str | None:
        async with self._read() as session:
            return await session.scalar(
                select(ContactRow.sealed_address).where(ContactRow.key == contact_key)
            )

    async def contact_settings(self, contact_key: str) -> dict[str, object]:
        async with self._read() as session:
            row = await session.get(ContactRow, contact_key)
            return dict(row.settings or {}) if row else {}

    async def update_contact_settings(self, contact_key: str, **changes: object) -> None:
        async with self._write() as session:
            row = await session.get(ContactRow, contact_key)
            if row is None:
                raise NotFound("no such contact")
            row.settings = {**(row.settings or {}), **changes}

    async def mark(
        self, message_id: int, status: Delivery, *, platform_id: str | None = None
    ) -> None:
        values: dict[str, object] = {"status": status.value}
        if status is Delivery.SENT:
            values["sent_at"] = utcnow()
        if platform_id is not None:
            values["platform_id"] = platform_id
        async with self._write() as session:
            await session.execute(
                update(MessageRow).where(MessageRow.id == message_id).values(**values)
            )

    async def mark_sent(self, message_ids: Sequence[int]) -> None:
        """Several replies sent (by a channel that gives them no id of its own)."""
        async with self._write() as session:
            await session.execute(
                update(MessageRow)
                .where(MessageRow.id.in_(list(message_ids)))
                .values(status=Delivery.SENT.value, sent_at=utcnow())
            )

    async def mark_by_platform_id(self, channel: str, platform_id: str, status: Delivery) -> bool:
        async with self._write() as session:
            result = await session.execute(
                update(MessageRow)
                .where(MessageRow.channel == channel, MessageRow.platform_id == platform_id)
                .values(status=status.value)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def undelivered(self, statuses: Sequence[Delivery]) -> list[StoredMessage]:
        async with self._read() as session:
            rows = await session.scalars(
                select(MessageRow)
                .where(MessageRow.status.in_([s.value for s in statuses]))
                .order_by(MessageRow.id)
            )
            return [_message(r) for r in rows]

    # -- handoffs --------------------------------------------------------------------------

    async def open_handoff(self, record: HandoffRecord) -> None:
        async with self._write() as session:
            existing = await session.scalar(
                select(HandoffRow).where(
                    HandoffRow.conversation_id == record.conversation_id,
                    HandoffRow.ended_at.is_(None),
                )
            )
            if existing is not None:
                existing.priority = min(existing.priority, record.priority)
                return
            session.add(
                HandoffRow(
                    conversation_id=record.conversation_id,
                    queue=record.queue,
                    language=record.language,
                    channel=record.channel,
                    priority=record.priority,
                    reason=record.reason,
                    joined_at=record.joined_at,
                )
            )

    async def update_handoff(self, conversation_id: str, **values: object) -> None:
        async with self._write() as session:
            await session.execute(
                update(HandoffRow)
                .where(HandoffRow.conversation_id == conversation_id, HandoffRow.ended_at.is_(None))
                .values(**values)
            )

    async def open_handoffs(self) -> list[HandoffRecord]:
        async with self._read() as session:
            rows = await session.scalars(
                select(HandoffRow).where(HandoffRow.ended_at.is_(None)).order_by(HandoffRow.id)
            )
            return [
                HandoffRecord(
                    r.conversation_id,
                    r.queue,
                    r.language,
                    r.channel,
                    r.priority,
                    r.reason,
                    _aware(r.joined_at),
                    r.claimed_by,
                )
                for r in rows
            ]

    async def idle_conversations(self, cutoff: datetime) -> list[str]:
        """Open conversations owned by the bot with no activity since `cutoff`."""
        async with self._read() as session:
            rows = await session.scalars(
                select(ConversationRow.id).where(
                    ~ConversationRow.closed,
                    ConversationRow.owner == Owner.BOT.value,
                    ConversationRow.updated_at < cutoff,
                )
            )
            return list(rows)

    # -- erasure and retention -------------------------------------------------------------

    async def purge(self, cutoff: datetime) -> dict[str, int]:
        """Retention: delete conversations (with their messages and handoffs) last touched
        before `cutoff`, and forget reply addresses of contacts not seen since then."""
        async with self._write() as session:
            old = list(
                await session.scalars(
                    select(ConversationRow.id).where(ConversationRow.updated_at < cutoff)
                )
            )
            messages = 0
            for start in range(0, len(old), 500):
                chunk = old[start : start + 500]
                result = await session.execute(
                    delete(MessageRow).where(MessageRow.conversation_id.in_(chunk))
                )
                messages += int(result.rowcount or 0)  # type: ignore[attr-defined]
                await session.execute(
                    delete(HandoffRow).where(HandoffRow.conversation_id.in_(chunk))
                )
                await session.execute(delete(ConversationRow).where(ConversationRow.id.in_(chunk)))
            forgotten = await session.execute(
                update(ContactRow)
                .where(ContactRow.last_seen_at < cutoff, ContactRow.sealed_address.is_not(None))
                .values(sealed_address=None)
            )
            await session.execute(
                delete(ContactRow).where(
                    ContactRow.last_seen_at < cutoff,
                    ~select(ConversationRow.id)
                    .where(ConversationRow.contact_key == ContactRow.key)
                    .exists(),
                )
            )
            return {
                "conversations": len(old),
                "messages": messages,
                "addresses": int(forgotten.rowcount or 0),  # type: ignore[attr-defined]
            }

    # -- continuing on another channel -----------------------------------------------------

    async def save_handover_code(
        self, conversation_id: str, code_hash: str, expires_at: datetime, now: datetime
    ) -> None:
        """Keep a code word's hash for the conversation, replacing any earlier one (and
        clearing out every expired code)."""
        async with self._write() as session:
            await session.execute(
                delete(HandoverRow).where(
                    (HandoverRow.conversation_id == conversation_id)
                    | (HandoverRow.expires_at < now)
                )
            )
            session.add(
                HandoverRow(
                    code_hash=code_hash, conversation_id=conversation_id, expires_at=expires_at
                )
            )

    async def take_handover_code(self, code_hash: str, now: datetime) -> str | None:
        """The open conversation a code word belongs to, if the code is still valid. A code
        works once: it is used up here, whatever the outcome."""
        async with self._write() as session:
            row = await session.get(HandoverRow, code_hash)
            if row is None:
                return None
            conversation_id, expires_at = row.conversation_id, _aware(row.expires_at)
            await session.delete(row)
            if expires_at <= now:
                return None
            conv = await session.get(ConversationRow, conversation_id)
            if conv is None or conv.closed:
                return None
            return conversation_id

    async def adopt(self, conversation_id: str, arrived_id: str, now: datetime) -> None:
        """Carry a conversation over to the contact and channel of another one (where the
        person has just arrived with a code word): the arrival's messages join the older
        transcript and the arrival is closed."""
        async with self._write() as session:
            conv = await session.get(ConversationRow, conversation_id)
            arrived = await session.get(ConversationRow, arrived_id)
            if conv is None or arrived is None:
                raise NotFound("no such conversation")
            await session.execute(
                update(MessageRow)
                .where(MessageRow.conversation_id == arrived_id)
                .values(conversation_id=conversation_id)
            )
            await session.execute(
                update(HandoffRow)
                .where(HandoffRow.conversation_id == conversation_id, HandoffRow.ended_at.is_(None))
                .values(channel=arrived.channel)
            )
            conv.contact_key = arrived.contact_key
            conv.channel = arrived.channel
            conv.last_inbound_at = arrived.last_inbound_at
            conv.updated_at = now
            # The arrival is closed, not deleted: anything already attached to it (a call-back,
            # a referral) stays where it is, and retention deletes it in time.
            arrived.closed = True
            arrived.updated_at = now

    async def chat_message_ids(self, contact_key: str) -> tuple[list[str], list[str]]:
        """The platform's ids of every message in the contact's conversations: what was sent
        (platform_id) and what was received (external_id), for tidying a chat on erasure."""
        async with self._read() as session:
            rows = await session.execute(
                select(MessageRow.direction, MessageRow.platform_id, MessageRow.external_id)
                .join(ConversationRow, ConversationRow.id == MessageRow.conversation_id)
                .where(ConversationRow.contact_key == contact_key)
                .order_by(MessageRow.id)
            )
            sent: list[str] = []
            received: list[str] = []
            for direction, platform_id, external_id in rows:
                if direction == Direction.OUT.value and platform_id:
                    sent.append(platform_id)
                elif direction == Direction.IN.value and external_id:
                    received.append(external_id)
            return sent, received

    async def erase_contact(self, contact_key: str) -> dict[str, int]:
        """Delete everything held about one contact: conversations, messages, address."""
        async with self._write() as session:
            conv_ids = list(
                await session.scalars(
                    select(ConversationRow.id).where(ConversationRow.contact_key == contact_key)
                )
            )
            messages = await session.scalar(
                select(func.count())
                .select_from(MessageRow)
                .where(MessageRow.conversation_id.in_(conv_ids))
            )
            if conv_ids:
                await session.execute(
                    delete(MessageRow).where(MessageRow.conversation_id.in_(conv_ids))
                )
                await session.execute(
                    delete(HandoffRow).where(HandoffRow.conversation_id.in_(conv_ids))
                )
                await session.execute(
                    delete(ConversationRow).where(ConversationRow.id.in_(conv_ids))
                )
            await session.execute(delete(ContactRow).where(ContactRow.key == contact_key))
            return {"conversations": len(conv_ids), "messages": int(messages or 0)}
