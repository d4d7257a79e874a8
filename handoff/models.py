"""Tables of the adviser console: staff accounts, their sessions, the audit log, referrals,
call-backs and safeguarding sign-offs. On the core's `Base`, so there is one metadata."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from helpline.storage.models import Base


class UserRow(Base):
    __tablename__ = "console_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    programme: Mapped[str | None] = mapped_column(String(80))
    password_hash: Mapped[str] = mapped_column(Text)
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    # The TOTP time-step of the last code accepted: that code, and earlier ones, are refused.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    # How many conversations this adviser holds at once; None: HELPLINE_ADVISER_CAPACITY.
    capacity: Mapped[int | None] = mapped_column(Integer)


class SessionRow(Base):
    """A console login. Only a hash of the cookie's token is stored."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("console_users.id", ondelete="CASCADE"), index=True
    )
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class AuditRow(Base):
    """Who viewed or acted on what. No foreign key: the record outlives an erased
    conversation (it then names an id that no longer leads anywhere)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(80), index=True)
    action: Mapped[str] = mapped_column(String(40))
    conversation_id: Mapped[str | None] = mapped_column(String(32), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ReferralRow(Base):
    __tablename__ = "referrals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reference: Mapped[str] = mapped_column(String(12), unique=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    programme_id: Mapped[str] = mapped_column(String(80), index=True)
    shared: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    updated_by: Mapped[str | None] = mapped_column(String(80))


class CallbackRow(Base):
    """A requested call-back. The number is only ever stored sealed, and is dropped as soon
    as the call-back is marked done or not reached."""

    __tablename__ = "callbacks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    window: Mapped[str] = mapped_column(String(200))
    sealed_number: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    updated_by: Mapped[str | None] = mapped_column(String(80))


class SafeguardingRow(Base):
    __tablename__ = "safeguarding"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    raised_by: Mapped[str] = mapped_column(String(80))
    concern: Mapped[str] = mapped_column(Text)
    raised_at: Mapped[datetime]
    signed_off_by: Mapped[str | None] = mapped_column(String(80))
    signed_off_at: Mapped[datetime | None] = mapped_column(index=True)
    decision: Mapped[str | None] = mapped_column(Text)


class HoursOverrideRow(Base):
    """An admin's change to content/hours.yaml: a closure between two instants (kind
    "closure"), or a queue's new weekly hours (kind "weekly", `weekly` as in hours.yaml)."""

    __tablename__ = "hours_overrides"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(8))
    queue: Mapped[str | None] = mapped_column(String(80))  # None: every queue
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None] = mapped_column(index=True)
    weekly: Mapped[dict[str, Any] | None]
    name: Mapped[str] = mapped_column(String(120))
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime]
