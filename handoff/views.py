"""What the console shows, scoped to the person looking: the queue, one conversation, and
the supervisor's overview. Advisers see a reference, never a phone number or platform id."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import case, select

from handoff import accounts, referrals
from handoff.accounts import User
from helpline.app import ENGINE, ROUTING, SETTINGS, STORE
from helpline.domain import Author, Conversation, Delivery, Direction, Owner, StoredMessage
from helpline.errors import Forbidden, NotFound
from helpline.ports import Priority, QueueEntry
from helpline.storage.models import ConversationRow

ONLINE_WITHIN = timedelta(minutes=3)
URGENT = ("immediate", "suicide")


def summary(answers: dict[str, Any]) -> dict[str, str]:
    """What the person answered in the flow; keys starting "_" are the engine's own."""
    out: dict[str, str] = {}
    for key, value in answers.items():
        if key.startswith("_") or key == "queue" or value in (None, "", [], {}):
            continue
        if isinstance(value, dict):  # the area found: its council, police force area, nation
            ordered = [value.get(k) for k in ("la", "force", "nation")]
            rest = [v for k, v in value.items() if k not in ("la", "force", "nation")]
            value = [v for v in [*ordered, *rest] if v not in (None, "")]
        if isinstance(value, list | tuple):
            value = ", ".join(str(v) for v in value)
        out[key] = str(value)[:300]
    return out


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def held_by_another(conv: Conversation, user: User) -> bool:
    """Whether an adviser other than this user holds the conversation."""
    return conv.owner is Owner.ADVISER and conv.adviser not in (None, user.name)


async def visible(
    app: web.Application, user: User, conversation_id: str
) -> tuple[Conversation, str]:
    """The conversation and the queue it belongs to now, if this user may see it.

    Outside a programme's scope the answer is NotFound, exactly as for an unknown id: for
    programme staff that is any conversation not waiting in their queue nor held by them
    (once ended it is back with the helpline), and any whose person's consent to be
    referred to their programme no longer stands (declined, withdrawn) or was never given.
    Every page, API call and live line of a conversation asks this. Only a supervisor may
    look into a conversation another adviser holds."""
    conv = await app[STORE].conversation(conversation_id)
    entry = await app[ROUTING].queue.entry(conversation_id)
    current = entry.queue if entry else str(conv.answers.get("queue", "helpline"))
    mine = conv.owner is Owner.ADVISER and conv.adviser == user.name
    gone = entry is None and user.programme_queue is not None and not mine
    if not user.sees_queue(current) or gone:
        raise NotFound("no such conversation")
    if not await _consented(app, user, conversation_id):
        raise NotFound("no such conversation")
    if held_by_another(conv, user) and not user.supervises:
        raise Forbidden("another adviser holds this conversation")
    return conv, current


async def _programme_scope(
    app: web.Application, user: User, conversation_ids: list[str]
) -> dict[str, tuple[datetime, dict[str, str]]] | None:
    """For programme staff: when each conversation's person agreed to be referred to their
    programme, and what they agreed to share (see referrals.consents); None for helpline
    staff, who see everything.

    The person was told that only those answers would be passed on, "not your name, your
    number or what you've told us" (content/messages/programme.yaml), and that someone would
    carry on the conversation with them: so programme staff see those answers in place of
    the journey's, what was said from the referral on, and no helpline notes or flags. The risk
    level stays, as the person was told: whoever talks to them must know of danger."""
    if user.role != "programme" or user.programme is None:
        return None
    return await referrals.consents(app[STORE], conversation_ids, user.programme)


async def _consented(app: web.Application, user: User, conversation_id: str) -> bool:
    """Whether this user may see the conversation as far as consent goes: helpline staff
    always; programme staff while the person's consent to their programme stands."""
    scope = await _programme_scope(app, user, [conversation_id])
    return scope is None or conversation_id in scope


async def note_authors(app: web.Application, user: User) -> set[str] | None:
    """Whose notes this user may see: for programme staff, their own programme's staff only
    (a helpline adviser's or supervisor's note is the helpline's, even one written after
    the referral); None for helpline staff, who see every note."""
    if user.role != "programme" or user.programme is None:
        return None
    staff = await accounts.list_users(app[STORE])
    return {u.name for u in staff if u.role == "programme" and u.programme == user.programme}


def shows_note(direction: str, author_name: str | None, authors: set[str] | None) -> bool:
    """Whether a transcript line is shown to someone who may see notes by `authors` only."""
    return authors is None or direction != Direction.NOTE.value or author_name in authors


def _programme_part(
    messages: list[StoredMessage], since: datetime | None, authors: set[str] | None
) -> list[StoredMessage]:
    # No consent on record (a transfer made before it was required): nothing of what was
    # said before.
    return [
        m
        for m in messages
        if since is not None
        and m.created_at >= since
        and shows_note(m.direction.value, m.author_name, authors)
    ]


async def _scoped(
    app: web.Application, user: User, conversation_id: str
) -> tuple[list[StoredMessage], dict[str, str] | None]:
    """The messages of a conversation this user may see (all of them but for programme staff:
    see _programme_scope) and, for programme staff, what the person agreed to share (None for
    helpline staff). The caller has checked the conversation is visible to them."""
    messages = await app[STORE].transcript(conversation_id)
    scope = await _programme_scope(app, user, [conversation_id])
    if scope is None:
        return messages, None
    since, shared = scope.get(conversation_id, (None, {}))
    return _programme_part(messages, since, await note_authors(app, user)), shared


async def transcript(
    app: web.Application, user: User, conversation_id: str
) -> list[dict[str, Any]]:
    """What the console's live socket sends of a conversation: as its page shows it."""
    conv = await app[STORE].conversation(conversation_id)
    return transcript_items(app, (await _scoped(app, user, conversation_id))[0], conv)


async def conversation_view(
    app: web.Application, user: User, conversation_id: str
) -> dict[str, Any]:
    conv, current = await visible(app, user, conversation_id)
    messages, shared = await _scoped(app, user, conv.id)
    shown, flags = summary(conv.answers), list(conv.answers.get("_risk_reasons", []))
    if shared is not None:
        shown, flags = shared, []
    return {
        "id": conv.id,
        "reference": conv.reference,
        "channel": conv.channel,
        "language": conv.language,
        "risk": conv.risk_level,
        "flags": flags,
        "owner": conv.owner.value,
        "adviser": conv.adviser,
        "queue": current,
        "summary": shown,
        "mine": conv.owner is Owner.ADVISER and conv.adviser == user.name,
        "messages": transcript_items(app, messages, conv),
    }


def transcript_items(
    app: web.Application, messages: list[StoredMessage], conv: Conversation
) -> list[dict[str, Any]]:
    """A transcript as the console shows it (notes included), each of the person's messages
    with the risk level the screen gives it: as the live event that brought it carried it
    (Routing.forward), so that a risky message stays marked when the console opens the
    conversation, reconnects or catches up. (Levels are not stored with messages; the screen
    is quick: tens of microseconds a message.) A message stored sealed that its turn has not
    yet read is shown as the transcript will keep it, never as ciphertext."""
    engine = app[ENGINE]
    items = []
    for m in messages:
        if m.author is not Author.PERSON:
            items.append(transcript_item(m))
            continue
        shown = replace(m, text=engine.kept(conv, m.text))
        items.append(transcript_item(shown, engine.screen(shown.text, conv.language).level))
    return items


def transcript_item(m: StoredMessage, risk: str | None = None) -> dict[str, Any]:
    """One message of a transcript as the console shows it; `risk`, for the person's."""
    item = {
        "id": m.id,
        "direction": m.direction.value,
        "author": m.author.value,
        "author_name": m.author_name,
        "text": m.text,
        "at": m.created_at.isoformat(),
    }
    if risk is not None:
        item["risk"] = risk
    if m.status is Delivery.UNREACHABLE:
        # Refused until the person writes again (WhatsApp's 24 hours): the console says so.
        item["status"] = m.status.value
    return item


def _item(
    entry: QueueEntry,
    conv: Conversation,
    claimed_by: str | None,
    now: datetime,
    scope: dict[str, tuple[datetime, dict[str, str]]] | None,
) -> dict[str, Any]:
    joined = _aware(entry.joined_at)
    item = {
        "id": entry.conversation_id,
        "reference": conv.reference,
        "queue": entry.queue,
        "channel": entry.channel,
        "language": conv.language,
        "risk": _queued_risk(entry, conv),
        "flags": list(conv.answers.get("_risk_reasons", [])),
        "priority": Priority(entry.priority).name.lower(),
        "joined_at": joined.isoformat(),
        "waiting_seconds": max(0, int((now - joined).total_seconds())),
        "summary": summary(conv.answers),
        "claimed_by": claimed_by,
    }
    if scope is not None:  # programme staff: see _programme_scope
        item["summary"] = scope.get(conv.id, (None, {}))[1]
        item["flags"] = []
    return item


# The risk level each place in the queue stands for (Priority.for_risk the other way).
_LEVEL_OF = {
    Priority.IMMEDIATE: "immediate",
    Priority.SUICIDE: "suicide",
    Priority.CONCERN: "concern",
}


def _queued_risk(entry: QueueEntry, conv: Conversation) -> str:
    """The conversation's risk, or the queue's if that is higher: danger in a first message
    puts it in the queue at its priority before the turn's save stores the risk, and the
    live queue read in between announced someone new "None found" (the console review)."""
    if entry.priority < Priority.for_risk(conv.risk_level):
        return _LEVEL_OF.get(Priority(entry.priority), conv.risk_level)
    return conv.risk_level


async def queue_snapshot(app: web.Application, user: User, *, now: datetime) -> dict[str, Any]:
    """The queue as this user may see it: waiting in priority order, then claimed ones."""
    waiting, claimed = await app[ROUTING].queue.board()
    waiting = [e for e in waiting if user.sees_queue(e.queue)]
    claimed = [(e, a) for e, a in claimed if user.sees_queue(e.queue)]
    # One read of the store: every change to the queue sends each adviser this again, and
    # under load each read waits its turn (docs/performance.md, hand-off latency).
    ids = [e.conversation_id for e in waiting] + [e.conversation_id for e, _ in claimed]
    rows = await app[STORE].conversations(ids)
    scope = await _programme_scope(app, user, ids)
    if scope is not None:
        # Programme staff: only what the person's standing consent sends them (visible());
        # the rest is on its way back to the helpline's queue (referrals.hand_back).
        rows = {conv_id: conv for conv_id, conv in rows.items() if conv_id in scope}
    return {
        "type": "queue",
        "waiting": [
            _item(e, rows[e.conversation_id], None, now, scope)
            for e in waiting
            if e.conversation_id in rows
        ],
        "claimed": [
            _item(e, rows[e.conversation_id], a, now, scope)
            for e, a in claimed
            if e.conversation_id in rows
        ],
    }


async def supervisor_view(app: web.Application, *, now: datetime) -> dict[str, Any]:
    """Advisers online and their load, queue depth and waits, and urgent conversations."""
    waiting, claimed = await app[ROUTING].queue.board()
    load = Counter(a for _, a in claimed)
    staff = await accounts.online_staff(app[STORE], now=now, within=ONLINE_WITHIN)
    depth: dict[str, dict[str, int]] = {}
    for e in waiting:
        wait = max(0, int((now - _aware(e.joined_at)).total_seconds()))
        d = depth.setdefault(e.queue, {"waiting": 0, "longest_seconds": 0})
        d["waiting"] += 1
        d["longest_seconds"] = max(d["longest_seconds"], wait)
    async with app[STORE].session() as session:
        urgent = list(
            await session.scalars(
                select(ConversationRow)
                .where(
                    ConversationRow.risk_level.in_(URGENT),
                    ~ConversationRow.closed,
                    ConversationRow.owner.in_((Owner.QUEUE.value, Owner.ADVISER.value)),
                )
                # Danger first, then suicide; within each, the latest activity first.
                .order_by(
                    case((ConversationRow.risk_level == "immediate", 0), else_=1),
                    ConversationRow.updated_at.desc(),
                )
                .limit(50)
            )
        )
    return {
        "type": "supervisor",
        "staff": [
            {
                "name": u.name,
                "role": u.role,
                "programme": u.programme,
                "load": load.get(u.name, 0),
                "capacity": u.capacity or app[SETTINGS].adviser_capacity,
            }
            for u in staff
        ],
        "queues": [{"queue": q, **d} for q, d in sorted(depth.items())],
        "urgent": [
            {
                "id": r.id,
                "reference": r.reference,
                "risk": r.risk_level,
                "owner": r.owner,
                "adviser": r.adviser,
                "channel": r.channel,
            }
            for r in urgent
        ],
    }
