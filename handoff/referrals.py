"""Referrals to local programmes: made with the person's consent, carrying only what they
agreed to share, seen only by that programme's staff, with a status the helpline can see.
Without a standing consent (declined, or never given) a conversation goes back to the
helpline's queue."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from handoff import accounts
from handoff.models import ReferralRow
from helpline.app import CONTENT, ENGINE, ROUTING, STORE
from helpline.domain import Author, Conversation, Owner, Reply, utcnow
from helpline.errors import Forbidden, HelplineError, NotFound
from helpline.ports import Hub, programme_of
from helpline.privacy import new_reference
from helpline.routing import LEFT_PROGRAMMES
from helpline.storage import SqlStore
from helpline.storage.models import ConversationRow

# "withdrawn": the person left the programme's queue before anyone took the referral up.
STATUSES = ("new", "contacted", "accepted", "declined", "withdrawn")
STAFF_STATUSES = ("contacted", "accepted", "declined")
# A referral whose consent still stands: the programme may carry on the conversation.
CONSENTED = ("new", "contacted", "accepted")
# Final: the person's withdrawal stands (only they can agree again, to a new referral), and
# so does the programme's decline (the person would be referred afresh, with consent again).
FINAL = ("withdrawn", "declined")
TOPIC = "referrals"
_MAX_FIELDS = 20
_MAX_VALUE = 500

log = logging.getLogger(__name__)


class ReferralFinal(HelplineError):
    """A withdrawn or declined referral cannot change status."""


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _shared(shared: dict[str, Any]) -> dict[str, str]:
    # Only plain short strings travel: the flow decided what the person agreed to share.
    out: dict[str, str] = {}
    for key, value in list(shared.items())[:_MAX_FIELDS]:
        if str(key).startswith("_") or value is None:
            continue
        out[str(key)[:60]] = str(value)[:_MAX_VALUE]
    return out


def _view(
    row: ReferralRow, conversation_reference: str | None, *, programme: bool = False
) -> dict[str, Any]:
    """A referral as the console lists it. `programme`: for the programme's own staff, who
    see what the person shared only while their consent stands: once it is withdrawn or
    declined they keep the reference and what became of it, nothing of the person."""
    shared = {} if programme and row.status in FINAL else dict(row.shared or {})
    return {
        "id": row.id,
        "reference": row.reference,
        "conversation": conversation_reference,
        "programme": row.programme_id,
        "shared": shared,
        "status": row.status,
        "created_at": _aware(row.created_at).isoformat(),
        "updated_at": _aware(row.updated_at).isoformat(),
        "updated_by": row.updated_by,
    }


async def create_referral(
    store: SqlStore,
    conversation_id: str,
    programme_id: str,
    shared: dict[str, Any],
    *,
    hub: Hub | None = None,
) -> str:
    """Store a consented referral and return the reference the person can quote."""
    now = utcnow()
    for _ in range(5):
        reference = "R" + new_reference(7)
        try:
            async with store.session() as session, session.begin():
                if await session.get(ConversationRow, conversation_id) is None:
                    raise NotFound("no such conversation")
                session.add(
                    ReferralRow(
                        reference=reference,
                        conversation_id=conversation_id,
                        programme_id=programme_id,
                        shared=_shared(shared),
                        status="new",
                        created_at=now,
                        updated_at=now,
                        updated_by=None,
                    )
                )
        except IntegrityError:
            continue  # the reference was taken; draw another
        if hub is not None:
            await hub.publish(TOPIC, {"type": "referral", "programme": programme_id})
        return reference
    raise HelplineError("could not find a free referral reference")


async def withdraw(
    store: SqlStore, conversation_id: str, programme_id: str, *, hub: Hub | None = None
) -> int:
    """The person left the programme's queue (cancelled, said stop, took a call-back) before
    the programme took their referral up: it is marked withdrawn, so the programme's list
    does not show a new referral nobody is waiting on. One already contacted, accepted or
    declined keeps what the programme recorded. Returns how many were withdrawn."""
    async with store.session() as session, session.begin():
        result = await session.execute(
            update(ReferralRow)
            .where(
                ReferralRow.conversation_id == conversation_id,
                ReferralRow.programme_id == programme_id,
                ReferralRow.status == "new",
            )
            .values(status="withdrawn", updated_at=utcnow(), updated_by=None)
        )
        withdrawn = int(result.rowcount or 0)  # type: ignore[attr-defined]
    if withdrawn and hub is not None:
        await hub.publish(TOPIC, {"type": "referral", "programme": programme_id})
    return withdrawn


async def consents(
    store: SqlStore, conversation_ids: list[str], programme_id: str
) -> dict[str, tuple[datetime, dict[str, str]]]:
    """For each of these conversations whose person agreed to be referred to this programme:
    when they last agreed, and what they agreed to share. What programme staff may see of a
    conversation starts there (handoff/views.py)."""
    if not conversation_ids:
        return {}
    query = (
        select(ReferralRow.conversation_id, ReferralRow.created_at, ReferralRow.shared)
        .where(
            ReferralRow.programme_id == programme_id,
            ReferralRow.conversation_id.in_(conversation_ids),
            # Withdrawn (they left the queue) or declined: consent no longer stands.
            ReferralRow.status.in_(CONSENTED),
        )
        .order_by(ReferralRow.id)
    )
    left_at = select(ConversationRow.id, ConversationRow.answers).where(
        ConversationRow.id.in_(conversation_ids)
    )
    async with store.session() as session:
        rows = (await session.execute(query)).all()
        answers: dict[str, Any] = dict((await session.execute(left_at)).all())
    # In id order: a later referral of the same conversation replaces an earlier one; one
    # made before the conversation last left this programme's queue is used up (a stay with
    # the programme ended, or the helpline took it back): only a new consent sends it back.
    found: dict[str, tuple[datetime, dict[str, str]]] = {}
    for conv, at, shared in rows:
        left = _left(answers.get(conv), programme_id)
        if left is not None and _aware(at) < left:
            found.pop(conv, None)
            continue
        found[conv] = (_aware(at), dict(shared or {}))
    return found


def _left(answers: Any, programme_id: str) -> datetime | None:
    """When the conversation last left this programme's queue (routing.LEFT_PROGRAMMES)."""
    left = answers.get(LEFT_PROGRAMMES) if isinstance(answers, dict) else None
    at = left.get(programme_id) if isinstance(left, dict) else None
    try:
        return _aware(datetime.fromisoformat(at)) if isinstance(at, str) else None
    except ValueError:
        return None


async def referrals(store: SqlStore, programme_id: str | None = None) -> list[dict[str, Any]]:
    """Every referral (helpline staff), or one programme's (that programme's staff).

    Programme staff get the referral's own reference, never the conversation's."""
    query = (
        select(ReferralRow, ConversationRow.reference)
        .join(ConversationRow, ConversationRow.id == ReferralRow.conversation_id)
        .order_by(ReferralRow.id.desc())
        .limit(500)
    )
    if programme_id is not None:
        query = query.where(ReferralRow.programme_id == programme_id)
    async with store.session() as session:
        rows = (await session.execute(query)).all()
    if programme_id is not None:
        return [_view(r, None, programme=True) for r, _ in rows]
    return [_view(r, ref) for r, ref in rows]


async def set_status(
    store: SqlStore,
    referral_id: int,
    status: str,
    by: str,
    *,
    programme_id: str | None,
    hub: Hub | None = None,
) -> dict[str, Any]:
    """Record what a programme did with a referral. With `programme_id`, a referral of
    another programme is NotFound, exactly as if it did not exist. A withdrawn or declined
    one is final (ReferralFinal): nobody but the person can give consent back."""
    if status not in STAFF_STATUSES:
        raise HelplineError(f"unknown referral status {status!r}")
    async with store.session() as session, session.begin():
        row = await session.get(ReferralRow, referral_id)
        if row is None or (programme_id is not None and row.programme_id != programme_id):
            raise NotFound("no such referral")
        # Checked in the statement that changes it: the person withdrawing at the same
        # moment (withdraw_referrals) cannot be overwritten.
        changed = await session.execute(
            update(ReferralRow)
            .where(ReferralRow.id == referral_id, ReferralRow.status.not_in(FINAL))
            .values(status=status, updated_at=utcnow(), updated_by=by)
        )
        if not changed.rowcount:  # type: ignore[attr-defined]
            raise ReferralFinal("this referral was withdrawn or declined")
        await session.refresh(row)
        conversation_id = row.conversation_id
        view = _view(row, None, programme=programme_id is not None)
    if hub is not None:
        await hub.publish(TOPIC, {"type": "referral", "programme": view["programme"]})
    view["conversation_id"] = conversation_id
    return view


async def referral_status(store: SqlStore, reference: str) -> str | None:
    """The status of a referral by the reference a person quotes (None if unknown)."""
    async with store.session() as session:
        return await session.scalar(
            select(ReferralRow.status).where(ReferralRow.reference == reference.strip().upper())
        )


async def hand_back(
    app: web.Application, conversation_id: str, programme_id: str, *, declined: bool
) -> bool:
    """The conversation leaves the programme's queue for the helpline's, if it is there with
    no consent standing for that programme (`declined`: because the programme has just
    declined its referral). Waiting, it keeps its place and the person is told the
    helpline's own advisers will join them (that the programme declined, if it did); held
    by the programme's staff, it is passed on as an adviser's transfer is; held by a
    helpline adviser (claimed from the programme's queue), it stays theirs. Whether it
    moved.

    Without this the person would wait for a programme that has turned them down, or that
    they never agreed to, and its staff could still claim them."""
    engine, routing, store = app[ENGINE], app[ROUTING], app[STORE]
    queue = f"programme:{programme_id}"
    async with engine.locks.hold(conversation_id):
        try:
            conv = await store.conversation(conversation_id)
        except NotFound:
            return False
        if conv.answers.get("queue") != queue or conv.closed:
            return False
        if await consents(store, [conversation_id], programme_id):
            return False  # the person has agreed again meanwhile
        holder = conv.adviser if conv.owner is Owner.ADVISER else None
        if holder is not None and await accounts.role_of(store, holder) != "programme":
            return False  # a helpline adviser took it from the programme's queue: theirs
        if holder is None and not await _waiting_to_helpline(app, conv, declined=declined):
            return False
    if holder is not None:
        try:
            await routing.transfer(conversation_id, holder, "helpline", "", anyones=True)
        except (Forbidden, NotFound):
            return False  # ended or released meanwhile
    await accounts.audit(store, "helpline", "hand_back", conversation_id, programme=programme_id)
    return True


async def _waiting_to_helpline(app: web.Application, conv: Conversation, *, declined: bool) -> bool:
    """Move a conversation waiting in a programme's queue to the helpline's, at its place,
    and tell the person (inside the conversation's lock). Whether it moved."""
    if conv.owner is not Owner.QUEUE:
        return False
    before = conv.answers.get("queue")
    # The place is kept, the stay with the programme is recorded as ended, consoles told.
    if not await app[ROUTING].to_helpline(conv):
        return False  # the queue has lost its place: put back, then moved the next round
    t = app[CONTENT].text
    programme = programme_of(str(before))
    told = "referral.declined" if declined else "referral.handed_back"
    replies = [
        Reply(
            t("event.referral_handed_back", conv.language, programme=programme),
            author=Author.SYSTEM,
        ),
        Reply(t(told, conv.language)),
        # Their place, or when the helpline opens: not "as soon as they can" at night.
        *await app[ROUTING].waiting_replies(conv),
    ]
    stored = await app[STORE].save_turn(conv, [], replies)
    await app[ENGINE].deliver(conv, stored)
    return True


async def hand_back_unconsented(app: web.Application, programme_id: str | None = None) -> int:
    """Send back to the helpline's queue every conversation waiting in or held from a
    programme's queue (`programme_id`'s, or any) with no consent standing for that programme:
    one whose referral was declined (should the hand-back at the decline have failed), or
    one sent there before consent was needed. A chore; returns how many moved."""
    waiting, claimed = await app[ROUTING].queue.board()
    by_programme: dict[str, list[str]] = defaultdict(list)
    for entry in [*waiting, *(e for e, _ in claimed)]:
        programme = programme_of(entry.queue)
        if programme is not None and programme_id in (None, programme):
            by_programme[programme].append(entry.conversation_id)
    moved = 0
    for programme, ids in by_programme.items():
        standing = await consents(app[STORE], ids, programme)
        for conversation_id in ids:
            if conversation_id not in standing and await hand_back(
                app, conversation_id, programme, declined=False
            ):
                moved += 1
    if moved:
        log.warning("conversations with no consent left programmes' queues: %d", moved)
    return moved
