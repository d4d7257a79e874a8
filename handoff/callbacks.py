"""Call-backs: a person asks to be called at a time they say is safe; an adviser marks each
one done or not reached.

The number to call is stored only sealed (AES-GCM, bound to the call-back's conversation),
opened only when an adviser presses "Show number" (which the console audits), and deleted
when the call-back is marked or the person withdraws it (by saying "stop"); retention and
erasure delete it with the conversation."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from handoff.models import CallbackRow
from helpline.domain import utcnow
from helpline.engine import LEFT_BY_QUICK_EXIT
from helpline.errors import HelplineError, NotFound
from helpline.ports import CALLBACK_WINDOW_LONGEST, Hub
from helpline.privacy import Privacy
from helpline.storage import SqlStore
from helpline.storage.models import ConversationRow

STATUSES = ("requested", "done", "not_reached", "withdrawn")
TOPIC = "callbacks"

log = logging.getLogger(__name__)


class CallbackFinal(HelplineError):
    """A call-back already marked, or withdrawn by the person, cannot be marked again."""


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _seal_context(conversation_id: str) -> str:
    # A sealed number moved onto another conversation's call-back will not open.
    return f"callback:{conversation_id}"


def seal_number(privacy: Privacy, conversation_id: str, number: str) -> str:
    return privacy.seal(number, _seal_context(conversation_id))


async def request_callback(
    store: SqlStore,
    conversation_id: str,
    window: str,
    *,
    sealed_number: str | None = None,
    hub: Hub | None = None,
) -> int:
    """Store a request for a call-back in the person's own words about when it is safe, with
    the number to call already sealed (see `seal_number`)."""
    window = " ".join(window.split())[:CALLBACK_WINDOW_LONGEST]
    now = utcnow()
    async with store.session() as session, session.begin():
        if await session.get(ConversationRow, conversation_id) is None:
            raise NotFound("no such conversation")
        row = CallbackRow(
            conversation_id=conversation_id,
            window=window,
            sealed_number=sealed_number,
            status="requested",
            created_at=now,
            updated_at=now,
            updated_by=None,
        )
        session.add(row)
        await session.flush()
        callback_id = row.id
    if hub is not None:
        await hub.publish(TOPIC, {"type": "callback"})
    return callback_id


async def callbacks(store: SqlStore, *, open_only: bool = True) -> list[dict[str, Any]]:
    query = (
        select(CallbackRow, ConversationRow)
        .join(ConversationRow, ConversationRow.id == CallbackRow.conversation_id)
        .order_by(CallbackRow.id)
        .limit(500)
    )
    if open_only:
        query = query.where(CallbackRow.status == "requested")
    async with store.session() as session:
        rows = (await session.execute(query)).all()
    return [
        {
            "id": cb.id,
            "conversation": conv.id,
            "reference": conv.reference,
            "channel": conv.channel,
            "language": conv.language,
            "window": cb.window,
            "has_number": cb.sealed_number is not None,
            "status": cb.status,
            "requested_at": _aware(cb.created_at).isoformat(),
            "updated_by": cb.updated_by,
            # Left with the quick exit after asking (when): someone may have come in.
            "left_by_quick_exit": (conv.answers or {}).get(LEFT_BY_QUICK_EXIT),
        }
        for cb, conv in rows
    ]


async def mark_callback(
    store: SqlStore, callback_id: int, status: str, by: str, *, hub: Hub | None = None
) -> str:
    """Mark a waiting call-back done or not reached; returns its conversation id (for the
    audit). One already marked, or withdrawn by the person, is final (CallbackFinal): what
    was recorded, and who recorded it, stands."""
    if status not in ("done", "not_reached"):
        raise HelplineError(f"unknown call-back status {status!r}")
    async with store.session() as session, session.begin():
        conversation_id = await session.scalar(
            select(CallbackRow.conversation_id).where(CallbackRow.id == callback_id)
        )
        if conversation_id is None:
            raise NotFound("no such call-back")
        # Checked in the statement that changes it: two advisers marking at once, or the
        # person saying "stop" meanwhile, cannot overwrite each other.
        changed = await session.execute(
            update(CallbackRow)
            .where(CallbackRow.id == callback_id, CallbackRow.status == "requested")
            .values(
                status=status,
                sealed_number=None,  # the call is over: the number is not kept
                updated_at=utcnow(),
                updated_by=by,
            )
        )
        if not changed.rowcount:  # type: ignore[attr-defined]
            raise CallbackFinal("this call-back was already marked or withdrawn")
    if hub is not None:
        await hub.publish(TOPIC, {"type": "callback"})
    return conversation_id


async def withdraw_callbacks(store: SqlStore, contact_key: str, *, hub: Hub | None = None) -> int:
    """The person has said "stop": every call-back they still wait for, from any of their
    conversations, is withdrawn and its number deleted, so nobody phones them now. The row
    stays, marked withdrawn, for the record. Returns how many."""
    async with store.session() as session, session.begin():
        rows = (
            await session.scalars(
                select(CallbackRow)
                .join(ConversationRow, ConversationRow.id == CallbackRow.conversation_id)
                .where(ConversationRow.contact_key == contact_key)
                .where(CallbackRow.status == "requested")
            )
        ).all()
        now = utcnow()
        for row in rows:
            row.status = "withdrawn"
            row.sealed_number = None
            row.updated_at = now
            row.updated_by = None  # the person, not a member of staff
    if rows and hub is not None:
        try:
            await hub.publish(TOPIC, {"type": "callback"})
        except Exception:  # noqa: BLE001 - withdrawn all the same; consoles catch up
            log.warning("the consoles could not be told call-backs were withdrawn", exc_info=True)
    return len(rows)


async def conversation_of(store: SqlStore, callback_id: int) -> str:
    """The conversation a call-back belongs to."""
    async with store.session() as session:
        row = await session.get(CallbackRow, callback_id)
        if row is None:
            raise NotFound("no such call-back")
        return row.conversation_id


async def reveal_number(store: SqlStore, privacy: Privacy, callback_id: int) -> tuple[str, str]:
    """Open a waiting call-back's number for the adviser about to call; returns the number
    and the conversation id (for the audit). The caller records who asked, and never logs
    the number."""
    async with store.session() as session:
        row = await session.get(CallbackRow, callback_id)
        if row is None or row.status != "requested" or row.sealed_number is None:
            raise NotFound("no number to show")
        sealed, conversation_id = row.sealed_number, row.conversation_id
    return privacy.open(sealed, _seal_context(conversation_id)), conversation_id
