"""When the database fails under a message: the person is told it was not sent, nothing
crashes, and the message goes through once the database is back."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from helpline.app import CONTENT
from tests.support import running, settings_for


async def _frames_until(ws: aiohttp.ClientWebSocketResponse, kind: str) -> list[dict[str, Any]]:
    seen = []
    while True:
        frame = await ws.receive_json(timeout=10)
        seen.append(frame)
        if frame["type"] == kind:
            return seen


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
                error = (await _frames_until(ws, "error"))[-1]
            assert error["text"] == content.text("web.error_store", "en")
            assert not any(r.name == "aiohttp.server" for r in caplog.records)
            _rename(db, "messages_away", "messages")
            # The page sends it again (chat.js keeps it as "not sent yet"): taken now.
            await ws.send_json({"type": "message", "text": "1", "id": "c1"})
            frames = await _frames_until(ws, "message")
            while frames[-1]["text"] != content.text("welcome.who", "en"):
                frames += await _frames_until(ws, "message")
