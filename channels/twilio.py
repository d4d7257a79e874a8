"""Twilio: SMS and WhatsApp through one class with two names (as courier does).

Inbound webhooks are checked with Twilio's signature, stored, and answered with an empty
TwiML <Response/>; every reply goes out through the REST API (docs/channels.md)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode
from xml.sax.saxutils import escape

import aiohttp
from aiohttp import web
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from channels import texting
from helpline.app import CONTENT, ENGINE, PRIVACY, SENDERS, SETTINGS, STORE
from helpline.config import Settings
from helpline.content import normalise
from helpline.domain import (
    Conversation,
    Delivery,
    InboundMessage,
    OutboundMessage,
    Reply,
    storable,
)
from helpline.engine import URGENT, worst
from helpline.errors import (
    DeliveryError,
    DuplicateMessage,
    NotFound,
    NotSent,
    OutsideReplyWindow,
    StoreUnavailable,
)
from helpline.ratelimit import RateLimited

log = logging.getLogger(__name__)

BODY_LIMIT = 1600  # characters per message, Twilio's limit for SMS and WhatsApp
MAX_REQUEST = 32 * 1024  # a Twilio webhook is a few hundred bytes
SEND_TIMEOUT = 15.0  # the async client ignores its own timeout (twilio-python #925)
OPTED_OUT = 21610  # "Attempt to send to unsubscribed recipient"
# HTTP statuses with which Twilio refuses a request it has not acted on: too many requests at
# once (error 20429), or the service unavailable. The message was not sent: it may be again.
NOT_TAKEN = (429, 503)
OUTSIDE_WINDOW = 63016  # WhatsApp: free-form text only within 24 h of the person's last message
WHATSAPP_WINDOW = timedelta(hours=24)
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
STATUSES = {
    "sent": Delivery.SENT,
    "delivered": Delivery.DELIVERED,
    "read": Delivery.DELIVERED,
    "failed": Delivery.FAILED,
    "undelivered": Delivery.FAILED,
}
# Twilio's ids are letters and digits ("SM" + 32 hex digits): anything else is not Twilio.
_SID = re.compile(r"^[A-Za-z0-9]{1,64}$")
# Our own id for a reply, in the status callback's address: a positive integer the messages
# table's 32-bit id column can hold (nine digits always fit).
_REPLY_ID = re.compile(r"^[1-9][0-9]{0,8}$")
# Pauses, in seconds, of a delivery report that came before its reply was recorded as sent
# (_report): about four seconds in all.
EARLY_REPORT_WAITS = (0.05, 0.2, 0.5, 1.0, 2.0)
PLATFORM_ID_ROOM = 128  # characters in a stored message's platform_id
# The library's own logger is quiet at WARNING: it would log request URLs and headers.
_HTTP_LOG = logging.getLogger("twilio.async_http_client")


class TwilioRefused(DeliveryError):
    """Twilio answered with an error; `code` is Twilio's error code (never the message text,
    which can contain the phone number)."""

    def __init__(self, code: int | None, status: int) -> None:
        what = f"Twilio refused the message (error {code}, HTTP {status})"
        super().__init__(what, kind=f"Twilio error {code}, HTTP {status}")
        self.code = code


class TwilioOutsideWindow(TwilioRefused, OutsideReplyWindow):
    """WhatsApp's 24 hours since the person's last message have passed (error 63016): no
    free-form reply reaches them until they write again."""


class TwilioBusy(NotSent):
    """Twilio did not take the message (HTTP 429 or 503, or no connection): it was not sent."""


_FORM = "application/x-www-form-urlencoded"


class _HttpClient(AsyncTwilioHttpClient):
    """Twilio's async HTTP client, sending Basic auth as a header: aiohttp 3.14 deprecates
    the BasicAuth object the library builds. (The library never logs Authorization.)"""

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the library's signature
        allow_redirects: bool = False,
    ) -> Response:
        headers = dict(headers or {})
        if auth is not None:
            pair = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {pair}"
        body: Any = data
        if data is not None and headers.get("Content-Type", _FORM) == _FORM:
            # The same form aiohttp would send, encoded here: given a dict, aiohttp builds a
            # multipart writer (and a random boundary) for every message before it finds the
            # form needs none.
            body = urlencode(list(data.items()), doseq=True)
            headers["Content-Type"] = _FORM
        return await super().request(
            method, url, params, body, headers, None, timeout, allow_redirects
        )


class TwilioTransport:
    """The one REST client both names share, created inside the running loop and closed at
    shutdown. Sends are never retried by the client: the Messages API has no idempotency key.
    What Twilio certainly did not take (TwilioBusy) the engine sends again (Engine.deliver)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client: Client | None = None
        self.timeout = SEND_TIMEOUT

    async def lifetime(self, app: web.Application) -> AsyncIterator[None]:
        http = _HttpClient(logger=_HTTP_LOG)  # no max_retries on purpose
        client = Client(
            self.settings.twilio_account_sid, self.settings.twilio_auth_token, http_client=http
        )
        if self.settings.twilio_api_base:
            client.api.base_url = self.settings.twilio_api_base.rstrip("/")
        self.client = client
        try:
            yield
        finally:
            # Replies still being handled need the client: let the engine finish first.
            if ENGINE in app:
                await app[ENGINE].drain()
            self.client = None
            await http.close()

    async def create(self, **params: Any) -> str:
        if self.client is None:
            raise TwilioBusy("the Twilio client is not running", kind="Twilio client not running")
        try:
            async with asyncio.timeout(self.timeout):
                message = await self.client.messages.create_async(**params)
        except TimeoutError as exc:
            raise DeliveryError(
                "Twilio did not answer in time (the message may have gone)"
            ) from exc
        except TwilioRestException as exc:
            if exc.status in NOT_TAKEN:
                kind = f"Twilio error {exc.code}, HTTP {exc.status}"
                raise TwilioBusy(f"Twilio did not take the message ({kind})", kind=kind) from exc
            refused = TwilioOutsideWindow if exc.code == OUTSIDE_WINDOW else TwilioRefused
            raise refused(exc.code, exc.status) from exc
        except (aiohttp.ClientConnectorError, ConnectionRefusedError) as exc:
            # No connection was made: nothing reached Twilio.
            kind = f"Twilio not reached ({type(exc).__name__})"
            raise TwilioBusy(kind, kind=kind) from exc
        except (TwilioException, aiohttp.ClientError, OSError) as exc:
            raise DeliveryError(f"Twilio could not be reached ({type(exc).__name__})") from exc
        return str(message.sid)


class TwilioChannel:
    """One Twilio channel: "sms" or "whatsapp". Same class, same transport, own webhooks."""

    def __init__(
        self, app: web.Application, name: str, transport: TwilioTransport, sender: Mapping[str, str]
    ) -> None:
        self.app = app
        self.name = name
        self.transport = transport
        self.sender = dict(sender)  # from_ or messaging_service_sid
        # WhatsApp takes free-form replies only this long after the person's last message
        # (what the queue tells someone waiting on WhatsApp: helpline/routing.py).
        self.reply_window = WHATSAPP_WINDOW if name == "whatsapp" else None
        self.settings: Settings = app[SETTINGS]
        self.validator = RequestValidator(self.settings.twilio_auth_token)

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.post(f"/channels/twilio/{self.name}", self.inbound),
            web.post(f"/channels/twilio/{self.name}/status", self.status),
        ]

    # -- outbound --------------------------------------------------------------------------

    async def send(self, message: OutboundMessage) -> str | None:
        key = self.app[PRIVACY].contact_key(self.name, message.address)
        await self._guard(message, key)
        intro = self.app[CONTENT].text("channels.reply_with_number", message.language)
        parts = texting.split_text(texting.numbered(message.reply, intro), BODY_LIMIT)
        params: dict[str, Any] = dict(self.sender)
        if self.settings.public_url is not None and message.message_id > 0:
            # Our id for the reply in the address Twilio reports to: each part of a reply
            # sent as several texts is reported against the reply, so a part that failed
            # shows. (Message id 0, the unstored "deleted" confirmation, and UNSTORED, early
            # emergency guidance, have no reply to report on.)
            callback = f"{self.settings.base_url}/channels/twilio/{self.name}/status"
            params["status_callback"] = f"{callback}?reply={message.message_id}"
        sids: list[str] = []
        for part in parts:  # in order, one after another: each waits for Twilio's answer
            try:
                sids.append(await self.transport.create(to=message.address, body=part, **params))
            except TwilioRefused as exc:
                if exc.code == OPTED_OUT:
                    # The person texted STOP (Twilio keeps the opt-out): note it, never retry,
                    # and nobody may phone them now either.
                    await self._settings(key, opted_out=True)
                    await texting.withdraw_callbacks(self.app, message.conversation_id)
                elif sids and isinstance(exc, OutsideReplyWindow):
                    # Its first parts went: sent again when they write, said twice.
                    raise DeliveryError(str(exc), kind=exc.kind) from exc
                raise
            except NotSent as exc:
                if sids:
                    # Its first parts went: sent again, they would be said twice.
                    raise DeliveryError(str(exc), kind=exc.kind) from exc
                raise
        return _every_part(sids)

    async def own_words(self, conv: Conversation, text: str) -> list[Reply] | None:
        """HELP, "SAFE?" and QUIET hours, answered by the channel (the engine asks); on SMS
        also Twilio's opt-in words, START and UNSTOP, without Advanced Opt-Out."""
        content = self.app[CONTENT]
        if self.name == "sms" and content.is_exactly("cmd_opt_in", normalise(text)):
            await self._settings(conv.contact_key, opted_out=False)
            return [Reply(content.text("channels.opted_in", conv.language))]
        return await texting.own_words(self.app, conv, text, safe_key="channels.safe_text")

    async def _guard(self, message: OutboundMessage, key: str) -> None:
        """Never text first: only an address that has written in may get a reply. (The
        engine's unstored "deleted" confirmation, message id 0, comes after the contact row
        is gone: it answers the person's own "yes, delete".)"""
        if message.message_id == 0:
            return
        if await self.app[STORE].sealed_address(key) is None:
            raise DeliveryError("refusing to text an address that has not written in")

    async def _settings(self, key: str, **changes: object) -> None:
        with contextlib.suppress(NotFound):  # erased meanwhile: nothing left to note it on
            await self.app[STORE].update_contact_settings(key, **changes)

    # -- inbound ---------------------------------------------------------------------------

    async def _form(self, request: web.Request) -> dict[str, str]:
        """The signed form, or the HTTP error to answer (413, 403, 400)."""
        body = await texting.read_body(request, MAX_REQUEST)
        try:
            form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            form = None
        signature = request.headers.get("X-Twilio-Signature", "")
        url = self.settings.base_url + request.path_qs
        if not signature or not self.validator.validate(url, form or {}, signature):
            raise web.HTTPForbidden(text="bad signature")
        if form is None or "application/x-www-form-urlencoded" not in request.content_type:
            raise web.HTTPBadRequest(text="expected a form")
        return form

    async def inbound(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        sid = form.get("MessageSid") or form.get("SmsSid") or ""
        address = form.get("From", "")
        is_whatsapp = address.startswith("whatsapp:")
        if not _SID.match(sid) or not address or is_whatsapp != (self.name == "whatsapp"):
            raise web.HTTPBadRequest(text="missing or wrong MessageSid or From")
        text = storable(form.get("Body", "")).strip()
        opt = form.get("OptOutType", "").upper()
        msg = InboundMessage(self.name, address, text, external_id=sid)
        key = self.app[PRIVACY].contact_key(self.name, address)
        try:
            if opt == "STOP":
                await self._opted_out(msg, key)
            elif text:
                if opt == "START":  # first: it holds even if the message itself is refused
                    await self._settings(key, opted_out=False)
                # Words with a picture: the words are answered, then the person is told
                # the picture was not seen (once a window; a redelivery never gets here).
                media = bool(_media_count(form) or _location(form))
                notice = (lambda: self._media_notice(msg.address, key)) if media else None
                await self.app[ENGINE].submit(msg, then=notice)
            elif (
                (_media_count(form) or _location(form))
                and await texting.first_delivery(self.app, self.name, address, sid)
                and await texting.notice_due(self.app, self.name, address, "channels.text_only")
            ):
                self.app[ENGINE].spawn(self._notice(address, key, "channels.text_only"))
        except DuplicateMessage:
            pass  # a redelivery: stored and handled the first time
        except RateLimited:
            # Acknowledged all the same: an error would only bring the same webhook back.
            if await texting.slow_down_due(self.app, self.name, address):
                self.app[ENGINE].spawn(self._notice(address, key, "channels.slow_down"))
        except StoreUnavailable:
            log.warning("a %s message could not be stored: the person is asked again", self.name)
            if opt == "STOP":
                # Twilio has confirmed the opt-out to them and refuses anything we send.
                return web.Response(text=EMPTY_TWIML, content_type="text/xml")
            return self._not_received(text)
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")

    def _not_received(self, text: str) -> web.Response:
        """The message was not stored, and Twilio does not deliver it again: the answer
        itself (TwiML, no database needed) asks the person to send it again, after the
        emergency guidance if the risk screen flags it. In English and Welsh: with nothing
        stored, their language is not known."""
        screen = self.app[ENGINE].screen
        try:
            level = worst(screen(text, "en").level, screen(text, "cy").level) if text else "none"
        except Exception as exc:  # noqa: BLE001 - the answer must go; its type only is logged
            # Unread, it may be danger: the guidance errs that way.
            log.error(
                "a text that could not be stored could not be screened (%s)", type(exc).__name__
            )
            level = "immediate"
        keys = [f"risk.{level}"] if level in URGENT else []
        keys.append("channels.not_received")
        bodies = [
            part
            for key in keys
            for part in texting.split_text(texting.in_both_languages(self.app, key), BODY_LIMIT)
        ]
        messages = "".join(f"<Message>{escape(body)}</Message>" for body in bodies)
        twiml = f'<?xml version="1.0" encoding="UTF-8"?><Response>{messages}</Response>'
        return web.Response(text=twiml, content_type="text/xml")

    async def _media_notice(self, address: str, key: str) -> None:
        """After the answer to words sent with a picture (never before the welcome; not at
        all after danger: Engine.submit's `then`), that the picture was not seen."""
        if await texting.notice_due(self.app, self.name, address, "channels.media_unread"):
            await self._notice(address, key, "channels.media_unread")

    async def _opted_out(self, msg: InboundMessage, key: str) -> None:
        """STOP-type word with Twilio's Advanced Opt-Out: Twilio has confirmed it to the
        person and will refuse our sends, so the conversation just ends, silently."""
        engine = self.app[ENGINE]
        # Never refused for coming too fast: Twilio has already told the person they are out.
        accepted = await engine.accept(msg, limited=False)
        await self._settings(key, opted_out=True)
        engine.spawn(self._close(accepted.conversation_id, accepted.message_id))

    async def _close(self, conversation_id: str, message_id: int) -> None:
        engine, store = self.app[ENGINE], self.app[STORE]
        async with engine.locks.hold(conversation_id):
            conv = await store.conversation(conversation_id)
            # Stored sealed (at a question whose answer is not kept in clear), it is kept
            # readable, as a turn would keep it. Read under the lock: a turn for an earlier
            # message may have handled it (and kept it) meanwhile.
            waiting = [
                m for m in await store.pending_inbound(conversation_id) if m.id == message_id
            ]
            redact = {m.id: engine.kept(conv, m.text) for m in waiting}
            conv.closed = True
            if engine.handoffs is not None:
                # Before saving: it takes the conversation from the queue or the adviser.
                await engine.handoffs.cancel(conv)
            # As "stop" does: a call-back they asked for is withdrawn, its number deleted.
            await texting.withdraw_callbacks(self.app, conv)
            # Marked handled only if still waiting: a turn that handled it already must not
            # fence this save out (save_turn), which would leave the conversation open.
            await store.save_turn(conv, [m.id for m in waiting], [], redact=redact)
        log.info("conversation ended by an opt-out", extra={"conversation": conv.reference})

    async def _notice(self, address: str, key: str, content_key: str) -> None:
        """A calm word about a message the journey never sees (media with no text, too many
        at once). Not stored; the person did write in, so this is not texting first. In their
        conversation's language; before they have one, in English and Welsh."""
        conv = await self.app[STORE].open_conversation(key)
        if conv is None:
            body = texting.in_both_languages(self.app, content_key)
        else:
            body = self.app[CONTENT].text(content_key, conv.language)
        try:
            await self.transport.create(to=address, body=body, **self.sender)
        except DeliveryError:
            log.warning("a notice could not be sent")

    async def status(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        sid = form.get("MessageSid") or form.get("SmsSid") or ""
        state = STATUSES.get(form.get("MessageStatus", "").lower())
        reply = request.query.get("reply")
        if not _SID.match(sid) or (reply is not None and not _REPLY_ID.match(reply)):
            raise web.HTTPBadRequest(text="missing MessageSid or a wrong reply id")
        if state is None:
            pass  # queued, sending, accepted: nothing the transcript shows
        elif reply is not None and state is Delivery.FAILED and self._outside_window(form):
            # WhatsApp tried and refused it (more than 24 hours since the person last wrote):
            # it waits for them to write again, as one refused at once does.
            await self._report(int(reply), sid, Delivery.UNREACHABLE)
        elif reply is not None:
            await self._report(int(reply), sid, state)
        else:  # asked for before replies were named in the address
            await self.app[STORE].mark_by_platform_id(self.name, sid, state)
        return web.Response(status=204)

    def _outside_window(self, form: Mapping[str, str]) -> bool:
        return self.reply_window is not None and form.get("ErrorCode") == str(OUTSIDE_WINDOW)

    async def _mark(self, reply: int, sid: str, state: Delivery) -> bool:
        """Keep a report for one of our replies; True if it changed the reply."""
        if state is Delivery.UNREACHABLE:
            return await self.app[ENGINE].refused_later(self.name, reply, sid)
        return await self.app[STORE].mark_reported(self.name, reply, sid, state)

    async def _report(self, reply: int, sid: str, state: Delivery) -> None:
        """A report for one of our replies. Twilio may report a text (a number that cannot
        take it fails at once) before its API has answered our request, so before the reply
        has been given the SIDs the report is checked against: while the reply is still being
        sent, the report waits for it, a few seconds at most (Twilio waits 15 for an answer),
        on whichever instance sends it."""
        store = self.app[STORE]
        for pause in EARLY_REPORT_WAITS:
            if await self._mark(reply, sid, state):
                return
            if not await store.awaiting_platform_id(self.name, reply):
                return  # already further on, or not ours: nothing to wait for
            await asyncio.sleep(pause)
        await self._mark(reply, sid, state)
        # Still not kept if the send took longer than that: it fails after SEND_TIMEOUT, and
        # a reply its send gave up on is marked failed anyway.


def _every_part(sids: list[str]) -> str | None:
    """Every part's SID, comma-separated (as Telegram's ids are), as many as the stored
    platform id holds: three, where a reply is rarely more than two texts."""
    kept = ""
    for sid in sids:
        joined = f"{kept},{sid}" if kept else sid
        if len(joined) > PLATFORM_ID_ROOM:
            break
        kept = joined
    return kept or None


def _media_count(form: Mapping[str, str]) -> int:
    try:
        return int(form.get("NumMedia", "0") or 0)
    except ValueError:
        return 0


def _location(form: Mapping[str, str]) -> bool:
    """A location shared on WhatsApp: no Body and no media, only coordinates."""
    shared = form.get("MessageType", "").lower() == "location"
    return shared or bool(form.get("Latitude") and form.get("Longitude"))


def _whatsapp(number: str) -> str:
    return number if number.startswith("whatsapp:") else f"whatsapp:{number}"


def setup(app: web.Application) -> None:
    """Register "sms" and/or "whatsapp" when their settings are there; otherwise nothing."""
    settings = app[SETTINGS]
    senders_given = bool(
        settings.twilio_messaging_service_sid
        or settings.twilio_from
        or settings.twilio_whatsapp_from
    )
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        if senders_given or settings.twilio_account_sid or settings.twilio_auth_token:
            missing = [
                f"HELPLINE_TWILIO_{name.upper()}"
                for name in ("account_sid", "auth_token")
                if not getattr(settings, f"twilio_{name}")
            ]
            log.warning("SMS and WhatsApp are off: %s not set", " and ".join(missing))
        return
    senders: dict[str, dict[str, str]] = {}
    if settings.twilio_messaging_service_sid:
        senders["sms"] = {"messaging_service_sid": settings.twilio_messaging_service_sid}
    elif settings.twilio_from:
        senders["sms"] = {"from_": settings.twilio_from}
    if settings.twilio_whatsapp_from:
        senders["whatsapp"] = {"from_": _whatsapp(settings.twilio_whatsapp_from)}
    if not senders:
        log.warning(
            "SMS and WhatsApp are off: no sender (HELPLINE_TWILIO_FROM, "
            "HELPLINE_TWILIO_MESSAGING_SERVICE_SID or HELPLINE_TWILIO_WHATSAPP_FROM) is set"
        )
        return
    if "sms" not in senders:
        log.info("SMS is off: neither HELPLINE_TWILIO_FROM nor ..._MESSAGING_SERVICE_SID is set")
    if "whatsapp" not in senders:
        log.info("WhatsApp is off: HELPLINE_TWILIO_WHATSAPP_FROM is not set")
    if settings.public_url is not None and settings.public_url.scheme != "https":
        log.warning(
            "HELPLINE_PUBLIC_URL is not https: Twilio signs (and should only call) https "
            "addresses, and console cookies lose their Secure flag"
        )
    if settings.public_url is None:
        log.warning(
            "HELPLINE_PUBLIC_URL is not set: Twilio signs webhooks for the public address, so "
            "every webhook will be refused until it is (docs/channels.md)"
        )
    texting.quiet_library_loggers()
    texting.words_of(app)
    transport = TwilioTransport(settings)
    app.cleanup_ctx.append(transport.lifetime)
    for name, sender in senders.items():
        channel = TwilioChannel(app, name, transport, sender)
        app.router.add_routes(channel.routes())
        app[SENDERS][name] = channel
