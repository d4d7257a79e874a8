"""Routing: moving a conversation between the bot, the queue, an adviser and after-care.

Every change of owner happens under the conversation's lock, is stored, is shown in the
transcript as an event line, and is published for live consoles."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from helpline.content import Content
from helpline.domain import Author, Conversation, Owner, Reply, StoredMessage, utcnow
from helpline.errors import Forbidden, JustWritten, NotFound, QueueError
from helpline.flowkit import Turn
from helpline.metrics import Metrics, queue_kind
from helpline.ports import (
    DEFAULT_QUEUE,
    PROGRAMME_HOLDS,
    Hub,
    Priority,
    QueueEntry,
    RoutingQueue,
    adviser_of,
    helpline_queue,
    programme_of,
)
from helpline.storage import SqlStore
from helpline.storage.store import HandoffRecord

if TYPE_CHECKING:
    from helpline.engine import Engine

log = logging.getLogger(__name__)

# When the conversation last left each programme's queue ({programme id: UTC time}): a
# referral made before then is used up (handoff/referrals.py consents), so what is said with
# the helpline afterwards never reaches that programme's staff without the person's consent
# again. (Real time, as the referral's, whatever clock the queue runs on.)
LEFT_PROGRAMMES = "_left_programmes"


def _move(conv: Conversation, queue: str | None) -> None:
    """The conversation's queue is now `queue` (None: it leaves the queues, and the last one
    stays named). Leaving a programme's queue is noted (LEFT_PROGRAMMES)."""
    before = conv.answers.get("queue")
    programme = programme_of(before) if isinstance(before, str) else None
    if programme is not None and queue != before:
        left = dict(conv.answers.get(LEFT_PROGRAMMES) or {})
        left[programme] = utcnow().isoformat()
        conv.answers[LEFT_PROGRAMMES] = left
    if queue is not None:
        conv.answers["queue"] = queue


OUTCOMES = ("signposted", "referred", "safeguarding", "callback", "no_further_action")
QUEUE_TOPIC = "queue"
# Journey states that offer someone waiting long (or out of hours) a call-back or other
# routes; their options are answered while they wait (State.while_queued), so a reply leads
# on into the call-back part of the journey.
WAIT_OFFER = ("own", "wait_offer")
CLOSED_OFFER = ("own", "closed_offer")

# A claim the queue holds but no adviser joined (the instance died between the two, or could
# not take the claim back): after this long it cannot still be joining (a claim waits at most
# a minute for the conversation's lock), and the conversation goes back to waiting.
UNJOINED_AFTER = timedelta(minutes=2)

# Risk levels whose guidance (content risk.<level>) is said again to someone who asks about
# their wait while the line is closed: it is where to get help until it opens.
GUIDED_WHILE_CLOSED = ("immediate", "suicide")

# Someone waiting on a channel that takes replies only within a time of their last message
# (WhatsApp: 24 hours, Sender.reply_window) is told how to keep the way open for the reply
# (window_note) when the queue opens later than this long before that time runs out: an
# adviser needs some of it, after opening, to reach them. Told once for each opening (the
# programme's queue: once a wait), which WINDOW_TOLD keeps.
WINDOW_MARGIN = timedelta(hours=4)
WINDOW_TOLD = "_window_told"
# In a conversation's answers: the opening (ISO time, or "unknown") that someone waiting was
# last told their closed queue opens at: told at closing once, not again for the same one.
CLOSED_TOLD = "_closed_told"

IsOpen = Callable[[str, datetime], bool]
NextOpening = Callable[[str, datetime], datetime | None]


class Routing:
    def __init__(
        self,
        *,
        store: SqlStore,
        queue: RoutingQueue,
        hub: Hub,
        content: Content,
        clock: Callable[[], datetime] = utcnow,
        is_open: IsOpen | None = None,
        next_opening: NextOpening | None = None,
        minutes_per_place: int = 8,
        metrics: Metrics | None = None,
        on_left: Sequence[Callable[[str, str], Awaitable[None]]] = (),
    ) -> None:
        self.store = store
        self.queue = queue
        self.hub = hub
        self.content = content
        self.clock = clock
        self.is_open = is_open
        self.next_opening = next_opening
        self.minutes_per_place = minutes_per_place
        self.metrics = metrics or Metrics()
        # Told (conversation id, queue) when a person leaves a queue of their own accord.
        self.on_left = on_left
        self.engine: Engine | None = None  # set by the app once both exist
        # Claims seen with no adviser joined, and since when (see settle_claims).
        self._unjoined: dict[str, datetime] = {}
        # Conversations tell_closing has seen told of a closing, by the opening they were told
        # of: not read again from the database every minute all night.
        self._closing_seen: dict[str, str] = {}

    # -- called by the engine, inside the conversation's lock ------------------------------

    async def request(self, conv: Conversation, queue: str, reason: str) -> list[Reply]:
        t = self.content.text
        if conv.owner in (Owner.QUEUE, Owner.ADVISER):
            return await self.waiting_replies(conv)
        now = self.clock()
        # Whether the line is open, worked out first: nothing below may fail half-way.
        closed, opens = self._closed(queue, now)
        entry = QueueEntry(
            conv.id, queue, conv.language, Priority.for_risk(conv.risk_level), now, conv.channel
        )
        # The queue first: if it cannot be reached, no record is left open for a wait that
        # never began. The advisers' consoles are told at once (their snapshot reads the
        # queue, not the record): after danger every write waited for is time before an
        # adviser sees them (docs/performance.md, hand-off latency).
        await self.queue.enqueue(entry)
        await self.publish("joined", conv.id)
        record = HandoffRecord(
            conv.id, queue, conv.language, conv.channel, entry.priority, reason, now, None
        )
        try:
            await self.store.open_handoff(record)
        except Exception as exc:
            # Not recorded (a database error): taken out of the queue again, where an adviser
            # would claim a wait nobody was told of, and reported as the queue failing, so
            # the person is told and, after danger, the hand-off is owed and tried again.
            try:
                await self.queue.remove(conv.id)
            except QueueError:
                log.warning(
                    "a hand-off not recorded could not be taken out of the queue",
                    extra={"conversation": conv.reference},
                    exc_info=True,
                )
            await self.publish("removed", conv.id)
            raise QueueError("the hand-off could not be recorded") from exc
        self.metrics.handoffs.labels(queue_kind(queue), reason.partition(":")[0]).inc()
        conv.owner = Owner.QUEUE
        self._lapse_question(conv)  # "ok" to "an adviser will join you" must not erase
        conv.answers["queue"] = queue
        conv.answers.pop("_wait_offered", None)  # a new wait: one offer of a call-back
        conv.answers.pop(WINDOW_TOLD, None)
        replies = [Reply(t("event.queued", conv.language, queue=queue), author=Author.SYSTEM)]
        if closed and programme_of(queue) is not None:
            conv.answers[CLOSED_TOLD] = _opening_key(queue, opens)
            # The programme's staff will answer in their own hours; the helpline's offer of
            # a message for its advisers, or a call back from them, is not theirs to make
            # (nor, later, offer_waiting's).
            closed_words = self._closed_words(conv, queue, opens)
            return [*replies, closed_words, *self._window_note(conv, queue, opens)]
        if closed:
            conv.answers[CLOSED_TOLD] = _opening_key(queue, opens)
            if opens is None:
                replies.append(Reply(t("handoff.closed_unknown", conv.language)))
            else:
                when = self.content.when(opens, conv.language)
                replies.append(Reply(t("handoff.closed", conv.language, opens=when)))
            # Out of hours the call-back is offered at once (as options on that message).
            conv.answers["_wait_offered"] = True
            return await self._offer(conv, replies, CLOSED_OFFER)
        return replies + await self.waiting_replies(conv)

    async def _offer(
        self, conv: Conversation, replies: list[Reply], where: tuple[str, str]
    ) -> list[Reply]:
        """Put the conversation at an offer's state: its options join the last reply."""
        flow, state = where
        if self.engine is None or flow not in self.engine.runner.flows:
            return replies
        turn = Turn(conv, self.content)
        turn.replies = list(replies)
        await self.engine.runner.start(turn, flow, state)
        return turn.replies

    async def escalate(self, conv: Conversation, *, urgent: bool = False) -> None:
        """The queue entry takes the conversation's risk. With `urgent` (danger, suicide or a
        child at risk written while waiting), someone waiting in a programme's queue after a
        referral, or for one adviser, moves to the helpline's: the programme's staff or that
        adviser may not be there, and the helpline's advisers answer danger."""
        if urgent:
            await self.to_helpline(conv)
        priority = Priority.for_risk(conv.risk_level)
        if await self.queue.escalate(conv.id, priority):
            await self.store.update_handoff(conv.id, priority=int(priority))
            await self.publish("escalated", conv.id)

    async def to_helpline(self, conv: Conversation) -> bool:
        """Someone waiting in a programme's queue or one adviser's own moves to the
        helpline's, at their place (inside the conversation's lock): after danger, a
        programme's decline, or the named adviser stepping away. Whether it moved (not if
        it was in neither, or the queue has lost its place)."""
        current = conv.answers.get("queue")
        target = helpline_queue(current)
        if conv.owner is not Owner.QUEUE or not isinstance(current, str) or current == target:
            return False
        if not await self.queue.transfer(conv.id, target):
            return False
        _move(conv, target)
        await self.store.update_handoff(conv.id, queue=target)
        await self.publish("transferred", conv.id, queue=target)
        return True

    async def cancel(self, conv: Conversation) -> None:
        """The person leaves the queue, or the adviser they were with, of their own accord."""
        if await self.queue.remove(conv.id):
            await self.store.update_handoff(conv.id, ended_at=self.clock(), outcome="cancelled")
            await self.publish("removed", conv.id)
        queue = conv.answers.get("queue")
        if conv.owner is Owner.QUEUE and isinstance(queue, str):
            # Left while waiting: once someone has taken them up (a programme's staff talking
            # with them), what they made of it stands.
            for hook in self.on_left:
                try:
                    await hook(conv.id, queue)
                except Exception:  # noqa: BLE001 - their leaving must not fail for it
                    log.warning("a plugin could not be told a person left a queue", exc_info=True)
        if conv.owner in (Owner.QUEUE, Owner.ADVISER):
            _move(conv, None)
            conv.owner = Owner.BOT
            conv.adviser = None

    async def waiting_replies(self, conv: Conversation) -> list[Reply]:
        """What a person waiting is told of their place (inside the conversation's lock):
        while their queue is closed, when it opens and, if they have said they are in
        danger, where to get help now, never a wait in minutes; in a programme's queue, that
        its staff will reply."""
        position = await self.queue.position(conv.id)
        if position is None and conv.owner is Owner.QUEUE:
            # The queue has lost this wait (Redis came back empty): put it back first.
            if await self._put_back(conv):
                log.warning("the queue had lost a conversation waiting; it was put back")
                await self.publish("joined", conv.id)
            position = await self.queue.position(conv.id)
        t = self.content.text
        if conv.owner is Owner.ADVISER:
            # Only an adviser who has joined is "with" the person.
            return [Reply(t(_said_as(conv, "handoff.with_adviser"), conv.language))]
        queue = _queue_of(conv)
        closed, opens = self._closed(queue, self.clock())
        if closed:
            return self._while_closed(conv, queue, opens)
        if programme_of(queue) is not None:
            return [Reply(t("programme.waiting", conv.language)), *self._window_note(conv, queue)]
        if position is None:
            # Claimed but not yet joined, or not found at all: still waiting.
            return [Reply(t("handoff.still_waiting", conv.language))]
        minutes = max(5, position * self.minutes_per_place)
        return [Reply(t("handoff.waiting", conv.language, position=position, minutes=minutes))]

    def acknowledgement(self, conv: Conversation) -> list[Reply]:
        """Who will read what someone waiting writes, said to them now and then: while their
        queue is closed, nobody until it opens (the closed words, as for "position"); in a
        programme's queue, its staff; otherwise the adviser who joins them. Said by
        Engine._while_waiting."""
        queue = _queue_of(conv)
        closed, opens = self._closed(queue, self.clock())
        if closed:
            return self._while_closed(conv, queue, opens)
        if programme_of(queue) is None:
            return [Reply(self.content.text("handoff.waiting_ack", conv.language))]
        said = Reply(self.content.text("programme.waiting_ack", conv.language))
        return [said, *self._window_note(conv, queue)]

    def window_note(self, conv: Conversation) -> list[Reply]:
        """For someone waiting, on a channel that takes replies only within a time of their
        last message (WhatsApp: 24 hours), if the reply may come after that: how to keep the
        way open (write again after the line opens; to a programme's staff, now and then).
        Said with the words that promise a reply here, once for each opening. Nothing on
        any other channel, nor while the line is open."""
        if conv.owner is not Owner.QUEUE:
            return []
        queue = _queue_of(conv)
        closed, opens = self._closed(queue, self.clock())
        if not closed and programme_of(queue) is None:
            return []
        return self._window_note(conv, queue, opens)

    def _window_note(
        self, conv: Conversation, queue: str, opens: datetime | None = None
    ) -> list[Reply]:
        """window_note, for a programme's queue or a closed one that opens at `opens`."""
        window = self.engine.reply_window(conv) if self.engine is not None else None
        if window is None:
            return []
        params: dict[str, str] = {}
        if programme_of(queue) is not None:
            key, told = "programme.reply_window", queue
        elif opens is None:
            key, told = "handoff.reply_window_unknown", "unknown"
        elif opens - _last_written(conv, self.clock()) <= window - WINDOW_MARGIN:
            return []  # open again with time to reach them before the window closes
        else:
            key, told = "handoff.reply_window", opens.isoformat()
            params["opens"] = self.content.when(opens, conv.language)
        if conv.answers.get(WINDOW_TOLD) == told:
            return []
        conv.answers[WINDOW_TOLD] = told
        return [Reply(self.content.text(key, conv.language, **params))]

    def _while_closed(self, conv: Conversation, queue: str, opens: datetime | None) -> list[Reply]:
        """The closed words and, after danger, the guidance again: nobody can answer danger
        here until the queue opens, and it is where to get help meanwhile."""
        replies = [self._closed_words(conv, queue, opens)]
        if conv.risk_level in GUIDED_WHILE_CLOSED:
            replies.append(Reply(self.content.text(f"risk.{conv.risk_level}", conv.language)))
        return replies + self._window_note(conv, queue, opens)

    def _closed(self, queue: str, now: datetime) -> tuple[bool, datetime | None]:
        """Whether `queue` is closed at `now`, and if so when it opens again (None: not
        known, or closed for longer than the hours look ahead)."""
        closed = self.is_open is not None and not self.is_open(queue, now)
        opens = self.next_opening(queue, now) if closed and self.next_opening else None
        return closed, opens

    def _closed_words(self, conv: Conversation, queue: str, opens: datetime | None) -> Reply:
        """Someone waiting in a closed queue: when it opens, and that what they write is
        kept for whoever answers then (a queued conversation is never closed as idle)."""
        prefix = "programme" if programme_of(queue) is not None else "handoff"
        if opens is None:
            return Reply(self.content.text(f"{prefix}.waiting_closed_unknown", conv.language))
        when = self.content.when(opens, conv.language)
        return Reply(self.content.text(f"{prefix}.waiting_closed", conv.language, opens=when))

    async def forward(self, conv: Conversation, message: StoredMessage, risk: str) -> None:
        """A person's message while a human owns the conversation: consoles see it live
        (the engine publishes the replies it stores; the person's own words go out here),
        with the risk level it was screened at (only the level: the reasons are in the
        conversation's details)."""
        await self.hub.publish(
            f"transcript:{conv.id}",
            {
                "type": "message",
                "id": message.id,
                "direction": message.direction.value,
                "author": message.author.value,
                "author_name": None,
                "text": message.text,
                "options": [],
                "at": message.created_at.isoformat(),
                "risk": risk,
            },
        )
        await self.publish("activity", conv.id)

    async def offer_waiting(self, after: timedelta) -> int:
        """Once per wait, offer anyone waiting longer than `after` for the helpline's advisers
        a call-back at a safe time or other routes, through the engine's delivery (quiet
        hours hold it on SMS). Returns how many were offered; safe to run on several
        instances at once."""
        engine = self._engine()
        flow, state = WAIT_OFFER
        if flow not in engine.runner.flows:
            return 0
        cutoff = self.clock() - after
        offered = 0
        for entry in await self.queue.waiting():
            if entry.joined_at > cutoff or programme_of(entry.queue) is not None:
                # Not in a programme's queue: its staff answer in their own hours, as the
                # person was told, and a call back from the helpline's advisers instead would
                # take them out of it.
                continue
            async with engine.locks.hold(entry.conversation_id):
                conv = await self._still_queued(entry.conversation_id)
                if conv is None or conv.answers.get("_wait_offered"):
                    continue
                conv.answers["_wait_offered"] = True
                turn = Turn(conv, self.content)
                await engine.runner.start(turn, flow, state)
                await self._say_unasked(conv, turn.replies)
            offered += 1
        return offered

    async def tell_closing(self) -> int:
        """Tell anyone waiting whose queue has closed since they joined it, once for each
        closing, that nobody will join them until it opens and when that is (in a
        programme's queue, when its staff are back); in the helpline's queues, with the
        offer of a call-back if they have not had it this wait; after danger, the guidance
        again. Through the engine's delivery (quiet hours hold it on SMS). Returns how many
        were told; safe to run on several instances at once."""
        engine = self._engine()
        now = self.clock()
        told = 0
        waiting = await self.queue.waiting()
        seen, self._closing_seen = self._closing_seen, {}
        for entry in waiting:
            closed, opens = self._closed(entry.queue, now)
            if not closed:
                continue
            key = _opening_key(entry.queue, opens)
            if seen.get(entry.conversation_id) == key:
                self._closing_seen[entry.conversation_id] = key
                continue
            async with engine.locks.hold(entry.conversation_id):
                conv = await self._still_queued(entry.conversation_id)
                if conv is None:
                    continue
                queue = _queue_of(conv)
                closed, opens = self._closed(queue, now)
                if not closed or await self.queue.position(conv.id) is None:
                    continue  # open again, or claimed by an adviser since the list was read
                key = self._closing_seen[conv.id] = _opening_key(queue, opens)
                if conv.answers.get(CLOSED_TOLD) == key:
                    continue
                await self._say_unasked(conv, await self._closing_words(conv, queue, opens))
            told += 1
        return told

    async def _still_queued(self, conversation_id: str) -> Conversation | None:
        """The conversation, if it is still waiting (inside its lock): None if it was erased
        or has left the queue since the queue's list was read."""
        try:
            conv = await self.store.conversation(conversation_id)
        except NotFound:
            return None  # erased meanwhile
        return conv if conv.owner is Owner.QUEUE else None

    async def _say_unasked(self, conv: Conversation, replies: list[Reply]) -> None:
        """Store and send what the queue says unasked (inside the conversation's lock). Not
        the person's activity: it must not postpone an idle close."""
        stored = await self.store.save_turn(conv, [], replies, touch=False)
        await self._engine().deliver(conv, stored)

    async def _closing_words(
        self, conv: Conversation, queue: str, opens: datetime | None
    ) -> list[Reply]:
        """tell_closing's words for one person (inside the conversation's lock)."""
        conv.answers[CLOSED_TOLD] = _opening_key(queue, opens)
        replies = self._while_closed(conv, queue, opens)
        if programme_of(queue) is not None:
            return replies  # its staff answer in their own hours, as the person was told
        if opens is None:
            words = Reply(self.content.text("handoff.closing_unknown", conv.language))
        else:
            when = self.content.when(opens, conv.language)
            words = Reply(self.content.text("handoff.closing", conv.language, opens=when))
        replies[0] = words
        # The call-back is offered as to someone arriving out of hours (the words offer it),
        # its options on the last message, where every channel keeps them.
        conv.answers["_wait_offered"] = True
        return await self._offer(conv, replies, CLOSED_OFFER)

    async def settle_claims(self) -> int:
        """Put right claims the queue holds that no adviser joined. Claiming takes the
        conversation in the queue first and joins it (in the database, under its lock) after:
        an instance killed between the two, or unable to take the claim back (Redis down),
        left a conversation the queue called claimed and the database waiting. Nobody could
        then claim it, and its adviser could not write to it, release or end it, for good.

        One still unjoined after UNJOINED_AFTER goes back to waiting (or out of the queue,
        if the person has left). Returns how many were put right; safe to run on several
        instances at once (each step is checked again under the conversation's lock)."""
        engine = self._engine()
        now = self.clock()
        _, claimed = await self.queue.board()
        owners = {entry.conversation_id: adviser for entry, adviser in claimed}
        for conversation_id in set(self._unjoined) - set(owners):
            del self._unjoined[conversation_id]
        rows = await self.store.conversations(owners)
        stale: list[str] = []
        for conversation_id in owners:
            conv = rows.get(conversation_id)
            if conv is not None and conv.owner is Owner.ADVISER:
                self._unjoined.pop(conversation_id, None)  # joined: as it should be
            elif now - self._unjoined.setdefault(conversation_id, now) >= UNJOINED_AFTER:
                stale.append(conversation_id)
        settled = 0
        for conversation_id in stale:
            adviser = owners[conversation_id]
            async with engine.locks.hold(conversation_id):
                if (await self.queue.claims(adviser)).get(conversation_id) != adviser:
                    continue  # put right meanwhile
                try:
                    conv = await self.store.conversation(conversation_id)
                except NotFound:
                    conv = None
                if conv is not None and conv.owner is Owner.ADVISER:
                    continue  # joined after all
                if conv is not None and conv.owner is Owner.QUEUE and not conv.closed:
                    if not await self.queue.release(conversation_id, adviser):
                        continue
                    kind = "released"
                else:
                    await self.queue.remove(conversation_id)  # the person has left
                    kind = "removed"
                log.warning(
                    "a claim no adviser joined was put right",
                    extra={"conversation": conv.reference if conv else None},
                )
            self._unjoined.pop(conversation_id, None)
            await self.publish(kind, conversation_id)
            settled += 1
        return settled

    async def repair_queue(self) -> int:
        """Put back in the queue what the database says is waiting or held but the queue has
        no record of (Redis restarted without its data): without this the person waits where
        no adviser can see them. Also run at start. Returns how many were put back; safe to
        run on several instances at once (each is checked again under its lock, and the
        queue only adds what it does not know)."""
        engine = self._engine()
        records = await self.store.open_handoffs()
        waiting, claimed = await self.queue.board()
        known = {e.conversation_id for e in waiting} | {e.conversation_id for e, _ in claimed}
        repaired = 0
        for record in records:
            if record.conversation_id in known:
                continue
            async with engine.locks.hold(record.conversation_id):
                try:
                    conv = await self.store.conversation(record.conversation_id)
                except NotFound:
                    continue
                if await self._put_back(conv, record):
                    repaired += 1
                    await self.publish("joined", conv.id)
        if repaired:
            # A count only: nothing about the people waiting.
            log.warning("the queue had lost conversations; they were put back: %d", repaired)
        return repaired

    async def _put_back(self, conv: Conversation, record: HandoffRecord | None = None) -> bool:
        """Restore a conversation the queue has lost, as waiting or held by its adviser, at
        its place and priority from the open hand-off (inside the conversation's lock).
        Whether it was put back: False if the queue knows it or it is not waiting."""
        if conv.closed or conv.owner not in (Owner.QUEUE, Owner.ADVISER):
            return False
        holder = conv.adviser if conv.owner is Owner.ADVISER else None
        if conv.owner is Owner.ADVISER and not holder:
            return False
        if await self.queue.entry(conv.id) is not None or conv.id in await self.queue.claims():
            return False
        if record is None:
            open_ = [r for r in await self.store.open_handoffs() if r.conversation_id == conv.id]
            record = open_[0] if open_ else None
        if record is not None:
            entry = _entry_of(record)
        else:
            entry = self._fresh_entry(conv, conv.answers.get("queue"))
        await self.queue.restore([entry], {conv.id: holder} if holder else {})
        # A risk raised since the hand-off was recorded counts.
        await self.queue.escalate(conv.id, Priority.for_risk(conv.risk_level))
        return True

    async def erase(self, conv: Conversation) -> None:
        await self.queue.remove(conv.id)
        await self.publish("removed", conv.id)

    async def publish(self, kind: str, conversation_id: str, **data: object) -> None:
        """Tell the advisers' consoles the queue changed. Only a wake-up: the queue itself has
        already changed, so a hub that cannot be reached (Redis down) is logged and the
        hand-off, claim or release goes on; the consoles catch up at the next change or
        when they reconnect."""
        event = {"type": kind, "conversation": conversation_id, **data}
        try:
            await self.hub.publish(QUEUE_TOPIC, event)
        except Exception:  # noqa: BLE001 - any hub failure, which none of this may undo
            log.warning("the consoles could not be told of a queue change", exc_info=True)

    # -- called by the adviser console -----------------------------------------------------

    def _engine(self) -> Engine:
        if self.engine is None:
            raise RuntimeError("routing is not wired to an engine")
        return self.engine

    async def claim(
        self, conversation_id: str, adviser: str, capacity: int, *, programme: bool = False
    ) -> Conversation:
        entry = await self.queue.claim(conversation_id, adviser, capacity)
        if entry is None:
            raise QueueError("this conversation is no longer waiting, or you are at capacity")
        return await self._joined(entry, adviser, programme=programme)

    async def claim_next(
        self, adviser: str, queues: Collection[str], capacity: int, *, programme: bool = False
    ) -> Conversation | None:
        entry = await self.queue.claim_next(adviser, queues, capacity)
        return await self._joined(entry, adviser, programme=programme) if entry else None

    async def _joined(
        self, entry: QueueEntry, adviser: str, *, programme: bool = False
    ) -> Conversation:
        """The adviser joins a conversation the queue has just given them. The claim was
        made outside the conversation's lock: if the person has left meanwhile (cancelled,
        said stop, took a call-back instead), nobody joins; if joining fails, the
        conversation goes back to waiting rather than being held by no one. `programme`:
        one of a programme's staff joins, and the person is told so, not "an adviser"."""
        engine = self._engine()
        joined = False
        try:
            async with engine.locks.hold(entry.conversation_id):
                conv = await self._still_waiting(entry.conversation_id, adviser)
                conv.owner, conv.adviser = Owner.ADVISER, adviser
                if programme:
                    conv.answers[PROGRAMME_HOLDS] = True
                else:
                    conv.answers.pop(PROGRAMME_HOLDS, None)
                self._lapse_question(conv)
                t = self.content.text
                replies = [
                    Reply(t("event.claimed", conv.language, adviser=adviser), author=Author.SYSTEM),
                    Reply(t("programme.joined" if programme else "handoff.joined", conv.language)),
                ]
                stored = await self.store.save_turn(conv, [], replies)
                joined = True
                await self.store.update_handoff(
                    conv.id, claimed_by=adviser, claimed_at=self.clock()
                )
                await engine.deliver(conv, stored)
        except QueueError:
            raise
        except BaseException:
            if not joined and await self.queue.release(entry.conversation_id, adviser):
                await self.publish("released", entry.conversation_id)
            raise
        waited = (self.clock() - entry.joined_at).total_seconds()
        self.metrics.wait_seconds.labels(queue_kind(entry.queue)).observe(max(0.0, waited))
        await self.publish("claimed", conv.id, adviser=adviser)
        return conv

    async def _still_waiting(self, conversation_id: str, adviser: str) -> Conversation:
        """The conversation just claimed, if it still waits for this adviser (under its lock)."""
        try:
            conv = await self.store.conversation(conversation_id)
        except NotFound:
            conv = None
        claimed = (await self.queue.claims(adviser)).get(conversation_id) == adviser
        if conv is not None and conv.owner is Owner.QUEUE and not conv.closed and claimed:
            return conv
        if claimed:
            await self.queue.remove(conversation_id)  # it left: the claim must not hold it
            await self.publish("removed", conversation_id)
        raise QueueError("this conversation is no longer waiting")

    async def say(self, conversation_id: str, adviser: str, text: str) -> StoredMessage:
        engine = self._engine()
        async with engine.locks.hold(conversation_id):
            conv = await self._owned(conversation_id, adviser)
            self._lapse_question(conv)
            stored = await self.store.save_turn(
                conv, [], [Reply(text, author=Author.ADVISER)], author_name=adviser
            )
            await engine.deliver(conv, stored)
            return stored[0]

    async def release(
        self, conversation_id: str, actor: str, *, anyones: bool = False, gone: bool = False
    ) -> str:
        """Back to the queue, by the adviser holding it; with `anyones`, by a supervisor for
        whoever holds it; with `gone`, by the helpline for an adviser (`actor`) whose account
        has closed. The transcript names who did it. Returns the adviser who held it."""
        engine = self._engine()
        async with engine.locks.hold(conversation_id):
            conv = await self._owned(conversation_id, actor, anyones=anyones)
            adviser = conv.adviser or actor
            if not await self.queue.release(conversation_id, adviser):
                await self._requeue(conv, conv.answers.get("queue"))
            # Risk raised while an adviser had it (escalating a claimed conversation
            # changes nothing in the queue) goes back to the queue with it.
            await self.escalate(conv)
            await self.store.update_handoff(conv.id, claimed_by=None, claimed_at=None)
            conv.owner, conv.adviser = Owner.QUEUE, None
            if adviser_of(conv.answers.get("queue")) is not None:
                # Transferred to this adviser by name, who has stepped away (or left): any
                # adviser may take it now, as the person is about to be told. Left in their
                # own queue, only they could.
                await self.to_helpline(conv)
            self._lapse_question(conv)
            engine.requeued(conv)
            t = self.content.text
            if gone:
                event = t("event.released_gone", conv.language, adviser=adviser)
            elif adviser != actor:
                event = t("event.released_by", conv.language, by=actor, adviser=adviser)
            else:
                event = t("event.released", conv.language, adviser=adviser)
            replies = [
                Reply(event, author=Author.SYSTEM),
                Reply(t(_said_as(conv, "handoff.released"), conv.language)),
            ]
            conv.answers.pop(PROGRAMME_HOLDS, None)  # said; nobody holds it now
            stored = await self.store.save_turn(conv, [], replies)
            await engine.deliver(conv, stored)
        await self.publish("released", conversation_id)
        return adviser

    async def transfer(
        self, conversation_id: str, actor: str, queue: str, note: str, *, anyones: bool = False
    ) -> str:
        """To another queue, by the adviser holding it; with `anyones`, by a supervisor for
        whoever holds it (the transcript names both). Returns the adviser who held it."""
        engine = self._engine()
        async with engine.locks.hold(conversation_id):
            conv = await self._owned(conversation_id, actor, anyones=anyones)
            adviser = conv.adviser or actor
            if not await self.queue.transfer(conversation_id, queue):
                await self._requeue(conv, queue)
            # Risk raised while an adviser had it (escalating a claimed conversation
            # changes nothing in the queue) goes back to the queue with it.
            await self.escalate(conv)
            await self.store.update_handoff(conv.id, queue=queue, claimed_by=None, claimed_at=None)
            conv.owner, conv.adviser = Owner.QUEUE, None
            _move(conv, queue)
            self._lapse_question(conv)
            engine.requeued(conv)
            if note.strip():
                await self.store.add_note(conv.id, note.strip()[:2000], actor)
            if adviser != actor:
                event = self.content.text(
                    "event.transferred_by", conv.language, by=actor, adviser=adviser, queue=queue
                )
            else:
                event = self.content.text(
                    "event.transferred", conv.language, adviser=adviser, queue=queue
                )
            replies = [
                Reply(event, author=Author.SYSTEM),
                Reply(self.content.text(_said_as(conv, "handoff.transferred"), conv.language)),
            ]
            conv.answers.pop(PROGRAMME_HOLDS, None)  # said; nobody holds it now
            stored = await self.store.save_turn(conv, [], replies)
            await engine.deliver(conv, stored)
        await self.publish("transferred", conversation_id, queue=queue)
        return adviser

    async def end(self, conversation_id: str, adviser: str, outcome: str) -> None:
        if outcome not in OUTCOMES:
            raise QueueError(f"unknown outcome {outcome!r}")
        engine = self._engine()
        async with engine.locks.hold(conversation_id):
            # A conversation the person closed meanwhile can still be ended (and so leave
            # the adviser's list).
            conv = await self._owned(conversation_id, adviser, closed_too=True)
            if not conv.closed and await self.store.pending_inbound(conversation_id):
                # Read first: ended, it would be answered as a reply to "who is this for?".
                # Its turn, next once the lock is let go, shows it on the console.
                raise JustWritten("the person has just written: read it before ending")
            await self.queue.remove(conversation_id)
            await self.store.update_handoff(conv.id, ended_at=self.clock(), outcome=outcome)
            self.metrics.outcomes.labels(outcome).inc()
            conv.owner, conv.adviser = Owner.BOT, None
            conv.flow, conv.state = "welcome", "who"
            conv.answers["last_outcome"] = outcome
            # Back with the helpline: asking for an adviser later must not send what they
            # say next to the programme (or the one adviser) that has just ended it.
            _move(conv, helpline_queue(conv.answers.get("queue")))
            t = self.content.text
            replies = [
                Reply(
                    t("event.ended", conv.language, adviser=adviser, outcome=outcome),
                    author=Author.SYSTEM,
                ),
                Reply(t(_said_as(conv, "handoff.ended"), conv.language)),
            ]
            conv.answers.pop(PROGRAMME_HOLDS, None)  # said; nobody holds it now
            stored = await self.store.save_turn(conv, [], replies)
            await engine.deliver(conv, stored)
        await self.publish("ended", conversation_id, outcome=outcome)

    def _lapse_question(self, conv: Conversation) -> None:
        """Someone else speaks (an adviser joins, writes, hands on): a "delete everything?"
        the person has not answered lapses, so their answer to the adviser cannot erase."""
        if conv.flow == "erase":
            self._engine().runner.leave_detour(Turn(conv, self.content))

    async def _owned(
        self, conversation_id: str, adviser: str, *, closed_too: bool = False, anyones: bool = False
    ) -> Conversation:
        """The conversation this adviser holds (with `anyones`: that any adviser holds)."""
        conv = await self.store.conversation(conversation_id)
        if conv.owner is not Owner.ADVISER or not conv.adviser:
            raise Forbidden("this conversation is not yours")
        if conv.adviser != adviser and not anyones:
            raise Forbidden("this conversation is not yours")
        if conv.closed and not closed_too:
            raise Forbidden("the person has closed this conversation")
        return conv

    async def _requeue(self, conv: Conversation, queue: object) -> None:
        """A new place in the queue for a conversation the queue has lost all or part of its
        record of (a claim kept without its place would hold it nowhere)."""
        await self.queue.remove(conv.id)
        await self.queue.enqueue(self._fresh_entry(conv, queue))

    def _fresh_entry(self, conv: Conversation, queue: object) -> QueueEntry:
        """A place at the back of `queue` (the helpline's if none is named), at the
        conversation's risk."""
        return QueueEntry(
            conv.id,
            _named(queue),
            conv.language,
            Priority.for_risk(conv.risk_level),
            self.clock(),
            conv.channel,
        )

    async def restore(self) -> None:
        """The in-process queue starts empty: reload it from the open handoffs."""
        records = await self.store.open_handoffs()
        waiting = [_entry_of(r) for r in records]
        claims = {r.conversation_id: r.claimed_by for r in records if r.claimed_by}
        await self.queue.restore(
            [e for e in waiting if e.conversation_id not in claims]
            + [e for e in waiting if e.conversation_id in claims],
            claims,
        )


def _opening_key(queue: str, opens: datetime | None) -> str:
    """How CLOSED_TOLD names a queue's opening (moved to another queue, they are told again)."""
    return f"{queue}@{'unknown' if opens is None else opens.isoformat()}"


def _last_written(conv: Conversation, now: datetime) -> datetime:
    """When the person last wrote, as far as their reply window goes: now, in their own
    turn; earlier when an adviser's action says something to them (a release)."""
    last = conv.last_inbound_at
    return now if last is None else min(now, last)


def _said_as(conv: Conversation, key: str) -> str:
    """What the person is told of whoever holds their conversation: "the programme's staff"
    when one of a programme's staff took it up (PROGRAMME_HOLDS), never "your adviser", whom
    they know as the helpline's; else `key` as it is. (Read before the holder lets go.)"""
    if conv.answers.get(PROGRAMME_HOLDS):
        return key.replace("handoff.", "programme.held_", 1)
    return key


def _queue_of(conv: Conversation) -> str:
    """The queue the conversation waits in (the helpline's if none is named)."""
    return _named(conv.answers.get("queue"))


def _named(queue: object) -> str:
    """`queue` if it names one, else the helpline's."""
    return queue if isinstance(queue, str) and queue else DEFAULT_QUEUE


def _entry_of(record: HandoffRecord) -> QueueEntry:
    """The queue's place for an open hand-off, as the database recorded it."""
    return QueueEntry(
        record.conversation_id,
        record.queue,
        record.language,
        Priority(record.priority),
        record.joined_at,
        record.channel,
    )
