"""Tables. Nothing here holds an address in clear: contacts are keyed by a keyed hash."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSON}


class ContactRow(Base):
    __tablename__ = "contacts"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    sealed_address: Mapped[str | None] = mapped_column(Text)
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class ConversationRow(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    contact_key: Mapped[str] = mapped_column(
        ForeignKey("contacts.key", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str] = mapped_column(String(12), unique=True)
    language: Mapped[str] = mapped_column(String(2))
    flow: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(80))
    owner: Mapped[str] = mapped_column(String(12))
    risk_level: Mapped[str] = mapped_column(String(12))
    answers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    adviser: Mapped[str | None] = mapped_column(String(80))
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    last_inbound_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_conversations_open", "contact_key", "closed"),)


class MessageRow(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str] = mapped_column(String(8))
    author: Mapped[str] = mapped_column(String(12))
    author_name: Mapped[str | None] = mapped_column(String(80))
    text: Mapped[str] = mapped_column(Text)
    options: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(12), index=True)
    external_id: Mapped[str | None] = mapped_column(String(128))
    platform_id: Mapped[str | None] = mapped_column(String(128), index=True)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    # When an instance took a pending reply to send it (the one that stored it, or one sending
    # it again): no other sends it until the claim lapses (see SqlStore.claim).
    claimed_at: Mapped[datetime | None]

    # A redelivered webhook carries the same platform id: the unique constraint makes the
    # second copy fail to insert, whichever instance receives it.
    # A conversation's unanswered messages are read by both at once (migration 0007); the
    # index serves reads by conversation alone too.
    __table_args__ = (
        UniqueConstraint("channel", "external_id", name="uq_messages_external"),
        Index("ix_messages_conversation_status", "conversation_id", "status"),
    )


class HandoffRow(Base):
    __tablename__ = "handoffs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    queue: Mapped[str] = mapped_column(String(80))
    language: Mapped[str] = mapped_column(String(2))
    channel: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(40))
    joined_at: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    claimed_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None] = mapped_column(index=True)
    outcome: Mapped[str | None] = mapped_column(String(40))


class HandoverRow(Base):
    """A code word that lets a person carry a conversation to another channel: only its
    keyed hash is kept, for a day, and it works once."""

    __tablename__ = "handover_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    expires_at: Mapped[datetime] = mapped_column(index=True)
