"""Rate limits: a flood from one contact or one address gets a calm reply, nothing stored;
a message about danger always gets through."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as redis

from helpline.app import CONTENT, ENGINE, STORE
from helpline.domain import InboundMessage
from helpline.ratelimit import Limit, MemoryLimiter, RateLimited, RedisLimiter
from tests.support import redis_not_answering, running, settings_for


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> tuple[str, str] | None:
    """None for the in-process limiter, (url, prefix) for the Redis one."""
    if request.param == "memory":
        return None
    return request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")


async def test_a_limiter_allows_up_to_the_limit_then_refuses(
    backend: tuple[str, str] | None,
) -> None:
    client = redis.Redis.from_url(backend[0]) if backend else None
    limiter = RedisLimiter(client, backend[1]) if client and backend else MemoryLimiter()
    try:
        limits = (Limit(3, 60),)
        results = [await limiter.allow("contact-a", limits) for _ in range(5)]
        assert results == [True, True, True, False, False]
        assert await limiter.allow("contact-b", limits), "one contact's flood limited another"
    finally:
        if client is not None:
            await client.aclose()


async def test_a_text_arriving_while_redis_is_down_is_stored_not_refused(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Twilio does not deliver a refused webhook again: a limiter that cannot count must let
    # the message through to be stored (and answered once the turn can run).
    async with running(settings_for(sqlite_url, tmp_path)) as (app, _fake, _):
        engine = app[ENGINE]
        client = redis_not_answering()
        engine.limiter = RedisLimiter(client)
        try:
            accepted = await engine.accept(InboundMessage("test", "+447700900999", "hello?"))
        finally:
            await client.aclose()
        stored = await app[STORE].pending_inbound(accepted.conversation_id)
        assert [m.text for m in stored] == ["hello?"]


async def test_a_flood_from_one_contact_is_refused_before_anything_is_stored(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, _fake, _):
        engine = app[ENGINE]
        refused = 0
        for i in range(25):
            try:
                await engine.accept(InboundMessage("test", "+447700900999", f"m{i}"))
            except RateLimited:
                refused += 1
        assert refused == 5
        conv = await app[STORE].open_conversation(
            app[ENGINE].privacy.contact_key("test", "+447700900999")
        )
        assert conv is not None
        assert len(await app[STORE].pending_inbound(conv.id)) == 20


async def test_web_chat_tells_a_flooding_person_to_slow_down(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _fake, url):
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/chat/ws") as ws:
            await ws.send_json({"type": "hello", "token": None, "lang": "en"})
            for i in range(25):
                await ws.send_json({"type": "message", "text": f"hi {i}", "id": f"f{i}"})
            expected = app[CONTENT].text("web.error_slow_down", "en")
            while True:
                frame = await ws.receive_json(timeout=10)
                if frame["type"] == "error":
                    assert frame["text"] == expected
                    break


async def _open_chat(http: aiohttp.ClientSession, url: str, client: str) -> str:
    """Open a new web chat as `client` (through the proxy); the first frame's type."""
    headers = {"X-Forwarded-For": client}
    async with http.ws_connect(f"{url}/chat/ws", headers=headers) as ws:
        await ws.send_json({"type": "hello", "token": None, "lang": "en"})
        frame = await ws.receive_json(timeout=10)
        return str(frame["type"])


async def test_behind_a_proxy_new_chats_are_limited_per_client_not_for_everyone(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = settings_for(sqlite_url, tmp_path, trusted_proxies="127.0.0.1, ::1")
    async with running(settings, serve=True) as (_app, _fake, url):
        async with aiohttp.ClientSession() as http:
            opened = [await _open_chat(http, url, "198.51.100.7") for _ in range(31)]
            # The thirtieth new chat from one address is the last; another person behind
            # the same proxy is not held back by it.
            assert opened[:30] == ["session"] * 30
            assert opened[30] == "error"
            assert await _open_chat(http, url, "203.0.113.9") == "session"

            # A request that did not come through the proxy is refused; the balancer's
            # health checks still answer.
            async with http.get(f"{url}/") as resp:
                assert resp.status == 400
            async with http.get(f"{url}/healthz") as resp:
                assert resp.status == 200
            async with http.get(f"{url}/", headers={"X-Forwarded-For": "203.0.113.9"}) as resp:
                assert resp.status == 200


def test_a_proxy_setting_that_is_not_an_address_stops_the_service(tmp_path: Path) -> None:
    for wrong in ("nginx.local", "10.0.0.1/8"):  # a host with a network's mask is not a network
        with pytest.raises(ValueError, match="trusted_proxies"):
            settings_for("sqlite+aiosqlite://", tmp_path, trusted_proxies=wrong)


async def test_a_message_about_danger_is_never_refused_for_coming_too_fast(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        engine = app[ENGINE]
        phone = "+447700900998"
        for i in range(20):
            await engine.accept(InboundMessage("test", phone, f"m{i}"))
        with pytest.raises(RateLimited):
            await engine.accept(InboundMessage("test", phone, "one more"))
        await engine.handle(InboundMessage("test", phone, "he's outside with a knife"))
        assert app[CONTENT].text("risk.immediate", "en") in fake.texts(phone)


async def test_stop_is_never_refused_for_coming_too_fast(sqlite_url: str, tmp_path: Path) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, fake, _):
        engine = app[ENGINE]
        phone = "+447700900997"
        for i in range(20):
            await engine.accept(InboundMessage("test", phone, f"m{i}"))
        with pytest.raises(RateLimited):
            await engine.accept(InboundMessage("test", phone, "one more"))
        await engine.handle(InboundMessage("test", phone, "STOP"))
        assert fake.texts(phone)[-1] == app[CONTENT].text("stop.done", "en")
        assert await app[STORE].open_conversation(engine.privacy.contact_key("test", phone)) is None


async def test_keep_open_presses_in_a_loop_are_not_each_a_write(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(settings_for(sqlite_url, tmp_path)) as (app, _fake, _):
        engine, store = app[ENGINE], app[STORE]
        await engine.handle(InboundMessage("test", "+447700900999", "hello"))
        writes = 0
        save_turn = store.save_turn

        async def counted(*args: object, **kwargs: object) -> object:
            nonlocal writes
            writes += 1
            return await save_turn(*args, **kwargs)

        monkeypatch.setattr(store, "save_turn", counted)
        for _ in range(200):
            await engine.keepalive("test", "+447700900999")
        assert 1 <= writes <= 3, "each press of a flood was written"
