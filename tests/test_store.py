"""The store on its own: the SQLite writer thread reports a failure at once, never leaves it
waiting, and what a turn stores reads back the same however it is read."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from helpline.domain import Conversation, Delivery, Direction, Reply, utcnow
from helpline.engine import HAND_OFF_DUE, Engine
from helpline.errors import DuplicateMessage, NotFound
from helpline.storage import SqlStore
from helpline.storage.migrate import upgrade
from helpline.storage.store import TOUCH_EVERY
from tests.support import LoopbackProxy


async def _accept(store: SqlStore, n: int) -> object:
    return await store.accept_inbound(
        contact_key=f"{n:064d}",
        channel="test",
        sealed_address=None,
        text="hello",
        external_id=None,
        received_at=utcnow(),
    )


@contextlib.asynccontextmanager
async def _migrated(database_url: str) -> AsyncIterator[SqlStore]:
    """A store on a database brought to the newest schema, closed afterwards."""
    store = SqlStore(database_url)
    try:
        await upgrade(store.engine)
        yield store
    finally:
        await store.close()


async def _first_turn(store: SqlStore) -> tuple[list[Any], Conversation]:
    """A new conversation's first message, and the conversation, as its turn reads them."""
    accepted = await _accept(store, 1)
    pending, conv, _ = await store.pending_turn(accepted.conversation_id)  # type: ignore[attr-defined]
    assert conv is not None
    return pending, conv


async def test_writes_to_a_database_that_cannot_be_opened_fail_and_later_writes_are_tried(
    tmp_path: Path,
) -> None:
    store = SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'helpline.db'}")
    try:
        for n in range(2):
            async with asyncio.timeout(10):
                with pytest.raises(OperationalError):
                    await _accept(store, n)
    finally:
        await store.close()


async def test_a_closed_store_refuses_writes_instead_of_keeping_them_waiting(
    tmp_path: Path,
) -> None:
    store = SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'helpline.db'}")
    await store.close()
    async with asyncio.timeout(10):
        with pytest.raises(RuntimeError, match="closed"):
            await _accept(store, 0)


async def test_the_schema_the_migrations_build_is_the_one_the_code_expects(
    database_url: str,
) -> None:
    # An operator's database is built by the migrations, the code's statements by the models:
    # a table, column or index in one and not the other fails only on that deployment.
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import handoff.models  # noqa: F401 - its tables join the same metadata
    import handoff.stats_models  # noqa: F401 - so do these
    from helpline.storage.engine import create_engine
    from helpline.storage.models import Base

    def compare(sync: Any) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(sync), Base.metadata))

    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(compare) == []
    finally:
        await engine.dispose()


async def test_what_a_turn_stores_reads_back_the_same_through_the_orm(database_url: str) -> None:
    # A turn's statements run on SQLite's own cursor (helpline/storage/prepared.py); the
    # transcript, the console and the statistics read the same rows through the ORM. Both
    # must agree on every value: times (and their order), options, flags.
    store = SqlStore(database_url)
    try:
        await upgrade(store.engine)
        received = utcnow()
        accepted = await store.accept_inbound(
            contact_key="7" * 64,
            channel="test",
            sealed_address="sealed",
            text="I shouted at her again",
            external_id="SM-read-back",
            received_at=received,
        )
        pending, conv, _ = await store.pending_turn(accepted.conversation_id)
        assert conv is not None and [m.text for m in pending] == ["I shouted at her again"]
        assert pending[0].created_at == received
        conv.state, conv.answers = "who", {"_greeted": True, "seen": ["a", "b"]}
        stored = await store.save_turn(
            conv,
            [pending[0].id],
            [Reply("Thank you for telling us.", options=("Yes", "No")), Reply("Second.")],
        )
        await store.mark_sent([m.id for m in stored])

        transcript = await store.transcript(conv.id)
        assert [(m.direction, m.text, m.options, m.status) for m in transcript] == [
            (Direction.IN, "I shouted at her again", (), Delivery.HANDLED),
            (Direction.OUT, "Thank you for telling us.", ("Yes", "No"), Delivery.SENT),
            (Direction.OUT, "Second.", (), Delivery.SENT),
        ]
        assert transcript[0].created_at == received
        assert transcript[1].created_at == stored[0].created_at
        again = await store.conversation(conv.id)
        assert (again.state, again.answers, again.closed) == ("who", conv.answers, False)
        assert again.created_at == conv.created_at and again.last_inbound_at == received
        found = await store.open_conversation("7" * 64)
        assert found is not None and vars(found) == vars(again)
    finally:
        await store.close()


async def test_the_reply_address_is_sealed_when_the_contact_is_written_and_kept_between(
    database_url: str,
) -> None:
    # The engine hands over a function that seals the address: the store seals it for a new
    # contact and for one not seen for a while, and keeps the sealed address it has for every
    # other message of a chat (a text reply goes to it).
    store = SqlStore(database_url)
    sealed: list[str] = []

    def seal() -> str:
        sealed.append(f"sealed-{len(sealed)}")
        return sealed[-1]

    async def accept(at: datetime) -> None:
        await store.accept_inbound(
            contact_key="5" * 64,
            channel="sms",
            sealed_address=seal,
            text="hello",
            external_id=None,
            received_at=at,
        )

    try:
        await upgrade(store.engine)
        now = utcnow()
        await accept(now)
        await accept(now + timedelta(seconds=5))
        await accept(now + timedelta(seconds=10))
        assert sealed == ["sealed-0"]
        assert await store.sealed_address("5" * 64) == "sealed-0"
        await accept(now + TOUCH_EVERY + timedelta(seconds=1))
        assert sealed == ["sealed-0", "sealed-1"]
        assert await store.sealed_address("5" * 64) == "sealed-1"
    finally:
        await store.close()


async def test_a_read_that_fails_leaves_later_reads_working(database_url: str) -> None:
    # A turn's reads run in a transaction the store begins and ends on the driver itself: one
    # that raises (a conversation erased meanwhile) must end it, or every later read on that
    # reader's connection would fail ("cannot start a transaction within a transaction").
    store = SqlStore(database_url)
    try:
        await upgrade(store.engine)
        accepted = await _accept(store, 4)
        for _ in range(6):  # more than there are reader threads
            with pytest.raises(NotFound):
                await store.conversation("no-such-conversation")
        for _ in range(6):
            pending, conv, _ = await store.pending_turn(accepted.conversation_id)  # type: ignore[attr-defined]
            assert conv is not None and [m.text for m in pending] == ["hello"]
    finally:
        await store.close()


async def test_carrying_a_conversation_over_keeps_the_arrivals_danger_in_the_same_write(
    database_url: str,
) -> None:
    # "continue CODE": the arrival is closed and the older conversation takes over. What the
    # arrival knew of danger (its level, its reasons, a hand-off still owed) is saved by the
    # write that closes it, not by a later one that a failure could prevent.
    store = SqlStore(database_url)
    try:
        await upgrade(store.engine)
        older = await store.conversation((await _accept(store, 1)).conversation_id)  # type: ignore[attr-defined]
        arrival = await store.conversation((await _accept(store, 2)).conversation_id)  # type: ignore[attr-defined]
        arrival.risk_level = "immediate"
        arrival.answers = {"_risk_reasons": ["weapon"], HAND_OFF_DUE: ["general", "risk:immediate"]}
        await store.save_turn(arrival, [], [])

        await store.adopt(older.id, arrival.id, utcnow(), Engine._carry_risk)

        carried = await store.conversation(older.id)
        assert carried.risk_level == "immediate"
        assert carried.answers["_risk_reasons"] == ["weapon"]
        assert carried.answers[HAND_OFF_DUE] == ["general", "risk:immediate"]
        assert carried.contact_key == arrival.contact_key
        assert (await store.conversation(arrival.id)).closed
    finally:
        await store.close()


async def test_the_consoles_read_of_several_conversations_finds_those_that_exist(
    database_url: str,
) -> None:
    # The queue snapshot reads every waiting conversation in one statement: each must come
    # back as the single read gives it, and an id no longer there (erased) is left out.
    store = SqlStore(database_url)
    try:
        await upgrade(store.engine)
        ids = [(await _accept(store, n)).conversation_id for n in range(3)]  # type: ignore[attr-defined]
        conv = await store.conversation(ids[1])
        conv.answers = {"_risk_reasons": ["weapon"], "worry": "shouting"}
        conv.risk_level = "immediate"
        await store.save_turn(conv, [], [])
        found = await store.conversations([ids[1], "no-such-id", ids[0], ids[1]])
        assert set(found) == {ids[0], ids[1]}
        for conv_id in found:
            assert vars(found[conv_id]) == vars(await store.conversation(conv_id))
        assert found[ids[1]].answers["_risk_reasons"] == ["weapon"]
        assert found[ids[1]].risk_level == "immediate"
        assert await store.conversations([]) == {}
        assert set(await store.conversations([ids[2]])) == {ids[2]}
        assert set(await store.conversations([*ids, "gone", "also-gone"])) == set(ids)
    finally:
        await store.close()


async def test_each_stored_reply_has_the_id_its_words_were_stored_under(database_url: str) -> None:
    # The ids a turn's save gives back are what delivery marks as sent and what the chat
    # page orders by: each must be the id of that very reply, however the database numbers
    # a statement's rows (on PostgreSQL a turn is one statement, RETURNING in no set order).
    store = SqlStore(database_url)
    try:
        await upgrade(store.engine)
        accepted = await _accept(store, 1)
        pending, conv, _ = await store.pending_turn(accepted.conversation_id)  # type: ignore[attr-defined]
        assert conv is not None
        said = ["One.", "Two.", "One.", "Three.", "Two."]
        stored = await store.save_turn(conv, [pending[0].id], [Reply(t) for t in said])
        assert [m.text for m in stored] == said
        assert [m.id for m in stored] == sorted(m.id for m in stored)
        transcript = {m.id: m.text for m in await store.transcript(conv.id)}
        assert [transcript[m.id] for m in stored] == said
        await store.mark_sent([stored[1].id])
        statuses = {m.id: m.status for m in await store.transcript(conv.id)}
        assert statuses[stored[1].id] is Delivery.SENT
        assert statuses[stored[4].id] is Delivery.PENDING
        assert statuses[pending[0].id] is Delivery.HANDLED
    finally:
        await store.close()


async def test_delivery_reports_only_move_a_reply_forward_and_a_failure_stays(
    database_url: str,
) -> None:
    async with _migrated(database_url) as store:
        pending, conv = await _first_turn(store)
        one, two = await store.save_turn(conv, [pending[0].id], [Reply("One."), Reply("Two.")])
        # Being sent: a report that comes now waits for the SIDs (channels/twilio.py).
        assert await store.awaiting_platform_id("test", one.id)
        assert not await store.awaiting_platform_id("other", one.id)
        assert not await store.awaiting_platform_id("test", pending[0].id)  # the person's
        await store.mark(one.id, Delivery.SENT, platform_id="SMone")
        await store.mark(two.id, Delivery.SENT, platform_id="SMtwo,SMtwo2")
        assert not await store.awaiting_platform_id("test", one.id)

        async def status(message_id: int) -> Delivery:
            return {m.id: m.status for m in await store.transcript(conv.id)}[message_id]

        assert await store.mark_by_platform_id("test", "SMone", Delivery.DELIVERED)
        assert not await store.mark_by_platform_id("test", "SMone", Delivery.SENT)  # late
        assert await status(one.id) is Delivery.DELIVERED
        assert await store.mark_reported("test", two.id, "SMtwo", Delivery.DELIVERED)
        assert await store.mark_reported("test", two.id, "SMtwo2", Delivery.FAILED)  # a part
        assert not await store.mark_reported("test", two.id, "SMtwo", Delivery.DELIVERED)
        assert await status(two.id) is Delivery.FAILED
        # Only a reply on this channel; never a message of the person's.
        assert not await store.mark_reported("other", one.id, "SMone", Delivery.FAILED)
        assert not await store.mark_reported("test", pending[0].id, "SMone", Delivery.FAILED)
        assert await status(pending[0].id) is Delivery.HANDLED
        # Nor a reply given an id a deleted one had (SQLite gives ids again): the report's
        # own id must be one of the reply's.
        assert not await store.mark_reported("test", one.id, "SMgone", Delivery.FAILED)
        assert not await store.mark_reported("test", one.id, "SMone,SMtwo", Delivery.FAILED)
        assert await status(one.id) is Delivery.DELIVERED


async def test_a_redelivery_is_reported_as_a_duplicate_not_a_crash(database_url: str) -> None:
    store = SqlStore(database_url)
    try:
        await upgrade(store.engine)
        for attempt in range(2):
            call = store.accept_inbound(
                contact_key="8" * 64,
                channel="test",
                sealed_address=None,
                text="hello",
                external_id="SM-twice",
                received_at=utcnow(),
            )
            if attempt == 0:
                await call
            else:
                with pytest.raises(DuplicateMessage):
                    await call
        conv = await store.open_conversation("8" * 64)
        assert conv is not None and len(await store.transcript(conv.id)) == 1
    finally:
        await store.close()


async def test_sqlite_rows_written_by_a_turn_are_stored_as_the_orm_stores_them(
    sqlite_url: str,
) -> None:
    # Read back through SQLAlchemy, a date stored in another format could still parse; so
    # compare the stored text itself with a row the ORM wrote (a note, see add_note).
    store = SqlStore(sqlite_url)
    try:
        await upgrade(store.engine)
        accepted = await store.accept_inbound(
            contact_key="6" * 64,
            channel="test",
            sealed_address="sealed",
            text="hello",
            external_id=None,
            received_at=utcnow(),
        )
        pending, conv, _ = await store.pending_turn(accepted.conversation_id)
        assert conv is not None
        await store.save_turn(conv, [pending[0].id], [Reply("Hi.", options=("Yes", "No"))])
        await store.add_note(conv.id, "a note", "Adviser")
        async with store.engine.connect() as conn:
            rows = (
                await conn.exec_driver_sql(
                    "SELECT direction, created_at, options, typeof(created_at) FROM messages"
                    " ORDER BY id"
                )
            ).all()
            closed = (await conn.exec_driver_sql("SELECT closed FROM conversations")).scalar()
        by_orm = next(r for r in rows if r[0] == "note")
        shape = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$")
        assert [r[0] for r in rows] == ["in", "out", "note"]
        for direction, created_at, _, kind in rows:
            assert kind == by_orm[3] == "text" and shape.match(created_at), direction
        assert [r[2] for r in rows] == ["[]", '["Yes", "No"]', by_orm[2]] and by_orm[2] == "[]"
        assert closed == 0
    finally:
        await store.close()


async def test_a_units_operations_commit_one_by_one_and_outlive_a_failed_one(
    database_url: str,
) -> None:
    # On PostgreSQL a turn's reads and writes share one connection (Engine.process); each is
    # still its own transaction, a failed one does not spoil the rest, and tasks started
    # inside use connections of their own.
    store = SqlStore(database_url)
    try:
        await upgrade(store.engine)
        arrival = {
            "contact_key": "7" * 64,
            "channel": "test",
            "sealed_address": None,
            "text": "hello",
            "external_id": "SM-unit",
        }
        async with store.unit():
            first = await store.accept_inbound(**arrival, received_at=utcnow())
            with pytest.raises(DuplicateMessage):
                await store.accept_inbound(**arrival, received_at=utcnow())
            # Seen from other tasks (other connections) while the unit is still open.
            seen = await asyncio.gather(
                *(store.transcript(first.conversation_id) for _ in range(3))
            )
            assert [len(t) for t in seen] == [1, 1, 1]
            pending, conv, _ = await store.pending_turn(first.conversation_id)
            assert conv is not None and [m.id for m in pending] == [first.message_id]
            await store.save_turn(conv, [first.message_id], [Reply("Thank you.")])
            if not store.url.startswith("sqlite"):
                assert store.engine.pool.checkedout() == 1  # type: ignore[attr-defined]
        texts = [m.text for m in await store.transcript(first.conversation_id)]
        assert texts == ["hello", "Thank you."]
        assert (await store.pending_turn(first.conversation_id))[1] is None
    finally:
        await store.close()


@pytest.mark.postgres
async def test_messages_are_still_stored_after_postgresql_drops_every_connection(
    pg_url: str,
) -> None:
    # A database restart or fail-over closes every pooled connection. The next message must
    # be stored on a new one, not fail because the pool handed out a dead connection.
    import asyncpg

    from tests.conftest import PG_DSN

    store = SqlStore(pg_url)
    try:
        await upgrade(store.engine)
        for n in range(3):  # the pool now keeps connections open
            await _accept(store, n)
        name = pg_url.rsplit("/", 1)[1]
        admin = await asyncpg.connect(PG_DSN)
        try:
            ended = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
            assert ended >= 1
            for _ in range(100):  # the server processes are gone
                left = await admin.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name
                )
                if left == 0:
                    break
                await asyncio.sleep(0.05)
        finally:
            await admin.close()
        await asyncio.sleep(0.1)  # as after any restart: the closed sockets have been seen
        async with asyncio.timeout(10):
            accepted = await _accept(store, 99)
        pending, conv, _ = await store.pending_turn(accepted.conversation_id)  # type: ignore[attr-defined]
        assert conv is not None and [m.text for m in pending] == ["hello"]
    finally:
        await store.close()


async def test_a_console_read_cancelled_mid_query_does_not_lock_sqlite_for_others(
    tmp_path: Path,
) -> None:
    # The console's live page closes while its queue snapshot is reading: the read is
    # cancelled. The next write (an adviser's session check) must not wait out SQLite's
    # 10 s busy timeout: it did, once, in CI ("database is locked", the statistics page
    # showing "Something went wrong"), because the cancelled connection kept its lock until
    # the garbage collector freed the half-read cursor.
    import gc
    from datetime import UTC, datetime

    from sqlalchemy import event, select

    from handoff import accounts
    from helpline.storage.models import ConversationRow

    store = SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'helpline.db'}")
    loop = asyncio.get_running_loop()
    victims: list[asyncio.Task[None]] = []

    def cancel_as_it_reads(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if victims and statement.lstrip().upper().startswith("SELECT"):
            loop.call_soon(victims.pop().cancel)

    async def snapshot() -> None:  # as the console's queue snapshot reads
        async with store.session() as session:
            list(await session.scalars(select(ConversationRow)))

    collecting = gc.isenabled()
    gc.disable()  # as in a quiet process: nothing frees the cursor by chance
    try:
        await upgrade(store.engine)
        for n in range(6):
            await _accept(store, n)
        event.listen(store.engine.sync_engine, "before_cursor_execute", cancel_as_it_reads)
        reading = asyncio.create_task(snapshot())
        victims.append(reading)
        with pytest.raises(asyncio.CancelledError):
            await reading
        event.remove(store.engine.sync_engine, "before_cursor_execute", cancel_as_it_reads)
        async with asyncio.timeout(3):
            assert await accounts.session_for(store, "no-such-token", now=datetime.now(UTC)) is None
    finally:
        if collecting:
            gc.enable()
        await store.close()


@pytest.mark.postgres
@pytest.mark.parametrize("redacted", [False, True])  # one statement; a transaction
async def test_turns_cut_short_on_postgresql_leave_no_connection_stuck(
    pg_url: str, redacted: bool
) -> None:
    # A turn cancelled while its statements are on the wire (a shutdown that cannot wait):
    # its connection must not go back to the pool inside a statement or a transaction, for
    # the next turn to find.
    store = SqlStore(pg_url, pool_size=2)
    try:
        await upgrade(store.engine)
        accepted = await _accept(store, 5)
        conv = await store.conversation(accepted.conversation_id)
        for n in range(30):
            redact = {accepted.message_id: "(kept out)"} if redacted else None  # type: ignore[attr-defined]
            cut = asyncio.create_task(store.save_turn(conv, [], [Reply(f"cut {n}")], redact=redact))
            await asyncio.sleep(n * 0.0005)
            cut.cancel()
            await asyncio.gather(cut, return_exceptions=True)
            async with asyncio.timeout(10):
                stored = await store.save_turn(conv, [], [Reply(f"kept {n}")])
                await store.mark_sent([stored[0].id])
        texts = [m.text for m in await store.transcript(conv.id)]
        assert [t for t in texts if t.startswith("kept")] == [f"kept {n}" for n in range(30)]
    finally:
        await store.close()


@pytest.mark.postgres
async def test_a_turn_cancelled_during_its_begin_does_not_swallow_later_writes(
    pg_url: str,
) -> None:
    # Cancelled while its BEGIN is on the wire, a turn used to hand its connection back to
    # the pool inside a transaction nothing would end: every later write on it reported
    # success and was never committed (and held its row locks against other instances).
    import asyncpg

    # Every packet held 20 ms: long enough to cancel a statement while it is on the wire.
    proxy = LoopbackProxy(5432, delay=0.02)
    port = await proxy.start()
    slow_url = pg_url.replace(":5432/", f":{port}/")
    direct = SqlStore(pg_url)
    slow = SqlStore(slow_url, pool_size=1)
    try:
        await upgrade(direct.engine)
        accepted = await _accept(direct, 3)
        conv = await slow.conversation(accepted.conversation_id)  # the one pooled connection
        redact = {accepted.message_id: "(kept out)"}  # type: ignore[attr-defined]
        cut = asyncio.create_task(slow.save_turn(conv, [], [Reply("cut")], redact=redact))
        await asyncio.sleep(0.03)
        cut.cancel()
        await asyncio.gather(cut, return_exceptions=True)
        async with asyncio.timeout(10):
            stored = await slow.save_turn(conv, [], [Reply("kept")])
            await slow.mark_sent([stored[0].id])
            await slow.add_note(conv.id, "a note", "sam")
        reader = await asyncpg.connect(pg_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            rows = await reader.fetch("SELECT text, status FROM messages ORDER BY id")
        finally:
            await reader.close()
        assert [(r["text"], r["status"]) for r in rows][1:] == [
            ("kept", "sent"),
            ("a note", "handled"),
        ]
    finally:
        await slow.close()
        await direct.close()
        proxy.close()


@pytest.mark.postgres
async def test_a_message_arriving_as_its_conversation_closes_goes_to_a_new_one(
    pg_url: str,
) -> None:
    # On PostgreSQL a message's arrival reads the open conversation, then stores the message
    # in it (two statements). If it closes in between (ended by an adviser, timed out), the
    # message must not land in the closed conversation, where no turn would answer it.
    store = SqlStore(pg_url)
    try:
        await upgrade(store.engine)
        first = await _accept(store, 4)
        read = store._prepared_read
        closing = [True]

        async def read_then_close(fn: Any) -> Any:
            found = await read(fn)
            if closing:
                closing.clear()
                async with store.engine.begin() as conn:
                    await conn.exec_driver_sql("UPDATE conversations SET closed = true")
            return found

        store._prepared_read = read_then_close  # type: ignore[method-assign]
        second = await _accept(store, 4)
        assert not closing, "the arrival did not read the open conversation first"
        assert second.new_conversation  # type: ignore[attr-defined]
        assert second.conversation_id != first.conversation_id  # type: ignore[attr-defined]
        assert len(await store.transcript(first.conversation_id)) == 1  # type: ignore[attr-defined]
        pending, conv, _ = await store.pending_turn(second.conversation_id)  # type: ignore[attr-defined]
        assert conv is not None and not conv.closed and [m.text for m in pending] == ["hello"]
    finally:
        await store.close()


async def test_a_reply_is_claimed_by_one_store_at_a_time_and_a_lapsed_claim_is_taken_again(
    database_url: str,
) -> None:
    # Two instances' stores over one database: each reply is taken by one of them only, even
    # asked at once; one an instance took and never sent is taken again once its claim lapses.
    async with _migrated(database_url) as store, _migrated(database_url) as other:
        pending, conv = await _first_turn(store)
        replies = [Reply(t) for t in ("One.", "Two.", "Three.")]
        stored = await store.save_turn(conv, [pending[0].id], replies)
        ids = [m.id for m in stored]
        assert all(m.claimed_at is not None for m in stored)  # by the instance that saved them
        lease = timedelta(minutes=2)
        now = utcnow()
        assert await store.claim(ids, now=now, lease=lease) == []  # still the saver's
        later = now + lease
        taken = await asyncio.gather(
            *(s.claim(ids, now=later, lease=lease) for s in (store, other, store, other))
        )
        assert sorted(i for t in taken for i in t) == ids
        # A claim given back is free at once; another's newer claim is not given back.
        (mine,) = [t for t in taken if t]
        await store.mark_sent(mine[:1])
        again = [m for m in await store.transcript(conv.id) if m.id in mine]
        assert [m.status for m in again] == [Delivery.SENT] + [Delivery.PENDING] * (len(mine) - 1)
        assert await other.claim(mine, now=later + lease, lease=lease) == mine[1:]
        await store.unclaim(again[1:])  # its claim lapsed and was taken: not given back
        assert await store.claim(mine, now=later + lease, lease=lease) == []
        newer = [m for m in await other.transcript(conv.id) if m.id in mine[1:]]
        await other.unclaim(newer)
        assert await store.claim(mine, now=later + lease, lease=lease) == mine[1:]
        # A held reply is nobody's until released, and released by one store only.
        await store.mark(mine[1], Delivery.HELD)
        both = await asyncio.gather(
            *(
                s.claim([mine[1]], now=later, lease=lease, status=Delivery.HELD)
                for s in (store, other)
            )
        )
        assert sorted(both) == [[], [mine[1]]]
        statuses = {m.id: m.status for m in await store.transcript(conv.id)}
        assert statuses[mine[1]] is Delivery.PENDING


@pytest.mark.postgres
async def test_a_message_delivered_again_while_its_turn_saves_is_a_duplicate_not_a_deadlock(
    pg_url: str,
) -> None:
    # A platform delivering a message again (a webhook retried, a button pressed twice) while
    # the first copy's turn is saving: the turn has marked the message handled and waits for
    # the conversation's row. The second copy used to lock that row first and then wait on
    # the message's unique key for the turn: PostgreSQL broke the deadlock by failing one of
    # them (a 500 to the platform, or the turn's answer lost until housekeeping).
    import asyncpg

    async with _migrated(pg_url) as store:
        copy = {
            "contact_key": "k" * 64,
            "channel": "test",
            "sealed_address": None,
            "text": "yes",
            "external_id": "press-1",
        }
        first = await store.accept_inbound(**copy, received_at=utcnow())  # type: ignore[arg-type]
        dsn = pg_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        turn = await asyncpg.connect(dsn)
        watch = await asyncpg.connect(dsn)
        try:
            saving = turn.transaction()
            await saving.start()
            await turn.execute(
                "UPDATE messages SET status = 'handled' WHERE id = $1", first.message_id
            )
            again = asyncio.ensure_future(
                store.accept_inbound(**copy, received_at=utcnow())  # type: ignore[arg-type]
            )
            # Until the second copy has finished, or waits on a lock.
            for _ in range(200):
                waiting = await watch.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid <> pg_backend_pid()"
                )
                if again.done() or waiting:
                    break
                await asyncio.sleep(0.01)
            await turn.execute(
                "UPDATE conversations SET updated_at = now() WHERE id = $1",
                first.conversation_id,
            )
            await saving.commit()
            with pytest.raises(DuplicateMessage):
                await again
        finally:
            await turn.close()
            await watch.close()
