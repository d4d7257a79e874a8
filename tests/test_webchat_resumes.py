"""Resuming a web chat (a reload, a new network) is limited per chat as writing is: one token
opening hundreds of sockets used to slow every other person's chat down."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from channels.webchat import TOO_MANY_NEW_CHATS
from helpline.app import CONTENT, ENGINE
from tests.support import running, settings_for


async def test_a_chat_resumed_too_often_is_told_to_slow_down_and_others_are_not(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with (
        running(settings_for(sqlite_url, tmp_path), serve=True) as (app, _fake, url),
        aiohttp.ClientSession() as http,
    ):
        per_minute = app[ENGINE].message_limits[0].count
        slow_down = app[CONTENT].text("web.error_slow_down", "en")

        async def hello(token: str | None) -> tuple[dict[str, str], int | None]:
            """The first frame the server answers a hello with, and its close code if any."""
            async with http.ws_connect(f"{url}/chat/ws") as ws:
                await ws.send_json({"type": "hello", "token": token, "lang": "en"})
                first = await ws.receive_json(timeout=10)
                if first["type"] == "error":
                    await ws.receive(timeout=10)
                return first, ws.close_code

        first, _ = await hello(None)
        token = first["token"]
        answers = [await hello(token) for _ in range(per_minute + 2)]
        resumed = [frame for frame, _ in answers if frame["type"] == "session"]
        refused = [(frame["text"], code) for frame, code in answers if frame["type"] == "error"]
        assert len(resumed) == per_minute
        assert all(frame["token"] == token for frame in resumed)
        assert refused == [(slow_down, TOO_MANY_NEW_CHATS)] * 2

        # Someone else's chat, new or resumed, is not held back by it.
        other, _ = await hello(None)
        assert other["type"] == "session"
        again, _ = await hello(other["token"])
        assert again == {**again, "type": "session", "token": other["token"]}
