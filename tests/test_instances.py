"""Several service processes on the real PostgreSQL and Redis behave as one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from handoff import accounts
from helpline.storage import SqlStore
from tests.console_support import PASSWORD, Console, next_frame, waiting_refs
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


# -- a person on one instance, an adviser on another -------------------------------------------


async def _add_advisers(pg_url: str, *names: str) -> None:
    """Accounts straight into the shared database (the instances have migrated it)."""
    store = SqlStore(pg_url)
    try:
        for name in names:
            await accounts.add_user(store, name, "adviser", PASSWORD)
    finally:
        await store.close()


async def _person_asks_for_an_adviser(
    http: aiohttp.ClientSession, url: str
) -> tuple[aiohttp.ClientWebSocketResponse, str, str]:
    """A web chat that asked for an adviser; returns the socket, its token and reference."""
    ws = await http.ws_connect(f"{url}/chat/ws")
    await ws.send_json({"type": "hello", "token": None, "lang": "en"})
    session = (await _until(ws, "history"))[0]
    await ws.send_json({"type": "message", "text": "adviser", "id": "ask"})
    await _until(ws, "message")  # waiting, or when the line opens (the wall clock decides)
    return ws, session["token"], session["conversation"]


async def _waiting(ws: aiohttp.ClientWebSocketResponse, reference: str) -> str:
    """Read console frames until the conversation is waiting; return its id."""
    frame = await next_frame(
        ws, lambda f: f["type"] == "queue" and reference in waiting_refs(f), timeout=15
    )
    return str(next(i["id"] for i in frame["waiting"] if i["reference"] == reference))


async def _from(ws: aiohttp.ClientWebSocketResponse, author: str, text: str) -> dict[str, Any]:
    return await next_frame(
        ws,
        lambda f: f["type"] == "message" and f.get("author") == author and f["text"] == text,
        timeout=15,
    )


def _claimed(frame: dict[str, Any], reference: str) -> bool:
    return (
        frame["type"] == "queue"
        and reference not in waiting_refs(frame)
        and any(i["reference"] == reference for i in frame["claimed"])
    )


async def test_a_person_on_one_instance_and_an_adviser_on_another_talk_live_both_ways(
    pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    async with instances(2, pg_url, redis_url, redis_prefix, tmp_path) as (a, b):
        await _add_advisers(pg_url, "alice")
        async with aiohttp.ClientSession() as http, Console(b.url) as alice:
            await alice.login("alice")
            console = await alice.socket()
            person, _token, reference = await _person_asks_for_an_adviser(http, a.url)
            conv_id = await _waiting(console, reference)  # the queue on B shows A's person

            status, _ = await alice.post(f"/console/api/conversations/{conv_id}/claim")
            assert status == 200
            await console.send_json({"type": "watch", "conversation": conv_id})
            await next_frame(console, lambda f: f["type"] == "watching")

            status, _ = await alice.post(
                f"/console/api/conversations/{conv_id}/say", {"text": "Hello, I'm Alice on B."}
            )
            assert status == 200
            await _from(person, "adviser", "Hello, I'm Alice on B.")  # reached A's socket

            await person.send_json({"type": "message", "text": "I shouted at her", "id": "p1"})
            heard = await _from(console, "person", "I shouted at her")  # reached B's console
            assert heard["conversation"] == conv_id
            await person.close()
            await console.close()


async def test_two_advisers_on_two_instances_race_for_a_claim_and_exactly_one_wins(
    pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    async with instances(2, pg_url, redis_url, redis_prefix, tmp_path) as (a, b):
        await _add_advisers(pg_url, "alice", "bob")
        async with (
            aiohttp.ClientSession() as http,
            Console(a.url) as alice,
            Console(b.url) as bob,
        ):
            await alice.login("alice")
            await bob.login("bob")
            watching = await bob.socket()
            for round_ in range(3):  # a race can be won by luck once; not three times
                person, _, reference = await _person_asks_for_an_adviser(http, a.url)
                conv_id = await _waiting(watching, reference)
                path = f"/console/api/conversations/{conv_id}/claim"
                (alice_status, _), (bob_status, _) = await asyncio.gather(
                    alice.post(path), bob.post(path)
                )
                assert sorted([alice_status, bob_status]) == [200, 409], round_
                winner = "alice" if alice_status == 200 else "bob"
                # The claim is seen on B at once, whichever instance took it.
                claimed = await next_frame(
                    watching,
                    lambda f, ref=reference: _claimed(f, ref),
                    timeout=15,
                )
                item = next(i for i in claimed["claimed"] if i["reference"] == reference)
                assert item["claimed_by"] == winner
                store = SqlStore(pg_url)
                try:
                    assert (await store.conversation(conv_id)).adviser == winner
                finally:
                    await store.close()
                await person.close()
            await watching.close()


async def test_a_person_with_an_adviser_carries_on_through_another_instance_after_a_kill(
    pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    async with instances(2, pg_url, redis_url, redis_prefix, tmp_path) as (a, b):
        await _add_advisers(pg_url, "alice")
        async with aiohttp.ClientSession() as http, Console(b.url) as alice:
            await alice.login("alice")
            console = await alice.socket()
            person, token, reference = await _person_asks_for_an_adviser(http, a.url)
            conv_id = await _waiting(console, reference)
            assert (await alice.post(f"/console/api/conversations/{conv_id}/claim"))[0] == 200
            await console.send_json({"type": "watch", "conversation": conv_id})
            await next_frame(console, lambda f: f["type"] == "watching")
            await person.send_json({"type": "message", "text": "before the crash", "id": "k1"})
            await _from(console, "person", "before the crash")

            a.kill()  # SIGKILL mid-conversation: no shutdown handler runs on A
            await person.receive(timeout=15)  # the socket to A is gone
            async with http.ws_connect(f"{b.url}/chat/ws") as again:
                await again.send_json({"type": "hello", "token": token, "lang": "en"})
                frames = await _until(again, "history")
                assert frames[0]["conversation"] == reference
                texts = [m["text"] for m in frames[-1]["messages"]]
                assert "before the crash" in texts
                await again.send_json({"type": "message", "text": "after the crash", "id": "k2"})
                heard = await _from(console, "person", "after the crash")
                assert heard["conversation"] == conv_id
                status, _ = await alice.post(
                    f"/console/api/conversations/{conv_id}/say", {"text": "Still here."}
                )
                assert status == 200
                await _from(again, "adviser", "Still here.")
            await console.close()


async def test_a_stopping_instance_tells_open_chats_and_another_carries_on(
    pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """SIGTERM (a deploy): the instance stops being ready, tells the open chat it is
    restarting, exits cleanly, and the chat carries on through the other instance."""
    async with instances(2, pg_url, redis_url, redis_prefix, tmp_path) as (a, b):
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{a.url}/chat/ws") as ws:
                await ws.send_json({"type": "hello", "token": None, "lang": "en"})
                frames = await _until(ws, "history")
                token = frames[0]["token"]
                first = await _say(ws, "1", "m1")
                stopping = asyncio.get_running_loop().run_in_executor(None, a.stop)
                status = (await _until(ws, "status"))[-1]
                assert status["state"] == "restarting" and status["text"]
                closing = await ws.receive(timeout=15)
                assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                await stopping
            assert a.process.returncode == 0
            async with http.ws_connect(f"{b.url}/chat/ws") as ws:
                await ws.send_json({"type": "hello", "token": token, "lang": "en"})
                frames = await _until(ws, "history")
                assert frames[-1]["messages"][-1]["text"] == first
