"""Safeguarding concerns: an adviser records one, a supervisor is alerted live and signs it
off. Both steps are in the audit log (the console writes it)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from handoff.models import SafeguardingRow
from helpline.domain import utcnow
from helpline.errors import HelplineError, NotFound
from helpline.ports import Hub
from helpline.storage import SqlStore
from helpline.storage.models import ConversationRow

TOPIC = "safeguarding"
MAX_TEXT = 4000


def _aware(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


async def raise_concern(
    store: SqlStore, hub: Hub, conversation_id: str, adviser: str, concern: str
) -> int:
    concern = concern.strip()[:MAX_TEXT]
    if not concern:
        raise HelplineError("a safeguarding concern needs a description")
    async with store.session() as session, session.begin():
        if await session.get(ConversationRow, conversation_id) is None:
            raise NotFound("no such conversation")
        row = SafeguardingRow(
            conversation_id=conversation_id,
            raised_by=adviser,
            concern=concern,
            raised_at=utcnow(),
        )
        session.add(row)
        await session.flush()
        concern_id = row.id
    await hub.publish(TOPIC, {"type": "safeguarding", "id": concern_id})
    return concern_id


async def concerns(store: SqlStore, *, open_only: bool = True) -> list[dict[str, Any]]:
    query = (
        select(SafeguardingRow, ConversationRow.reference)
        .join(ConversationRow, ConversationRow.id == SafeguardingRow.conversation_id)
        .order_by(SafeguardingRow.id)
        .limit(500)
    )
    if open_only:
        query = query.where(SafeguardingRow.signed_off_at.is_(None))
    async with store.session() as session:
        rows = (await session.execute(query)).all()
    return [
        {
            "id": r.id,
            "conversation": r.conversation_id,
            "reference": reference,
            "raised_by": r.raised_by,
            "concern": r.concern,
            "raised_at": _aware(r.raised_at),
            "signed_off_by": r.signed_off_by,
            "signed_off_at": _aware(r.signed_off_at),
            "decision": r.decision,
        }
        for r, reference in rows
    ]


async def sign_off(
    store: SqlStore, hub: Hub, concern_id: int, supervisor: str, decision: str
) -> str:
    """Sign a concern off; returns its conversation id. A concern is signed off once."""
    decision = decision.strip()[:MAX_TEXT]
    if not decision:
        raise HelplineError("a sign-off needs the decision taken")
    async with store.session() as session, session.begin():
        row = await session.get(SafeguardingRow, concern_id)
        if row is None:
            raise NotFound("no such concern")
        if row.signed_off_at is not None:
            raise HelplineError("this concern is already signed off")
        row.signed_off_by = supervisor
        row.signed_off_at = utcnow()
        row.decision = decision
        conversation_id = row.conversation_id
    await hub.publish(TOPIC, {"type": "signed_off", "id": concern_id})
    return conversation_id
