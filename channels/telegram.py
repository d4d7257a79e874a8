"""Telegram through python-telegram-bot, used only as the transport: updates arrive on our own
webhook (secret header checked) or by polling, are stored through the engine, and replies go
out with the PTB Bot. No flow state lives in PTB (docs/channels.md)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import re
import time
import warnings
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
from aiohttp import web
from redis.exceptions import RedisError
from telegram import (
    Bot,
    ChatMemberUpdated,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ChatMemberStatus, ChatType, MessageLimit
from telegram.error import Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, ApplicationBuilder
from telegram.warnings import PTBDeprecationWarning

from channels import texting
from helpline.app import CONTENT, ENGINE, PRIVACY, REDIS, SENDERS, SETTINGS, STORE
from helpline.config import Settings
from helpline.domain import (
    UNSTORED,
    Conversation,
    InboundMessage,
    OutboundMessage,
    Reply,
    json_object,
    storable,
)
from helpline.errors import ConfigError, DeliveryError, DuplicateMessage, NotFound, NotSent
from helpline.ratelimit import RateLimited
from helpline.tasks import cancel_and_wait

log = logging.getLogger(__name__)

PATH = "/channels/telegram"
MAX_REQUEST = 64 * 1024  # an update with a 4,096-character text is well under this
# my_chat_member: the person blocking the bot (an opt-out). Telegram keeps the list given to
# setWebhook: run set-webhook again after a change.
ALLOWED_UPDATES = ("message", "edited_message", "callback_query", "my_chat_member")
POLL_SECONDS = 25
# Telegram out of reach at start: the first retry after this, doubling up to the maximum.
START_RETRY_SECONDS = 5.0
START_RETRY_MAX_SECONDS = 300.0
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
# How long Telegram lets a bot delete a message in a private chat.
DELETABLE_SECONDS = 48 * 3600


def _base_url(settings: Settings) -> str:
    base = (settings.telegram_api_base or "https://api.telegram.org").rstrip("/")
    return f"{base}/bot"


def _bot(settings: Settings) -> Bot:
    return Bot(str(settings.telegram_token), base_url=_base_url(settings))


# Unstored ids kept for one chat at the most, and how often the memory's are swept.
MAX_UNSTORED = 500
SWEEP_SECONDS = 60.0


class UnstoredIds:
    """Ids of chat messages the store never holds (a photo or sticker sent without words,
    a message refused for coming too fast, the bot's own notices), so "delete my data"
    removes them from the chat too. Kept for as long as Telegram lets a bot delete them,
    under the contact's keyed hash (never the chat id): in Redis when configured (shared by
    instances), otherwise in this process."""

    def __init__(self, app: web.Application, prefix: str) -> None:
        self.app = app
        self.prefix = prefix
        self.memory: dict[str, dict[int, float]] = {}
        self.swept = 0.0

    def _name(self, key: str) -> str:
        return f"{self.prefix}telegram-unstored:{key}"

    async def add(self, key: str, *message_ids: int) -> None:
        if not message_ids:
            return
        now = time.time()
        client = self.app.get(REDIS)
        if client is None:
            if now - self.swept >= SWEEP_SECONDS:  # not every chat at every add
                self._forget_older_than(now - DELETABLE_SECONDS)
                self.swept = now
            ids = self.memory.setdefault(key, {})
            ids.update(dict.fromkeys(message_ids, now))
            if len(ids) > MAX_UNSTORED:  # a flood of pictures: the newest are kept
                newest = sorted(ids.items(), key=lambda item: item[1])[-MAX_UNSTORED:]
                self.memory[key] = dict(newest)
            return
        pipe = client.pipeline(transaction=False)
        pipe.zadd(self._name(key), {str(i): now for i in message_ids})
        pipe.zremrangebyscore(self._name(key), "-inf", now - DELETABLE_SECONDS)
        pipe.zremrangebyrank(self._name(key), 0, -MAX_UNSTORED - 1)
        pipe.expire(self._name(key), DELETABLE_SECONDS)
        try:
            await pipe.execute()
        except (RedisError, OSError, TimeoutError):
            # Never in the way of a reply; no key in the log: it identifies the contact.
            log.warning("a Telegram message id could not be kept for the tidy-up")

    async def take(self, key: str) -> set[int]:
        """Every id still deletable, forgotten as it is handed over."""
        since = time.time() - DELETABLE_SECONDS
        client = self.app.get(REDIS)
        if client is None:
            return {i for i, at in self.memory.pop(key, {}).items() if at >= since}
        pipe = client.pipeline(transaction=True)
        pipe.zrangebyscore(self._name(key), since, "+inf")
        pipe.delete(self._name(key))
        try:
            found, _ = await pipe.execute()
        except (RedisError, OSError, TimeoutError):
            log.warning("the Telegram message ids kept for the tidy-up could not be read")
            return set()
        return {int(i) for i in found}

    def _forget_older_than(self, cutoff: float) -> None:
        for key in [k for k, ids in self.memory.items() if max(ids.values()) < cutoff]:
            del self.memory[key]


class TelegramChannel:
    """The "telegram" channel: a private chat with the bot is one contact."""

    name = "telegram"

    def __init__(self, app: web.Application, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        builder: ApplicationBuilder[Any, Any, Any, Any, Any, Any] = ApplicationBuilder()
        self.application: Application[Any, Any, Any, Any, Any, Any] = (
            builder.token(str(settings.telegram_token))
            .base_url(_base_url(settings))
            .updater(None)
            .build()
        )
        self.unstored = UnstoredIds(app, settings.redis_prefix)

    @property
    def bot(self) -> Bot:
        return self.application.bot

    def routes(self) -> list[web.AbstractRouteDef]:
        if not self.settings.telegram_secret:
            return []  # no secret, no webhook: polling only (`poll`)
        return [web.post(PATH, self.webhook)]

    async def lifetime(self, app: web.Application) -> AsyncIterator[None]:
        """A wrong token stops the start; Telegram out of reach does not stop the rest of
        the service (web chat above all): the bot starts in the background once it answers."""
        starting: asyncio.Task[None] | None = None
        try:
            await self._start()
        except NetworkError as exc:  # TimedOut too; InvalidToken is not one
            log.warning(
                "Telegram cannot be reached (%s): starting without it, trying again in the "
                "background",
                type(exc).__name__,
            )
            starting = asyncio.create_task(self._keep_trying(), name="telegram-start")
        try:
            yield
        finally:
            if starting is not None:
                await cancel_and_wait(starting)
            if ENGINE in app:  # replies still being handled need the bot
                await app[ENGINE].drain()
            if self.application.running:
                await self.application.stop()
            await self.application.shutdown()
            await self._close_connections()

    async def _close_connections(self) -> None:
        # PTB's shutdown() closes its HTTP clients only when initialize() succeeded; after a
        # failed start they would be left open.
        requests = getattr(self.bot, "_request", ())
        await asyncio.gather(*(request.shutdown() for request in requests))

    async def _start(self) -> None:
        try:
            await self.application.initialize()  # calls getMe
        except InvalidToken:
            await self._close_connections()
            raise ConfigError(
                "HELPLINE_TELEGRAM_TOKEN: Telegram refused the bot token (Unauthorized or Not "
                "Found): check it with @BotFather"
            ) from None
        await self.application.start()

    async def _keep_trying(self) -> None:
        delay = START_RETRY_SECONDS
        while True:
            await asyncio.sleep(delay)
            try:
                await self._start()
            except NetworkError as exc:
                delay = min(delay * 2, START_RETRY_MAX_SECONDS)
                log.warning(
                    "Telegram still cannot be reached (%s); trying again in %.0f s",
                    type(exc).__name__,
                    delay,
                )
            except ConfigError as exc:
                log.error("%s", exc)  # noqa: TRY400 - one line, no traceback, no data
                return
            else:
                log.info("Telegram reached: the Telegram channel is on")
                await self._resend_waiting()
                return

    async def _resend_waiting(self) -> None:
        """Replies kept while Telegram could not be reached (the 999 guidance among them)
        go now, not at their next try."""
        if ENGINE not in self.app:
            return
        try:
            await self.app[ENGINE].resend_waiting()
        except Exception:  # noqa: BLE001 - their own tries, and housekeeping, still come
            log.warning("replies waiting for Telegram could not be sent yet", exc_info=True)

    # -- outbound --------------------------------------------------------------------------

    async def send(self, message: OutboundMessage) -> str | None:
        if not self.application.running:
            # Sent once it is (_keep_trying): Engine.deliver tries again.
            raise NotSent(
                "Telegram has not been reached since the start",
                kind="Telegram not started",
                channel_down=True,
            )
        key = self.app[PRIVACY].contact_key(self.name, message.address)
        if await self.app[STORE].sealed_address(key) is None and message.message_id != 0:
            # Never message first. (message_id 0 is the unstored "deleted" confirmation,
            # sent after the contact row is gone.)
            raise DeliveryError("refusing to message a chat that has not written in")
        try:
            chat_id = int(message.address)
        except ValueError as exc:
            raise DeliveryError("not a Telegram chat id") from exc
        reply = message.reply
        parts = texting.split_text(reply.text, MessageLimit.MAX_TEXT_LENGTH)
        markup: ReplyKeyboardMarkup | ReplyKeyboardRemove
        if reply.options:
            markup = ReplyKeyboardMarkup(
                [[KeyboardButton(label)] for label in reply.options],
                one_time_keyboard=True,
                resize_keyboard=True,
            )
        else:
            markup = ReplyKeyboardRemove()  # no stale buttons from an earlier question
        sent_ids: list[str] = []
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            try:
                sent = await self.bot.send_message(
                    chat_id, part, reply_markup=markup if last else None
                )
                sent_ids.append(str(sent.message_id))
            except Forbidden as exc:
                # The person blocked the bot or deleted the chat: an opt-out. Note it, never
                # retry, and (as "stop" does) withdraw their call-backs: nobody phones them.
                await self._settings(key, opted_out=True)
                await texting.withdraw_callbacks(self.app, message.conversation_id)
                raise DeliveryError("Telegram: the person has blocked the bot") from exc
            except TelegramError as exc:
                kind = f"Telegram {type(exc).__name__}"
                if not sent_ids and _not_sent(exc):
                    raise NotSent(
                        f"Telegram did not take the message ({kind})",
                        kind=kind,
                        retry_after=_retry_after(exc),
                    ) from exc
                # Parts already in the chat are not stored with a failed reply: kept for the
                # tidy-up all the same. (Sent again, they would be said twice.)
                if sent_ids:
                    await self.unstored.add(key, *map(int, sent_ids))
                raise DeliveryError(f"Telegram refused ({type(exc).__name__})", kind=kind) from exc
        if message.message_id == UNSTORED and sent_ids:
            # A reply the store does not hold (emergency guidance sent before its turn):
            # kept for a tidy-up all the same.
            await self.unstored.add(key, *map(int, sent_ids))
        # Every part's id (a long reply is several messages), so a tidy-up finds them all.
        return ",".join(sent_ids) or None

    async def own_words(self, conv: Conversation, text: str) -> list[Reply] | None:
        """HELP, "SAFE?" and QUIET hours, answered by the channel (the engine asks)."""
        return await texting.own_words(self.app, conv, text, safe_key="channels.safe_telegram")

    async def tidy(self, address: str, sent: list[str], received: list[str]) -> None:
        """After "delete my data": remove the conversation from the Telegram chat too, the
        bot's messages and the person's (Telegram lets a bot delete both in a private chat,
        for 48 hours; older ones stay, and the person can clear the chat themselves)."""
        ids = {int(part) for item in sent for part in item.split(",") if part.isdigit()}
        ids |= {int(local) for item in received if (local := item.rpartition(":")[2]).isdigit()}
        # And what the store never held: photos sent without words, the bot's notices.
        ids |= await self.unstored.take(self.app[PRIVACY].contact_key(self.name, address))
        chat_id = int(address)
        ordered = sorted(ids)
        for start in range(0, len(ordered), 100):  # the Bot API takes 100 at a time
            try:
                await self.bot.delete_messages(chat_id, ordered[start : start + 100])
            except TelegramError as exc:
                raise DeliveryError(f"Telegram refused ({type(exc).__name__})") from exc

    async def _settings(self, key: str, **changes: object) -> None:
        with contextlib.suppress(NotFound):  # erased meanwhile: nothing left to note it on
            await self.app[STORE].update_contact_settings(key, **changes)

    # -- inbound ---------------------------------------------------------------------------

    async def webhook(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, str(self.settings.telegram_secret).encode()):
            raise web.HTTPForbidden(text="bad secret")
        # Refused (400), not acknowledged: Telegram sends nothing malformed, so this is no
        # person's message to keep; a sender that retries it is refused each time.
        data = json_object(await texting.read_body(request, MAX_REQUEST))
        if data is None or not _well_formed(data):
            raise web.HTTPBadRequest(text="expected an update")
        try:
            update = Update.de_json(data, self.bot)
        except (
            TypeError,
            ValueError,
            KeyError,
            AttributeError,
            OverflowError,
            OSError,
            RecursionError,
        ):
            # In a part not checked above: OSError, a date no clock can read (EOVERFLOW);
            # RecursionError, replies to replies nested hundreds deep (PTB reads each level
            # in a few calls, so well under the JSON parser's own limit).
            raise web.HTTPBadRequest(text="not an update") from None
        await self.handle_update(update)
        return web.Response(status=200)

    async def handle_update(self, update: Update) -> None:
        """Store what a person wrote (then the engine answers in the background); anything
        else gets at most a calm word. Returns once the text is stored."""
        if update.callback_query is not None:
            await self._button(update)
            return
        if update.my_chat_member is not None:
            await self._membership(update.my_chat_member)
            return
        message = update.message
        if message is None:
            edited = update.edited_message
            if edited is not None and edited.chat.type == ChatType.PRIVATE:
                await self._edited(edited)
            return  # unknown update types: nothing to do
        if message.chat.type != ChatType.PRIVATE:
            return  # groups and channels are not conversations with one person
        # A caption is words the person wrote with a photo or file: read like text (as
        # WhatsApp's Body is). The photo or file itself is never stored.
        text = _command(message.text, self.app[ENGINE].screen) or message.caption
        album = message.media_group_id
        if not text:
            # Not stored, but still in the chat: removed with the rest on "delete my data".
            await self._unstored(message)
            if (
                await self._first_delivery(message, str(message.message_id))
                and (album is None or await self._first_of_album(message, album))
                and await self._notice_due(message, "channels.text_only")
            ):
                self._notice(message, "channels.text_only")
            return
        if album is not None:
            # Words sent with an album come on one of its photos: they answer for the whole
            # album, so the others bring no "we can only read text".
            await self._first_of_album(message, album)
        # Words with a photo or file: the words are read, and the person told the rest is not.
        await self._submit(message, text, str(message.message_id), media=message.text is None)

    async def _membership(self, change: ChatMemberUpdated) -> None:
        """The person blocked the bot (it is "kicked" from their private chat): an opt-out,
        noted as a refused send notes it, and their call-backs withdrawn at once (nobody
        phones them), rather than at the next reply that fails. Nothing else is stored."""
        if change.chat.type != ChatType.PRIVATE:
            return
        if change.new_chat_member.status != ChatMemberStatus.BANNED:
            return  # unblocked: their next message opts them back in (Engine._writing_again)
        key = self.app[PRIVACY].contact_key(self.name, str(change.chat.id))
        await self._settings(key, opted_out=True)
        await texting.withdraw_contact_callbacks(self.app, self.name, key)
        log.info("a Telegram contact blocked the bot: opted out")

    async def _media_notice(self, message: Message) -> None:
        """After the answer to words sent with a photo or file (never before the welcome;
        not at all after danger: Engine.submit's `then`), that the rest was not seen, once
        a window."""
        if await self._notice_due(message, "channels.media_unread"):
            await self._send_notice(message.chat.id, message, "channels.media_unread")

    async def _edited(self, edited: Message) -> None:
        """An edit is not read again, unless it names a danger: then it is a new message,
        screened and answered like any other."""
        text = edited.text or edited.caption or ""
        if not text.strip():
            # No words to read or to have missed: a live location's new position (one every
            # few seconds, for hours) or a photo swapped for another. Nothing to say.
            return
        stamp = int(edited.edit_date.timestamp()) if edited.edit_date else 0
        # Its own id, so it is no redelivery of the original; the message id stays last for
        # the tidy-up after "delete my data".
        local_id = f"edit{stamp}:{edited.message_id}"
        if self.app[ENGINE].screen(text, _language(edited)).level == "none":
            if await self._first_delivery(edited, local_id) and await self._notice_due(
                edited, "channels.edit_unseen"
            ):
                self._notice(edited, "channels.edit_unseen")
            return
        await self._submit(edited, text, local_id)

    async def _button(self, update: Update) -> None:
        query = update.callback_query
        assert query is not None
        self.app[ENGINE].spawn(self._answer_query(query.id))
        message = query.message
        if not query.data or message is None or message.chat.type != ChatType.PRIVATE:
            return
        if isinstance(message, Message):
            await self._submit(message, query.data, _press_id(query.id))

    async def _answer_query(self, query_id: str) -> None:
        try:
            await self.bot.answer_callback_query(query_id)
        except TelegramError:
            log.warning("a button press could not be acknowledged")

    async def _submit(
        self, message: Message, text: str, local_id: str, *, media: bool = False
    ) -> None:
        address = str(message.chat.id)
        key = self.app[PRIVACY].contact_key(self.name, address)
        text = storable(text).strip()
        msg = InboundMessage(self.name, address, text, external_id=f"{key}:{local_id}")
        notice = (lambda: self._media_notice(message)) if media else None
        try:
            await self.app[ENGINE].submit(msg, language=_language(message), then=notice)
        except DuplicateMessage:
            pass  # a redelivery: handled the first time
        except RateLimited:
            # Acknowledged all the same: an error would bring the update back and, when
            # polling, hold up everyone's updates behind it. Not stored: kept for the tidy-up.
            await self._unstored(message)
            if await texting.slow_down_due(self.app, self.name, address):
                self._notice(message, "channels.slow_down")

    async def _unstored(self, message: Message) -> None:
        key = self.app[PRIVACY].contact_key(self.name, str(message.chat.id))
        await self.unstored.add(key, message.message_id)

    async def _first_delivery(self, message: Message, local_id: str) -> bool:
        return await texting.first_delivery(self.app, self.name, str(message.chat.id), local_id)

    async def _first_of_album(self, message: Message, album: str) -> bool:
        return await texting.first_of_album(self.app, self.name, str(message.chat.id), album)

    async def _notice_due(self, message: Message, content_key: str) -> bool:
        return await texting.notice_due(self.app, self.name, str(message.chat.id), content_key)

    def _notice(self, message: Message, content_key: str) -> None:
        self.app[ENGINE].spawn(self._send_notice(message.chat.id, message, content_key))

    async def _send_notice(self, chat_id: int, message: Message, content_key: str) -> None:
        """Not stored (there is nothing of the person's to keep); the person wrote, so this
        is a reply, not a first message. In their conversation's language; before they have
        one, in English and Welsh (their Telegram app's language first)."""
        key = self.app[PRIVACY].contact_key(self.name, str(chat_id))
        conv = await self.app[STORE].open_conversation(key)
        if conv is None:
            text = texting.in_both_languages(self.app, content_key, _language(message))
        else:
            text = self.app[CONTENT].text(content_key, conv.language)
        try:
            sent = await self.bot.send_message(chat_id, text)
        except TelegramError:
            log.warning("a notice could not be sent")
            return
        await self.unstored.add(key, sent.message_id)


def _not_sent(exc: TelegramError) -> bool:
    """Telegram certainly did not send it: flood control (RetryAfter), or no connection
    made (refused, or none free in the pool). A timeout may have sent it."""
    cause = exc.__cause__
    return isinstance(exc, RetryAfter) or isinstance(cause, httpx.ConnectError | httpx.PoolTimeout)


def _retry_after(exc: TelegramError) -> float | None:
    if not isinstance(exc, RetryAfter):
        return None
    with warnings.catch_warnings():  # PTB 22 warns that it will become a timedelta
        warnings.simplefilter("ignore")
        after = exc.retry_after
    return after.total_seconds() if isinstance(after, timedelta) else float(after)


_DEEP_LINK = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _command(text: str | None, screen: Callable[[str, str], Any]) -> str | None:
    """A bot command as the journey reads it: "/stop@OurBot" is "/stop" (Telegram adds the
    bot's name when a command is picked from a list), and "/start" drops a deep link's
    parameter ("/start abc": one word of letters, digits, _ and -), which carries nothing the
    helpline uses, unless the risk screen finds anything in it ("/start suicidal"). Words
    typed after "/start" are kept: they are screened like any message."""
    if not text or not text.startswith("/"):
        return text
    first, _, rest = text.partition(" ")
    name = first.partition("@")[0]
    parameter = rest.strip()
    if name.lower() == "/start" and (
        not parameter
        or (_DEEP_LINK.fullmatch(parameter) and screen(parameter, "en").level == "none")
    ):
        return name
    return f"{name} {rest}".strip() if rest else name


def _language(message: Message) -> str:
    """The language the person's Telegram app is set to, as far as we have words for it."""
    code = (message.from_user.language_code if message.from_user else None) or ""
    return "cy" if code.startswith("cy") else "en"


# A button press's id as Telegram gives it (about 19 digits), kept as it is in the press's
# external id when it is this short and plain: with the contact key it fits the store's 128.
_PRESS_ID = re.compile(r"[A-Za-z0-9_-]{1,48}")


def _press_id(query_id: str) -> str:
    """A button press's part of its message's external id (the duplicate check). An id
    that could not be stored as it is (too long for the column, which PostgreSQL enforces,
    or with a NUL in it) is kept as its hash: still one per id, so a redelivery is still
    dropped, and the press is taken, not refused."""
    if _PRESS_ID.fullmatch(query_id):
        return f"cb:{query_id}"
    digest = hashlib.sha256(query_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"cbh:{digest[:48]}"


def _id(value: Any) -> bool:
    """A Bot API integer id: an int (not a bool) in 64 bits."""
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63


def _date(value: Any) -> bool:
    """A Bot API date: a Unix time in 32 bits (PTB makes every one a datetime)."""
    return _id(value) and 0 <= value < 2**32


def _is_message(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    chat, sender = value.get("chat"), value.get("from")
    return (
        _id(value.get("message_id"))
        and _date(value.get("date", 0))
        and isinstance(chat, dict)
        and _id(chat.get("id"))
        and isinstance(chat.get("type"), str)
        and _date(value.get("edit_date", 0))
        and isinstance(value.get("text") or "", str)
        and isinstance(value.get("caption") or "", str)
        and isinstance(value.get("media_group_id") or "", str)
        and (sender is None or isinstance(sender, dict))
        and isinstance((sender or {}).get("language_code") or "", str)
    )


def _is_member_change(value: Any) -> bool:
    """A ChatMemberUpdated as this channel reads it: the chat, and the bot's new status."""
    if not isinstance(value, dict):
        return False
    chat, new, old, sender = (
        value.get(k) for k in ("chat", "new_chat_member", "old_chat_member", "from")
    )
    return (
        isinstance(chat, dict)
        and _id(chat.get("id"))
        and isinstance(chat.get("type"), str)
        and _date(value.get("date"))
        and isinstance(sender, dict)
        and _id(sender.get("id"))
        and all(
            isinstance(member, dict)
            and isinstance(member.get("status"), str)
            and isinstance(member.get("user"), dict)
            and _id(member["user"].get("id"))
            and _date(member.get("until_date", 0))
            for member in (new, old)
        )
    )


def _well_formed(data: dict[str, Any]) -> bool:
    """The parts of an update this channel reads have the types the Bot API documents.
    (PTB's de_json takes any types, and a wrong one would fail later, as a 500.)"""
    if not _id(data.get("update_id")):
        return False
    if any(name in data and not _is_message(data[name]) for name in ("message", "edited_message")):
        return False
    if "my_chat_member" in data and not _is_member_change(data["my_chat_member"]):
        return False
    query = data.get("callback_query")
    if query is None:
        return True
    return (
        isinstance(query, dict)
        and isinstance(query.get("id"), str)
        and isinstance(query.get("data") or "", str)
        and ("message" not in query or _is_message(query["message"]))
    )


TELEGRAM = web.AppKey("telegram", TelegramChannel)


def setup(app: web.Application) -> None:
    """Register "telegram" when a bot token is set; otherwise nothing."""
    settings = app[SETTINGS]
    if not settings.telegram_token:
        return
    texting.quiet_library_loggers()
    # PTB 22 warns, as it builds every RetryAfter (flood control), that its retry_after will
    # become a timedelta: _retry_after reads either.
    warnings.filterwarnings(
        "ignore", message=".*`retry_after`.*", category=PTBDeprecationWarning, module="telegram"
    )
    texting.words_of(app)
    channel = TelegramChannel(app, settings)
    app[TELEGRAM] = channel
    app.cleanup_ctx.append(channel.lifetime)
    app.router.add_routes(channel.routes())
    app[SENDERS][channel.name] = channel
    if not settings.telegram_secret:
        log.warning("HELPLINE_TELEGRAM_SECRET is not set: no Telegram webhook, polling only")


# -- commands for run.py --------------------------------------------------------------------


async def set_webhook(settings: Settings) -> str:
    """Point Telegram at {public_url}/channels/telegram with our secret; returns the URL."""
    if not settings.telegram_token or not settings.telegram_secret:
        raise DeliveryError("HELPLINE_TELEGRAM_TOKEN and HELPLINE_TELEGRAM_SECRET are needed")
    if settings.public_url is None:
        raise DeliveryError("HELPLINE_PUBLIC_URL is needed (Telegram calls it over HTTPS)")
    texting.quiet_library_loggers()
    url = settings.base_url + PATH
    try:
        async with _bot(settings) as bot:
            await bot.set_webhook(
                url,
                secret_token=settings.telegram_secret,
                allowed_updates=list(ALLOWED_UPDATES),
            )
    except TelegramError as exc:
        raise DeliveryError(f"Telegram refused the webhook ({type(exc).__name__})") from exc
    return url


async def poll(app: web.Application, *, stop: asyncio.Event | None = None) -> None:
    """Fetch updates with getUpdates instead of a webhook (development, or no public URL).

    Run it beside the started app. The webhook is removed first (Telegram allows one or the
    other). An update is confirmed (offset moved on) only once it is stored. Telegram out of
    reach, at the start too, is tried again with a growing pause: polling never gives up."""
    channel = app[TELEGRAM]
    bot = channel.bot
    stop = stop or asyncio.Event()
    webhook_removed = False
    offset: int | None = None
    delay = 1.0
    while not stop.is_set():
        try:
            if not webhook_removed:
                await bot.delete_webhook()
                webhook_removed = True
            updates = await bot.get_updates(
                offset=offset, timeout=POLL_SECONDS, allowed_updates=list(ALLOWED_UPDATES)
            )
            for update in updates:
                await channel.handle_update(update)
                offset = update.update_id + 1
            delay = 1.0
        except Exception as exc:  # noqa: BLE001 - keep polling; the type only (no data)
            log.warning("polling Telegram failed (%s); trying again", type(exc).__name__)
            with contextlib.suppress(TimeoutError):  # back off, but stop promptly
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 60.0)
