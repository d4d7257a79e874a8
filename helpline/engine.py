"""The engine: inbound message -> stored -> risk screened -> flow advanced -> replies stored ->
delivered. One path for every channel; strictly one message at a time per conversation."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from helpline.admission import Admission
from helpline.content import Content, normalise
from helpline.domain import (
    LANGUAGES,
    UNSTORED,
    Author,
    Conversation,
    Delivery,
    InboundMessage,
    OutboundMessage,
    Owner,
    Reply,
    StoredMessage,
    utcnow,
)
from helpline.errors import (
    DeliveryError,
    DuplicateMessage,
    HelplineError,
    NotFound,
    NotSent,
    OutsideReplyWindow,
    StoreUnavailable,
    TurnSuperseded,
)
from helpline.flowkit import Effect, FlowRunner, Turn, mentions
from helpline.metrics import Metrics
from helpline.ports import (
    DEFAULT_QUEUE,
    ERASED_TOPIC,
    PROGRAMME_HOLDS,
    Hub,
    Locks,
    Priority,
    Sender,
    helpline_queue,
    programme_of,
)
from helpline.privacy import Privacy, SealError, new_code
from helpline.quiet import QuietHours
from helpline.ratelimit import Limit, MemoryLimiter, RateLimited, message_limits
from helpline.storage import Accepted, SqlStore
from helpline.tasks import stopped_within

log = logging.getLogger(__name__)

# "Keep this chat open" presses that count, per contact: one keeps it open for a while.
KEEPALIVE_LIMITS = (Limit(3, 60),)

URGENT = ("immediate", "suicide")
# Reasons that say a child is at risk: at "concern" too, they interrupt the flow with the
# guidance for a child (risk.child) and a hand-off, once a conversation (CHILD_GUIDED).
CHILD_REASONS = frozenset({"child_harmed", "child_in_danger"})
CHILD_GUIDED = "_child_guided"
# "_greeted" holds this when a page greeted them before they typed anything (Engine.open):
# their first message is still read for Welsh.
PAGE_GREETED = "page"
# Journeys never gone back to after the queue (cancel): danger kept them from leaving.
LEFT_BEHIND = ("stop", "erase")
# Someone waiting for an adviser is told now and then, never after every message, that an
# adviser will read what they write.
ACK_EVERY = timedelta(minutes=5)
ACKED_AT = "_waiting_acked_at"
# A first message answered before the welcome (danger, a command) heard only the short
# promise: the full confidentiality statement is still owed, said while they wait.
CONFIDENTIAL_OWED = "_confidential_owed"
# The guardrails whose set answer ("will you call the police?") was said while waiting, by
# name: each once a wait. Asked again, it is any other message (the adviser will read it).
# Dropped when the wait is over (they leave the queue; their next message finds an adviser
# has them, or has ended it) and when an adviser hands them back to a queue (requeued), so a
# later wait answers again.
RAILED_WAITING = "_waiting_railed"
# Where the journey was when they asked for an adviser ([flow, state]): "cancel" goes back.
BEFORE_QUEUE = "_before_queue"
JUST_WROTE = timedelta(minutes=5)
# After danger, a hand-off the queue refused (Redis down) is tried again this often, so many
# times, in the background.
HAND_OFF_RETRY_SECONDS = 30.0
HAND_OFF_RETRIES = 20
# Kept in the conversation's answers while a hand-off is still owed ([queue, reason]): saved
# with the turn that asks for it, until it is made (after danger, until the queue takes it);
# housekeeping on any instance makes it if the instance that owed it stopped first.
HAND_OFF_DUE = "_handoff_due"
# The last few words of the person's last message, and when it came, screened with the first
# few of the next if it follows within PIECES_WITHIN: danger can be split over two messages.
# Never an answer kept sealed, nor a whole sentence or question ("will you call the police?"
# answered, then "help me stop shouting" is no danger). Kept as the transcript is.
SAID_LAST = "_said_last"
# When the person left with the quick exit (ISO time): shown with a call-back they booked, so
# whoever calls knows someone may have come in (handoff/callbacks.py).
LEFT_BY_QUICK_EXIT = "_left_by_quick_exit"
EDGE_WORDS = 6
PIECES_WITHIN = timedelta(minutes=2)
# A hand-off owed after danger waits while the person is at a question whose answer is not
# kept in clear (a number to call back), since queued, what they type next reaches advisers
# as written; but only while they may be typing it. Someone in crisis may not write again.
TYPING_AN_ANSWER = timedelta(minutes=2)
# A reply still unsent this long after it was stored is no longer retried by housekeeping
# (only at a start): by then it would answer something long gone.
UNSENT_GIVEN_UP = timedelta(days=1)
# A reply is claimed in the database by the instance that sends it (SqlStore.claim): its own
# turn's replies as they are saved, others' before sending them again, so that two instances
# whose conversation lock failed them (a lapsed lease, Redis restarted) never both send it.
# A claim this old may be taken by another: its instance has died (else it would have sent
# the reply, or given the claim back when its channel failed), and housekeeping sends the
# reply within the next minute. Longer than a turn's sends take: a send is bounded (Twilio's
# is 15 s) and a turn says a few things. A shorter claim would risk a double send, a longer
# one delay a reply after a crash (and until it lapses, the answer to a new message goes
# before it).
UNSENT_CLAIM = timedelta(minutes=1)
# A reply the channel certainly did not send (NotSent: a rate limit, the platform out of
# reach) stays pending and is sent again, it and those after it in order, after the platform's
# retry_after or a pause doubling from the first to the longest; given up (failed) after this
# many tries in all, so that a reply the platform never takes does not hold the rest for ever.
SEND_TRIES = 6
RESEND_FIRST_SECONDS = 5.0
RESEND_MAX_SECONDS = 300.0
LEVEL_ORDER = ("immediate", "suicide", "concern", "none")
# A question whose answer is not kept in clear, still open when a hand-off was made ([flow,
# state]: danger at "what number should we call?"). While the queue or an adviser has them,
# a message that answers it is still taken as its answer (the call-back booked, the number
# sealed) and kept as the journey keeps it; any other message reaches the adviser as written.
# Gone once answered, or when the bot has them again (the question is then asked as usual).
ASKED_WHEN_QUEUED = "_asked_when_queued"
# Marks an inbound text stored sealed: it may answer a question whose answer is not kept in
# clear (State.redacted, State.scrub); what the transcript keeps is settled once it is
# handled. (A person who types this prefix only gets their own message unreadable.)
SEALED_TEXT = "\u2400sealed:"
# Screening results and urgent conversations kept for turns still to run here.
REMEMBERED = 10_000
# A code word to continue on another channel lasts a day and works once.
HANDOVER_TTL = timedelta(hours=24)
# "continue K7MP-QW3X" (after normalise(): lower case, the hyphen a space).
_CONTINUE = re.compile(r"^(?P<word>[a-z]+(?: [a-z]+)?) (?P<code>[a-z0-9]{4} ?[a-z0-9]{4})$")


class RiskResult(Protocol):
    level: str
    reasons: tuple[str, ...]


Screen = Callable[[str, str], RiskResult]


class Limiter(Protocol):
    async def allow(self, key: str, limits: tuple[Limit, ...]) -> bool: ...

    async def refund(self, key: str, limits: tuple[Limit, ...]) -> None: ...


EffectHandler = Callable[[Conversation, Mapping[str, Any]], Awaitable[list[Reply]]]


class Handoffs(Protocol):
    """What the engine asks of routing (implemented in helpline/routing.py)."""

    async def request(self, conv: Conversation, queue: str, reason: str) -> list[Reply]: ...

    async def escalate(self, conv: Conversation, *, urgent: bool = False) -> None: ...

    async def cancel(self, conv: Conversation) -> None: ...

    async def waiting_replies(self, conv: Conversation) -> list[Reply]: ...

    def acknowledgement(self, conv: Conversation) -> list[Reply]: ...

    def window_note(self, conv: Conversation) -> list[Reply]: ...

    async def forward(self, conv: Conversation, message: StoredMessage, risk: str) -> None: ...

    async def erase(self, conv: Conversation) -> None: ...

    async def publish(self, kind: str, conversation_id: str, **data: object) -> None: ...


@dataclass(frozen=True)
class Command:
    """A word that works at any point, whoever owns the conversation."""

    keywords: str
    always: bool  # also while the queue or an adviser owns the conversation


COMMANDS = (
    Command("cmd_position", True),
    Command("cmd_cancel", True),
    Command("cmd_withdraw", True),
    Command("cmd_welsh", True),
    Command("cmd_english", True),
    Command("cmd_stop", True),
    Command("cmd_delete", True),
    Command("cmd_code", True),
    Command("cmd_menu", False),
    Command("cmd_help", False),
    Command("cmd_adviser", False),
)
# Commands that, as someone's very first message, are not preceded by the welcome's promises:
# "stop" says as little as it can; a change of language shows the whole welcome anyway.
UNGREETED_COMMANDS = ("cmd_stop", "cmd_welsh", "cmd_english")


def _remember(found: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    """Kept for the turn to come; bounded, because the turn may run on another instance."""
    found[key] = value
    if len(found) > REMEMBERED:
        found.popitem(last=False)


def worst(a: str, b: str) -> str:
    return a if LEVEL_ORDER.index(a) <= LEVEL_ORDER.index(b) else b


class Engine:
    def __init__(
        self,
        *,
        store: SqlStore,
        content: Content,
        runner: FlowRunner,
        privacy: Privacy,
        locks: Locks,
        hub: Hub,
        screen: Screen,
        senders: Mapping[str, Sender] | None = None,
        handoffs: Handoffs | None = None,
        effects: Mapping[str, EffectHandler] | None = None,
        clock: Callable[[], datetime] = utcnow,
        metrics: Metrics | None = None,
        limiter: Limiter | None = None,
        messages_per_minute: int = 20,
        alone: bool = False,
    ) -> None:
        self.store = store
        self.content = content
        self.runner = runner
        self.privacy = privacy
        self.locks = locks
        self.hub = hub
        self.screen = screen
        self.senders: dict[str, Sender] = dict(senders or {})
        self.handoffs = handoffs
        # Effects that adapters implement (call-backs, referrals): registered by plugins.
        self.effects: Mapping[str, EffectHandler] = effects if effects is not None else {}
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.limiter: Limiter = limiter or MemoryLimiter()
        self.message_limits = message_limits(messages_per_minute)
        self._tasks: set[asyncio.Task[None]] = set()
        # The only instance of this deployment (SQLite and no Redis: Settings.shared), and
        # when it started: a reply claimed before then was claimed by this deployment's
        # previous run, which has stopped, and nobody else can be sending it (see recover).
        self._alone = alone
        self._started = utcnow()
        self._retries: set[asyncio.Task[None]] = set()
        self._stop_retries = asyncio.Event()
        # Admission: at most this many turns, chat openings and stores at once, in arrival
        # order but a risky message first. Beyond it people wait their turn here rather than
        # all progressing together and timing out on the database pool (a burst:
        # docs/performance.md).
        # How many suits the backend (SqlStore.turns_at_once), below the database pool's
        # connections (storage.engine.POOL_SIZE), so a turn never waits on one, nor opens one.
        self._admission = Admission(store.turns_at_once)
        # Screened on arrival, so that a risky message goes before everyone waiting
        # (helpline/admission.py); the turn uses the same result rather than screening again.
        # (Keyed by message id, with the language and a hash of the text it was screened
        # with: the text itself is not kept here.)
        self._screened: OrderedDict[int, tuple[str, int, RiskResult]] = OrderedDict()
        # Conversations with a risky message waiting for its turn, and the worst level.
        self._risky: OrderedDict[str, str] = OrderedDict()
        # Those already sent emergency guidance while their lock could not be taken: the level.
        self._guided_unlocked: OrderedDict[str, str] = OrderedDict()
        # Replies a channel did not send: tries so far (by reply id), and the conversations
        # whose replies wait for their next try here (each with the try that is to send them).
        self._send_tries: OrderedDict[int, int] = OrderedDict()
        self._resending: dict[str, object] = {}
        # Conversations whose channel refused a reply until the person writes again
        # (OutsideReplyWindow), and when (real time): later replies wait with it, untried,
        # unless they have written since.
        self._unreachable: OrderedDict[str, datetime] = OrderedDict()

    # -- entry points for channels ---------------------------------------------------------

    async def accept(
        self, msg: InboundMessage, *, language: str = "en", limited: bool = True
    ) -> Accepted:
        """Store the message (raises DuplicateMessage for a redelivery). Once this returns,
        the channel may acknowledge: the message cannot be lost. `limited=False` for what
        must never be refused for coming too fast (an opt-out the platform has confirmed)."""
        key = self.privacy.contact_key(msg.channel, msg.address)
        risk = self.screen(msg.text, language)
        urgent = risk.level != "none"
        # A message about danger is never refused for coming too fast: it is stored and
        # answered with the emergency guidance like any other risky message. Nor is "stop":
        # leaving must always work.
        limited = limited and not urgent and not self._is_stop(msg.text)
        if limited and not await self.limiter.allow(key, self.message_limits):
            if msg.external_id is not None and await self.store.is_stored(
                msg.channel, msg.external_id
            ):
                # A redelivery of a message taken before the limit was reached: handled
                # once already, and never a reason to tell them to slow down.
                await self.limiter.refund(key, self.message_limits)
                self.metrics.duplicates.labels(msg.channel).inc()
                raise DuplicateMessage(f"{msg.channel} message already stored")
            self.metrics.rejections.labels(msg.channel, "rate_limited").inc()
            raise RateLimited("too many messages from one contact")

        def private(flow: str, state: str, owner: str, queued: bool) -> str | None:
            # Sealed when it may answer a question whose answer is not kept: the journey is
            # at one now, or messages still waiting before it may bring it there; with the
            # queue or an adviser, if it holds a number, only at a question a hand-off cut
            # short (its state is kept while they wait: ASKED_WHEN_QUEUED) or behind
            # messages still waiting. Which it was is known once it is handled (process()).
            if owner != Owner.BOT.value:
                at_question = queued or self.runner.answered_later(flow, state)
                if not (at_question and self.runner.may_answer_later(msg.text)):
                    return None
            elif not self.runner.private(flow, state) and not queued:
                return None
            return SEALED_TEXT + self.privacy.seal(msg.text, key)

        try:
            async with self._admission.slot(urgent=urgent):
                accepted = await self.store.accept_inbound(
                    contact_key=key,
                    channel=msg.channel,
                    sealed_address=lambda: self.privacy.seal(msg.address, key),
                    text=msg.text,
                    external_id=msg.external_id,
                    received_at=msg.received_at,
                    language=language,
                    private=private,
                )
                if urgent:
                    # A turn of this conversation already waiting will be the one to answer
                    # it: moved up before this slot goes to anyone else.
                    self._admission.promote(accepted.conversation_id)
        except DuplicateMessage:
            self.metrics.duplicates.labels(msg.channel).inc()
            if limited:
                # A redelivery (a platform trying again, or the same webhook at two
                # instances) is handled once, and counts once against the person's limit.
                await self.limiter.refund(key, self.message_limits)
            raise
        except HelplineError:
            raise
        except Exception as exc:
            # The database's own error (it is down, full, locked): not stored, which the
            # channel can answer as it does every other HelplineError.
            raise StoreUnavailable("the message could not be stored") from exc
        self.metrics.messages_in.labels(msg.channel).inc()
        _remember(self._screened, accepted.message_id, (language, hash(msg.text), risk))
        if urgent:
            level = worst(risk.level, self._risky.get(accepted.conversation_id, "none"))
            _remember(self._risky, accepted.conversation_id, level)
        return accepted

    def _is_stop(self, text: str) -> bool:
        """Whether the whole message is a word for "stop"."""
        said = normalise(text)
        return any(
            self.content.is_exactly(words, said)
            for words in ("cmd_stop", "cmd_stop_whole", "cmd_stop_bot")
        )

    def _asks_to_stop(self, conv: Conversation, said: str) -> bool:
        """A whole message asking to stop being messaged ("please stop", "QUIT"), beyond the
        words of cmd_stop. "cancel" only while the bot has the conversation and no hand-off
        is owed: waiting, or with an adviser, it means "stop waiting" (cmd_cancel)."""
        if self.content.is_exactly("cmd_stop_whole", said):
            return True
        bot = conv.owner is Owner.BOT and HAND_OFF_DUE not in conv.answers
        return (
            bot
            and self.content.is_exactly("cmd_stop_bot", said)
            # ...and not where the question takes it as an answer ("no" to "delete
            # everything?", to a referral, to "any children?"): there it is that answer.
            and not self.runner.takes_as_answer(conv.flow, conv.state, said)
        )

    async def open(self, channel: str, address: str, *, language: str = "en") -> Conversation:
        """Open (or find) the conversation for an address and greet it if it is new: for
        channels where the person has clearly started the contact (a web page opened)."""
        key = self.privacy.contact_key(channel, address)
        async with self._admission.slot():
            conv_id, created = await self.store.ensure_conversation(
                contact_key=key,
                channel=channel,
                sealed_address=self.privacy.seal(address, key),
                language=language,
            )
        # Always the conversation's lock first, then admission: never the other way round.
        async with self.locks.hold(conv_id), self._admission.slot(), self.store.unit():
            conv = await self.store.conversation(conv_id)
            if conv.answers.get("_greeted"):
                return conv
            conv.answers["_greeted"] = PAGE_GREETED
            turn = Turn(conv, self.content)
            await self.runner.start(turn, "welcome")
            stored = await self.store.save_turn(conv, [], turn.replies)
            await self.deliver(conv, stored)
            return conv

    async def switch_language(self, conversation_id: str, language: str) -> None:
        """Switch an open conversation's language as typing "Cymraeg" or "English" does, for
        a channel where the person chooses it outside the conversation (the web page's
        language link): open() keeps an existing conversation's language."""
        async with self.locks.hold(conversation_id), self._admission.slot(), self.store.unit():
            conv = await self.store.conversation(conversation_id)
            if conv.closed or conv.language == language or language not in LANGUAGES:
                return
            turn = Turn(conv, self.content)
            human = conv.owner in (Owner.QUEUE, Owner.ADVISER)
            await self._run_command(turn, "cmd_welsh" if language == "cy" else "cmd_english", human)
            stored = await self.store.save_turn(conv, [], turn.replies)
            await self.deliver(conv, stored)
        await self.notify(conv, "language", lang=conv.language)

    async def submit(
        self,
        msg: InboundMessage,
        *,
        language: str = "en",
        then: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> Accepted:
        """Store, then handle in the background (webhooks acknowledge at once). `then` is
        run once it is handled, unless the message was screened as risky: a channel's own
        notice ("we can't see pictures") must never stand beside the emergency guidance."""
        accepted = await self.accept(msg, language=language)
        screened = self._screened.get(accepted.message_id)
        if then is not None and screened is not None and screened[2].level != "none":
            then = None
        self.spawn(self._process_then(accepted.conversation_id, then))
        return accepted

    async def _process_then(
        self, conversation_id: str, then: Callable[[], Coroutine[Any, Any, None]] | None
    ) -> None:
        await self.process(conversation_id)
        if then is not None:
            await then()

    async def handle(self, msg: InboundMessage, *, language: str = "en") -> Accepted:
        """Store and handle before returning (tests, and channels that wait)."""
        accepted = await self.accept(msg, language=language)
        await self.process(accepted.conversation_id)
        return accepted

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The message stays stored as "received": housekeeping retries it
            # (retry_unanswered), and so does the next start.
            log.error("handling a conversation failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for every background handling task (graceful shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def recover(self) -> None:
        """At start: handle messages stored but not answered, deliver replies not yet sent."""
        for conversation_id in await self.store.conversations_with_pending_inbound():
            self.spawn(self.process(conversation_id))
        pending = await self.store.undelivered([Delivery.PENDING])
        for conversation_id in dict.fromkeys(m.conversation_id for m in pending):
            self.spawn(self._redeliver(conversation_id, at_start=True))

    async def retry_unanswered(self, waited: timedelta) -> int:
        """Handle again messages still unanswered `waited` after they arrived, and send
        replies still unsent `waited` after they were stored (up to a day old): their turn
        failed (a Redis blip, a database error) before or after its replies were saved, and
        the person should not have to write again or wait for a restart. Younger ones may be
        in a turn now and are left alone; a second attempt would be harmless anyway (it waits
        for the lock and finds nothing to do). Returns how many conversations."""
        now = self.clock()
        waiting = await self.store.conversations_with_pending_inbound(received_before=now - waited)
        for conversation_id in waiting:
            self.spawn(self.process(conversation_id))
        unsent = await self.store.undelivered(
            [Delivery.PENDING], created=(now - UNSENT_GIVEN_UP, now - waited)
        )
        stuck = [c for c in dict.fromkeys(m.conversation_id for m in unsent) if c not in waiting]
        for conversation_id in stuck:
            self.spawn(self._redeliver(conversation_id))
        return len(waiting) + len(stuck)

    async def _redeliver(self, conversation_id: str, *, at_start: bool = False) -> None:
        """Send a conversation's replies still unsent, read again under its lock (another
        instance may have sent them meanwhile), those this instance claims (see _claim).
        At the start of the only instance, those its previous run left are taken at once,
        claimed or not: the 999 guidance a crash left unsent must not wait for a lapse."""
        async with self.locks.hold(conversation_id):
            unsent = await self.store.undelivered(
                [Delivery.PENDING], conversation_id=conversation_id
            )
            if at_start and self._alone:
                left = [m for m in unsent if m.created_at < self._started]
                unsent = await self._claim(left, lease=timedelta(0))
            else:
                unsent = await self._claim(unsent)
            if unsent:
                conv = await self.store.conversation(conversation_id)
                # The 999 guidance is never held for quiet hours, however late it goes.
                await self.deliver(conv, unsent, urgent=self._guidance_in(unsent))

    # -- the turn --------------------------------------------------------------------------

    async def process(self, conversation_id: str) -> None:
        """Handle every stored, unanswered message of one conversation, oldest first.

        Whoever holds the lock answers all pending messages, so order holds even when
        several instances are woken for the same conversation."""
        held = False
        try:
            async with self.locks.hold(conversation_id):
                held = True
                urgent = conversation_id in self._risky
                self._risky.pop(conversation_id, None)
                self._guided_unlocked.pop(conversation_id, None)
                async with (
                    self._admission.slot(urgent=urgent, key=conversation_id),
                    self.store.unit(),
                ):
                    await self._turn(conversation_id)
        except HelplineError:
            if not held:
                await self._guidance_unlocked(conversation_id)
            raise

    async def _guidance_unlocked(self, conversation_id: str) -> None:
        """The conversation's lock cannot be taken (Redis down), so its turn waits for
        housekeeping; but someone who wrote about danger or suicide is sent the emergency
        guidance now, once, straight through their channel. (Their turn says it again when
        it runs: in an outage, twice is better than late.)"""
        level = self._risky.get(conversation_id)
        said = self._guided_unlocked.get(conversation_id)
        if level not in URGENT or (said is not None and worst(level, said) == said):
            return  # nothing urgent, or guidance as urgent said already (a worse one is not)
        # Marked before sending: messages handled together send it once.
        _remember(self._guided_unlocked, conversation_id, level)
        try:
            conv = await self.store.conversation(conversation_id)
            sender = self.senders.get(conv.channel)
            address = await self._reply_address(sender, conv) if sender is not None else None
            if sender is None or address is None:
                return
            reply = Reply(self.content.text(f"risk.{level}", conv.language))
            await sender.send(
                OutboundMessage(
                    UNSTORED, conv.id, conv.channel, address, reply, conv.language, conv.contact_key
                )
            )
        except Exception:  # noqa: BLE001 - the turn's own retry is still to come
            log.warning("emergency guidance could not be sent early", exc_info=True)
            if said is None:
                self._guided_unlocked.pop(conversation_id, None)
            else:
                self._guided_unlocked[conversation_id] = said
            return
        log.warning(
            "emergency guidance sent before its turn: the conversation's lock was not taken",
            extra={"conversation": conv.reference},
        )

    async def _turn(self, conversation_id: str) -> None:
        """process() once the conversation's lock and an admission slot are held."""
        pending, conv, unsent = await self.store.pending_turn(conversation_id)
        if conv is None:
            return  # another turn has answered them
        started = time.perf_counter()
        was_closed, was_language, was_shown = conv.closed, conv.language, _shown(conv)
        turn = Turn(conv, self.content)
        redact: dict[int, str] = {}
        # Danger, or a child at risk, in any of the messages: the answer is never held (below).
        urgent = False
        child_guided = bool(conv.answers.get(CHILD_GUIDED))
        for message in pending:
            sealed = message.text.startswith(SEALED_TEXT)
            if sealed:
                # Opened for this step only (see below for what the transcript keeps).
                message = replace(message, text=self._open_text(conv, message.text))
            answers = (conv.flow, conv.state) if conv.owner is Owner.BOT else None
            turn.text = message.text
            later = self._answers_later(turn, message.text)
            level = await self._step(turn, message, later)
            # Taken (booked) only where the queue, an adviser or danger had the message
            # (_step), never by a command or a detour that answered it instead: the question
            # stays open. Kept all the same as the consoles were shown it live (below).
            turn.vars.pop(ASKED_WHEN_QUEUED, None)
            urgent = (
                level in URGENT
                or urgent
                or (not child_guided and bool(conv.answers.get(CHILD_GUIDED)))
            )
            private = sealed and answers is not None and self.runner.private(*answers)
            if later is not None:
                # The answer to a question a hand-off cut short (the number): kept as the
                # journey keeps it, the words around it for the adviser.
                redact[message.id] = self.runner.kept_later(*later, message.text, conv.language)
                private = True
            elif sealed:
                # If it answered a question whose answer is not kept (a phone number), the
                # transcript keeps the journey's stand-in line or the words less the number;
                # otherwise it is an ordinary message, kept as written, because an adviser
                # must be able to read it ("he has just come home with a knife").
                redact[message.id] = (
                    self.runner.kept(*answers, message.text, conv.language, risky=level != "none")
                    if answers is not None
                    else message.text
                )
            _said_last(conv, message, turn, private=private)
        _owe_hand_offs(turn)
        try:
            stored = await self.store.save_turn(
                conv, [m.id for m in pending], turn.replies, redact=redact
            )
        except TurnSuperseded:
            # Another turn answered these messages while this one ran (see save_turn):
            # its answer stands, and this one's is dropped rather than sent twice.
            log.warning(
                "a turn overlapped another and was dropped", extra={"conversation": conv.reference}
            )
            self.metrics.turns_superseded.inc()
            return
        if self.handoffs is not None and conv.owner is not Owner.BOT and _shown(conv) != was_shown:
            # The queue's event went out during the step, before this save: the consoles'
            # snapshot then read the conversation without this turn's risk and flags.
            await self.handoffs.publish("updated", conv.id)
        if not getattr(self.senders.get(conv.channel), "live", False):
            await self._writing_again(conv)
        # Replies an earlier turn stored and an instance that stopped never sent: they were
        # said first, so they go first (not once they would answer something long gone).
        # With them, in order, those the channel refused until the person wrote again (an
        # adviser's reply after WhatsApp's 24 hours): this message opens the way for them.
        refused = {m.id for m in unsent if m.status is Delivery.UNREACHABLE}
        unsent = await self._unsent_first(conv, unsent)
        if unsent:
            released = [m.id for m in unsent if m.id in refused]
            await self.deliver(conv, unsent, urgent=self._guidance_in(unsent), released=released)
        # The turn's own replies (the 999 guidance, say) go before anything its effects
        # add (the queue's "an adviser will join you").
        await self.deliver(conv, stored, urgent=urgent)
        await self._apply_effects(turn)
        if conv.language != was_language:
            await self.notify(conv, "language", lang=conv.language)
        if conv.closed and not was_closed:
            # "stopped": the person ended it themselves, and a live page clears what it shows
            # (the welcome offers "stop" as a way to leave quickly); "ended" keeps it to reread.
            await self.notify(conv, "stopped" if conv.flow == "stop" else "ended")
        self.metrics.turn_seconds.observe(time.perf_counter() - started)

    async def _step(
        self, turn: Turn, message: StoredMessage, later: tuple[str, str] | None = None
    ) -> str:
        """One message of the turn; returns the risk level it was screened at. `later`: the
        question a hand-off cut short that it answers (_answers_later), taken once what is
        owed to danger has been said."""
        conv = turn.conversation
        screened = self._screened.pop(message.id, None)
        if screened is not None and screened[:2] == (conv.language, hash(message.text)):
            risk = screened[2]
        else:
            risk = self.screen(message.text, conv.language)
        before = _said_before(conv, message)
        if risk.level == "none" and before:
            risk = self._across(before, _words(message.text, first=True), conv.language, risk)
        if self.handoffs is not None and conv.owner in (Owner.QUEUE, Owner.ADVISER):
            # With the level it was screened at: a console marks a risky message. An answer
            # kept out of the transcript is shown as the transcript keeps it.
            shown = message
            if later is not None:
                kept = self.runner.kept_later(*later, message.text, conv.language)
                shown = replace(message, text=kept)
            await self.handoffs.forward(conv, shown, risk.level)
        if conv.owner is Owner.BOT:
            conv.answers.pop(ASKED_WHEN_QUEUED, None)  # the bot asks its questions itself
        if conv.owner is not Owner.QUEUE:
            conv.answers.pop(RAILED_WAITING, None)  # no longer waiting: that wait is over
        self.metrics.risk.labels(risk.level).inc()
        if risk.level != "none":
            _raise_risk(conv, risk.level, risk.reasons)
            log.info(
                "risk detected",
                extra={"conversation": conv.reference, "level": risk.level},
            )
        if risk.level == "none" and await self._channel_words(turn, message.text):
            return risk.level
        greeted = conv.answers.get("_greeted")
        first = not greeted
        if greeted is not True:  # the first thing they type (a page may have greeted them)
            conv.answers["_greeted"] = True
            if conv.language != "cy" and self.content.written_in_welsh(message.text):
                # Written in Welsh from the first word: everything said back is Welsh, the
                # emergency guidance too, which comes before the welcome could ask.
                conv.language = "cy"
                if not first and risk.level == "none":
                    # Under a welcome the page showed in English: say so, and the way back
                    # (never before the emergency guidance: that comes first, in Welsh).
                    turn.say("language.detected")
        human = conv.owner in (Owner.QUEUE, Owner.ADVISER)
        if human and conv.flow == "erase":
            # "Delete everything?" asked while a human has the conversation is answered by
            # the very next message only; anything else (danger above all) and it lapses, so
            # that a later "yes" or "ok" said to the adviser can never erase it.
            if risk.level == "none" and await self._answer_erase(turn, message.text):
                return risk.level
            self.runner.leave_detour(turn)
        if risk.level in URGENT:
            await self._urgent(turn, risk.level, first)
            self._take_later(turn)  # after the guidance
            return risk.level
        if _child_at_risk(conv, risk):
            # A child hurt, in the past or not said when: not a 999 matter on its face, but a
            # child at risk all the same. The flow is interrupted as for danger, once.
            conv.answers[CHILD_GUIDED] = True
            await self._urgent(turn, "child", first)
            self._take_later(turn)
            return risk.level
        if risk.level == "concern" and self.handoffs is not None and conv.owner is Owner.QUEUE:
            await self.handoffs.escalate(conv)
        if await self._command(turn, message.text, first):
            return risk.level
        if conv.owner is Owner.QUEUE and await self.runner.answer_offer(turn, message.text):
            # They took up an offer made while waiting (a call-back instead). Still waiting
            # (they chose to leave a message), they are promised a reply here: on WhatsApp,
            # how to make sure it can reach them, if it may come after its 24 hours.
            if self.handoffs is not None and conv.owner is Owner.QUEUE:
                turn.replies.extend(self.handoffs.window_note(conv))
            return risk.level
        if conv.owner is Owner.QUEUE:
            self._take_later(turn)  # what it was taken for, before who will read it
            self._while_waiting(turn, message.text)
            return risk.level
        if human:
            self._take_later(turn)
            return risk.level  # an adviser has it: the bot stays silent
        journey, where, asked = conv.flow, [conv.flow, conv.state], len(turn.effects)
        if first:
            await self.runner.start(turn, "welcome")
        elif not message.text.strip():
            # Nothing in it (SMS and Telegram can send that): it answers no question.
            await self.runner.ask_again(turn, "flow.empty")
        else:
            await self.runner.step(turn, message.text)
        if conv.flow != journey or first:
            self.metrics.conversations.labels(conv.flow).inc()
        if not first and any(e.kind == "handoff" for e in turn.effects[asked:]):
            conv.answers[BEFORE_QUEUE] = where
        return risk.level

    def _answers_later(self, turn: Turn, text: str) -> tuple[str, str] | None:
        """The question a hand-off cut short (ASKED_WHEN_QUEUED) if `text`, written while the
        queue or an adviser has them, answers it; read into the turn for _take_later."""
        conv = turn.conversation
        asked = conv.answers.get(ASKED_WHEN_QUEUED)
        if conv.owner is Owner.BOT or not (isinstance(asked, list) and len(asked) == 2):
            return None
        flow, state = str(asked[0]), str(asked[1])
        if not self.runner.reads_later_answer(turn, flow, state, text):
            return None
        turn.vars[ASKED_WHEN_QUEUED] = (flow, state)
        return flow, state

    def _take_later(self, turn: Turn) -> None:
        """Take the answer _answers_later read (the call-back booked), once. With an adviser
        the bot stays silent: what the journey would say is not said."""
        later = turn.vars.pop(ASKED_WHEN_QUEUED, None)
        if later is None:
            return
        conv = turn.conversation
        conv.answers.pop(ASKED_WHEN_QUEUED, None)  # answered
        said = len(turn.replies)
        reached = self.runner.take_later_answer(turn, *later)
        if reached is not None and conv.answers.get(BEFORE_QUEUE) == list(later):
            conv.answers[BEFORE_QUEUE] = [later[0], reached]  # "cancel" goes on from there
        if conv.owner is Owner.ADVISER:
            del turn.replies[said:]

    def _across(self, before: str, after: str, language: str, risk: RiskResult) -> RiskResult:
        """Danger sent in pieces ("I want to end" ... "my life"): the words either side of
        the break screened together. It counts only if neither side alone, cut short as they
        are ("no one is in danger" cut to "one is in danger"), screens as anything: over
        random pairs of the labelled harmless messages that leaves 3 false alarms in 3,866,
        and it finds 183 of the 187 risky ones split in two halves that each screen as
        nothing."""
        joined = self.screen(f"{before} {after}", language)
        if joined.level == "none":
            return risk
        if self.screen(before, language).level != "none":
            # Said already, and answered: "my husband hits me" then "not right now" (to
            # "is it safe to talk?") is not violence happening now.
            return risk
        return risk if self.screen(after, language).level != "none" else joined

    def _while_waiting(self, turn: Turn, text: str) -> None:
        """Someone in the queue, no adviser yet: a question with a set answer (a guardrail:
        "will you call the police?") is answered, once a wait; "help" and "menu" say what
        they can do while they wait; anything else, now and then, who will read it and when
        (Routing.acknowledgement: the adviser who joins, a programme's staff, or nobody until
        the line opens). Once, the full confidentiality statement a first message before the welcome
        skipped. The message itself has gone to the queue (_step) whatever is said here."""
        conv = turn.conversation
        said = normalise(text)
        now = self.clock()
        answered = self._answer_rail(turn, text)
        asks = any(
            name in self.content.keywords and mentions(said, self.content.all_words(name))
            for name in ("cmd_help", "cmd_menu")
        )
        if asks:
            turn.say(waiting_help(conv))
        elif not answered:
            last = conv.answers.get(ACKED_AT)
            if last is not None and now - datetime.fromisoformat(last) < ACK_EVERY:
                return
            if self.handoffs is None:
                turn.say("handoff.waiting_ack")
            else:  # who will read it, and when: the line may be closed, or a programme's
                turn.replies.extend(self.handoffs.acknowledgement(conv))
        if asks or not answered:
            conv.answers[ACKED_AT] = now.isoformat()
        if conv.answers.pop(CONFIDENTIAL_OWED, None):
            turn.say("welcome.confidential")

    def _answer_rail(self, turn: Turn, text: str) -> bool:
        """While waiting: the set answer of a guardrail the text trips, unless it was said
        already this wait; True if the question was answered. An answer that says the
        confidentiality statement's facts in full (instead_of) pays it if it is owed, and
        is not said after it in the same turn (two messages answered together). Advisers
        are told (flagged) once a wait too: asked again, the message reaches them as it is."""
        conv = turn.conversation
        railed = list(conv.answers.get(RAILED_WAITING) or ())
        rail = self.runner.rail(turn, text, flagged=railed)
        if rail is None or rail.name in railed:
            return False
        conv.answers[RAILED_WAITING] = [*railed, rail.name]
        key = rail.waiting or rail.reply
        covers = rail.instead_of if key == rail.reply else None
        told = {reply.text for reply in turn.replies}
        if covers is not None and turn.t(covers) in told:
            return True  # said just now, in full: not again in the same breath
        turn.say(key)
        if covers == "welcome.confidential":
            conv.answers.pop(CONFIDENTIAL_OWED, None)
        return True

    def requeued(self, conv: Conversation) -> None:
        """An adviser has handed the conversation back to a queue (released or transferred it,
        inside its lock): a new wait, in which each question with a set answer is answered
        again, even if the person never wrote while the adviser had them."""
        conv.answers.pop(RAILED_WAITING, None)

    async def _channel_words(self, turn: Turn, text: str) -> bool:
        """A word the conversation's channel answers itself (HELP, "SAFE?", QUIET hours on
        the text channels), whoever owns the conversation: answered here, in the turn, as
        the channel's optional `own_words(conv, text)` says, so that no other path answers
        it too and the journey never reads it as the answer to its question. Never a
        message about danger (the caller's check): that gets the emergency guidance."""
        own_words = getattr(self.senders.get(turn.conversation.channel), "own_words", None)
        if own_words is None:
            return False
        replies: list[Reply] | None = await own_words(turn.conversation, text)
        if replies is None:
            return False
        turn.replies.extend(replies)
        return True

    async def _answer_erase(self, turn: Turn, text: str) -> bool:
        """The answer to "delete everything?" while a human has the conversation, if it is
        one: yes erases; no says only that nothing was deleted (not the journey it returns
        to, which would talk over the adviser)."""
        said, done = len(turn.replies), len(turn.effects)
        if not await self.runner.answer_offer(turn, text):
            return False
        if turn.conversation.flow != "erase":  # "no, keep going"
            del turn.replies[said:], turn.effects[done:]
            turn.say("erase.kept")
        return True

    async def _urgent(self, turn: Turn, level: str, first: bool) -> None:
        """Interrupt the flow: the guidance for `level` (risk.immediate, risk.suicide,
        risk.child), then the queue, its priority raised."""
        conv = turn.conversation
        # Danger outweighs a "stop" or "delete my data" earlier in the same turn (two texts
        # sent quickly): the conversation stays open and queued, nothing is erased.
        conv.closed = False
        turn.effects = [e for e in turn.effects if not _undoes_help(e)]
        # ...and "we won't send you any more messages", said before it, is not so.
        stopped = {self.content.text("stop.done", language) for language in LANGUAGES}
        turn.replies[:] = [r for r in turn.replies if r.text not in stopped]
        turn.say(f"risk.{level}")
        if first:
            # Nothing else has been said yet: the welcome's promises, briefly, before the
            # queue; the full statement is said while they wait (_while_waiting).
            turn.say("welcome.anonymous_short")
            conv.answers[CONFIDENTIAL_OWED] = True
        if self.handoffs is None:
            return
        if conv.owner is Owner.BOT:
            if not first and conv.flow not in LEFT_BEHIND:
                conv.answers[BEFORE_QUEUE] = [conv.flow, conv.state]
            turn.replies.extend(await self._hand_off(conv, DEFAULT_QUEUE, f"risk:{level}"))
        elif conv.owner is Owner.QUEUE:
            await self.handoffs.escalate(conv, urgent=True)

    async def _command(self, turn: Turn, text: str, first: bool) -> bool:
        said = normalise(text)
        conv = turn.conversation
        human = conv.owner in (Owner.QUEUE, Owner.ADVISER)
        if await self._continue_from_elsewhere(turn, said):
            return True
        for command in COMMANDS:
            if human and not command.always:
                continue
            if command.keywords not in self.content.keywords:
                continue
            queued = conv.owner is Owner.QUEUE
            # "cancel" also turns down a hand-off still owed to them after danger.
            owed = conv.owner is Owner.BOT and HAND_OFF_DUE in conv.answers
            if command.keywords == "cmd_position" and not queued:
                if (
                    not first
                    and conv.owner is Owner.BOT
                    and self.content.is_exactly(command.keywords, said)
                ):
                    # The whole message: "how long" inside other words is not this.
                    await self.runner.ask_again(turn, "handoff.not_waiting")
                    return True
                continue
            if command.keywords == "cmd_cancel" and not (queued or owed):
                continue
            if command.keywords == "cmd_withdraw" and not (
                queued and _programme_queue(conv) and self._withdraws(text)
            ):
                continue
            if command.keywords == "cmd_stop" and self._asks_to_stop(conv, said):
                pass  # the whole message asks to stop: said below
            elif (
                command.keywords == "cmd_menu"
                and not first
                and self.content.is_exactly("cmd_menu_whole", said)
            ):
                pass  # "start" (Telegram's /start) in an open conversation: the menu
            elif not mentions(said, self.content.all_words(command.keywords)):
                continue
            if command.keywords in ("cmd_welsh", "cmd_english") and len(said.split()) > 3:
                continue  # "I speak English at home" is not a request to switch
            if first and command.keywords not in UNGREETED_COMMANDS:
                # The welcome's promises (no name needed, where confidentiality ends) come
                # before anything else, even when the first message is a command.
                turn.say("welcome.anonymous_short")
                conv.answers[CONFIDENTIAL_OWED] = True
            await self._run_command(turn, command.keywords, human)
            return True
        return False

    async def _back_from_queue(self, turn: Turn) -> None:
        """After leaving the queue: back to the question they were at when they asked for an
        adviser (said again without doing its actions twice), or else to "who are you"."""
        conv = turn.conversation
        conv.answers.pop(ACKED_AT, None)
        conv.answers.pop(RAILED_WAITING, None)
        back = conv.answers.pop(BEFORE_QUEUE, None)
        said = "handoff.cancelled"
        # The queue left stays named.
        if (
            back == ["programme", "consent"]
            and _programme_queue(conv)
            and not conv.answers.get(PROGRAMME_HOLDS)
        ):
            # Left a programme's queue before its staff took it up: the referral is
            # withdrawn (routing's on_left). Back to what to do next, never to "do you
            # agree?" without what it is agreeing to.
            said, back = "programme.withdrawn", ["programme", "offer_referral"]
        if (
            isinstance(back, list)
            and len(back) == 2
            and back[0] in self.runner.flows
            and back[0] not in LEFT_BEHIND
            and self.runner.has_state(back[0], back[1])
            and back != ["welcome", "start"]
        ):
            conv.flow, conv.state = back
            await self.runner.ask_again(turn, said)
            return
        turn.say("handoff.cancelled")
        await self.runner.start(turn, "welcome", "who")

    def _withdraws(self, text: str) -> bool:
        """Whether a message asks to withdraw a referral: a withdrawing phrase, not in a
        question ("can I cancel my referral later?") nor said not to ("please don't cancel
        my referral", "peidiwch â chanslo fy atgyfeiriad")."""
        if text.rstrip().endswith("?"):
            return False
        padded = f" {normalise(text)} "
        negations = self.content.all_words("cmd_withdraw_not")
        for phrase in self.content.all_words("cmd_withdraw"):
            at = padded.find(f" {phrase} ")
            if at < 0:
                continue
            before = f" {' '.join(padded[:at].split()[-3:])} "  # the three words before it
            if not any(f" {word} " in before for word in negations):
                return True
        return False

    async def _run_command(self, turn: Turn, name: str, human: bool) -> None:
        conv = turn.conversation
        if name == "cmd_position":
            turn.effect("position")
        elif name in ("cmd_cancel", "cmd_withdraw") and self.handoffs is not None:
            if conv.answers.pop(HAND_OFF_DUE, None) is not None and conv.owner is Owner.BOT:
                turn.say("handoff.not_connecting")
                await self.runner.start(turn, "welcome", "who")
            else:
                await self.handoffs.cancel(conv)
                await self._back_from_queue(turn)
        elif name in ("cmd_welsh", "cmd_english"):
            conv.language = "cy" if name == "cmd_welsh" else "en"
            turn.say("language.switched")
            if not human:
                await self.runner.render_current(turn)
        elif name == "cmd_stop":
            await self.runner.start(turn, "stop")
        elif name == "cmd_delete":
            await self.runner.detour(turn, "erase")
        elif name == "cmd_menu":
            conv.answers.pop("_resume", None)
            await self.runner.start(turn, "welcome", "who")
        elif name == "cmd_help":
            await self.runner.detour(turn, "help")
        elif name == "cmd_adviser":
            queue = helpline_queue(conv.answers.get("queue"))
            conv.answers[BEFORE_QUEUE] = [conv.flow, conv.state]
            turn.effect("handoff", queue=queue, reason="asked")
        elif name == "cmd_code":
            code, now = new_code(), self.clock()
            await self.store.save_handover_code(
                conv.id, self.privacy.code_hash(code), now + HANDOVER_TTL, now
            )
            hours = int(HANDOVER_TTL.total_seconds() // 3600)
            # Sent, never stored: the transcript (and anyone reading it) gets a stand-in.
            turn.effect("code_word", text=turn.t("handover.code", code=code, hours=hours))

    # -- continuing on another channel -----------------------------------------------------

    async def _continue_from_elsewhere(self, turn: Turn, said: str) -> bool:
        """ "continue <code word>": this arrival takes over the conversation the code word
        was given in (its journey, its place in the queue, its adviser)."""
        match = _CONTINUE.match(said)
        if match is None or "cmd_continue" not in self.content.keywords:
            return False
        if not mentions(match["word"], self.content.all_words("cmd_continue")):
            return False
        conv = turn.conversation
        if conv.owner is not Owner.BOT:
            turn.say("handover.busy")
            return True
        found = await self.store.take_handover_code(
            self.privacy.code_hash(match["code"]), self.clock()
        )
        if found is None or found == conv.id:
            turn.say("handover.unknown")
            return True
        turn.effect("adopt", conversation=found)
        return True

    async def _adopt(self, arrived_id: str, conversation_id: str) -> None:
        """Carry a conversation over to where the person has just arrived with its code
        word. Runs outside both conversations' locks and then takes both, in a fixed order,
        so two adoptions crossing each other cannot deadlock."""
        first, second = sorted((arrived_id, conversation_id))
        async with self.locks.hold(first), self.locks.hold(second):
            try:
                arrived = await self.store.conversation(arrived_id)
                conv = await self.store.conversation(conversation_id)
            except NotFound:
                return  # erased meanwhile
            if arrived.closed or conv.closed or arrived.owner is not Owner.BOT:
                if not arrived.closed:
                    turn = Turn(arrived, self.content)
                    turn.say("handover.unknown")
                    await self.deliver(
                        arrived, await self.store.save_turn(arrived, [], turn.replies)
                    )
                return
            # A page still open on the old channel is told the conversation has moved on.
            await self.notify(conv, "ended")
            was_shown = _shown(conv)
            # What the arrival knew of danger is kept in the very write that closes it.
            await self.store.adopt(conversation_id, arrived_id, self.clock(), self._carry_risk)
            conv = await self.store.conversation(conversation_id)
            human = conv.owner is not Owner.BOT
            if self.handoffs is not None and human and _shown(conv) != was_shown:
                # Danger said on the new channel first: their place in the queue (before they
                # are told it, below), and what the advisers see of them, rise with it.
                if conv.owner is Owner.QUEUE:
                    try:
                        await self.handoffs.escalate(conv)
                    except Exception:  # noqa: BLE001 - logged; the carry-over goes on
                        log.exception(
                            "a waiting conversation could not be moved up the queue",
                            extra={"conversation": conv.reference},
                        )
                await self.handoffs.publish("updated", conv.id)
            owed = conv.owner is Owner.BOT and HAND_OFF_DUE in conv.answers
            note = self.content.text("note.continued", "en", channel=conv.channel)
            await self.store.add_note(conversation_id, note, "helpline")
            if self.handoffs is not None:
                await self.handoffs.publish("activity", conversation_id)
            turn = Turn(conv, self.content)
            if conv.owner in (Owner.ADVISER, Owner.QUEUE) and self.handoffs is not None:
                # Whoever holds it (an adviser, or a programme's staff) or their place.
                turn.say("handover.joined")
                turn.replies.extend(await self.handoffs.waiting_replies(conv))
            else:
                turn.say("handover.joined")
                await self.runner.render_current(turn)
            await self.deliver(conv, await self.store.save_turn(conv, [], turn.replies))
        log.info(
            "conversation continued on another channel", extra={"conversation": conv.reference}
        )
        if owed and not await self._attempt_hand_off(conversation_id, conv.reference):
            # Tried again as a hand-off owed after danger always is: here, and by housekeeping.
            self._later(self._hand_off_later(conversation_id, conv.reference))
        # Anything that reached the arrival while it was being carried over.
        await self.process(conversation_id)

    @staticmethod
    def _carry_risk(arrived: Conversation, conv: Conversation) -> bool:
        """What the arrival learnt of danger, carried into the conversation it takes over:
        its risk level and reasons and, if the queue refused the hand-off danger asked for
        there, that hand-off, still owed. The arrival itself is closed. True if anything
        was carried."""
        before = (_shown(conv), HAND_OFF_DUE in conv.answers)
        _raise_risk(conv, arrived.risk_level, arrived.answers.get("_risk_reasons", ()))
        due = arrived.answers.get(HAND_OFF_DUE)
        if due is not None and conv.owner is Owner.BOT and HAND_OFF_DUE not in conv.answers:
            conv.answers[HAND_OFF_DUE] = due
        return (_shown(conv), HAND_OFF_DUE in conv.answers) != before

    def _guidance_in(self, messages: list[StoredMessage]) -> bool:
        """Whether these replies carry the emergency guidance (in either language)."""
        return any(self.content.is_guidance(m.text) for m in messages)

    async def _hand_off(self, conv: Conversation, queue: str, reason: str) -> list[Reply]:
        """Queue the conversation for an adviser; if the queue cannot be reached (Redis down),
        say so calmly rather than fail the turn: the emergency guidance said before this must
        still go out. The person can ask again; after danger it is tried again for them."""
        try:
            replies = await self._request(conv, queue, reason)
        except HelplineError:
            log.exception("a hand-off could not be made", extra={"conversation": conv.reference})
            if _after_danger(reason):
                # Saved: owed until it is made, whichever instance makes it.
                conv.answers[HAND_OFF_DUE] = [queue, reason]
                self._later(self._hand_off_later(conv.id, conv.reference))
            elif not _owed_after_danger(conv):
                conv.answers.pop(HAND_OFF_DUE, None)  # they are told to ask again
            return [Reply(self.content.text("handoff.unavailable", conv.language))]
        conv.answers.pop(HAND_OFF_DUE, None)
        return replies

    async def _request(self, conv: Conversation, queue: str, reason: str) -> list[Reply]:
        """The hand-off request. If it fails once the conversation is queued (telling them
        their place), they are asked to keep waiting; if it fails before, the error is
        raised."""
        assert self.handoffs is not None
        # Where the journey was: the queue's offer out of hours moves it on.
        asked, bot = [conv.flow, conv.state], conv.owner is Owner.BOT
        try:
            replies = await self.handoffs.request(conv, queue, reason)
        except HelplineError:
            if conv.owner is Owner.BOT:
                raise
            log.exception("a hand-off could not be made", extra={"conversation": conv.reference})
            return [Reply(self.content.text("handoff.keep_waiting", conv.language))]
        if bot and conv.owner is not Owner.BOT:
            if self.runner.answered_later(*asked):
                conv.answers[ASKED_WHEN_QUEUED] = asked  # its answer may still come
            else:
                conv.answers.pop(ASKED_WHEN_QUEUED, None)
        return replies

    def _later(self, coro: Coroutine[Any, Any, None]) -> None:
        """A retry in the background that a shutdown stops rather than waits out."""
        task = asyncio.ensure_future(coro)
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    async def stop_retries(self) -> None:
        """At shutdown: retries waiting for their next attempt end now; an attempt under way
        finishes (cut short, it could leave a hand-off half made)."""
        self._stop_retries.set()
        await asyncio.gather(*self._retries, return_exceptions=True)

    async def _hand_off_later(self, conversation_id: str, reference: str) -> None:
        """After danger, queue the conversation as soon as the queue answers again (unless
        the person has asked again, or left, meanwhile). Housekeeping goes on trying after
        this gives up or its instance stops (retry_handoffs)."""
        for _ in range(HAND_OFF_RETRIES):
            if await stopped_within(self._stop_retries, HAND_OFF_RETRY_SECONDS):
                return
            if await self._attempt_hand_off(conversation_id, reference):
                return
        log.error(
            "a hand-off after danger is still waiting; housekeeping goes on",
            extra={"conversation": reference},
        )

    async def retry_handoffs(self) -> int:
        """Housekeeping: make the hand-offs still owed: after danger, those the queue refused;
        any other, if the instance that saved the turn asking for it stopped before making
        it. Returns how many were tried."""
        if self.handoffs is None:
            return 0
        tried = 0
        for conv in await self.store.open_with_the_bot_holding(HAND_OFF_DUE):
            if HAND_OFF_DUE in conv.answers:
                tried += 1
                await self._attempt_hand_off(conv.id, conv.reference)
        return tried

    async def _attempt_hand_off(self, conversation_id: str, reference: str) -> bool:
        """One try of a hand-off still owed; True once nothing more is owed (made, or the
        conversation erased). A failure (Redis or the database still down) is logged and
        left for the next try: one failing must not keep the others waiting."""
        try:
            return await self._try_hand_off(conversation_id)
        except NotFound:
            return True  # erased meanwhile
        except Exception:  # noqa: BLE001
            log.warning(
                "a hand-off is still waiting for the queue",
                extra={"conversation": reference},
                exc_info=True,
            )
            return False

    async def _try_hand_off(self, conversation_id: str) -> bool:
        """Make a hand-off still owed, read again under the conversation's lock; raises if
        the queue still refuses it. False: not now (tried again later)."""
        async with self.locks.hold(conversation_id), self.store.unit():
            conv = await self.store.conversation(conversation_id)
            due = conv.answers.get(HAND_OFF_DUE)
            if due is None or self.handoffs is None:
                return True  # made meanwhile, by the person asking or by another instance
            if conv.closed or conv.owner is not Owner.BOT:
                # They left, or are queued or with an adviser already: nothing is owed.
                conv.answers.pop(HAND_OFF_DUE)
                await self.store.save_turn(conv, [], [], touch=False)
                return True
            queue, reason = due
            if self.runner.private(conv.flow, conv.state) and not (
                _after_danger(str(reason)) and self._quiet_for(conv, TYPING_AN_ANSWER)
            ):
                # Asked for what is not kept in clear (a number to call back): queued now,
                # their answer would go to the queue as an ordinary message. Next round.
                return False
            replies = await self._request(conv, queue, reason)  # not queued: raises, again
            conv.answers.pop(HAND_OFF_DUE)
            stored = await self.store.save_turn(conv, [], replies, touch=False)
            await self.deliver(conv, stored, urgent=_after_danger(str(reason)))
            return True

    def _quiet_for(self, conv: Conversation, long: timedelta) -> bool:
        """Whether the person has written nothing for `long`."""
        last = conv.last_inbound_at
        return last is None or self.clock() - last >= long

    async def _apply_effects(self, turn: Turn) -> None:
        """Effects that need more than the turn's own state; run after the turn is saved."""
        conv = turn.conversation
        extra: list[Reply] = []
        changed = False  # the conversation changed after the turn was saved
        for effect in turn.effects:
            if effect.kind == "handoff" and self.handoffs is not None:
                extra += await self._hand_off(conv, *_asked_hand_off(effect))
                changed = True  # no longer owed (or, after danger, still owed)
            elif effect.kind == "cancel_handoff" and self.handoffs is not None:
                await self.handoffs.cancel(conv)
                conv.answers.pop(HAND_OFF_DUE, None)
                changed = True
            elif effect.kind == "position" and self.handoffs is not None:
                extra += await self.handoffs.waiting_replies(conv)
            elif effect.kind == "erase":
                await self._erase(conv)
                return
            elif effect.kind == "adopt":
                # After this turn lets go of its lock (see _adopt).
                self.spawn(self._adopt(conv.id, str(effect.data["conversation"])))
                return
            elif effect.kind == "code_word":
                kept = Reply(self.content.text("handover.code_kept", conv.language))
                stored = await self.store.save_turn(conv, [], [kept])
                try:
                    await self.deliver(
                        conv, stored, instead={stored[0].id: str(effect.data["text"])}
                    )
                except Exception:
                    # Never sent again later: a resend would carry the stand-in, not the code.
                    await self.store.mark(stored[0].id, Delivery.FAILED)
                    raise
            elif effect.kind == "settings":
                await self.store.update_contact_settings(conv.contact_key, **effect.data)
            elif effect.kind == "flag":
                note = self.content.text("note.flagged", "en", reason=effect.data.get("reason", ""))
                await self.store.add_note(conv.id, note, "helpline")
                if self.handoffs is not None:
                    # A wake-up for the consoles, as every queue event is: logged if the hub
                    # cannot take it, and the turn's other effects still made.
                    await self.handoffs.publish("flagged", conv.id, **effect.data)
            elif effect.kind == "withdraw_callbacks" and effect.kind not in self.effects:
                pass  # no call-backs without the handoff plugin: nothing to withdraw
            elif effect.kind in self.effects:
                if effect.kind == "callback" and conv.answers.pop(HAND_OFF_DUE, None):
                    changed = True  # they chose to be called back instead
                extra += await self.effects[effect.kind](conv, effect.data)
            else:
                log.error("no handler for effect", extra={"effect": effect.kind})
        if extra or changed:
            stored = await self.store.save_turn(conv, [], extra)
            await self.deliver(conv, stored)

    # -- delivery --------------------------------------------------------------------------

    async def _claim(
        self,
        messages: list[StoredMessage],
        status: Delivery = Delivery.PENDING,
        *,
        lease: timedelta = UNSENT_CLAIM,
    ) -> list[StoredMessage]:
        """Of replies read to be sent again, those this instance has now claimed (marked
        pending if they were `status`): another instance may be sending the rest, its lock's
        lease having lapsed (SqlStore.claim). Sent only by whoever claims them: never twice."""
        if not messages:
            return []
        # Real time, as the claims a turn's save makes (not self.clock(), which tests move).
        now = utcnow()
        claimed = set(
            await self.store.claim([m.id for m in messages], now=now, lease=lease, status=status)
        )
        return [
            replace(m, status=Delivery.PENDING, claimed_at=now) for m in messages if m.id in claimed
        ]

    async def deliver(
        self,
        conv: Conversation,
        messages: list[StoredMessage],
        *,
        instead: Mapping[int, str] | None = None,
        urgent: bool = False,
        released: Collection[int] = (),
    ) -> None:
        """Hand stored replies to the conversation's channel, in order; mark each. `instead`
        sends other words than the stored ones (a code word: the transcript keeps a stand-in).
        `urgent`: the answer to danger, never held for quiet hours however late it is.
        A reply the channel certainly did not send (NotSent) stays pending, and it and those
        after it are sent again later, in order (_send_later). One it refuses until the person
        writes again (OutsideReplyWindow) waits for that, with those after it, untried
        (_wait_for_person). Any other failure is final. `released`: replies that waited so,
        now sent: the consoles are told they went."""
        outbound = [m for m in messages if m.status is Delivery.PENDING]
        for m in messages:
            await self.hub.publish(f"transcript:{conv.id}", _event(m))
        if not outbound:
            return
        sender = self.senders.get(conv.channel)
        if sender is None:
            log.warning("no channel to deliver to", extra={"conversation": conv.reference})
            return
        if not getattr(sender, "live", False) and not urgent:
            outbound = await self._hold_in_quiet_hours(conv, outbound)
            if not outbound:
                return
        if self._still_unreachable(conv):
            # An earlier reply waits for them to write: this one could not reach them either,
            # and must not arrive before it.
            await self._wait_for_person(conv, outbound)
            return
        address = await self._reply_address(sender, conv)
        if address is None:
            return
        if conv.id in self._resending:
            if not urgent and not instead:
                # An earlier reply waits for its next try: these go after it, not before.
                await self._send_stopped([], outbound)
                return
            # Danger's answer does not wait minutes behind an earlier reply (a new message
            # says they can be reached), nor does a code word (a resend would carry its
            # stand-in): they go now, and what waited follows them at once.
            del self._resending[conv.id]
            self.spawn(self._redeliver(conv.id))
        sent: list[int] = []
        marked: list[int] = []  # sent, and marked with the platform's id at once
        for n, m in enumerate(outbound):
            out = OutboundMessage(
                m.id,
                conv.id,
                conv.channel,
                address,
                Reply((instead or {}).get(m.id, m.text), m.options, m.author),
                conv.language,
                conv.contact_key,
            )
            try:
                platform_id = await sender.send(out)
            except OutsideReplyWindow as exc:
                log.warning(
                    "a reply waits for the person to write again (%s)",
                    exc.kind,
                    extra={"conversation": conv.reference, "message_id": m.id},
                )
                _remember(self._unreachable, conv.id, utcnow())
                waiting = outbound[n:]
                for code in [w for w in waiting if w.id in (instead or {})]:
                    # A code word is never sent later: it would carry its stand-in.
                    await self._failed(conv, code, exc)
                await self._wait_for_person(
                    conv, [w for w in waiting if w.id not in (instead or {})]
                )
                break
            except NotSent as exc:
                # A code word is never sent again: a resend would carry its stand-in.
                if m.id not in (instead or {}) and self._send_later(conv, m, exc):
                    # It and every reply after it wait for the next try, in order.
                    await self._send_stopped(sent, outbound[n:])
                    return
                await self._failed(conv, m, exc)
                continue
            except DeliveryError as exc:
                await self._failed(conv, m, exc)
                continue
            except Exception:
                await self._send_stopped(sent, outbound[n:])
                raise
            self._send_tries.pop(m.id, None)
            if platform_id is None:
                sent.append(m.id)  # marked together below: one write, not one each
            else:
                # At once: the platform's delivery report may follow within milliseconds.
                await self.store.mark(m.id, Delivery.SENT, platform_id=platform_id)
                marked.append(m.id)
            self.metrics.messages_out.labels(conv.channel, m.author.value).inc()
        if sent:
            await self.store.mark_sent(sent)
        went = [i for i in released if i in sent or i in marked]
        if went:
            await self.hub.publish(
                f"transcript:{conv.id}", {"type": "delivery", "status": "sent", "ids": went}
            )

    async def _unsent_first(
        self, conv: Conversation, unsent: list[StoredMessage]
    ) -> list[StoredMessage]:
        """Of the replies waiting when a turn starts, those this instance claims to send first,
        in order: those an instance that stopped left unsent (up to a day old), and those the
        channel refused until the person wrote again (they just have), however old: the
        conversation is still open, so the adviser's words still stand."""
        since = utcnow() - UNSENT_GIVEN_UP
        left = [m for m in unsent if m.status is Delivery.PENDING and m.created_at > since]
        refused = [m for m in unsent if m.status is Delivery.UNREACHABLE]
        self._unreachable.pop(conv.id, None)
        claimed = await self._claim(left) + await self._claim(refused, Delivery.UNREACHABLE)
        return sorted(claimed, key=lambda m: m.id)

    def _still_unreachable(self, conv: Conversation) -> bool:
        """Whether a reply of this conversation was refused until the person writes again,
        and they have not written since (as far as this instance knows)."""
        refused = self._unreachable.get(conv.id)
        if refused is None:
            return False
        if conv.last_inbound_at is not None and conv.last_inbound_at > refused:
            del self._unreachable[conv.id]
            return False
        return True

    async def _wait_for_person(self, conv: Conversation, waiting: list[StoredMessage]) -> None:
        """Replies nothing can reach the person with until they write again: kept
        (UNREACHABLE) and sent, in order, when they do (_turn); never tried meanwhile. The
        consoles show each as waiting for the person to write first."""
        if not waiting:
            return
        for m in waiting:
            self._send_tries.pop(m.id, None)
            await self.store.mark(m.id, Delivery.UNREACHABLE)
        self.metrics.delivery_failures.labels(conv.channel).inc(len(waiting))
        await self.hub.publish(
            f"transcript:{conv.id}",
            {
                "type": "delivery",
                "status": Delivery.UNREACHABLE.value,
                "ids": [m.id for m in waiting],
            },
        )

    def reply_window(self, conv: Conversation) -> timedelta | None:
        """How long after the person's last message their channel takes replies, if it
        limits that (WhatsApp: 24 hours; Sender.reply_window); None if it does not."""
        window = getattr(self.senders.get(conv.channel), "reply_window", None)
        return window if isinstance(window, timedelta) else None

    async def refused_later(self, channel: str, message_id: int, platform_id: str) -> bool:
        """A channel's report, after it took a reply, that the platform refused it until the
        person writes again (WhatsApp can say so only once it has tried): the reply waits
        for them as one refused at once does (_wait_for_person), and the consoles say so."""
        conversation_id = await self.store.mark_refused_reported(channel, message_id, platform_id)
        if conversation_id is None:
            return False  # not ours, not yet sent, or further on (delivered, sent again)
        _remember(self._unreachable, conversation_id, utcnow())
        await self.hub.publish(
            f"transcript:{conversation_id}",
            {"type": "delivery", "status": Delivery.UNREACHABLE.value, "ids": [message_id]},
        )
        return True

    async def _failed(self, conv: Conversation, m: StoredMessage, exc: DeliveryError) -> None:
        # The error's kind only: its text may quote the platform, which may quote a number.
        log.warning(
            "delivery failed (%s)",
            exc.kind,
            extra={"conversation": conv.reference, "message_id": m.id},
        )
        self._send_tries.pop(m.id, None)
        await self.store.mark(m.id, Delivery.FAILED)
        self.metrics.delivery_failures.labels(conv.channel).inc()

    def _send_later(self, conv: Conversation, m: StoredMessage, exc: NotSent) -> bool:
        """A reply the channel did not send: True if it is to be tried again (after the
        platform's retry_after, or a pause doubling each try), False once tried enough."""
        tries = self._send_tries.get(m.id, 0) + (0 if exc.channel_down else 1)
        if exc.channel_down and m.created_at < utcnow() - UNSENT_GIVEN_UP:
            return False  # too late to answer anything: as housekeeping gives up
        if tries >= SEND_TRIES:
            log.error(
                "a reply was not sent after %d tries (%s): given up",
                tries,
                exc.kind,
                extra={"conversation": conv.reference, "message_id": m.id},
            )
            return False
        _remember(self._send_tries, m.id, tries)
        # A channel that is down sends what waits once it is back (resend_waiting); looked
        # at again now and then all the same, in case that was missed.
        pause = RESEND_MAX_SECONDS if exc.channel_down else RESEND_FIRST_SECONDS * 2 ** (tries - 1)
        if exc.retry_after is not None:
            pause = max(exc.retry_after, 0.0)
        pause = min(pause, RESEND_MAX_SECONDS)
        log.warning(
            "a reply was not sent (%s): trying again in %.0f s",
            exc.kind,
            pause,
            extra={"conversation": conv.reference, "message_id": m.id},
        )
        token = object()
        self._resending[conv.id] = token
        self._later(self._resend(conv.id, token, pause))
        return True

    async def _resend(self, conversation_id: str, token: object, pause: float) -> None:
        """The next try of a conversation's replies a channel did not send. (If this
        instance stops first, they are still pending: the next start, or another instance's
        housekeeping, sends them.)"""
        if await stopped_within(self._stop_retries, pause):
            return
        if self._resending.get(conversation_id) is not token:
            return  # sent meanwhile (resend_waiting), or another try is due instead
        del self._resending[conversation_id]
        try:
            await self._redeliver(conversation_id)
        except Exception:  # noqa: BLE001 - housekeeping tries again (retry_unanswered)
            log.warning("replies could not be sent again", exc_info=True)

    async def resend_waiting(self) -> int:
        """A channel that could not send (not started, out of reach) can again: replies
        waiting for their next try (up to a day old) go now. Returns how many conversations."""
        since = utcnow() - UNSENT_GIVEN_UP  # as replies are stamped (real time)
        unsent = await self.store.undelivered([Delivery.PENDING])
        waiting = list(dict.fromkeys(m.conversation_id for m in unsent if m.created_at > since))
        for conversation_id in waiting:
            self._resending.pop(conversation_id, None)
            self.spawn(self._redeliver(conversation_id))
        return len(waiting)

    async def _send_stopped(self, sent: list[int], unsent: list[StoredMessage]) -> None:
        """The channel failed unexpectedly (it went away): what it took is marked sent, and
        the claims of the rest given back, so that housekeeping sends them again without
        waiting for the claims to lapse, and nothing taken is sent twice."""
        try:
            if sent:
                await self.store.mark_sent(sent)
            await self.store.unclaim(unsent)
        except Exception:  # noqa: BLE001 - the channel's error is the one raised
            # The claims lapse by themselves (UNSENT_CLAIM); what was sent may go again.
            log.warning("claims of unsent replies not given back", exc_info=True)

    async def _reply_address(self, sender: Sender, conv: Conversation) -> str | None:
        """Where a channel sends this conversation's replies: nothing to open for one that
        reaches the person by their contact key; else their address, opened (None if gone)."""
        if getattr(sender, "by_key", False):
            return ""
        return await self.address(conv)

    async def _writing_again(self, conv: Conversation) -> None:
        """Someone who said stop and then writes again has opted back in."""
        settings = await self.store.contact_settings(conv.contact_key)
        if settings.get("opted_out"):
            await self.store.update_contact_settings(conv.contact_key, opted_out=False)

    async def _hold_in_quiet_hours(
        self, conv: Conversation, outbound: list[StoredMessage]
    ) -> list[StoredMessage]:
        """Inside the person's quiet hours nothing is sent: messages wait (HELD) and the
        console is told until when. After "stop", nothing is sent until they write again."""
        now = self.clock()
        # The person just wrote: they are holding the phone, so answering is expected (and
        # emergency guidance must never wait). Only later messages, such as an adviser's
        # reply after a wait, are held.
        if conv.last_inbound_at is not None and now - conv.last_inbound_at < JUST_WROTE:
            return outbound
        settings = await self.store.contact_settings(conv.contact_key)
        if settings.get("opted_out"):
            for m in outbound:
                await self.store.mark(m.id, Delivery.FAILED)
            await self.hub.publish(f"transcript:{conv.id}", {"type": "opted_out"})
            return []
        quiet = QuietHours.from_settings(settings)
        if quiet is None or not quiet.contains(now):
            return outbound
        for m in outbound:
            await self.store.mark(m.id, Delivery.HELD)
        until = quiet.ends_after(now).isoformat()
        await self.hub.publish(f"transcript:{conv.id}", {"type": "held", "until": until})
        return []

    async def release_held(self) -> int:
        """Send what waited for quiet hours to end; returns how many conversations."""
        held = await self.store.undelivered([Delivery.HELD])
        released = 0
        for conversation_id in dict.fromkeys(m.conversation_id for m in held):
            async with self.locks.hold(conversation_id):
                # Read again under the lock: another instance may have released them.
                messages = await self.store.undelivered(
                    [Delivery.HELD], conversation_id=conversation_id
                )
                if not messages:
                    continue
                conv = await self.store.conversation(conversation_id)
                quiet = QuietHours.from_settings(
                    await self.store.contact_settings(conv.contact_key)
                )
                if quiet is not None and quiet.contains(self.clock()):
                    continue
                # Taken in one statement, so that only one instance sends them.
                messages = await self._claim(messages, Delivery.HELD)
                if not messages:
                    continue
                await self.deliver(conv, messages)
                released += 1
        return released

    async def notify(self, conv: Conversation, kind: str, **data: Any) -> None:
        """Tell a live channel about a change of state (ended, language, idle warning);
        channels without a live page have nothing to show and ignore it."""
        notify = getattr(self.senders.get(conv.channel), "notify", None)
        if notify is None:
            return
        address = await self.address(conv)
        if address is not None:
            await notify(address, kind, data)

    async def warn_idle(self, idle: timedelta, warning: timedelta) -> int:
        """Before an idle close, warn live chats once and let them keep the chat open
        (WCAG 2.2.1: a warning and a way to extend before any time-out)."""
        warned = 0
        cutoff = self.clock() - idle + warning
        for conversation_id in await self.store.idle_conversations(cutoff):
            async with self.locks.hold(conversation_id):
                conv = await self.store.conversation(conversation_id)
                sender = self.senders.get(conv.channel)
                if (
                    conv.closed
                    or conv.answers.get("_idle_warned")
                    or not getattr(sender, "live", False)
                    or await self._active_since(conv, cutoff)
                ):
                    continue
                conv.answers["_idle_warned"] = True
                await self.store.save_turn(conv, [], [], touch=False)
                minutes = max(1, int(warning.total_seconds() // 60))
                text = self.content.text("idle.warning", conv.language, minutes=minutes)
                await self.notify(conv, "idle_warning", text=text)
                warned += 1
        return warned

    async def keepalive(self, channel: str, address: str) -> None:
        """The person asked to keep a quiet chat open: it counts as activity. A press or two
        a minute is all a person makes; a page sending it in a loop would otherwise make a
        lock, two reads and a write of each (review)."""
        key = self.privacy.contact_key(channel, address)
        if not await self.limiter.allow("keepalive:" + key, KEEPALIVE_LIMITS):
            return
        conv = await self.store.open_conversation(key)
        if conv is None:
            return
        async with self.locks.hold(conv.id):
            conv = await self.store.conversation(conv.id)
            conv.answers.pop("_idle_warned", None)
            await self.store.save_turn(conv, [], [])

    async def quick_exit(self, channel: str, address: str) -> None:
        """The person left a live page with its quick exit, which forgets the page's address
        (the web chat's token), so nobody can come back to this conversation from it. The
        transcript says so, live on the console: an adviser who holds it, or takes it from
        the queue, knows the person has gone before writing to nobody; a call-back they booked
        is marked in the console's list, so whoever phones knows someone may have come in.
        Nothing else changes: the page is told nothing, and a conversation at risk stays
        queued at its priority, since the quick exit is most often pressed when danger
        arrives, and an adviser may still need to act on what was said."""
        key = self.privacy.contact_key(channel, address)
        found = await self.store.open_conversation(key)
        if found is None:
            return
        async with self.locks.hold(found.id), self.store.unit():
            conv = await self.store.conversation(found.id)
            if conv.closed:
                return
            conv.answers[LEFT_BY_QUICK_EXIT] = self.clock().isoformat()
            event = Reply(
                self.content.text("event.quick_exit", conv.language), author=Author.SYSTEM
            )
            stored = await self.store.save_turn(conv, [], [event])
            await self.deliver(conv, stored)
        if self.handoffs is not None:
            # Open consoles show it on the call-back they booked, if they did.
            await self.handoffs.publish("quick_exit", conv.id)
        log.info("left by quick exit", extra={"conversation": conv.reference})

    async def close_idle(self, idle: timedelta) -> int:
        """Close bot conversations nobody has written in for `idle`. Only live channels (web
        chat) are told; a text message out of the blue could be read by someone else."""
        closed = 0
        cutoff = self.clock() - idle
        for conversation_id in await self.store.idle_conversations(cutoff):
            async with self.locks.hold(conversation_id):
                conv = await self.store.conversation(conversation_id)
                if conv.closed or conv.owner is not Owner.BOT:
                    continue
                if await self._active_since(conv, cutoff):
                    continue
                conv.closed = True
                sender = self.senders.get(conv.channel)
                replies = []
                if getattr(sender, "live", False):
                    replies = [Reply(self.content.text("idle.closed", conv.language))]
                stored = await self.store.save_turn(conv, [], replies)
                await self.deliver(conv, stored)
                await self.notify(conv, "ended")
                closed += 1
        return closed

    async def _active_since(self, conv: Conversation, cutoff: datetime) -> bool:
        """Whether a conversation listed as quiet has come alive since it was listed (read
        again inside its lock): touched or written in since `cutoff`, a message of theirs
        not yet answered, or a hand-off still owed after danger. Closed, the message would
        be answered inside a closed conversation, and the hand-off dropped for good."""
        written = conv.last_inbound_at
        if conv.updated_at >= cutoff or (written is not None and written >= cutoff):
            return True
        return HAND_OFF_DUE in conv.answers or bool(await self.store.pending_inbound(conv.id))

    async def _erase(self, conv: Conversation) -> None:
        """Erase the person's data, then say what was erased without storing that reply."""
        address = await self.address(conv)
        sender = self.senders.get(conv.channel)
        # A channel that can remove the conversation from the person's own chat app does so
        # (Telegram), so nothing is left on a device someone else may look at.
        tidy = getattr(sender, "tidy", None)
        ids = await self.store.chat_message_ids(conv.contact_key) if tidy else None
        # The data first: the queue (Redis) or the hub failing must never leave it undone,
        # and the queue holds nothing of theirs but the conversation's random id.
        counts = await self.store.erase_contact(conv.contact_key)
        try:
            if self.handoffs is not None:
                await self.handoffs.erase(conv)
            await self.hub.publish(f"transcript:{conv.id}", {"type": "erased"})
            await self.hub.publish(ERASED_TOPIC, {"type": "erased"})
        except Exception:  # noqa: BLE001 - any queue or hub failure: the erasure stands
            log.warning(
                "erased, but the queue or the consoles could not be told",
                extra={"conversation": conv.reference},
                exc_info=True,
            )
        if sender is None or address is None:
            return
        if tidy is not None and ids is not None:
            try:
                await tidy(address, *ids)
            except DeliveryError:
                log.warning("the chat could not be tidied", extra={"conversation": conv.reference})
        reply = Reply(self.content.text("erase.done", conv.language, **counts))
        try:
            await sender.send(
                OutboundMessage(0, conv.id, conv.channel, address, reply, conv.language)
            )
        except DeliveryError:
            log.warning("delivery failed", extra={"conversation": conv.reference})
        # A live page then clears what it still shows (the address is gone from the store,
        # so not through notify(), which looks it up).
        notify = getattr(sender, "notify", None)
        if notify is not None:
            await notify(address, "erased", {})

    def kept(self, conv: Conversation, stored: str) -> str:
        """What the transcript keeps of an inbound message a channel handles itself, outside
        any turn (an opt-out the platform has confirmed): stored sealed, it is opened and
        kept as a turn would keep it at the journey's question (see _turn), never left as
        ciphertext nobody can read."""
        if not stored.startswith(SEALED_TEXT):
            return stored
        text = self._open_text(conv, stored)
        if conv.owner is not Owner.BOT:
            later = self._answers_later(Turn(conv, self.content), text)
            return text if later is None else self.runner.kept_later(*later, text, conv.language)
        risky = self.screen(text, conv.language).level != "none"
        return self.runner.kept(conv.flow, conv.state, text, conv.language, risky=risky)

    def _open_text(self, conv: Conversation, stored: str) -> str:
        try:
            return self.privacy.open(stored[len(SEALED_TEXT) :], conv.contact_key)
        except SealError:
            log.error(
                "a sealed message could not be opened", extra={"conversation": conv.reference}
            )
            return ""

    async def address(self, conv: Conversation) -> str | None:
        """The reply address (phone number, chat id), opened from its seal; None if gone."""
        sealed = await self.store.sealed_address(conv.contact_key)
        if sealed is None:
            return None
        try:
            return self.privacy.open(sealed, conv.contact_key)
        except SealError:
            log.error("a reply address could not be opened", extra={"conversation": conv.reference})
            return None


def _raise_risk(conv: Conversation, level: str, reasons: Iterable[str]) -> None:
    """The conversation's risk raised to `level` (never lowered) and `reasons` added to the
    reasons the advisers see."""
    conv.risk_level = worst(conv.risk_level, level)
    joined = set(conv.answers.get("_risk_reasons", ())) | set(reasons)
    if joined:
        conv.answers["_risk_reasons"] = sorted(joined)


def _child_at_risk(conv: Conversation, risk: RiskResult) -> bool:
    """A child at risk said to the bot or while waiting, not yet answered as such. With an
    adviser, the adviser answers it: the console shows the flag."""
    return (
        risk.level == "concern"
        and not CHILD_REASONS.isdisjoint(risk.reasons)
        and conv.owner is not Owner.ADVISER
        and not conv.answers.get(CHILD_GUIDED)
    )


def _shown(conv: Conversation) -> tuple[Owner, str, tuple[str, ...]]:
    """What an adviser's queue shows of a conversation that a turn may change."""
    return conv.owner, conv.risk_level, tuple(conv.answers.get("_risk_reasons", ()))


def _undoes_help(effect: Effect) -> bool:
    """An effect of "stop" or "delete my data" that would take a conversation out of the
    queue, withdraw a call-back, opt the person out or erase what they said."""
    if effect.kind in ("cancel_handoff", "erase", "withdraw_callbacks"):
        return True
    return effect.kind == "settings" and bool(effect.data.get("opted_out"))


def _event(m: StoredMessage) -> dict[str, object]:
    return {
        "type": "message",
        "id": m.id,
        "direction": m.direction.value,
        "author": m.author.value,
        "author_name": m.author_name,
        "text": m.text,
        "options": list(m.options),
        "at": m.created_at.isoformat(),
    }


def _said_last(conv: Conversation, message: StoredMessage, turn: Turn, *, private: bool) -> None:
    """Keep the end of this message for the next one's screening (SAID_LAST), unless it
    answered a question kept sealed, ended a sentence, or was a whole question a guardrail
    answered."""
    text = message.text.rstrip()
    if private or not text or text.endswith((".", "?", "!")) or turn.railed == message.text:
        conv.answers.pop(SAID_LAST, None)
    else:
        conv.answers[SAID_LAST] = [_words(text, first=False), message.created_at.isoformat()]


def _programme_queue(conv: Conversation) -> bool:
    """Whether the conversation is (or was last) in a programme's queue."""
    queue = conv.answers.get("queue")
    return isinstance(queue, str) and programme_of(queue) is not None


def waiting_help(conv: Conversation) -> str:
    """What "help" says to someone waiting: for a programme's staff, or for an adviser."""
    return "programme.waiting_help" if _programme_queue(conv) else "handoff.waiting_help"


def _said_before(conv: Conversation, message: StoredMessage) -> str | None:
    """The end of the person's message before this one, if it came just before."""
    kept = conv.answers.get(SAID_LAST)
    if not (isinstance(kept, list) and len(kept) == 2):
        return None
    words, at = kept
    try:
        gap = message.created_at - datetime.fromisoformat(str(at))
    except (TypeError, ValueError):
        return None
    return str(words) if timedelta(0) <= gap <= PIECES_WITHIN else None


def _words(text: str, *, first: bool) -> str:
    """The first (or last) EDGE_WORDS words of a message."""
    words = text.split()
    return " ".join(words[:EDGE_WORDS] if first else words[-EDGE_WORDS:])


def _owe_hand_offs(turn: Turn) -> None:
    """Mark the hand-off the turn asks for as owed, in the state the turn saves: it is made
    after the save (_apply_effects), and an instance stopping in between must not lose it.
    A later "cancel", or a call-back chosen instead, in the same turn leaves none owed.
    A hand-off owed after danger is never replaced by an ordinary one (typing "adviser" while
    the queue still refuses must not make it less owed)."""
    answers = turn.conversation.answers
    for effect in turn.effects:
        if effect.kind == "handoff" and not _owed_after_danger(turn.conversation):
            answers[HAND_OFF_DUE] = list(_asked_hand_off(effect))
        elif effect.kind in ("cancel_handoff", "callback"):
            answers.pop(HAND_OFF_DUE, None)


def _owed_after_danger(conv: Conversation) -> bool:
    """A hand-off is owed, asked for by a risky message (its reason "risk:...")."""
    due = conv.answers.get(HAND_OFF_DUE)
    return isinstance(due, list) and len(due) == 2 and _after_danger(str(due[1]))


def _asked_hand_off(effect: Effect) -> tuple[str, str]:
    """The queue and the reason of a "handoff" effect."""
    return str(effect.data.get("queue", DEFAULT_QUEUE)), str(effect.data.get("reason"))


def _after_danger(reason: str) -> bool:
    """Whether a hand-off's reason is a risky message's ("risk:...")."""
    return reason.startswith("risk:")


__all__ = ["Engine", "HelplineError", "Priority", "worst"]
