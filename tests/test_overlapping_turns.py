"""Two turns of one conversation at once: what happens if a conversation's lock is lost (its
lease lapsed while Redis was out of reach, on two instances). The messages' own state fences
the turn's save: the second to save finds them answered, saves nothing and sends nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from helpline.app import CONTENT, STORE
from helpline.domain import Delivery, Direction, InboundMessage
from tests.support import engine_of, running, settings_for


class LapsedLocks:
    """Locks whose lease has lapsed: every holder gets in."""

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        yield


async def test_two_turns_that_overlap_answer_a_message_once(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(settings_for(database_url, tmp_path)) as (app, fake, _):
        engine, store = engine_of(app), app[STORE]
        engine.locks = LapsedLocks()
        accepted = await engine.accept(InboundMessage("test", "+447700900123", "Hello"))

        # Both turns read the waiting message before either saves.
        both_read = asyncio.Barrier(2)
        read = store.pending_turn

        async def pending_turn(conversation_id: str):  # type: ignore[no-untyped-def]
            found = await read(conversation_id)
            await both_read.wait()
            return found

        monkeypatch.setattr(store, "pending_turn", pending_turn)
        await asyncio.gather(
            engine.process(accepted.conversation_id), engine.process(accepted.conversation_id)
        )

        welcome = app[CONTENT].text("welcome.intro", "en")
        assert [m.reply.text for m in fake.sent].count(welcome) == 1
        transcript = await store.transcript(accepted.conversation_id)
        assert [m.text for m in transcript if m.direction == Direction.OUT].count(welcome) == 1
        (hello,) = [m for m in transcript if m.direction == Direction.IN]
        assert hello.status == Delivery.HANDLED

        # The conversation carries on from the turn that was saved.
        monkeypatch.setattr(store, "pending_turn", read)
        before = len(fake.sent)
        await engine.handle(InboundMessage("test", "+447700900123", "yes"))
        assert [m.reply.text for m in fake.sent[before:]].count(welcome) == 0
        assert len(fake.sent) > before
