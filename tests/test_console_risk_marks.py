"""A risky message stays marked in the console however the console came to show it: by the
live event as it arrived, or in the transcript when the console opens the conversation,
reconnects or catches up (which used to drop the mark)."""

from __future__ import annotations

from pathlib import Path

from helpline.app import ROUTING, STORE
from helpline.domain import InboundMessage
from helpline.ports import Priority
from tests.console_support import Console, console_service, next_frame, person_asks_for_adviser
from tests.support import engine_of

PHONE = "+447700900456"


async def test_the_transcript_marks_the_persons_risky_messages_as_the_live_event_does(
    database_url: str, tmp_path: Path
) -> None:
    async with console_service(database_url, tmp_path, ("alice",)) as (app, _fake, url):
        conv_id = await person_asks_for_adviser(app, PHONE)
        engine = engine_of(app)
        await engine.handle(InboundMessage("test", PHONE, "I want to kill myself"))
        await engine.handle(InboundMessage("test", PHONE, "sorry, when can we talk?"))
        async with Console(url) as alice:
            await alice.login("alice")
            status, view = await alice.get(f"/console/api/conversations/{conv_id}")
            assert status == 200
            marks = {m["text"]: m.get("risk") for m in view["messages"] if m["direction"] == "in"}
            assert marks["I want to kill myself"] == "suicide"
            assert marks["sorry, when can we talk?"] == "none"
            assert all("risk" not in m for m in view["messages"] if m["author"] != "person"), (
                "only the person's own words are screened"
            )

            # The live socket's transcript (opening, reconnecting) carries the same marks.
            ws = await alice.socket()
            await ws.send_json({"type": "watch", "conversation": conv_id})
            frame = await next_frame(ws, lambda f: f["type"] == "transcript")
            live = {m["text"]: m.get("risk") for m in frame["messages"] if m["direction"] == "in"}
            assert live == marks


async def test_a_new_arrival_shows_the_danger_the_queue_holds_it_at_before_its_risk_is_saved(
    database_url: str, tmp_path: Path
) -> None:
    # Danger in a first message puts the conversation in the queue at its priority inside the
    # turn, before the turn's save stores the risk: a queue read in between showed it (and
    # the console announced someone new) as "None found". Here, that moment held still.
    async with console_service(database_url, tmp_path, ("alice",)) as (app, _fake, url):
        conv_id = await person_asks_for_adviser(app, PHONE)
        conv = await app[STORE].conversation(conv_id)
        assert conv.risk_level == "none"
        queue = app[ROUTING].queue
        entry = await queue.entry(conv_id)
        assert entry is not None
        await queue.escalate(conv_id, Priority.IMMEDIATE)
        async with Console(url) as alice:
            await alice.login("alice")
            _, snapshot = await alice.get("/console/api/queue")
            [item] = [i for i in snapshot["waiting"] if i["id"] == conv_id]
            assert item["risk"] == "immediate"
            assert item["priority"] == "immediate"
