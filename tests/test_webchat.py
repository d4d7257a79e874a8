"""Web chat over its websocket protocol (docs/webchat.md), against the running app."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from channels import webchat
from helpline.app import CONTENT, ENGINE, HUB, PRIVACY, ROUTING, SENDERS, SETTINGS, STORE
from helpline.domain import InboundMessage
from tests.support import eventually, hub_link, running, settings_for


async def _frames_until(ws: aiohttp.ClientWebSocketResponse, kind: str) -> list[dict[str, Any]]:
    """Read frames until one of `kind` arrives; return all read."""
    seen = []
    while True:
        frame = await ws.receive_json(timeout=10)
        seen.append(frame)
        if frame["type"] == kind:
            return seen


async def _next_message(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    return (await _frames_until(ws, "message"))[-1]


async def _safe_now_then_who(ws: aiohttp.ClientWebSocketResponse, content: Any, lang: str) -> None:
    """Answer "is it safe?" with 1: the next question, who is writing, comes in `lang`."""
    await ws.send_json({"type": "message", "text": "1", "id": "c1"})
    reply = await _next_message(ws)
    assert reply["text"] == content.text("welcome.who", lang)
    assert reply["options"][0] == content.text("who.opt_self", lang)


async def test_a_person_is_greeted_and_can_choose_by_typing_a_number(
    database_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(database_url, tmp_path), serve=True) as (app, _, url):
        content = app[CONTENT]
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/chat/ws") as ws:
            await ws.send_json({"type": "hello", "token": None, "lang": "en"})
            frames = await _frames_until(ws, "history")
            session, history = frames[0], frames[-1]["messages"]
            assert session["type"] == "session"
            assert len(session["token"]) >= 20 and session["conversation"]
            assert history[0]["text"] == content.text("welcome.intro", "en")
            assert history[-1]["options"][0] == content.text("welcome.opt_safe", "en")
            await _safe_now_then_who(ws, content, "en")


async def test_a_reload_in_the_same_tab_resumes_the_conversation(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        content = app[CONTENT]
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{url}/chat/ws") as ws:
                await ws.send_json({"type": "hello", "token": None, "lang": "en"})
                token = (await _frames_until(ws, "session"))[-1]["token"]
                await ws.send_json({"type": "message", "text": "1", "id": "c1"})
                while (await _next_message(ws))["text"] != content.text("welcome.who", "en"):
                    pass
            async with http.ws_connect(f"{url}/chat/ws") as ws:
                await ws.send_json({"type": "hello", "token": token, "lang": "en"})
                frames = await _frames_until(ws, "history")
                history = frames[-1]["messages"]
                assert frames[0]["token"] == token
                assert [m["text"] for m in history if m["author"] == "person"] == ["1"]
                assert history[-1]["text"] == content.text("welcome.who", "en")
                await ws.send_json({"type": "message", "text": "1", "id": "c2"})
                assert (await _next_message(ws))["text"] == content.text("own.start", "en")


async def test_a_resent_message_with_the_same_id_is_handled_once(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/chat/ws") as ws:
            await ws.send_json({"type": "hello", "token": None, "lang": "en"})
            await _frames_until(ws, "history")
            for _ in range(3):
                await ws.send_json({"type": "message", "text": "1", "id": "same"})
            await _next_message(ws)
        store = app[STORE]
        conversations = await store.conversations_with_pending_inbound()
        assert conversations == []
        # One conversation, one message from the person.
        async with store.session() as session:
            from sqlalchemy import func, select

            from helpline.storage.models import MessageRow

            count = await session.scalar(
                select(func.count()).select_from(MessageRow).where(MessageRow.author == "person")
            )
        assert count == 1


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        json.dumps([1, 2, 3]),
        json.dumps({"type": "message", "text": 5}),
        json.dumps({"type": "message", "text": "x" * 5000, "id": "big"}),
        json.dumps({"type": "unknown"}),
    ],
)
async def test_bad_frames_get_a_calm_answer_and_the_chat_carries_on(
    frame: str, sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        content = app[CONTENT]
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/chat/ws") as ws:
            await ws.send_json({"type": "hello", "token": None, "lang": "en"})
            await _frames_until(ws, "history")
            await ws.send_str(frame)
            await ws.send_json({"type": "message", "text": "1", "id": "ok"})
            frames = await _frames_until(ws, "message")
            while frames[-1]["text"] != content.text("welcome.who", "en"):
                frames += await _frames_until(ws, "message")
            assert all(f["type"] != "message" or "Traceback" not in f["text"] for f in frames)


async def test_an_oversize_frame_closes_the_socket_without_harm(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (_app, _, url):
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{url}/chat/ws") as ws:
                await ws.send_json({"type": "hello", "token": None, "lang": "en"})
                await _frames_until(ws, "history")
                await ws.send_str("x" * (64 * 1024))
                msg = await ws.receive(timeout=10)
                assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            async with http.get(f"{url}/healthz") as resp:
                assert resp.status == 200


# Nested deeper than Python's JSON parser follows (it raises RecursionError, not
# ValueError), and still under the socket's 16 KB frame limit.
TOO_DEEP = ["[" * 5000, '{"a":' * 3000]


def _errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize("frame", TOO_DEEP, ids=["array", "object"])
async def test_a_frame_nested_too_deep_is_answered_as_a_bad_frame_and_the_chat_carries_on(
    frame: str, sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # It used to end the handler with a RecursionError: the socket dropped without a close
    # frame and the log took a traceback.
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        content = app[CONTENT]
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/chat/ws") as ws:
            await ws.send_json({"type": "hello", "token": None, "lang": "cy"})
            await _frames_until(ws, "history")
            await ws.send_str(frame)
            error = (await _frames_until(ws, "error"))[-1]
            assert error["text"] == content.text("web.error_format", "cy")
            await _safe_now_then_who(ws, content, "cy")
    assert _errors_logged(caplog) == []


@pytest.mark.parametrize("frame", TOO_DEEP, ids=["array", "object"])
async def test_a_hello_nested_too_deep_is_refused_as_a_hello_that_is_not_json(
    frame: str, sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (_app, _, url):
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/chat/ws") as ws:
            await ws.send_str(frame)
            msg = await ws.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
    assert _errors_logged(caplog) == []


async def test_a_page_that_only_pings_is_closed_when_the_hello_is_due(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each ping answered restarted the wait for the hello: a socket that pinged and never
    # said hello stayed open for ever, outside the limit on new chats (counted from hello).
    monkeypatch.setattr(webchat, "HELLO_TIMEOUT", 1.0)
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (_app, _, url):
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/chat/ws") as ws:

            async def ping() -> None:
                while True:
                    await asyncio.sleep(0.2)
                    await ws.ping()

            pinging = asyncio.create_task(ping())
            try:
                # One deadline here too: the client's receive(timeout=) restarts on pongs.
                async with asyncio.timeout(5):
                    msg = await ws.receive()
            finally:
                pinging.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
                    await pinging
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION


async def test_a_message_too_long_for_one_is_taken_in_pieces_and_danger_at_its_end_answered(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Our page splits a long story itself; another client sending it whole used to be told
    # only "too long", and the knife at its end went unread.
    story = "It started years ago and I never told anyone. " * 100
    danger = "Tonight I have a knife and I am going to kill her."
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        content = app[CONTENT]
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/chat/ws") as ws:
            await ws.send_json({"type": "hello", "token": None, "lang": "en"})
            token = (await _frames_until(ws, "session"))[-1]["token"]
            await _frames_until(ws, "history")
            await ws.send_json({"type": "message", "text": story + danger, "id": "long"})
            guidance = content.text("risk.immediate", "en")
            while (await _next_message(ws))["text"] != guidance:
                pass
            await ws.send_json({"type": "message", "text": story + danger, "id": "long"})
        conv = await app[STORE].open_conversation(app[PRIVACY].contact_key("web", token))
        assert conv is not None and conv.risk_level == "immediate"
        said = [m.text for m in await app[STORE].transcript(conv.id) if m.author.value == "person"]
        assert "".join(said) == story + danger and all(len(t) <= 4000 for t in said)


async def test_a_websocket_from_another_site_is_refused(sqlite_url: str, tmp_path: Path) -> None:
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (_app, _, url):
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(f"{url}/chat/ws", headers={"Origin": "https://evil.example"})
            assert refused.value.status == 403


async def test_the_page_is_served_in_welsh_with_a_strict_policy(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        async with aiohttp.ClientSession() as http, http.get(f"{url}/?lang=cy") as resp:
            body = await resp.text()
            assert resp.status == 200
            csp = resp.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp
            assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert 'lang="cy"' in body
        assert app[CONTENT].text("web.send", "cy") in body
        assert "{{" not in body


async def test_a_quiet_chat_is_warned_can_be_kept_open_and_is_told_when_it_ends(
    sqlite_url: str, tmp_path: Path
) -> None:
    from datetime import timedelta

    from helpline.app import ENGINE
    from helpline.domain import utcnow

    # The wall clock: the chat is opened now, and idleness is measured from then.
    settings = settings_for(sqlite_url, tmp_path)
    async with running(settings, serve=True, clock=utcnow) as (app, _, url):
        engine = app[ENGINE]
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/chat/ws") as ws:
            await ws.send_json({"type": "hello", "token": None, "lang": "en"})
            await _frames_until(ws, "history")
            # Everything counts as "quiet" with a zero idle time; warn once, five minutes ahead.
            assert await engine.warn_idle(timedelta(0), timedelta(minutes=5)) == 1
            status = (await _frames_until(ws, "status"))[-1]
            assert status["state"] == "idle_warning"
            assert status["text"] == app[CONTENT].text("idle.warning", "en", minutes=5)
            assert await engine.warn_idle(timedelta(0), timedelta(minutes=5)) == 0

            await ws.send_json({"type": "keepalive"})
            # Keeping it open re-arms the warning for the next quiet spell.
            await eventually(lambda: engine.warn_idle(timedelta(0), timedelta(minutes=5)))
            assert (await _frames_until(ws, "status"))[-1]["state"] == "idle_warning"
            assert await engine.close_idle(timedelta(0)) == 1
            ended = (await _frames_until(ws, "status"))[-1]
            assert ended["state"] == "ended"


async def test_typing_cymraeg_switches_the_page_language(sqlite_url: str, tmp_path: Path) -> None:
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/chat/ws") as ws:
            await ws.send_json({"type": "hello", "token": None, "lang": "en"})
            await _frames_until(ws, "history")
            await ws.send_json({"type": "message", "text": "Cymraeg", "id": "cy"})
            frames = await _frames_until(ws, "language")
            assert frames[-1]["lang"] == "cy"
            texts = [f["text"] for f in frames if f["type"] == "message"]
            assert app[CONTENT].text("language.switched", "cy") in texts


async def test_the_widget_gets_its_words_and_title_from_content(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{url}/chat/widget.json?lang=cy") as r,
        ):
            words = await r.json()
        assert words["open"] == app[CONTENT].text("web.widget_open", "cy")
        assert words["title"] == app[CONTENT].text("web.page_title", "cy")
        assert words["exit"] == app[SETTINGS].exit_url  # where its quick exit goes at worst


async def test_a_websocket_whose_origin_cannot_be_read_is_refused(
    sqlite_url: str, tmp_path: Path
) -> None:
    # urlsplit raises on an unclosed IPv6 bracket: that used to answer 500, not 403.
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (_app, _, url):
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(f"{url}/chat/ws", headers={"Origin": "http://[::1"})
            assert refused.value.status == 403


@pytest.mark.redis
async def test_a_reply_made_while_live_events_were_cut_off_still_reaches_the_open_chat(
    sqlite_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    # The instance's subscription to live events drops (a network fault, a Redis fail-over)
    # and a reply is published before it is back: Redis passes it to no one. The chat page
    # must still get it, without reconnecting: it may be the 999 guidance.
    settings = settings_for(sqlite_url, tmp_path, redis_url=redis_url, redis_prefix=redis_prefix)
    async with (
        running(settings, serve=True) as (app, _, url),
        hub_link(redis_url, redis_prefix) as link,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{url}/chat/ws") as ws,
    ):
        content = app[CONTENT]
        await ws.send_json({"type": "hello", "token": None, "lang": "en"})
        token = (await _frames_until(ws, "session"))[-1]["token"]
        await _frames_until(ws, "history")
        async with link.cut_off(app[HUB]):  # the reply goes out in the gap
            await app[ENGINE].handle(InboundMessage("web", token, "1"))
        frames = await _frames_until(ws, "message")
        while frames[-1]["text"] != content.text("welcome.who", "en"):
            frames += await _frames_until(ws, "message")
        # Once: not again when live events come back, nor as anything already shown.
        texts = [f["text"] for f in frames if f["type"] == "message"]
        assert texts == [content.text("welcome.who", "en")]
        await ws.send_json({"type": "message", "text": "1", "id": "after"})
        assert (await _next_message(ws))["text"] == content.text("own.start", "en")


@pytest.mark.redis
async def test_a_chat_closed_while_live_events_were_cut_off_is_shown_as_ended(
    sqlite_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    from datetime import timedelta

    from helpline.domain import utcnow

    # Closed for being quiet while the instance's subscription was down: the page must not
    # be left open, with the person writing into a conversation that has ended.
    settings = settings_for(sqlite_url, tmp_path, redis_url=redis_url, redis_prefix=redis_prefix)
    async with (
        running(settings, serve=True, clock=utcnow) as (app, _, url),
        hub_link(redis_url, redis_prefix) as link,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{url}/chat/ws") as ws,
    ):
        await ws.send_json({"type": "hello", "token": None, "lang": "en"})
        await _frames_until(ws, "history")
        async with link.cut_off(app[HUB]):  # the chat ends in the gap
            assert await app[ENGINE].close_idle(timedelta(0)) == 1
        frames = await _frames_until(ws, "status")
        assert frames[-1]["state"] == "ended"
        closing = app[CONTENT].text("idle.closed", "en")
        assert [f["text"] for f in frames if f["type"] == "message"] == [closing]


async def test_a_reply_caught_up_after_live_events_came_back_is_shown_once(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Live events come back (RESYNC) between a reply's save and its own event: the catch-up
    # sends the reply from the database, and its event must not send it a second time.
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        content, web = app[CONTENT], app[SENDERS]["web"]
        send = web.send

        async def resynced_first(message: Any) -> Any:
            app[HUB].resync()
            return await send(message)

        monkeypatch.setattr(web, "send", resynced_first)
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/chat/ws") as ws:
            await ws.send_json({"type": "hello", "token": None, "lang": "en"})
            await _frames_until(ws, "history")
            await ws.send_json({"type": "message", "text": "1", "id": "one"})
            frames = await _frames_until(ws, "message")
            await ws.send_json({"type": "message", "text": "1", "id": "two"})
            frames += await _frames_until(ws, "message")
            while frames[-1].get("text") != content.text("own.start", "en"):
                frames += await _frames_until(ws, "message")
        ids = [f["id"] for f in frames if f["type"] == "message"]
        assert len(ids) == len(set(ids)), f"a reply was shown twice: {ids}"


async def test_the_welsh_link_turns_an_english_conversation_welsh(
    sqlite_url: str, tmp_path: Path
) -> None:
    # "Cymraeg" at the top of the page reloads it in Welsh with the same token: the bot must
    # follow, as it does when the person types "Cymraeg".
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        content = app[CONTENT]
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{url}/chat/ws") as ws:
                await ws.send_json({"type": "hello", "token": None, "lang": "en"})
                token = (await _frames_until(ws, "session"))[-1]["token"]
                await _frames_until(ws, "history")
            async with http.ws_connect(f"{url}/chat/ws") as ws:
                await ws.send_json({"type": "hello", "token": token, "lang": "cy"})
                history = (await _frames_until(ws, "history"))[-1]["messages"]
                texts = [m["text"] for m in history]
                assert content.text("language.switched", "cy") in texts
                assert history[-1]["options"][0] == content.text("welcome.opt_safe", "cy")
                await _safe_now_then_who(ws, content, "cy")


async def test_a_welsh_page_is_told_in_welsh_of_a_bad_frame_and_a_restart(
    sqlite_url: str, tmp_path: Path
) -> None:
    from channels.webchat import _close_sockets

    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        content = app[CONTENT]
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/chat/ws") as ws:
            await ws.send_json({"type": "hello", "token": None, "lang": "cy"})
            await _frames_until(ws, "history")
            await ws.send_str("not json")
            error = (await _frames_until(ws, "error"))[-1]
            assert error["text"] == content.text("web.error_format", "cy")
            await _close_sockets(app)
            status = (await _frames_until(ws, "status"))[-1]
            assert status["state"] == "restarting"
            assert status["text"] == content.text("web.restarting", "cy")


async def test_only_scripts_and_styles_are_served_as_files_not_the_page_templates(
    sqlite_url: str, tmp_path: Path
) -> None:
    # /static/chat.html was a working chat page with every label a {{placeholder}}, and
    # /static/error.html an error page without its quick exit.
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (_app, _, url):
        async with aiohttp.ClientSession() as http:
            for path in ("/static/chat.js", "/static/chat.css", "/static/exit.js"):
                async with http.get(url + path) as resp:
                    assert resp.status == 200
            long_name = "/static/" + "a" * 5000 + ".js"  # too long for the file system
            for path in (
                "/static/chat.html",
                "/static/error.html",
                "/static/",
                "/static/.x",
                long_name,
            ):
                async with http.get(url + path, headers={"Accept": "text/html"}) as resp:
                    body = await resp.text()
                    assert resp.status == 404 and "{{" not in body
                    assert 'id="exit-this-page"' in body  # the calm error page, with its exit


def _rename(db: Path, table: str, to: str) -> None:
    """The database failing for real: a table its statements need is gone (and back)."""
    conn = sqlite3.connect(db)
    try:
        conn.execute(f"ALTER TABLE {table} RENAME TO {to}")
        conn.commit()
    finally:
        conn.close()


async def test_a_web_chat_message_the_database_cannot_store_is_refused_calmly_then_taken(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "helpline.db"
    settings = settings_for(f"sqlite+aiosqlite:///{db}", tmp_path)
    async with running(settings, serve=True) as (app, _, url):
        content = app[CONTENT]
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/chat/ws") as ws:
            await ws.send_json({"type": "hello", "token": None, "lang": "en"})
            await _frames_until(ws, "history")
            _rename(db, "messages", "messages_away")
            with caplog.at_level(logging.INFO):
                await ws.send_json({"type": "message", "text": "1", "id": "c1"})
                frames = await _frames_until(ws, "error")
            error = frames[-1]
            assert error["text"] == content.text("web.error_store", "en")
            # It names the message it refuses, and when to try again; nothing acknowledges it.
            assert error["id"] == "c1" and error["retry_after"] > 0
            assert not [f for f in frames if f["type"] == "ack"]
            assert not any(r.name == "aiohttp.server" for r in caplog.records)
            _rename(db, "messages_away", "messages")
            # The page sends it again (chat.js keeps it as "not sent yet"): taken now.
            await ws.send_json({"type": "message", "text": "1", "id": "c1"})
            frames = await _frames_until(ws, "ack")
            assert frames[-1] == {"type": "ack", "id": "c1"}
            frames = await _frames_until(ws, "message")
            while frames[-1]["text"] != content.text("welcome.who", "en"):
                frames += await _frames_until(ws, "message")


@pytest.mark.parametrize("said", ["adviser", "he has just come home with a knife"])
async def test_the_quick_exit_is_told_to_the_adviser_and_leaves_the_queue_as_it_was(
    said: str, database_url: str, tmp_path: Path
) -> None:
    # The page forgets its token on the quick exit, so nobody can come back to this chat: an
    # adviser was left writing to nobody. It is said in the transcript; the wait (at its
    # priority: the quick exit is pressed when danger arrives) stays for an adviser to act on.
    async with running(settings_for(database_url, tmp_path), serve=True) as (app, _, url):
        content = app[CONTENT]
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/chat/ws") as ws:
            await ws.send_json({"type": "hello", "token": None, "lang": "en"})
            session = (await _frames_until(ws, "history"))[0]
            await ws.send_json({"type": "message", "text": said, "id": "c1"})
            await _next_message(ws)
            key = app[PRIVACY].contact_key("web", session["token"])

            async def waiting() -> Any:
                found = await app[STORE].open_conversation(key)
                return found if found is not None and found.owner.value == "queue" else None

            conv = await eventually(waiting)
            await ws.send_json({"type": "exit"})
            line = content.text("event.quick_exit", "en")

            async def told() -> bool:
                return line in [m.text for m in await app[STORE].transcript(conv.id)]

            await eventually(told)
        after = await app[STORE].conversation(conv.id)
        assert after.owner.value == "queue" and not after.closed
        assert after.risk_level == conv.risk_level
        entry = await app[ROUTING].queue.entry(conv.id)
        assert entry is not None, "still waiting, at its priority"


async def test_each_message_is_acknowledged_by_its_id_once_stored_and_a_resend_again(
    sqlite_url: str, tmp_path: Path
) -> None:
    # The page used to take any reply or "typing" on the socket as proof that everything it
    # had sent was stored: a message refused in between was shown as sent and never resent.
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _, url):
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/chat/ws") as ws:
            await ws.send_json({"type": "hello", "token": None, "lang": "en"})
            token = (await _frames_until(ws, "session"))[-1]["token"]
            await _frames_until(ws, "history")
            stored: list[str] = []
            real = app[ENGINE].store.accept_inbound

            async def accept_inbound(**kw: Any) -> Any:
                accepted = await real(**kw)
                stored.append(kw["text"])
                return accepted

            app[ENGINE].store.accept_inbound = accept_inbound
            await ws.send_json({"type": "message", "text": "first", "id": "m1"})
            await ws.send_json({"type": "message", "text": "second", "id": "m2"})
            acks = []
            while len(acks) < 2:
                frame = await ws.receive_json(timeout=10)
                if frame["type"] == "ack":
                    # Acknowledged only once it is stored.
                    assert len(stored) > len(acks)
                    acks.append(frame["id"])
            assert acks == ["m1", "m2"]
            # A resend of a stored message (its ack lost with a dropped connection) is
            # acknowledged again and handled once.
            async with http.ws_connect(f"{url}/chat/ws") as again:
                await again.send_json({"type": "hello", "token": token, "lang": "en"})
                await _frames_until(again, "history")
                await again.send_json({"type": "message", "text": "second", "id": "m2"})
                assert (await _frames_until(again, "ack"))[-1] == {"type": "ack", "id": "m2"}
        assert await _client_ids(app, token) == ["m1", "m2"]


async def test_a_message_over_the_limit_is_refused_by_its_id_and_a_resend_of_a_stored_one_is_not(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = settings_for(sqlite_url, tmp_path, messages_per_minute=2)
    async with running(settings, serve=True) as (app, _, url):
        content = app[CONTENT]
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/chat/ws") as ws:
            await ws.send_json({"type": "hello", "token": None, "lang": "en"})
            token = (await _frames_until(ws, "session"))[-1]["token"]
            await _frames_until(ws, "history")
            for n in range(3):
                await ws.send_json({"type": "message", "text": f"line {n}", "id": f"n{n}"})
            answers: dict[str, dict[str, Any]] = {}
            while len(answers) < 3:
                frame = await ws.receive_json(timeout=10)
                if frame["type"] in ("ack", "error"):
                    answers[frame["id"]] = frame
            assert answers["n0"]["type"] == answers["n1"]["type"] == "ack"
            refused = answers["n2"]
            assert refused["type"] == "error"
            assert refused["text"] == content.text("web.error_slow_down", "en")
            assert refused["retry_after"] == 60
            # Still over the limit, a stored message sent again is acknowledged, not refused.
            await ws.send_json({"type": "message", "text": "line 1", "id": "n1"})
            assert (await _frames_until(ws, "ack"))[-1] == {"type": "ack", "id": "n1"}
        assert await _client_ids(app, token) == ["n0", "n1"]


async def test_the_history_names_the_page_s_own_id_for_each_of_its_messages(
    sqlite_url: str, tmp_path: Path
) -> None:
    # So a page that reconnects knows exactly which of its unacknowledged messages are
    # stored (shown once, from the history) and which to send again.
    async with running(settings_for(sqlite_url, tmp_path), serve=True) as (_, _, url):
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{url}/chat/ws") as ws:
                await ws.send_json({"type": "hello", "token": None, "lang": "en"})
                frames = await _frames_until(ws, "history")
                assert frames[0]["acks"] is True, "the server says it acknowledges by id"
                token = frames[0]["token"]
                await ws.send_json({"type": "message", "text": "1", "id": "mine-1"})
                await _frames_until(ws, "ack")
            async with http.ws_connect(f"{url}/chat/ws") as ws:
                await ws.send_json({"type": "hello", "token": token, "lang": "en"})
                history = (await _frames_until(ws, "history"))[-1]["messages"]
        person = [m for m in history if m["author"] == "person"]
        assert [(m["text"], m["client_id"]) for m in person] == [("1", "mine-1")]
        assert all("client_id" not in m for m in history if m["author"] != "person")


async def _client_ids(app: Any, token: str) -> list[str]:
    """The page's ids of the person's messages stored, in order (their text may be sealed
    while it waits to be handled, so it is not compared)."""
    conv = await app[STORE].open_conversation(app[PRIVACY].contact_key("web", token))
    assert conv is not None
    said = [m for m in await app[STORE].transcript(conv.id) if m.author.value == "person"]
    return [str(m.external_id).rsplit(":", 1)[-1] for m in said]
