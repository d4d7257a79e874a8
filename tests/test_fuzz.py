"""Property-based tests (hypothesis): random text, awkward unicode (NUL, lone surrogates,
right-to-left marks), huge and malformed payloads sent to every webhook and to the web chat
socket. Whatever arrives: never a 500, never an unhandled exception in the server's log, and
nothing stored for a request the service refuses.

One app (PostgreSQL and Redis for real, Twilio and Telegram answered by a loopback) serves the
whole module, so the examples stay cheap."""

from __future__ import annotations

import copy
import io
import json
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from channels.webchat import MAX_FRAME, MAX_TEXT
from helpline.app import ENGINE, PRIVACY, STORE
from helpline.storage.models import ContactRow, MessageRow
from tests.conftest import PG_DSN, REDIS_URL, need_service
from tests.loopback import Loopback, loopback
from tests.support import running, settings_for

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.asyncio(loop_scope="module"),
]

ACCOUNT = "AC" + "0" * 32
TOKEN = "twilio-test-token"
BOT_TOKEN = "123456:TEST-token_abc"
TELEGRAM_SECRET = "telegram-webhook-secret-0123456789"
PUBLIC = "https://helpline.example.org"
FIXTURES = Path(__file__).parent / "fixtures"

# Few examples each, no deadline (a real database answers): the whole module stays well
# under a minute on two cores. No example database: nothing is written next to the code.
FEW = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _last_london_noon() -> datetime:
    now = datetime.now(ZoneInfo("Europe/London"))
    noon = now.replace(hour=12, minute=0, second=0, microsecond=0)
    return (noon if noon <= now else noon - timedelta(days=1)).astimezone(UTC)


NOON = _last_london_noon()


def noon() -> datetime:
    return NOON


# -- the strategies --------------------------------------------------------------------------

# Characters that have broken text handling somewhere: NUL (PostgreSQL refuses it), lone
# surrogates (not encodable as UTF-8), bidi controls, BOM, non-characters, the last code
# point, line ends, and the characters that carry meaning in a form or in JSON.
AWKWARD = st.sampled_from(
    [
        "\x00",
        "\ud800",
        "\udfff",
        "\u202e",
        "\u200f",
        "\u2066",
        "\ufeff",
        "\uffff",
        "\U0010ffff",
        "\r\n",
        "\t",
        "%00",
        "%",
        "&",
        "=",
        "+",
        '"',
        "\\",
        "<script>",
        "١٢٣",
        "שלום",
        "👩🏽‍💻",
    ]
)
ANY_CHAR = st.characters(codec=None, exclude_categories=())
TEXT = st.lists(st.one_of(st.text(ANY_CHAR, max_size=20), AWKWARD), max_size=8).map("".join)
HUGE = st.builds(
    lambda ch, n: ch * n, st.sampled_from(["x", "é", "\x00", "👩", " "]), st.integers(1, 80_000)
)
ANY_TEXT = st.one_of(TEXT, HUGE)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
# What a client can put in a header (aiohttp refuses control characters before sending).
HEADER = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E))
# A value of any JSON type, including NaN and huge numbers that json.dumps writes anyway.
ANY_JSON = st.one_of(JSON, st.just(float("nan")), st.just(10**400), st.just(float("inf")))


# -- one app for the module ------------------------------------------------------------------


class ServerErrors(logging.Handler):
    """Collects every record at ERROR or above, and any record carrying a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record)

    def take(self) -> list[str]:
        found = [f"{r.name}: {r.getMessage()} {r.exc_info!r}" for r in self.records]
        self.records.clear()
        return found


@dataclass
class Env:
    app: web.Application
    url: str
    loop: Loopback
    http: aiohttp.ClientSession
    errors: ServerErrors
    web_token: str = ""

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text("Env()")  # hypothesis prints it with every failing example

    async def counts(self) -> tuple[int, int]:
        """(contacts, messages) in the database, once everything in flight has finished."""
        await self.app[ENGINE].drain()
        async with self.app[STORE].session() as session:
            contacts = await session.scalar(select(func.count()).select_from(ContactRow))
            messages = await session.scalar(select(func.count()).select_from(MessageRow))
        return int(contacts or 0), int(messages or 0)

    async def calm(self) -> None:
        """Nothing the server logged was an error or a traceback."""
        await self.app[ENGINE].drain()
        assert self.errors.take() == []


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pg_module_url() -> AsyncIterator[str]:
    need_service("PostgreSQL", "127.0.0.1", 5432)
    import asyncpg

    name = f"helpline_fuzz_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    yield f"{base}/{name}"
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(pg_module_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    need_service("Redis", "127.0.0.1", 6379)
    import redis.asyncio as redis

    prefix = f"test-fuzz-{secrets.token_hex(6)}:"
    errors = ServerErrors()
    root = logging.getLogger()
    root.addHandler(errors)
    try:
        async with loopback(ACCOUNT, TOKEN, BOT_TOKEN) as lb:
            settings_ = settings_for(
                pg_module_url,
                tmp_path_factory.mktemp("fuzz"),
                redis_url=REDIS_URL,
                redis_prefix=prefix,
                twilio_account_sid=ACCOUNT,
                twilio_auth_token=TOKEN,
                twilio_from="+447700900000",
                twilio_whatsapp_from="+14155238886",
                twilio_api_base=lb.url,
                telegram_token=BOT_TOKEN,
                telegram_secret=TELEGRAM_SECRET,
                telegram_api_base=lb.url,
                public_url=PUBLIC,
                # The fuzzing itself is a flood: rate limits are tested elsewhere.
                messages_per_minute=100_000,
            )
            async with (
                running(settings_, serve=True, clock=noon) as (app, _, url),
                aiohttp.ClientSession() as http,
            ):
                env = Env(app, url, lb, http, errors)
                async with http.ws_connect(f"{url}/chat/ws") as ws:
                    await ws.send_json({"type": "hello", "token": None, "lang": "en"})
                    env.web_token = (await ws.receive_json(timeout=10))["token"]
                await env.calm()
                yield env
                await app[ENGINE].drain()
    finally:
        root.removeHandler(errors)
        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = [k async for k in client.scan_iter(match=prefix + "*", count=500)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


# -- Twilio (SMS and WhatsApp) ---------------------------------------------------------------

SMS_PATH = "/channels/twilio/sms"
WA_PATH = "/channels/twilio/whatsapp"
_sids = iter(range(1, 10**9))


def _twilio_fixture(name: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((FIXTURES / name).read_text())
    return data


def _form(params: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """The body as a client would send it (UTF-8, lone surrogates passed through as bytes),
    and the form as the server will read it back (which is what Twilio signs)."""
    body = urlencode(params, encoding="utf-8", errors="surrogatepass")
    return body.encode("ascii"), dict(parse_qsl(body, keep_blank_values=True))


async def _post_form(
    env: Env, path: str, body: bytes, signature: str | None, content_type: str
) -> int:
    headers = {"Content-Type": content_type}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    # A file-like body: aiohttp warns (an error here) about raw bytes over 1 MiB, which a
    # form of long emoji fields reaches once percent-encoded.
    async with env.http.post(env.url + path, data=io.BytesIO(body), headers=headers) as resp:
        await resp.read()
        return resp.status


def _sign(path: str, form: dict[str, str]) -> str:
    return RequestValidator(TOKEN).compute_signature(PUBLIC + path, form)


twilio_changes = st.dictionaries(
    st.sampled_from(["Body", "From", "MessageSid", "SmsSid", "NumMedia", "OptOutType", "To"])
    | TEXT,
    ANY_TEXT,
    max_size=4,
)


@FEW
@given(whatsapp=st.booleans(), changes=twilio_changes, drop=st.sets(st.sampled_from(["From"])))
# Over 1 MiB once percent-encoded (found by a long run of this test).
@example(
    whatsapp=False, changes={"Body": "\U0001f469" * 80_000, "To": "\U0001f469" * 10_000}, drop=set()
)
async def test_a_signed_twilio_webhook_with_any_fields_is_answered_without_a_server_error(
    env: Env, whatsapp: bool, changes: dict[str, str], drop: set[str]
) -> None:
    params = _twilio_fixture(
        "twilio_whatsapp_inbound.json" if whatsapp else "twilio_sms_inbound.json"
    )
    sid = f"SM{next(_sids):032x}"
    params.update(MessageSid=sid, SmsSid=sid, SmsMessageSid=sid)
    params.update(changes)
    for name in drop:
        params.pop(name, None)
    body, form = _form(params)
    path = WA_PATH if whatsapp else SMS_PATH
    before = await env.counts()
    status = await _post_form(
        env, path, body, _sign(path, form), "application/x-www-form-urlencoded"
    )
    assert status in (200, 400, 413), status
    if status != 200:
        assert await env.counts() == before
    await env.calm()


@FEW
@given(
    whatsapp=st.booleans(),
    changes=twilio_changes,
    signature=st.one_of(st.none(), HEADER),
)
async def test_an_unsigned_or_wrongly_signed_twilio_webhook_is_refused_and_nothing_stored(
    env: Env, whatsapp: bool, changes: dict[str, str], signature: str | None
) -> None:
    params = _twilio_fixture("twilio_sms_inbound.json")
    params.update(changes)
    body, _ = _form(params)
    path = WA_PATH if whatsapp else SMS_PATH
    before = await env.counts()
    calls = len(env.loop.calls)
    status = await _post_form(env, path, body, signature, "application/x-www-form-urlencoded")
    assert status in (403, 413), status
    assert await env.counts() == before
    assert len(env.loop.calls) == calls  # nothing was sent to anyone either
    await env.calm()


@FEW
@given(
    raw=st.one_of(st.binary(max_size=2000), st.binary(min_size=40_000, max_size=40_100)),
    content_type=st.sampled_from(
        ["application/x-www-form-urlencoded", "application/json", "text/plain", "multipart/x"]
    ),
    signed=st.booleans(),
    status_callback=st.booleans(),
)
async def test_raw_bytes_to_a_twilio_webhook_get_a_clean_refusal(
    env: Env, raw: bytes, content_type: str, signed: bool, status_callback: bool
) -> None:
    path = SMS_PATH + ("/status" if status_callback else "")
    signature = None
    if signed:
        try:
            form = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            form = {}
        signature = _sign(path, form)
    before = await env.counts()
    status = await _post_form(env, path, raw, signature, content_type)
    assert status < 500, status
    if status >= 400:
        assert await env.counts() == before
    await env.calm()


@FEW
@given(changes=twilio_changes, status=st.one_of(TEXT, st.sampled_from(["delivered", "failed"])))
async def test_a_delivery_report_with_any_fields_is_answered_without_a_server_error(
    env: Env, changes: dict[str, str], status: str
) -> None:
    params = _twilio_fixture("twilio_status_delivered.json")
    params["MessageStatus"] = status
    params.update(changes)
    body, form = _form(params)
    path = SMS_PATH + "/status"
    before = await env.counts()
    answer = await _post_form(
        env, path, body, _sign(path, form), "application/x-www-form-urlencoded"
    )
    assert answer in (204, 400, 413), answer
    assert (await env.counts()) == before  # a report never adds a contact or a message
    await env.calm()


# -- Telegram --------------------------------------------------------------------------------

TELEGRAM_PATH = "/channels/telegram"
_update_ids = iter(range(700_000_000, 799_999_999))


def _text_update() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "telegram_text_message.json").read_text())
    number = next(_update_ids)
    data["update_id"] = number
    data["message"]["message_id"] = number % 1_000_000
    return data


async def _post_telegram(env: Env, body: bytes, secret: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    async with env.http.post(
        env.url + TELEGRAM_PATH, data=io.BytesIO(body), headers=headers
    ) as resp:
        await resp.read()
        return resp.status


def _dumps(value: Any) -> bytes:
    # ensure_ascii writes lone surrogates as \ud800 escapes, as a hostile client could.
    return json.dumps(value, ensure_ascii=True).encode()


# Paths into a text update and the wrong-typed values to put there.
TELEGRAM_FIELDS = st.sampled_from(
    [
        ("update_id",),
        ("message",),
        ("message", "text"),
        ("message", "chat"),
        ("message", "chat", "id"),
        ("message", "chat", "type"),
        ("message", "from"),
        ("message", "from", "id"),
        ("message", "from", "language_code"),
        ("message", "message_id"),
        ("message", "date"),
        ("message", "entities"),
        ("callback_query",),
        ("edited_message",),
    ]
)


def _put(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    target = data
    for key in path[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[path[-1]] = value


@FEW
@given(changes=st.lists(st.tuples(TELEGRAM_FIELDS, ANY_JSON), max_size=4))
async def test_a_telegram_update_with_wrong_types_is_answered_without_a_server_error(
    env: Env, changes: list[tuple[tuple[str, ...], Any]]
) -> None:
    data = _text_update()
    for path, value in changes:
        _put(data, path, copy.deepcopy(value))
    before = await env.counts()
    status = await _post_telegram(env, _dumps(data), TELEGRAM_SECRET)
    assert status in (200, 400, 413), status
    if status != 200:
        assert await env.counts() == before
    await env.calm()


@FEW
@given(text=ANY_TEXT, language=st.one_of(st.none(), TEXT))
async def test_any_text_in_a_telegram_message_is_stored_or_refused_cleanly(
    env: Env, text: str, language: str | None
) -> None:
    data = _text_update()
    data["message"]["text"] = text
    data["message"]["from"]["language_code"] = language
    before = await env.counts()
    status = await _post_telegram(env, _dumps(data), TELEGRAM_SECRET)
    assert status in (200, 413), status
    if status != 200:
        assert await env.counts() == before
    await env.calm()


@FEW
@given(
    body=st.one_of(ANY_JSON.map(_dumps), st.binary(max_size=500)),
    secret=st.one_of(st.none(), HEADER),
)
async def test_a_telegram_webhook_without_the_secret_is_refused_and_nothing_stored(
    env: Env, body: bytes, secret: str | None
) -> None:
    sent = "wrong" if secret == TELEGRAM_SECRET else secret
    before = await env.counts()
    status = await _post_telegram(env, body, sent)
    assert status in (403, 413), status
    assert await env.counts() == before
    await env.calm()


@FEW
@given(
    body=st.one_of(
        ANY_JSON.map(_dumps),
        st.binary(max_size=2000),
        st.binary(min_size=70_000, max_size=70_100),
        TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")),
    )
)
async def test_malformed_telegram_bodies_with_the_secret_get_a_clean_answer(
    env: Env, body: bytes
) -> None:
    before = await env.counts()
    status = await _post_telegram(env, body, TELEGRAM_SECRET)
    assert status in (200, 400, 413), status
    if status != 200:
        assert await env.counts() == before
    await env.calm()


# -- the web chat socket ---------------------------------------------------------------------


# Around the 2,000-character limit on a message, and still within one frame once escaped.
NEAR_LIMIT = st.builds(
    lambda ch, n: ch * n, st.sampled_from(["x", "é", " ", "\x00"]), st.integers(1990, 2010)
)


def _message_frame(text: Any, msg_id: Any) -> str:
    return json.dumps({"type": "message", "text": text, "id": msg_id}, ensure_ascii=True)


FRAME = st.one_of(
    TEXT.map(lambda t: ("text", t)),
    ANY_JSON.map(lambda v: ("text", json.dumps(v))),
    st.builds(_message_frame, ANY_JSON, ANY_JSON).map(lambda f: ("text", f)),
    st.builds(_message_frame, st.one_of(TEXT, NEAR_LIMIT), TEXT).map(lambda f: ("text", f)),
    st.binary(max_size=200).map(lambda b: ("binary", b)),
    st.sampled_from(
        [
            ("text", '{"type": "keepalive"}'),
            ("text", '{"type": "hello", "token": null}'),
            ("text", '{"type": "message"}'),
            ("text", "[]"),
            ("text", "null"),
            ("text", '{"type": "message", "text": "\\ud800\\u0000", "id": "x"}'),
        ]
    ),
)


async def _send(ws: aiohttp.ClientWebSocketResponse, kind: str, frame: Any) -> None:
    if kind == "binary":
        await ws.send_bytes(frame)
    else:
        # As raw bytes, so lone surrogates go out as the invalid UTF-8 a hostile client sends.
        await ws.send_frame(frame.encode("utf-8", "surrogatepass"), aiohttp.WSMsgType.TEXT)


def _utf8(kind: str, frame: Any) -> bool:
    if kind != "text":
        return True
    try:
        frame.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def _closed(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Read on (calm answers to earlier frames) until the server closes the socket."""
    while True:
        msg = await ws.receive(timeout=10)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return
        assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data)


def _may_store(kind: str, frame: Any) -> bool:
    """Would the service keep this frame? Only a message with some text of allowed size."""
    if kind != "text":
        return False
    try:
        data = json.loads(frame)
    except ValueError:
        return False
    if not isinstance(data, dict) or data.get("type") != "message":
        return False
    text = data.get("text")
    return isinstance(text, str) and bool(text.strip()) and len(text) <= MAX_TEXT


async def _probe(ws: aiohttp.ClientWebSocketResponse) -> None:
    """The socket still reads and answers: a frame that is not JSON gets an error frame."""
    await ws.send_str("probe: not json")
    while True:
        msg = await ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data)
        if json.loads(msg.data)["type"] == "error":
            return


@FEW
@given(frames=st.lists(FRAME, min_size=1, max_size=4))
async def test_any_frames_on_the_web_chat_socket_get_calm_answers_and_the_chat_lives_on(
    env: Env, frames: list[tuple[str, Any]]
) -> None:
    before = await env.counts()
    async with env.http.ws_connect(f"{env.url}/chat/ws") as ws:
        await ws.send_json({"type": "hello", "token": env.web_token, "lang": "en"})
        while (await ws.receive_json(timeout=10))["type"] != "history":
            pass
        for kind, frame in frames:
            await _send(ws, kind, frame)
        if all(_utf8(kind, frame) for kind, frame in frames):
            await _probe(ws)
        else:
            await _closed(ws)
            assert ws.close_code == aiohttp.WSCloseCode.INVALID_TEXT
    if not any(_may_store(kind, frame) for kind, frame in frames):
        assert await env.counts() == before
    await env.calm()


@FEW
@given(
    first=st.one_of(
        ANY_JSON.map(lambda v: ("text", json.dumps(v))),
        st.builds(
            lambda token, lang: (
                "text",
                json.dumps({"type": "hello", "token": token, "lang": lang}),
            ),
            ANY_JSON,
            ANY_JSON,
        ),
        st.binary(max_size=100).map(lambda b: ("binary", b)),
        TEXT.map(lambda t: ("text", t)),
    )
)
async def test_a_malformed_hello_closes_the_socket_or_opens_a_chat_without_harm(
    env: Env, first: tuple[str, Any]
) -> None:
    kind, frame = first
    before = await env.counts()
    async with env.http.ws_connect(f"{env.url}/chat/ws") as ws:
        await _send(ws, kind, frame)
        msg = await ws.receive(timeout=10)
        opened = msg.type == aiohttp.WSMsgType.TEXT and json.loads(msg.data)["type"] == "session"
        if not opened:
            assert msg.type in (
                aiohttp.WSMsgType.TEXT,  # "slow down": too many new chats from one address
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
            ), msg.type
    if not opened:
        assert await env.counts() == before
    await env.calm()


@settings(max_examples=5, deadline=None, database=None)
@given(size=st.integers(MAX_FRAME + 1, 200_000), binary=st.booleans())
async def test_a_huge_frame_closes_the_socket_and_stores_nothing(
    env: Env, size: int, binary: bool
) -> None:
    before = await env.counts()
    async with env.http.ws_connect(f"{env.url}/chat/ws") as ws:
        await ws.send_json({"type": "hello", "token": env.web_token, "lang": "en"})
        while (await ws.receive_json(timeout=10))["type"] != "history":
            pass
        if binary:
            await ws.send_bytes(b"\x00" * size)
        else:
            await ws.send_str(_message_frame("x" * size, "big"))
        await _closed(ws)
        assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    assert await env.counts() == before
    async with env.http.get(f"{env.url}/healthz") as resp:
        assert resp.status == 200
    await env.calm()


async def test_a_made_up_token_does_not_open_a_chat_under_that_token(env: Env) -> None:
    """Only a token the service handed out resumes a chat; any other counts as a new chat
    (limited per network address) and gets a fresh token from the service."""
    made_up = "A" * 32
    async with env.http.ws_connect(f"{env.url}/chat/ws") as ws:
        await ws.send_json({"type": "hello", "token": made_up, "lang": "en"})
        msg = await ws.receive(timeout=10)
    frame = json.loads(msg.data)
    if frame["type"] == "session":
        assert frame["token"] != made_up
    else:  # the hellos above already used up this address's new chats
        assert frame["type"] == "error"
    key = env.app[PRIVACY].contact_key("web", made_up)
    assert await env.app[STORE].sealed_address(key) is None
    await env.calm()
