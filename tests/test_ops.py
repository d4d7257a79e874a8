"""Operating it: metrics without personal data, health and readiness, draining."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator

from helpline import app as app_module
from helpline.app import CONTENT, DRAINING, ENGINE, PRIVACY, SENDERS, STORE
from helpline.domain import InboundMessage, OutboundMessage
from helpline.errors import DeliveryError
from helpline.logs import setup_logging
from tests.console_support import PLUGINS, Console, add_staff
from tests.loopback import loopback
from tests.support import Clock, log_text, running, settings_for

FIXTURES = Path(__file__).parent / "fixtures"

PHONE = "+447700900321"


async def test_metrics_count_messages_and_carry_no_personal_data(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _fake, url):
        await app[ENGINE].handle(InboundMessage("test", PHONE, "my secret words"))
        await app[ENGINE].handle(InboundMessage("test", PHONE, "talk to someone"))
        async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as resp:
            body = await resp.text()
        assert resp.status == 200
        assert 'helpline_messages_in_total{channel="test"} 2.0' in body
        assert 'helpline_queue_depth{queue="helpline"} 1.0' in body
        assert 'helpline_handoffs_total{queue="helpline",reason="asked"} 1.0' in body
        assert PHONE not in body and PHONE[1:] not in body
        assert "secret words" not in body


async def test_health_and_readiness_answer_and_readiness_turns_off_when_draining(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path), serve=True) as (app, _fake, url):
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/healthz") as resp:
                assert resp.status == 200
                assert (await resp.json())["status"] == "ok"
            async with http.get(f"{url}/readyz") as resp:
                assert resp.status == 200
            app[DRAINING][0] = True
            async with http.get(f"{url}/readyz") as resp:
                assert resp.status == 503
            async with http.get(f"{url}/healthz") as resp:
                assert resp.status == 200


class SlowChannel:
    """A live channel with a client that closes at shutdown, as Twilio's and Telegram's do:
    a send still on the wire then fails. Once `slow` is set, a send waits for shutdown to
    begin before it completes (a slow gateway)."""

    name = "slow"
    live = True

    def __init__(self) -> None:
        self.slow = False
        self.sending = asyncio.Event()
        self.shutdown_began = asyncio.Event()
        self.closed = False
        self.sent: list[str] = []

    def plugin(self, app: web.Application) -> None:
        app[SENDERS][self.name] = self
        app.on_shutdown.insert(0, self._shutdown_begins)
        app.cleanup_ctx.append(self._lifetime)

    async def _shutdown_begins(self, app: web.Application) -> None:
        self.shutdown_began.set()

    async def _lifetime(self, app: web.Application) -> AsyncIterator[None]:
        yield
        await app[ENGINE].drain()  # replies the engine is handling finish first
        self.closed = True

    async def send(self, message: OutboundMessage) -> str | None:
        if self.slow:
            self.sending.set()
            await self.shutdown_began.wait()
        if self.closed:
            raise DeliveryError("the client was closed")
        self.sent.append(message.reply.text)
        return None


async def test_a_reply_housekeeping_is_sending_when_the_service_stops_still_goes_out(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "HOUSEKEEPING_SECONDS", 0.05)
    clock = Clock()
    channel = SlowChannel()
    settings = settings_for(sqlite_url, tmp_path)
    async with running(settings, plugins=(channel.plugin,), clock=clock) as (app, _fake, _):
        closing = app[CONTENT].text("idle.closed", "en")
        await app[ENGINE].handle(InboundMessage("slow", PHONE, "hello"))
        channel.slow = True
        clock.now += timedelta(minutes=settings.idle_minutes + 1)
        async with asyncio.timeout(10):
            await channel.sending.wait()
        # The service stops now, with the idle chat's closing words on their way.
    assert channel.sent[-1] == closing


@pytest.mark.parametrize("as_json", [False, True])
async def test_logs_of_a_journey_hold_no_address_and_no_message_text(
    as_json: bool, sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    setup_logging("DEBUG", as_json)
    logging.getLogger().addHandler(caplog.handler)  # setup_logging replaced the handlers
    async with running(settings_for(sqlite_url, tmp_path)) as (app, _fake, _):
        engine = app[ENGINE]
        for text in ("hello there", "1", "I want to kill myself", "talk to someone", "stop"):
            await engine.handle(InboundMessage("test", PHONE, text))
    logged = "\n".join(log_text(r) for r in caplog.records)
    assert PHONE not in logged and PHONE[1:] not in logged
    for text in ("hello there", "kill myself", "talk to someone"):
        assert text not in logged


# Requests that are not HTTP, each with a person's words where the parser chokes.
_HEAD = b"Host: a\r\n"
MALFORMED = {
    "request line": b"GET /he has a knife\x01 HTTP/1.1\r\n" + _HEAD + b"\r\n",
    "header character": b"GET /chat/ HTTP/1.1\r\n" + _HEAD + b"X-Note: he has a knife\x01\r\n\r\n",
    "header too long": b"GET / HTTP/1.1\r\n"
    + _HEAD
    + b"X-Note: he has a knife" * 2000
    + b"\r\n\r\n",
    "forwarded for": b"GET / HTTP/1.1\r\n"
    + _HEAD
    + b"X-Forwarded-For: "
    + b", ".join([b"203.0.113.9"] * 2000)
    + b"\r\n\r\n",
    "chunk size": b"POST /console/login HTTP/1.1\r\n"
    + _HEAD
    + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"he has a knife\r\n{}\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("as_json", [False, True])
@pytest.mark.parametrize("request_bytes", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_request_the_server_cannot_read_is_one_warning_without_the_address_or_its_words(
    request_bytes: bytes,
    as_json: bool,
    sqlite_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # aiohttp logs a malformed request as "Error handling request from <client IP>", with
    # an exception quoting the line it choked on: an ERROR with a traceback each time, which
    # anyone could send to fill the log.
    setup_logging("INFO", as_json)
    logging.getLogger().addHandler(caplog.handler)  # setup_logging replaced the handlers
    settings = settings_for(sqlite_url, tmp_path)
    async with running(settings, plugins=PLUGINS, serve=True) as (_app, _fake, url):
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request_bytes)
        await writer.drain()
        answer = await reader.read(13)
        assert b" 400 " in answer or b" 500 " in answer
        writer.close()
        await writer.wait_closed()
    logged = capsys.readouterr().err
    assert "a malformed request was refused" in logged
    assert "Traceback" not in logged
    assert "127.0.0.1" not in logged and "knife" not in logged and "203.0.113.9" not in logged
    server = [r for r in caplog.records if r.name.startswith("aiohttp")]
    assert [r.levelname for r in server] == ["WARNING"]
    assert not any(r.exc_info for r in server)


def test_a_request_a_handler_failed_on_stays_an_error_with_where_it_happened(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging("INFO")
    words = "he has a knife"  # the text of an exception, as a database error can carry
    try:
        raise RuntimeError(words)
    except RuntimeError as exc:
        logging.getLogger("aiohttp.server").exception(
            "Error handling request from %s", "127.0.0.1", exc_info=exc
        )
    logged = capsys.readouterr().err
    assert "ERROR aiohttp.server: Error handling request" in logged
    assert "Traceback" in logged and "RuntimeError" in logged
    assert "127.0.0.1" not in logged and "knife" not in logged


@pytest.mark.parametrize("as_json", [False, True])
async def test_a_request_refused_by_the_proxy_check_is_logged_without_its_addresses(
    as_json: bool, sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Behind a proxy, a request that did not come through it is refused; aiohttp-remotes
    # logged it with every address in X-Forwarded-For.
    setup_logging("INFO", as_json)
    settings = settings_for(sqlite_url, tmp_path, trusted_proxies="127.0.0.1")
    async with (
        running(settings, serve=True) as (_app, _fake, url),
        aiohttp.ClientSession() as http,
    ):
        forwarded = {"X-Forwarded-For": "203.0.113.9, 198.51.100.7"}
        async with http.get(url + "/chat/", headers=forwarded) as resp:
            assert resp.status == 400
    logged = capsys.readouterr().err
    assert "refused by the proxy check" in logged
    assert "203.0.113.9" not in logged and "198.51.100.7" not in logged


def test_an_exception_is_logged_as_where_and_what_kind_never_its_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A database error can quote the failing row; a platform error, the number it refused.
    setup_logging("INFO")
    # A handler added before ours (an error tracker, say) formats the record first, and
    # logging would reuse the text it made.
    other = logging.StreamHandler(io.StringIO())
    logging.getLogger().handlers.insert(0, other)
    row = f"Failing row contains ({PHONE}, he has a knife)"
    try:
        try:
            raise KeyError(PHONE)
        except KeyError as exc:
            raise ValueError(row) from exc
    except ValueError:
        logging.getLogger("helpline.test").exception("a web chat message could not be stored")
    logging.getLogger().removeHandler(other)
    logged = capsys.readouterr().err
    assert "a web chat message could not be stored" in logged
    assert "KeyError" in logged and "ValueError" in logged and "test_ops.py" in logged
    assert PHONE not in logged and "knife" not in logged


# -- a full journey on every channel leaves no address and no words in the logs ----------------

ACCOUNT = "AC" + "0" * 32
TWILIO_TOKEN = "twilio-test-token"
BOT_TOKEN = "123456:TEST-token_abc"
TELEGRAM_SECRET = "telegram-webhook-secret-0123456789"
PUBLIC = "https://helpline.example.org"
SMS_NUMBER = "+447700900321"
WHATSAPP = "whatsapp:+447700900654"
CHAT_ID = 5550009876
_ids = iter(range(1, 10**6))


class Person:
    """One person on one channel, speaking its real wire format to the running app."""

    def __init__(self, app: web.Application, url: str, http: aiohttp.ClientSession, channel: str):
        self.app, self.url, self.http, self.channel = app, url, http, channel
        self.address = {"sms": SMS_NUMBER, "whatsapp": WHATSAPP, "telegram": str(CHAT_ID)}.get(
            channel, ""
        )
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def start(self) -> None:
        if self.channel == "web":
            self.ws = await self.http.ws_connect(f"{self.url}/chat/ws")
            await self.ws.send_json({"type": "hello", "token": None, "lang": "en"})
            self.address = (await self.ws.receive_json(timeout=10))["token"]

    async def say(self, text: str) -> None:
        n = next(_ids)
        if self.channel == "web":
            assert self.ws is not None
            await self.ws.send_json({"type": "message", "text": text, "id": f"m{n}"})
            while (await self.ws.receive_json(timeout=10)) != {"type": "typing", "on": True}:
                pass  # "typing on" comes once the message is stored
        elif self.channel == "telegram":
            update = json.loads((FIXTURES / "telegram_text_message.json").read_text())
            update["update_id"] = 600_000_000 + n
            update["message"].update(message_id=n, text=text)
            update["message"]["chat"]["id"] = update["message"]["from"]["id"] = CHAT_ID
            headers = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
            async with self.http.post(
                f"{self.url}/channels/telegram", json=update, headers=headers
            ) as resp:
                assert resp.status == 200
        else:
            name = f"twilio_{'whatsapp' if self.channel == 'whatsapp' else 'sms'}_inbound.json"
            form = json.loads((FIXTURES / name).read_text())
            sid = f"SM{n:032x}"
            form.update(Body=text, From=self.address, MessageSid=sid, SmsSid=sid, SmsMessageSid=sid)
            path = f"/channels/twilio/{self.channel}"
            signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC + path, form)
            async with self.http.post(
                self.url + path, data=form, headers={"X-Twilio-Signature": signature}
            ) as resp:
                assert resp.status == 200
        await self.app[ENGINE].drain()

    async def conversation_id(self) -> str:
        key = self.app[PRIVACY].contact_key(self.channel, self.address)
        conv = await self.app[STORE].open_conversation(key)
        assert conv is not None
        return conv.id

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


def _address_forms(channel: str, address: str) -> list[str]:
    """The address as given, and for numbers its digits with and without the country code."""
    if channel == "web":
        return [address]  # the session token
    digits = "".join(ch for ch in address if ch.isdigit())
    return [address, digits, digits[-10:]]


@pytest.mark.postgres
@pytest.mark.redis
async def test_logs_of_a_full_journey_on_every_channel_hold_no_address_and_no_words(
    pg_url: str,
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    setup_logging("DEBUG", as_json=True)
    logging.getLogger().addHandler(caplog.handler)  # setup_logging replaced the handlers
    caplog.set_level(logging.DEBUG)
    words: list[str] = []
    addresses: list[str] = []
    async with loopback(ACCOUNT, TWILIO_TOKEN, BOT_TOKEN) as lb:
        settings = settings_for(
            pg_url,
            tmp_path,
            redis_url=redis_url,
            redis_prefix=redis_prefix,
            twilio_account_sid=ACCOUNT,
            twilio_auth_token=TWILIO_TOKEN,
            twilio_from="+447700900000",
            twilio_whatsapp_from="+14155238886",
            twilio_api_base=lb.url,
            telegram_token=BOT_TOKEN,
            telegram_secret=TELEGRAM_SECRET,
            telegram_api_base=lb.url,
            public_url=PUBLIC,
            cookie_secure=False,  # the console is reached over plain http in the test
        )
        async with (
            running(settings, plugins=PLUGINS, serve=True) as (app, _fake, url),
            aiohttp.ClientSession() as http,
            Console(url) as adviser,
        ):
            await add_staff(app, "alice")
            await adviser.login("alice")
            for channel in ("web", "sms", "whatsapp", "telegram"):
                person = Person(app, url, http, channel)
                await person.start()
                mine = [
                    f"hello from {channel} quokka",
                    f"my {channel} secret is that I grabbed her wrist",
                    f"thank you {channel} wombat adviser",
                ]
                words += mine
                await person.say(mine[0])
                await person.say("1")
                await person.say(mine[1])
                await person.say("I've got a knife and I'm going to use it")
                await person.say("talk to someone")
                conv_id = await person.conversation_id()
                path = f"/console/api/conversations/{conv_id}"
                assert (await adviser.post(path + "/claim"))[0] == 200
                said = f"adviser words for {channel} platypus"
                words.append(said)
                assert (await adviser.post(path + "/say", {"text": said}))[0] == 200
                await person.say(mine[2])
                assert (await adviser.post(path + "/end", {"outcome": "signposted"}))[0] == 200
                await person.say("delete my data")
                await person.say("1")
                addresses += _address_forms(channel, person.address)
                await person.close()
            assert lb.sms_bodies(SMS_NUMBER) and lb.sms_bodies(WHATSAPP) and lb.telegram_texts()
    assert len(caplog.records) > 20  # the journeys really logged (at DEBUG)
    for record in caplog.records:
        logged = f"{record.getMessage()} {record.__dict__!r}"
        for leak in addresses + words:
            assert leak not in logged, f"{record.name} logged {leak!r}"
