"""Several service processes on the real PostgreSQL and Redis behave as one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.instances import instances

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def _until(ws: aiohttp.ClientWebSocketResponse, kind: str) -> list[dict[str, Any]]:
    frames = []
    while True:
        frame = await ws.receive_json(timeout=15)
        frames.append(frame)
        if frame["type"] == kind:
            return frames


async def _say(ws: aiohttp.ClientWebSocketResponse, text: str, msg_id: str) -> str:
    await ws.send_json({"type": "message", "text": text, "id": msg_id})
    return str((await _until(ws, "message"))[-1]["text"])


async def test_a_person_continues_on_another_instance_after_one_is_killed(
    pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    async with instances(2, pg_url, redis_url, redis_prefix, tmp_path) as (a, b):
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{a.url}/chat/ws") as ws:
                await ws.send_json({"type": "hello", "token": None, "lang": "en"})
                frames = await _until(ws, "history")
                token, reference = frames[0]["token"], frames[0]["conversation"]
                first = await _say(ws, "1", "m1")
            a.kill()
            async with http.ws_connect(f"{b.url}/chat/ws") as ws:
                await ws.send_json({"type": "hello", "token": token, "lang": "en"})
                frames = await _until(ws, "history")
                assert frames[0]["conversation"] == reference
                history = frames[-1]["messages"]
                assert history[-1]["text"] == first
                second = await _say(ws, "2", "m2")
            # A fresh conversation given the same two answers says the same: the resumed one
            # really continued from where it was, not from the start.
            async with http.ws_connect(f"{b.url}/chat/ws") as control:
                await control.send_json({"type": "hello", "token": None, "lang": "en"})
                await _until(control, "history")
                assert await _say(control, "1", "c1") == first
                assert await _say(control, "2", "c2") == second
        logs = "".join(p.read_text() for p in tmp_path.glob("instance-*.log"))
        assert token not in logs


async def test_a_message_on_one_instance_reaches_a_socket_on_another(
    pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """Two tabs of the same conversation on different instances both see the replies:
    delivery crosses instances through Redis."""
    async with instances(2, pg_url, redis_url, redis_prefix, tmp_path) as (a, b):
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{a.url}/chat/ws") as on_a:
                await on_a.send_json({"type": "hello", "token": None, "lang": "en"})
                token = (await _until(on_a, "history"))[0]["token"]
                async with http.ws_connect(f"{b.url}/chat/ws") as on_b:
                    await on_b.send_json({"type": "hello", "token": token, "lang": "en"})
                    await _until(on_b, "history")
                    reply_on_a = await _say(on_a, "1", "x1")
                    reply_on_b = (await _until(on_b, "message"))[-1]["text"]
                    assert reply_on_b == reply_on_a
