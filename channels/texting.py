"""What the text channels (SMS, WhatsApp, Telegram) share: splitting long replies, options as
numbered lines, and the words they answer themselves (HELP, "SAFE?", QUIET hours), which are
stored like any message and answered in the conversation's turn, in its order."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from helpline.app import CONTENT, ENGINE, SETTINGS, STORE
from helpline.content import DEFAULT_ROOT
from helpline.domain import LANGUAGES, Conversation, Owner, Reply
from helpline.engine import waiting_help
from helpline.errors import ContentError, NotFound
from helpline.ratelimit import Limit
from helpline.yamlfile import read_yaml

log = logging.getLogger(__name__)

KEYWORDS_FILE = "channel_keywords.yaml"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# A time: "22", "22:00", "10.30", "2200", "0700", "730", each optionally with am/pm (or the
# Welsh yb = y bore, yh = yr hwyr, yp = y prynhawn), with or without a space before it.
_TIME = r"(\d{3,4}|\d{1,2}(?:[:.]\d{2})?)\s*(a\.?m\.?|p\.?m\.?|yb|yh|yp)?"
_WINDOW = re.compile(
    rf"^(?:from\s+|between\s+|o\s+|rhwng\s+)?{_TIME}"
    rf"\s*(?:-|–|—|to|till|til|until|and|tan|hyd|i|a)\s*{_TIME}$"
)
# Quiet hours longer than this would hold an adviser's reply for most of the day.
MAX_QUIET_HOURS = 16
# Someone over the rate limit is told at most once a minute: a flood must not get one back.
SLOW_DOWN = (Limit(1, 60),)
# A message that is never stored (a picture without words, an edit) is recognised when its
# webhook is delivered again within the same window (a fixed day: one delivered just before
# midnight UTC and again just after gets its notice twice).
REDELIVERY_WINDOW = (Limit(1, 86_400),)
# A notice about what was not read (a picture, a sticker, an edit) goes to a contact at most
# once in this window for each kind: a flood of stickers, an album of photos or a live
# location shared for hours (a new position every few seconds) brings one, not hundreds.
NOTICE_WINDOW = (Limit(1, 600),)
# These libraries log request parameters (phone numbers, chat ids, text) or URLs with the bot
# token at INFO or DEBUG. Whoever loads a channel that uses them keeps them quiet.
_CHATTY_LOGGERS = ("twilio", "telegram", "httpx", "httpcore", "aiohttp_retry")


def quiet_library_loggers() -> None:
    for name in _CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole request body, or 413 as soon as it is known to be longer than `limit`."""
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
        chunks.append(chunk)
    return b"".join(chunks)


# -- shaping replies ------------------------------------------------------------------------


def numbered(reply: Reply, intro: str) -> str:
    """Options as numbered lines under the text (SMS and WhatsApp have no buttons), said
    once: the intro ("Reply with a number:") is left out when the text already says it
    ("Which is closest? Reply with a number, or tell me in your own words.")."""
    if not reply.options:
        return reply.text
    lines = [f"{i}. {label}" for i, label in enumerate(reply.options, start=1)]
    if _fold(intro).rstrip(":") in _fold(reply.text):
        return "\n".join([reply.text, "", *lines])
    return "\n".join([reply.text, "", intro, *lines])


def in_both_languages(app: web.Application, key: str, first: str = "en") -> str:
    """A message in English and Welsh together (`first` first), for someone whose language
    is not known: nothing of theirs stored yet, or the database out of reach."""
    order = sorted(LANGUAGES, key=lambda lang: lang != first)
    return "\n\n".join(app[CONTENT].text(key, lang) for lang in order)


def split_text(text: str, limit: int) -> list[str]:
    """Cut text into parts of at most `limit` characters, at paragraph, line, sentence or
    word boundaries in that order of preference, keeping the order."""
    text = text.strip()
    if len(text) <= limit:
        return [text] if text else []
    for separator in ("\n\n", "\n", None, " "):
        pieces = _SENTENCE_END.split(text) if separator is None else text.split(separator)
        if len(pieces) > 1:
            joiner = " " if separator is None else separator
            return _pack(pieces, joiner, limit)
    return [text[i : i + limit] for i in range(0, len(text), limit)]


def _pack(pieces: list[str], joiner: str, limit: int) -> list[str]:
    parts: list[str] = []
    current = ""
    for piece in pieces:
        if not piece.strip():
            continue  # a blank run (spaces between paragraphs) says nothing, however long
        candidate = f"{current}{joiner}{piece}" if current else piece
        if len(candidate) <= limit:
            current = candidate
            continue
        if current:
            parts.append(current.strip())
        if len(piece) > limit:
            *whole, current = split_text(piece, limit) or [""]
            parts.extend(whole)
        else:
            current = piece
    if current.strip():
        parts.append(current.strip())
    return [p for p in parts if p]


# -- words the channel answers itself -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelCommand:
    kind: str  # "help", "safe" or "quiet"
    language: str | None  # set when the word belongs to one language only
    argument: str = ""


def _fold(text: str) -> str:
    return " ".join(text.casefold().replace("’", "'").split()).rstrip(".!")


class ChannelWords:
    """The lists in content/channel_keywords.yaml, matched against a whole message."""

    def __init__(self, lists: Mapping[str, Mapping[str, tuple[str, ...]]]) -> None:
        self.lists = lists

    @classmethod
    def load(cls, root: Path | None = None) -> ChannelWords:
        path = (root or DEFAULT_ROOT) / KEYWORDS_FILE
        data: Any = read_yaml(path, str(path))
        lists: dict[str, dict[str, tuple[str, ...]]] = {}
        for name in ("help", "safe", "quiet", "quiet_off"):
            langs = (data or {}).get(name)
            if not isinstance(langs, dict) or any(lang not in langs for lang in LANGUAGES):
                raise ContentError(f"{path.name}: {name} needs a list for each of en, cy")
            lists[name] = {lang: tuple(_fold(str(w)) for w in langs[lang]) for lang in LANGUAGES}
        return cls(lists)

    def _language(self, name: str, word: str) -> str | None:
        found = [lang for lang in LANGUAGES if word in self.lists[name][lang]]
        return found[0] if len(found) == 1 else None

    def match(self, text: str) -> ChannelCommand | None:
        said = _fold(text)
        for kind in ("help", "safe"):
            if any(said == w for lang in LANGUAGES for w in self.lists[kind][lang]):
                return ChannelCommand(kind, self._language(kind, said))
        # The longest keyword first, so "quiet hours 22-7" is not read as "quiet" + "hours...".
        quiet = sorted(
            ((w, lang) for lang in LANGUAGES for w in self.lists["quiet"][lang]),
            key=lambda item: -len(item[0]),
        )
        for word, _lang in quiet:
            if said == word or said.startswith(word + " "):
                argument = said[len(word) :]
                if argument.strip() and not (self.is_off(argument) or _looks_like_window(argument)):
                    continue  # "quiet here tonight...": an ordinary message, for the journey
                return ChannelCommand("quiet", self._language("quiet", word), argument)
        return None

    def is_off(self, argument: str) -> bool:
        said = _fold(argument)
        return any(said == w for lang in LANGUAGES for w in self.lists["quiet_off"][lang])


def _looks_like_window(argument: str) -> bool:
    """Two times, or anything starting with a digit: "QUIET 10pm" or "QUIET 25:00-99" is
    answered (those times cannot be read), never passed to the journey as an answer."""
    said = argument.strip()
    return said[:1].isdigit() or _WINDOW.match(said) is not None


@dataclass(frozen=True, slots=True)
class QuietWindow:
    """What was made of the times after QUIET. `status` is "set" (clear times), "read_as"
    (hours without am/pm read as evening to morning: the reply says so), "ambiguous" (cannot
    tell morning from evening: ask), "too_long" (over MAX_QUIET_HOURS) or "unclear"."""

    status: str
    start: str = ""
    end: str = ""

    def times(self) -> dict[str, str]:
        return {"start": self.start, "end": self.end}


@dataclass(frozen=True, slots=True)
class _Time:
    minutes: int  # after midnight
    clock: str  # "ampm", "24" or "bare" (1 to 12 with neither: morning or evening?)

    def evening(self) -> _Time:
        """The same time in the evening, 12 being midnight ("10-7" -> 22:00, "12-6" -> 00:00)."""
        return _Time((self.minutes + 12 * 60) % (24 * 60), "24")

    def __str__(self) -> str:
        return f"{self.minutes // 60:02d}:{self.minutes % 60:02d}"


def _read_time(digits: str, suffix: str | None) -> _Time | None:
    if ":" in digits or "." in digits:
        hours, minutes = re.split(r"[:.]", digits)
    elif len(digits) >= 3:  # "2200", "0700", "730"
        hours, minutes = digits[:-2], digits[-2:]
    else:
        hours, minutes = digits, "00"
    hour, minute = int(hours), int(minutes)
    if minute > 59:
        return None
    if suffix:
        if not 1 <= hour <= 12 or hours.startswith("0"):
            return None
        evening = suffix.startswith("p") or suffix in ("yh", "yp")
        return _Time((hour % 12 + (12 if evening else 0)) * 60 + minute, "ampm")
    if hour > 23:
        return None
    # "2200" and "07" are the 24-hour clock; "10" or "7.30" could be morning or evening.
    bare = 1 <= hour <= 12 and not hours.startswith("0") and len(digits) != 4
    return _Time(hour * 60 + minute, "bare" if bare else "24")


def _length(start: _Time, end: _Time) -> int:
    return (end.minutes - start.minutes) % (24 * 60)


def read_window(argument: str) -> QuietWindow:
    """'22:00-08:00', '22-8', '10pm to 7am', '2200-0700', '21.30 tan 7yb' -> their times.
    Hours without am/pm ("10-7") are read as evening to morning when the first is the later
    (22:00-07:00, and the reply says so); "7-10" cannot be told, so we ask. Beside a time
    with am/pm ("10-7am") such an hour is read the way that makes the shorter window."""
    match = _WINDOW.match(argument.strip())
    if match is None:
        return QuietWindow("unclear")
    start, end = _read_time(*match.group(1, 2)), _read_time(*match.group(3, 4))
    if start is None or end is None or start.minutes == end.minutes:
        return QuietWindow("unclear")
    status = "set"
    clocks = {start.clock, end.clock}
    if clocks == {"bare"}:
        if start.minutes < end.minutes:
            return QuietWindow("ambiguous")
        start, status = start.evening(), "read_as"
    elif clocks == {"bare", "ampm"}:
        if start.clock == "bare" and _length(start.evening(), end) < _length(start, end):
            start = start.evening()
        elif end.clock == "bare" and _length(start, end.evening()) < _length(start, end):
            end = end.evening()
        status = "read_as"
    if _length(start, end) == 0:
        return QuietWindow("unclear")
    if _length(start, end) > MAX_QUIET_HOURS * 60:
        return QuietWindow("too_long", str(start), str(end))
    return QuietWindow(status, str(start), str(end))


def parse_window(argument: str) -> dict[str, str] | None:
    """The window to store, when the times are clear (or read as evening to morning)."""
    window = read_window(argument)
    return window.times() if window.status in ("set", "read_as") else None


WORDS = web.AppKey("channel_words", ChannelWords)


def words_of(app: web.Application) -> ChannelWords:
    """Loaded once per app (at set-up, so a broken file stops the service before it listens)."""
    if WORDS not in app:
        app[WORDS] = ChannelWords.load(app[SETTINGS].content_dir)
    return app[WORDS]


async def first_delivery(
    app: web.Application, channel: str, address: str, delivery_id: str
) -> bool:
    """Whether a message that is never stored arrives for the first time, so that a webhook
    delivered again does not bring its notice twice. Remembered where rate limits are (Redis,
    shared by instances, when configured) under the contact's key, never the address."""
    return await _once(app, channel, address, "delivered", REDELIVERY_WINDOW, f":{delivery_id}")


async def notice_due(app: web.Application, channel: str, address: str, content_key: str) -> bool:
    """Whether this contact may be sent this notice now: at most once a window."""
    return await _once(app, channel, address, f"notice:{content_key}", NOTICE_WINDOW)


async def first_of_album(app: web.Application, channel: str, address: str, group: str) -> bool:
    """Whether a message is the first of its album to arrive (an album comes as several
    messages with one group id, the words on one of them): the album gets one answer."""
    return await _once(app, channel, address, "album", REDELIVERY_WINDOW, f":{group}")


async def slow_down_due(app: web.Application, channel: str, address: str) -> bool:
    """Whether a contact whose message was refused for coming too fast is to be told so now."""
    return await _once(app, channel, address, "slow-down", SLOW_DOWN)


async def _once(
    app: web.Application,
    channel: str,
    address: str,
    what: str,
    window: tuple[Limit, ...],
    suffix: str = "",
) -> bool:
    """Whether `what` is allowed for this contact in `window`, counted by the rate limiter
    under the contact's keyed hash."""
    engine = app[ENGINE]
    key = engine.privacy.contact_key(channel, address)
    return await engine.limiter.allow(f"{what}:{key}{suffix}", window)


async def withdraw_callbacks(app: web.Application, conversation: Conversation | str) -> None:
    """An opt-out the platform reports (Twilio's STOP, a refused send, a blocked Telegram
    bot) does what "stop" does (flows/stop.py): the person's call-backs are withdrawn and
    their numbers deleted, so no adviser phones them. Through the stop journey's own
    "withdraw_callbacks" effect (registered by the handoff side, which updates the consoles);
    without it there are none to withdraw."""
    withdraw = app[ENGINE].effects.get("withdraw_callbacks")
    if withdraw is None:
        return
    if isinstance(conversation, str):
        try:
            conversation = await app[STORE].conversation(conversation)
        except NotFound:
            return  # erased meanwhile: its call-backs went with it
    await withdraw(conversation, {})


async def withdraw_contact_callbacks(app: web.Application, channel: str, contact_key: str) -> None:
    """As `withdraw_callbacks`, from a report that names only the contact (a blocked bot),
    whether or not a conversation of theirs is still open: one closed as idle may have
    booked a call-back that still waits, and nothing more will be sent there to fail."""
    conv = await app[STORE].open_conversation(contact_key)
    if conv is None:
        # The effect withdraws by whose the call-backs are (every conversation of theirs).
        conv = Conversation(id="", contact_key=contact_key, channel=channel, reference="")
    await withdraw_callbacks(app, conv)


async def own_words(
    app: web.Application, conv: Conversation, text: str, *, safe_key: str
) -> list[Reply] | None:
    """The channel's answer if the whole message is one of its own words, else None.

    Called by the engine in the conversation's turn (Engine._channel_words), for a message
    the risk screen did not flag: so a word is answered once, after whatever came before it,
    and is never read by the journey as the answer to its question."""
    command = app[WORDS].match(text)
    if command is None:
        return None
    content = app[CONTENT]
    # The conversation's language, unless the word is only one language's (TAWEL): "help"
    # in a Welsh conversation is Welsh help (content/channel_keywords.yaml lists it in both).
    lang = command.language or conv.language
    if command.kind == "help":
        texts = [content.text(_help_key(app, conv), lang), content.text("channels.help_more", lang)]
    elif command.kind == "safe":
        texts = [content.text(safe_key, lang)]
    else:
        texts = [await _quiet(app, conv.contact_key, command.argument, lang)]
    return [Reply(t) for t in texts]


def _help_key(app: web.Application, conv: Conversation) -> str:
    """What HELP says: while waiting for an adviser, what works while waiting (as the web
    chat's "help" says then), not the journey's words ("menu" to start again)."""
    waiting = waiting_help(conv)
    if conv.owner is Owner.QUEUE and app[CONTENT].has(waiting):
        return waiting
    return "help.show"


async def _quiet(app: web.Application, key: str, argument: str, lang: str) -> str:
    store, content = app[STORE], app[CONTENT]
    if app[WORDS].is_off(argument):
        await store.update_contact_settings(key, quiet_hours=None)
        log.info("quiet hours removed")
        return content.text("channels.quiet_off", lang)
    if not argument.strip():
        current = (await store.contact_settings(key)).get("quiet_hours")
        if isinstance(current, dict) and "start" in current and "end" in current:
            return content.text("channels.quiet_now", lang, **current)
        return content.text("channels.quiet_how", lang)
    window = read_window(argument)
    if window.status == "ambiguous":
        return content.text("channels.quiet_ampm", lang)
    if window.status == "too_long":
        return content.text(
            "channels.quiet_too_long", lang, hours=MAX_QUIET_HOURS, **window.times()
        )
    if window.status == "unclear":
        return content.text("channels.quiet_unclear", lang)
    await store.update_contact_settings(key, quiet_hours=window.times())
    log.info("quiet hours set")
    said = "channels.quiet_read_as" if window.status == "read_as" else "channels.quiet_set"
    return content.text(said, lang, **window.times())
