"""SqlStore: the repository the engine uses; one short transaction per operation.

Each operation is one plain function over a sync `Session`, run whole in one step: on SQLite in
a worker thread (one hop per operation, instead of several per statement through aiosqlite;
writes take turns on a single writer thread, whose queue replaces a lock, and reads run beside
it, as WAL allows), on PostgreSQL with `AsyncSession.run_sync` over asyncpg. Lock waits and
SQLite's busy handler therefore never run on the event loop. The statements a message turn
makes are Core statements on the tables: the ORM's unit of work costs more than the SQL."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import queue
import threading
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Executable,
    Table,
    Text,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy import (
    cast as sql_cast,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from helpline.domain import (
    Author,
    Conversation,
    Delivery,
    Direction,
    Owner,
    Reply,
    StoredMessage,
    utcnow,
)
from helpline.errors import DuplicateMessage, NotFound, TurnSuperseded
from helpline.privacy import new_reference
from helpline.storage.engine import (
    POOL_SIZE,
    POSTGRES_TURNS,
    READ_ONLY,
    SQLITE_TURNS,
    create_engine,
    create_sqlite_thread_engine,
    in_transaction,
    is_sqlite,
)
from helpline.storage.models import (
    ContactRow,
    ConversationRow,
    HandoffRow,
    HandoverRow,
    MessageRow,
)
from helpline.storage.prepared import EXPLICIT, AsyncpgStatements, SqliteStatements, translated

T = TypeVar("T")
Statements = SqliteStatements | AsyncpgStatements
# SQLite reader threads beside the one writer thread, and the most write operations the
# writer runs in one transaction.
SQLITE_READERS = 2
WRITE_BATCH = 64
# A contact is marked seen again once this long has passed since its last message.
TOUCH_EVERY = timedelta(minutes=1)

CONTACTS: Table = ContactRow.__table__  # type: ignore[assignment]
CONVERSATIONS: Table = ConversationRow.__table__  # type: ignore[assignment]
MESSAGES: Table = MessageRow.__table__  # type: ignore[assignment]

# The statements of a message turn, built once: building each one every time, and running it
# through an ORM Session, cost several times the SQL itself (docs/performance.md).
# Open conversation of a contact, and whether it still has unanswered messages (`queued`).
_OPEN = (
    select(
        CONVERSATIONS.c.id,
        CONVERSATIONS.c.flow,
        CONVERSATIONS.c.state,
        CONVERSATIONS.c.owner,
        CONTACTS.c.last_seen_at.label("contact_seen"),
        exists()
        .where(
            MESSAGES.c.conversation_id == CONVERSATIONS.c.id,
            MESSAGES.c.direction == Direction.IN.value,
            MESSAGES.c.status == Delivery.RECEIVED.value,
        )
        .label("queued"),
    )
    .select_from(CONVERSATIONS.join(CONTACTS, CONTACTS.c.key == CONVERSATIONS.c.contact_key))
    .where(CONVERSATIONS.c.contact_key == bindparam("key"), ~CONVERSATIONS.c.closed)
    .order_by(CONVERSATIONS.c.created_at.desc())
    .limit(1)
)
# The language of the contact's latest conversation: a new one starts in it.
_LAST_LANGUAGE = (
    select(CONVERSATIONS.c.language)
    .where(CONVERSATIONS.c.contact_key == bindparam("key"))
    .order_by(CONVERSATIONS.c.created_at.desc())
    .limit(1)
)
_STORED = select(MESSAGES.c.id).where(
    MESSAGES.c.channel == bindparam("channel"),
    MESSAGES.c.external_id == bindparam("external_id"),
)
_SEEN = (
    update(CONVERSATIONS)
    .where(CONVERSATIONS.c.id == bindparam("conv_id"))
    .values(last_inbound_at=bindparam("at"))
)
_NEW_CONVERSATION = insert(CONVERSATIONS)
_NEW_MESSAGE = insert(MESSAGES).returning(MESSAGES.c.id)
_NEW_MESSAGES = insert(MESSAGES).returning(MESSAGES.c.id, sort_by_parameter_order=True)
_CONVERSATION = select(CONVERSATIONS).where(CONVERSATIONS.c.id == bindparam("conv_id"))
_CONVERSATIONS = select(CONVERSATIONS).where(
    CONVERSATIONS.c.id.in_(bindparam("ids", expanding=True))
)
_PENDING = (
    select(MESSAGES)
    .where(
        MESSAGES.c.conversation_id == bindparam("conv_id"),
        MESSAGES.c.status == Delivery.RECEIVED.value,
    )
    .order_by(MESSAGES.c.id)
)
# What a turn starts from: the messages waiting to be answered and the replies waiting to be
# sent (left by an instance that stopped between storing and sending them, or refused until
# the person wrote again), oldest first.
_WAITING = (
    select(MESSAGES)
    .where(
        MESSAGES.c.conversation_id == bindparam("conv_id"),
        MESSAGES.c.status.in_(
            [Delivery.RECEIVED.value, Delivery.PENDING.value, Delivery.UNREACHABLE.value]
        ),
    )
    .order_by(MESSAGES.c.id)
)
_UNSENT = (Delivery.PENDING, Delivery.UNREACHABLE)
_ADDRESS = select(CONTACTS.c.sealed_address).where(CONTACTS.c.key == bindparam("key"))
_SETTINGS = select(CONTACTS.c.settings).where(CONTACTS.c.key == bindparam("key"))
# The SET clause of these two comes from the parameters given.
_MARK = update(MESSAGES).where(MESSAGES.c.id == bindparam("message_id"))
_SAVE_STATE = update(CONVERSATIONS).where(CONVERSATIONS.c.id == bindparam("conv_id"))
# Only messages still waiting: the ids it returns fence a turn's save (see save_turn).
_HANDLED = (
    update(MESSAGES)
    .where(
        MESSAGES.c.id.in_(bindparam("ids", expanding=True)),
        # Named: a turn's replies' binds are status_0, status_1... in the same statement.
        MESSAGES.c.status == bindparam("waiting_status", Delivery.RECEIVED.value),
    )
    .values(status=bindparam("handled_status", Delivery.HANDLED.value))
    .returning(MESSAGES.c.id)
)
_REDACT = (
    update(MESSAGES).where(MESSAGES.c.id == bindparam("message_id")).values(text=bindparam("new"))
)
# What a platform's delivery report may move a reply on from: forward only, as reports may
# arrive in any order ("sent" after "delivered"), and a failure is final, over a delivery
# too (a reply sent as several messages has failed if any part has). "sent" moves nothing:
# the engine marks a reply sent once the platform has taken it; a report arriving before
# that finds it still pending and is not kept (it would be overwritten).
_REPORTED_AFTER = {
    Delivery.DELIVERED: (Delivery.SENT,),
    Delivery.FAILED: (Delivery.SENT, Delivery.DELIVERED),
}
_SENT = (
    update(MESSAGES)
    .where(MESSAGES.c.id.in_(bindparam("ids", expanding=True)))
    .values(status=Delivery.SENT.value, sent_at=bindparam("at"))
)
# A reply taken to be sent: only if it is still in the state it was read in and nobody has
# claimed it since `lapsed` (see SqlStore.claim). One statement, so two instances that read the
# same reply cannot both take it.
_CLAIM = (
    update(MESSAGES)
    .where(
        MESSAGES.c.id.in_(bindparam("ids", expanding=True)),
        MESSAGES.c.direction == Direction.OUT.value,
        MESSAGES.c.status == bindparam("from_status"),
        or_(MESSAGES.c.claimed_at.is_(None), MESSAGES.c.claimed_at <= bindparam("lapsed")),
    )
    .values(status=Delivery.PENDING.value, claimed_at=bindparam("at"))
    .returning(MESSAGES.c.id)
)
# A claim given back (the channel failed before the reply was handed to it): only while it
# is still this claim (one that lapsed may have been taken by another instance since).
_UNCLAIM = (
    update(MESSAGES)
    .where(
        MESSAGES.c.id == bindparam("message_id"),
        MESSAGES.c.status == Delivery.PENDING.value,
        MESSAGES.c.claimed_at == bindparam("claimed"),
    )
    .values(claimed_at=None)
)

# PostgreSQL only (data-modifying WITH): a message's arrival in an open conversation, and a
# turn's save, each in one statement, so one round trip where a transaction took five or more.
_MESSAGE_COLUMNS = (
    "conversation_id",
    "channel",
    "direction",
    "author",
    "author_name",
    "text",
    "options",
    "status",
    "external_id",
    "platform_id",
    "created_at",
    "sent_at",
)
# A turn's replies are stored claimed by the instance that saves them (see save_turn).
_REPLY_COLUMNS = (*_MESSAGE_COLUMNS, "claimed_at")
_STATE_COLUMNS = (
    "language",
    "flow",
    "state",
    "owner",
    "risk_level",
    "answers",
    "adviser",
    "closed",
    "updated_at",
)


def _binds(table: Table, columns: Iterable[str], suffix: str = "") -> dict[str, Any]:
    return {c: bindparam(c + suffix, type_=table.c[c].type) for c in columns}


_ARRIVING = _binds(MESSAGES, _MESSAGE_COLUMNS)
# Stored only if the conversation is still open: otherwise nothing is returned, and the
# arrival is stored the long way (SqlStore.accept_inbound), in a new conversation. Nor if
# the message was stored already (a platform delivering it again), which the long way then
# reports. Looked for before the conversation's row is locked: that copy's turn may be
# saving, holding the message's key and waiting for the row; a copy that locked the row and
# then waited on the key would deadlock with it (PostgreSQL would fail one of the two).
_PG_ARRIVAL = (
    insert(MESSAGES)
    .from_select(
        list(_MESSAGE_COLUMNS),
        select(*(_ARRIVING[c] for c in _MESSAGE_COLUMNS)).select_from(
            update(CONVERSATIONS)
            .where(
                CONVERSATIONS.c.id == bindparam("conversation_id", type_=CONVERSATIONS.c.id.type),
                ~CONVERSATIONS.c.closed,
                ~exists().where(
                    MESSAGES.c.channel == _ARRIVING["channel"],
                    MESSAGES.c.external_id == _ARRIVING["external_id"],
                ),
            )
            .values(last_inbound_at=bindparam("created_at", type_=CONVERSATIONS.c.created_at.type))
            .returning(CONVERSATIONS.c.id)
            .cte("seen")
        ),
    )
    .returning(MESSAGES.c.id)
    .execution_options(**{EXPLICIT: True})
)


@functools.cache
def _pg_turn(replies: int, handled: bool) -> Executable:
    """A turn's save: the conversation's state, its messages handled, its replies (returned
    with what tells them apart: RETURNING promises no order, nor do ids).

    Fenced as save_turn's other path is: if fewer messages were still waiting than the turn
    handled ("handled_count"), the state's `flow` is set to NULL, which its NOT NULL refuses,
    and the whole statement (every part of it) fails with an IntegrityError."""
    values = _binds(CONVERSATIONS, _STATE_COLUMNS)
    parts: list[Any] = []
    if handled:
        waiting = _HANDLED.cte("part0")
        parts.append(waiting)
        done = select(func.count()).select_from(waiting).scalar_subquery()
        values["flow"] = case((done == bindparam("handled_count"), values["flow"]), else_=null())
    state = (
        update(CONVERSATIONS)
        .where(CONVERSATIONS.c.id == bindparam("conv_id", type_=CONVERSATIONS.c.id.type))
        .values(values)
    )
    main: Any = state
    if replies:
        parts.append(state.cte("part1"))
        main = (
            insert(MESSAGES)
            .values([_binds(MESSAGES, _REPLY_COLUMNS, f"_{n}") for n in range(replies)])
            .returning(
                MESSAGES.c.id,
                MESSAGES.c.direction,
                MESSAGES.c.author,
                MESSAGES.c.text,
                MESSAGES.c.options,
            )
        )
    for part in parts:
        main = main.add_cte(part)
    return cast(Executable, main.execution_options(**{EXPLICIT: True}))


def _in_order(rows: Sequence[Mapping[str, Any]], returned: Iterable[Any]) -> list[int]:
    """The new messages' ids in the order of `rows` (identical replies are interchangeable)."""
    ids: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for r in sorted(returned, key=lambda r: int(r.id)):
        ids[(r.direction, r.author, r.text, tuple(r.options))].append(int(r.id))
    return [
        ids[(row["direction"], row["author"], row["text"], tuple(row["options"]))].pop(0)
        for row in rows
    ]


def _contact_upserts(dialect_insert: Callable[[Table], Any]) -> tuple[Executable, Executable]:
    """Create the contact or mark it seen, in one statement: replacing its sealed address,
    and (for a message with no address) keeping it."""
    stmt = dialect_insert(CONTACTS)
    seen = {
        "last_seen_at": stmt.excluded.last_seen_at,
        "opted_out": func.coalesce(CONTACTS.c.opted_out, False),
    }
    key = [CONTACTS.c.key]
    return (
        stmt.on_conflict_do_update(
            index_elements=key, set_={**seen, "sealed_address": stmt.excluded.sealed_address}
        ),
        stmt.on_conflict_do_update(index_elements=key, set_=seen),
    )


@dataclass(frozen=True, slots=True)
class Accepted:
    """An inbound message safely stored: what the channel may now acknowledge."""

    conversation_id: str
    message_id: int
    new_conversation: bool


@dataclass(frozen=True, slots=True)
class HandoffRecord:
    conversation_id: str
    queue: str
    language: str
    channel: str
    priority: int
    reason: str
    joined_at: datetime
    claimed_by: str | None


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes even for timezone-aware columns.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _seen_long_ago(last: datetime | None, now: datetime) -> bool:
    """Whether a contact was marked seen long enough ago to be marked again. Retention counts
    in days, so a contact's last-seen time may lag its last message by a minute; the contact
    is not written again for every message of a chat."""
    return last is None or now - _aware(last) >= TOUCH_EVERY


def _conversation(row: Any) -> Conversation:
    """From an ORM row or a Core row of the conversations table."""
    return Conversation(
        id=row.id,
        contact_key=row.contact_key,
        channel=row.channel,
        reference=row.reference,
        language=row.language,
        flow=row.flow,
        state=row.state,
        owner=Owner(row.owner),
        risk_level=row.risk_level,
        answers=dict(row.answers or {}),
        adviser=row.adviser,
        closed=row.closed,
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
        last_inbound_at=_aware(row.last_inbound_at) if row.last_inbound_at else None,
    )


def _message(row: Any) -> StoredMessage:
    """From an ORM row or a Core row of the messages table."""
    return StoredMessage(
        id=row.id,
        conversation_id=row.conversation_id,
        direction=Direction(row.direction),
        author=Author(row.author),
        text=row.text,
        options=tuple(row.options or ()),
        status=Delivery(row.status),
        created_at=_aware(row.created_at),
        external_id=row.external_id,
        author_name=row.author_name,
        claimed_at=_aware(row.claimed_at) if row.claimed_at else None,
    )


def _new_conversation(
    sql: Statements,
    conn: Connection,
    conv_id: str,
    contact_key: str,
    channel: str,
    language: str,
    flow: str,
    state: str,
    now: datetime,
    *,
    last_inbound_at: datetime | None = None,
) -> None:
    sql.run(
        conn,
        _NEW_CONVERSATION,
        {
            "id": conv_id,
            "contact_key": contact_key,
            "channel": channel,
            "reference": new_reference(),
            "language": language,
            "flow": flow,
            "state": state,
            "owner": Owner.BOT.value,
            "risk_level": "none",
            "answers": {},
            "adviser": None,
            "closed": False,
            "created_at": now,
            "updated_at": now,
            "last_inbound_at": last_inbound_at,
        },
    )


def _get_conversation(sql: Statements, conn: Connection, conversation_id: str) -> Conversation:
    row = sql.first(conn, _CONVERSATION, {"conv_id": conversation_id})
    if row is None:
        raise NotFound("no such conversation")
    return _conversation(row)


def _pending(sql: Statements, conn: Connection, conversation_id: str) -> list[StoredMessage]:
    return [_message(r) for r in sql.rows(conn, _PENDING, {"conv_id": conversation_id})]


def _usable(conn: Connection | None, engine: Engine) -> Connection:
    """A thread's kept connection, or a new one if it has none that still works (one found
    invalidated is closed first, which gives its place in the pool back)."""
    if conn is not None and not conn.closed and not conn.invalidated:
        return conn
    if conn is not None:
        conn.close()
    return engine.connect()


class _Writer:
    """SQLite's one writer: a thread that runs queued write operations in batches, in the
    order they were asked for. A batch is one transaction (one BEGIN IMMEDIATE, one COMMIT)
    and its results reach the event loop in one wake-up, so under load the cost of taking
    the lock, committing and waking the loop is shared. If an operation raises, the batch is
    rolled back and each of its operations runs again alone: one failing operation (a
    duplicate webhook) never fails another. An operation's result is given only once its
    transaction has committed."""

    def __init__(self, engine: Engine, *, batch: int = WRITE_BATCH) -> None:
        self._engine = engine
        self._batch = batch
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        # A daemon, so a process that never closes its store can still exit: a transaction
        # cut short is rolled back by SQLite, and nobody was told it had been stored.
        self._thread = threading.Thread(
            target=self._work, name="helpline-sqlite-write", daemon=True
        )
        self._thread.start()

    def submit(self, fn: Callable[[Connection], T]) -> asyncio.Future[T]:
        if self._closed:
            raise RuntimeError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, future, loop))
        return future

    def close(self) -> None:
        """Finish what is queued, then stop."""
        self._closed = True
        self._jobs.put(None)
        self._thread.join()

    def _work(self) -> None:
        conn: Connection | None = None
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                jobs = [job]
                while len(jobs) < self._batch:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        self._jobs.put(None)  # stop after this batch
                        break
                    jobs.append(job)
                try:
                    conn = _usable(conn, self._engine)
                    outcomes = self._run(conn, jobs)
                except Exception as exc:
                    # No connection (the file cannot be opened): these fail, and the writer
                    # carries on, so that later writes are tried rather than left waiting.
                    outcomes = [(False, exc)] * len(jobs)
                self._settle(jobs, outcomes)
        finally:
            if conn is not None:
                conn.close()

    @staticmethod
    def _run(conn: Connection, jobs: list[_Job]) -> list[tuple[bool, Any]]:
        try:
            with conn.begin():
                return [(True, fn(conn)) for fn, _, _ in jobs]
        except Exception as exc:
            if len(jobs) == 1:
                return [(False, exc)]
        outcomes: list[tuple[bool, Any]] = []
        for fn, _, _ in jobs:
            try:
                with conn.begin():
                    outcomes.append((True, fn(conn)))
            except Exception as exc:
                outcomes.append((False, exc))
        return outcomes

    @staticmethod
    def _settle(jobs: list[_Job], outcomes: list[tuple[bool, Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]]
        by_loop = {}
        for (_, future, loop), (ok, value) in zip(jobs, outcomes, strict=True):
            by_loop.setdefault(loop, []).append((future, ok, value))
        for loop, settled in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that event loop has already closed
                loop.call_soon_threadsafe(_resolve, settled)


_Job = tuple[Callable[[Connection], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


def _resolve(settled: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in settled:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class _SqliteThreads:
    """Where SQLite operations run: the writer thread above and a few reader threads, over
    the standard library's driver. Each thread keeps its own connection open: checking one
    out of a pool for every operation costs more than the operation's SQL."""

    def __init__(self, url: str) -> None:
        self.engine = create_sqlite_thread_engine(url, connections=SQLITE_READERS + 1)
        self._reading = self.engine.execution_options(**{READ_ONLY: True})
        self._local = threading.local()
        self._opened: list[Connection] = []
        self._lock = threading.Lock()
        self.writer = _Writer(self.engine)
        self.readers = ThreadPoolExecutor(SQLITE_READERS, thread_name_prefix="helpline-sqlite-read")

    def read(self, fn: Callable[[Connection], T]) -> T:
        """`fn` in a read transaction on the calling thread's own connection."""
        conn = self._own()
        with conn.begin():
            return fn(conn)

    def read_prepared(self, fn: Callable[[Connection], T]) -> T:
        """read() for `fn` that runs only SqliteStatements, which run on the driver's
        connection: so does its transaction. SQLAlchemy's begin and commit (events, the
        execution of BEGIN through its own layer) cost more than the reads they held. (A
        statement through SQLAlchemy in `fn` would begin a second transaction and fail.)"""
        conn = self._own()
        driver: Any = conn.connection.driver_connection
        driver.execute("BEGIN")
        try:
            return fn(conn)
        finally:
            try:
                driver.rollback()  # it only read: nothing to keep
            except Exception:
                # Never left open on a kept connection (the next BEGIN would fail), and never
                # hiding what `fn` raised: the thread opens a new one next time.
                conn.invalidate()

    def _own(self) -> Connection:
        """The calling thread's kept connection."""
        kept: Connection | None = getattr(self._local, "conn", None)
        conn = _usable(kept, self._reading)
        if conn is not kept:
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    def close(self) -> None:
        self.writer.close()
        self.readers.shutdown()
        for conn in self._opened:
            conn.close()
        self.engine.dispose()


async def _run_on_asyncpg(
    conn: AsyncConnection, fn: Callable[[Connection], T], transaction: bool
) -> T:
    """`fn` on the connection, in a transaction of asyncpg's own or in none (AsyncpgStatements).
    SQLAlchemy knows nothing of that transaction, so nothing else would end it: if it is
    left open (cancelled during BEGIN, or cancelled again during the ROLLBACK), the
    connection is thrown away here, not handed back to the pool where later writes would run
    inside it and never commit (and see storage.engine._still_open, at checkout)."""
    if not transaction:
        return await conn.run_sync(fn)
    driver = (await conn.get_raw_connection()).driver_connection
    try:
        with translated("BEGIN; ... COMMIT"):
            async with driver.transaction():  # type: ignore[union-attr]
                result = await conn.run_sync(fn)
    except BaseException:
        if in_transaction(driver):
            # Not awaited: a second cancellation cannot cut it short.
            conn.sync_connection.invalidate()  # type: ignore[union-attr]
        raise
    return result


def _orm(fn: Callable[[Session], T]) -> Callable[[Connection], T]:
    """For the operations that are clearer with ORM rows: a Session inside the operation's
    transaction (its changes are flushed before the transaction commits)."""

    def run(conn: Connection) -> T:
        with Session(bind=conn, expire_on_commit=False) as session:
            result = fn(session)
            session.flush()
            return result

    return run


# The connection a task's store operations share inside SqlStore.unit(), with that task.
_BOUND: contextvars.ContextVar[tuple[asyncio.Task[Any] | None, AsyncConnection] | None] = (
    contextvars.ContextVar("helpline_store_connection", default=None)
)


class SqlStore:
    """Conversations, messages and handoffs on SQLite or PostgreSQL through SQLAlchemy."""

    def __init__(self, url: str, *, pool_size: int = POOL_SIZE) -> None:
        self.url = url
        # The async engine serves migrations and the adapters that own tables of their own
        # (console, referrals: see session()) and, on PostgreSQL, SqlStore's own operations.
        self.engine: AsyncEngine = create_engine(url, pool_size=pool_size)
        self._reading = self.engine.execution_options(**{READ_ONLY: True})
        self._session = async_sessionmaker(self.engine, expire_on_commit=False)
        self._threads = _SqliteThreads(url) if is_sqlite(url) else None
        self._sql: Statements = (
            SqliteStatements(self._threads.engine.dialect)
            if self._threads is not None
            else AsyncpgStatements(self.engine.dialect)
        )
        self._touch, self._touch_keeping_address = _contact_upserts(
            sqlite.insert if is_sqlite(url) else postgresql.insert
        )

    @property
    def turns_at_once(self) -> int:
        """How many turns the engine should run at once on this backend (see
        storage.engine.SQLITE_TURNS)."""
        return SQLITE_TURNS if self._threads is not None else POSTGRES_TURNS

    async def close(self) -> None:
        if self._threads is not None:
            await asyncio.to_thread(self._threads.close)
        await self.engine.dispose()

    async def ping(self) -> None:
        def run(conn: Connection) -> None:
            conn.execute(select(1))

        await self._read(run)

    @contextlib.asynccontextmanager
    async def unit(self) -> AsyncIterator[None]:
        """Inside this, the calling task's store operations on PostgreSQL share one pooled
        connection, each still committed on its own: a turn takes one connection from the pool
        (and checks it once) instead of one for each of its reads and writes. Other tasks,
        including ones started inside, are unaffected. On SQLite it changes nothing."""
        if self._threads is not None or self._bound() is not None:
            yield  # SQLite, or already inside one
            return
        async with self.engine.connect() as conn:
            token = _BOUND.set((asyncio.current_task(), conn))
            try:
                yield
            finally:
                _BOUND.reset(token)

    def _bound(self) -> AsyncConnection | None:
        bound = _BOUND.get()
        if bound is None or bound[0] is not asyncio.current_task():
            return None
        if bound[1].engine.sync_engine is not self.engine.sync_engine:
            return None
        return bound[1]

    async def _write(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` in one write transaction, committed after it returns (rolled back if it
        raises)."""
        if self._threads is not None:
            return await self._threads.writer.submit(fn)
        conn = self._bound()
        if conn is not None:
            async with conn.begin():
                return await conn.run_sync(fn)
        async with self.engine.begin() as conn:
            return await conn.run_sync(fn)

    async def _read(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` in a transaction that only reads (on SQLite it does not take the write
        lock)."""
        if self._threads is not None:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._threads.readers, self._threads.read, fn)
        conn = self._bound()
        if conn is not None:
            async with conn.begin():
                return await conn.run_sync(fn)
        async with self._reading.connect() as conn:
            return await conn.run_sync(fn)

    # The operations whose statements all run through self._sql (the hot ones: a message's
    # arrival, its turn, its delivery) use these two instead of _write and _read.

    async def _prepared_write(
        self, fn: Callable[[Connection], T], *, one_statement: bool = False
    ) -> T:
        """_write for an operation that runs only self._sql's statements. On PostgreSQL its
        transaction is asyncpg's own (see AsyncpgStatements); a single statement needs none."""
        if self._threads is not None:
            return await self._write(fn)
        return await self._on_asyncpg(fn, transaction=not one_statement)

    async def _prepared_read(self, fn: Callable[[Connection], T]) -> T:
        """_read for an operation that runs only self._sql's statements. On SQLite its
        transaction is the driver's own too (_SqliteThreads.read_prepared). On PostgreSQL it
        runs in no transaction: at READ COMMITTED each statement sees what was committed when
        it began either way, and BEGIN and COMMIT would cost two round trips."""
        if self._threads is not None:
            loop = asyncio.get_running_loop()
            threads = self._threads
            return await loop.run_in_executor(threads.readers, threads.read_prepared, fn)
        return await self._on_asyncpg(fn, transaction=False)

    async def _on_asyncpg(self, fn: Callable[[Connection], T], *, transaction: bool) -> T:
        conn = self._bound()
        if conn is None:
            async with self.engine.connect() as conn:
                return await _run_on_asyncpg(conn, fn, transaction)
        return await _run_on_asyncpg(conn, fn, transaction)

    def session(self) -> AsyncSession:
        """For adapters that own tables of their own (console, referrals)."""
        return self._session()

    # -- inbound ---------------------------------------------------------------------------

    async def accept_inbound(
        self,
        *,
        contact_key: str,
        channel: str,
        sealed_address: str | Callable[[], str] | None,
        text: str,
        external_id: str | None,
        received_at: datetime,
        language: str = "en",
        flow: str = "welcome",
        state: str = "start",
        private: Callable[[str, str, str, bool], str | None] | None = None,
    ) -> Accepted:
        """Store an inbound message, creating the contact and an open conversation if needed
        (in the language of the contact's last conversation, if they had one, else `language`).

        `private(flow, state, owner, queued)` of the open conversation (queued: earlier messages
        still wait to be handled) may return what to store instead of the text (it sealed,
        when the text may answer a question whose answer is not kept in clear). It runs inside
        the transaction, so it must be quick and must not touch the event loop.
        `sealed_address` may be a function that seals it: it is called (inside the transaction)
        only when the contact's row is written, which is seldom (see _seen_long_ago). Sealing
        takes a random nonce from the kernel, a system call that lets the store's threads take
        the interpreter from the event loop, and the row needs it once in a while, not for
        every message of a chat.
        Raises DuplicateMessage when (channel, external_id) was stored before: the unique
        constraint decides, whichever instance took the first copy."""

        def kept(found: Any) -> str:
            """The text as stored in the open conversation `found` (sealed, perhaps)."""
            if private is None:
                return text
            return private(found.flow, found.state, found.owner, bool(found.queued)) or text

        def message(conv_id: str, stored: str) -> dict[str, Any]:
            return {
                "conversation_id": conv_id,
                "channel": channel,
                "direction": Direction.IN.value,
                "author": Author.PERSON.value,
                "author_name": None,
                "text": stored,
                "options": [],
                "status": Delivery.RECEIVED.value,
                "external_id": external_id,
                "platform_id": None,
                "created_at": received_at,
                "sent_at": None,
            }

        def run(conn: Connection) -> Accepted:
            found = self._sql.first(conn, _OPEN, {"key": contact_key})
            if found is None or _seen_long_ago(found.contact_seen, received_at):
                # Otherwise the contact was marked seen (and its address sealed) moments ago,
                # by an earlier message.
                address = sealed_address() if callable(sealed_address) else sealed_address
                self._touch_contact(conn, contact_key, channel, address, received_at)
            stored = text if found is None else kept(found)
            if found is None:
                conv_id = uuid.uuid4().hex
                # Someone who chose Welsh (or English) before is answered in it when they
                # write again, rather than in the channel's guess.
                last = self._sql.scalar(conn, _LAST_LANGUAGE, {"key": contact_key})
                _new_conversation(
                    self._sql,
                    conn,
                    conv_id,
                    contact_key,
                    channel,
                    str(last or language),
                    flow,
                    state,
                    received_at,
                    last_inbound_at=received_at,
                )
            else:
                conv_id = found.id
                self._sql.run(conn, _SEEN, {"conv_id": conv_id, "at": received_at})
            message_id = self._sql.scalar(conn, _NEW_MESSAGE, message(conv_id, stored))
            return Accepted(conv_id, int(message_id), found is None)

        async def arrival_in_one_statement() -> Accepted | None:
            # PostgreSQL, in an open conversation whose contact was seen a moment ago (the
            # usual case): the conversation read, then the message stored and the
            # conversation marked in one statement. A transaction adds nothing here: at READ
            # COMMITTED its read would not hold the conversation either.
            found = await self._prepared_read(
                lambda conn: self._sql.first(conn, _OPEN, {"key": contact_key})
            )
            if found is None or _seen_long_ago(found.contact_seen, received_at):
                return None
            row = message(found.id, kept(found))
            message_id = await self._prepared_write(
                lambda conn: self._sql.scalar(conn, _PG_ARRIVAL, row), one_statement=True
            )
            if message_id is None:
                return None  # closed meanwhile, or stored already
            return Accepted(found.id, int(message_id), False)

        # On PostgreSQL its reads and writes share one connection from the pool.
        async with self.unit():
            try:
                if self._threads is None:
                    accepted = await arrival_in_one_statement()
                    if accepted is not None:
                        return accepted
                    if external_id is not None and await self.is_stored(channel, external_id):
                        # Before the long way locks the conversation's row: see _PG_ARRIVAL.
                        raise DuplicateMessage(f"{channel} message already stored")
                return await self._prepared_write(run)
            except IntegrityError as exc:
                # A redelivered message (or two instances racing on the same webhook). Any other
                # conflict (a new conversation's reference taken, once in a billion) is an error:
                # the channel does not acknowledge, and the platform delivers again.
                if external_id is not None and await self.is_stored(channel, external_id):
                    raise DuplicateMessage(f"{channel} message already stored") from exc
                raise

    def _touch_contact(
        self,
        conn: Connection,
        key: str,
        channel: str,
        sealed_address: str | None,
        now: datetime,
    ) -> None:
        """The contact, created or marked seen now (one statement)."""
        self._sql.run(
            conn,
            self._touch if sealed_address is not None else self._touch_keeping_address,
            {
                "key": key,
                "channel": channel,
                "sealed_address": sealed_address,
                "opted_out": False,
                "settings": {},
                "created_at": now,
                "last_seen_at": now,
            },
        )

    async def ensure_conversation(
        self,
        *,
        contact_key: str,
        channel: str,
        sealed_address: str | None,
        language: str,
        flow: str = "welcome",
        state: str = "start",
    ) -> tuple[str, bool]:
        """The contact's open conversation, created if there is none (web chat opens one as
        soon as the page connects, so the welcome is there before anyone types)."""
        now = utcnow()

        def run(conn: Connection) -> tuple[str, bool]:
            self._touch_contact(conn, contact_key, channel, sealed_address, now)
            found = self._sql.first(conn, _OPEN, {"key": contact_key})
            if found is not None:
                return found.id, False
            conv_id = uuid.uuid4().hex
            _new_conversation(
                self._sql, conn, conv_id, contact_key, channel, language, flow, state, now
            )
            return conv_id, True

        return await self._prepared_write(run)

    # -- conversations ---------------------------------------------------------------------

    async def conversation(self, conversation_id: str) -> Conversation:
        return await self._prepared_read(
            lambda conn: _get_conversation(self._sql, conn, conversation_id)
        )

    async def conversations(self, ids: Iterable[str]) -> dict[str, Conversation]:
        """Those of these conversations that exist, by id, in one read (the console's queue
        snapshot, which every change to the queue sends each adviser again)."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        # Each number of ids is a statement of its own, which asyncpg prepares and keeps (100
        # a connection): padded to a power of two, queues of any length make a handful, and
        # never push a turn's statements out.
        wanted += wanted[:1] * ((1 << (len(wanted) - 1).bit_length()) - len(wanted))

        def run(conn: Connection) -> dict[str, Conversation]:
            rows = self._sql.rows(conn, _CONVERSATIONS, {"ids": wanted})
            return {row.id: _conversation(row) for row in rows}

        return await self._prepared_read(run)

    async def conversation_by_reference(self, reference: str) -> Conversation:
        def run(conn: Connection) -> Conversation:
            row = conn.execute(
                select(CONVERSATIONS).where(CONVERSATIONS.c.reference == reference.upper())
            ).first()
            if row is None:
                raise NotFound("no such conversation")
            return _conversation(row)

        return await self._read(run)

    async def open_conversation(self, contact_key: str) -> Conversation | None:
        def run(conn: Connection) -> Conversation | None:
            row = conn.execute(
                select(CONVERSATIONS)
                .where(CONVERSATIONS.c.contact_key == contact_key, ~CONVERSATIONS.c.closed)
                .order_by(CONVERSATIONS.c.created_at.desc())
                .limit(1)
            ).first()
            return _conversation(row) if row else None

        return await self._read(run)

    async def open_with_the_bot_holding(self, key: str) -> list[Conversation]:
        """Open conversations the bot still has whose answers hold `key` (one of the
        engine's own marks, such as a hand-off still owed: few at any time). Read as the
        answers' JSON text, the same way on every database."""

        def run(conn: Connection) -> list[Conversation]:
            rows = conn.execute(
                select(CONVERSATIONS).where(
                    ~CONVERSATIONS.c.closed,
                    CONVERSATIONS.c.owner == Owner.BOT.value,
                    sql_cast(CONVERSATIONS.c.answers, Text).contains(
                        json.dumps(key), autoescape=True
                    ),
                )
            )
            found = [_conversation(row) for row in rows]
            return [conv for conv in found if key in conv.answers]

        return await self._read(run)

    async def pending_inbound(self, conversation_id: str) -> list[StoredMessage]:
        return await self._prepared_read(lambda conn: _pending(self._sql, conn, conversation_id))

    async def pending_turn(
        self, conversation_id: str
    ) -> tuple[list[StoredMessage], Conversation | None, list[StoredMessage]]:
        """A conversation's unanswered messages and, if there are any, the conversation and
        its replies stored but not yet sent (an instance stopped before sending them: PENDING;
        the platform refused them until the person wrote again: UNREACHABLE): what a turn
        starts from, in one read."""

        def run(
            conn: Connection,
        ) -> tuple[list[StoredMessage], Conversation | None, list[StoredMessage]]:
            waiting = [
                _message(r) for r in self._sql.rows(conn, _WAITING, {"conv_id": conversation_id})
            ]
            pending = [m for m in waiting if m.status is Delivery.RECEIVED]
            if not pending:
                return pending, None, []
            unsent = [m for m in waiting if m.status in _UNSENT]
            return pending, _get_conversation(self._sql, conn, conversation_id), unsent

        return await self._prepared_read(run)

    async def conversations_with_pending_inbound(
        self, received_before: datetime | None = None
    ) -> list[str]:
        """Conversations with a message not yet answered (received before a time, if given)."""

        def run(conn: Connection) -> list[str]:
            query = select(MESSAGES.c.conversation_id).where(
                MESSAGES.c.status == Delivery.RECEIVED.value
            )
            if received_before is not None:
                query = query.where(MESSAGES.c.created_at < received_before)
            return list(conn.scalars(query.distinct()))

        return await self._read(run)

    async def save_turn(
        self,
        conversation: Conversation,
        handled: Sequence[int],
        replies: Iterable[Reply],
        *,
        author_name: str | None = None,
        status: Delivery = Delivery.PENDING,
        touch: bool = True,
        redact: Mapping[int, str] | None = None,
    ) -> list[StoredMessage]:
        """Save the conversation's new state, mark inbound messages handled and store replies,
        all in one transaction: a crash before commit means the turn is simply run again.
        `redact` replaces the stored text of handled messages (answers not to be kept).

        Raises TurnSuperseded, and saves nothing, if any of `handled` is no longer waiting: an
        overlapping turn answered it (two instances whose lock's lease lapsed while Redis was
        out of reach), and this one's state and replies would repeat or undo that one's."""
        now = utcnow()
        # A warning is not activity: it must not postpone the close it announces.
        updated_at = now if touch else conversation.updated_at
        rows: list[dict[str, Any]] = [
            {
                "conversation_id": conversation.id,
                "channel": conversation.channel,
                "direction": (
                    Direction.EVENT.value if r.author is Author.SYSTEM else Direction.OUT.value
                ),
                "author": r.author.value,
                "author_name": author_name,
                "text": r.text,
                "options": list(r.options),
                # Transcript events (ownership changes) are never sent to the person.
                "status": Delivery.HANDLED.value if r.author is Author.SYSTEM else status.value,
                "external_id": None,
                "platform_id": None,
                "created_at": now,
                "sent_at": None,
                # Claimed in the same statement by this instance, which sends them next: no
                # other instance sends them meanwhile (see claim), and none costs a statement.
                "claimed_at": (
                    now if r.author is not Author.SYSTEM and status is Delivery.PENDING else None
                ),
            }
            for r in replies
        ]
        state = {
            "conv_id": conversation.id,
            "language": conversation.language,
            "flow": conversation.flow,
            "state": conversation.state,
            "owner": conversation.owner.value,
            "risk_level": conversation.risk_level,
            "answers": conversation.answers,
            "adviser": conversation.adviser,
            "closed": conversation.closed,
            "updated_at": updated_at,
        }

        waiting = set(handled)

        def superseded() -> TurnSuperseded:
            return TurnSuperseded(f"conversation {conversation.reference}: answered already")

        def run(conn: Connection) -> list[int]:
            sql = self._sql
            if handled and len(sql.rows(conn, _HANDLED, {"ids": list(waiting)})) != len(waiting):
                raise superseded()  # the transaction is rolled back
            sql.run(conn, _SAVE_STATE, state)
            for message_id, text in (redact or {}).items():
                sql.run(conn, _REDACT, {"message_id": message_id, "new": text})
            return sql.inserted_ids(conn, _NEW_MESSAGES, rows)

        if self._threads is None and not redact:
            # PostgreSQL: all of it in one statement (see _pg_turn).
            params: dict[str, Any] = dict(state)
            if handled:
                params.update(ids=list(waiting), handled_count=len(waiting))
            for n, row in enumerate(rows):
                params.update({f"{column}_{n}": value for column, value in row.items()})
            stmt = _pg_turn(len(rows), bool(handled))
            try:
                returned = await self._prepared_write(
                    lambda conn: self._sql.rows(conn, stmt, params), one_statement=True
                )
            except IntegrityError:
                if handled and await self._still_waiting(waiting) != len(waiting):
                    raise superseded() from None
                raise
            ids = _in_order(rows, returned)
        else:
            ids = await self._prepared_write(run)
        conversation.updated_at = updated_at
        return [
            StoredMessage(
                id=message_id,
                conversation_id=conversation.id,
                direction=Direction(row["direction"]),
                author=Author(row["author"]),
                text=row["text"],
                options=tuple(row["options"]),
                status=Delivery(row["status"]),
                created_at=now,
                author_name=author_name,
                claimed_at=row["claimed_at"],
            )
            for message_id, row in zip(ids, rows, strict=True)
        ]

    async def _still_waiting(self, ids: Iterable[int]) -> int:
        """How many of these inbound messages are still waiting to be handled."""
        query = select(func.count()).where(
            MESSAGES.c.id.in_(list(ids)), MESSAGES.c.status == Delivery.RECEIVED.value
        )
        found: int | None = await self._read(lambda conn: conn.scalar(query))
        return found or 0

    async def add_note(self, conversation_id: str, text: str, author_name: str) -> StoredMessage:
        """A private note or an event line in the transcript; never sent to the person."""

        def run(session: Session) -> StoredMessage:
            conv = session.get(ConversationRow, conversation_id)
            if conv is None:
                raise NotFound("no such conversation")
            row = MessageRow(
                conversation_id=conversation_id,
                channel=conv.channel,
                direction=Direction.NOTE.value,
                author=Author.ADVISER.value,
                author_name=author_name,
                text=text,
                options=[],
                status=Delivery.HANDLED.value,
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            return _message(row)

        return await self._write(_orm(run))

    async def transcript(self, conversation_id: str) -> list[StoredMessage]:
        def run(session: Session) -> list[StoredMessage]:
            rows = session.scalars(
                select(MessageRow)
                .where(MessageRow.conversation_id == conversation_id)
                .order_by(MessageRow.id)
            )
            return [_message(r) for r in rows]

        return await self._read(_orm(run))

    async def is_stored(self, channel: str, external_id: str) -> bool:
        """Whether the channel's message with this id was stored already (a redelivery)."""
        found = await self._prepared_read(
            lambda conn: self._sql.first(
                conn, _STORED, {"channel": channel, "external_id": external_id}
            )
        )
        return found is not None

    # -- delivery --------------------------------------------------------------------------

    async def sealed_address(self, contact_key: str) -> str | None:
        return await self._prepared_read(
            lambda conn: self._sql.scalar(conn, _ADDRESS, {"key": contact_key})
        )

    async def contact_settings(self, contact_key: str) -> dict[str, object]:
        def run(conn: Connection) -> dict[str, object]:
            return dict(self._sql.scalar(conn, _SETTINGS, {"key": contact_key}) or {})

        return await self._prepared_read(run)

    async def update_contact_settings(self, contact_key: str, **changes: object) -> None:
        def run(session: Session) -> None:
            row = session.get(ContactRow, contact_key)
            if row is None:
                raise NotFound("no such contact")
            row.settings = {**(row.settings or {}), **changes}

        await self._write(_orm(run))

    async def mark(
        self, message_id: int, status: Delivery, *, platform_id: str | None = None
    ) -> None:
        values: dict[str, object] = {"message_id": message_id, "status": status.value}
        if status is Delivery.SENT:
            values["sent_at"] = utcnow()
        if status in (Delivery.HELD, Delivery.UNREACHABLE):
            values["claimed_at"] = None  # nobody's to send until it is released (claim)
        if platform_id is not None:
            values["platform_id"] = platform_id

        def run(conn: Connection) -> None:
            # The SET clause comes from the values given.
            self._sql.run(conn, _MARK, values)

        await self._prepared_write(run, one_statement=True)

    async def mark_sent(self, message_ids: Sequence[int]) -> None:
        """Several replies sent (by a channel that gives them no id of its own)."""
        now = utcnow()

        def run(conn: Connection) -> None:
            self._sql.run(conn, _SENT, {"ids": list(message_ids), "at": now})

        await self._prepared_write(run, one_statement=True)

    async def claim(
        self,
        message_ids: Sequence[int],
        *,
        now: datetime,
        lease: timedelta,
        status: Delivery = Delivery.PENDING,
    ) -> list[int]:
        """Take replies to send them, atomically: of these, the ones still in `status` and not
        claimed within `lease` before `now` are marked pending and claimed at `now`, and their
        ids returned. Two instances that read the same reply (a conversation's lock whose lease
        lapsed) cannot both take it; a claim of an instance that died lapses, so the reply is
        still sent. `status` HELD releases replies held for quiet hours, UNREACHABLE those
        refused until the person wrote again."""
        if not message_ids:
            return []
        params = {
            "ids": list(message_ids),
            "from_status": status.value,
            "lapsed": now - lease,
            "at": now,
        }
        returned = await self._prepared_write(
            lambda conn: self._sql.rows(conn, _CLAIM, params), one_statement=True
        )
        return sorted(int(r.id) for r in returned)

    async def unclaim(self, messages: Iterable[StoredMessage]) -> None:
        """Give back claims of replies not handed to the channel (it failed): whoever sends
        again need not wait for them to lapse. Only claims still as given (see claim)."""
        params = [
            {"message_id": m.id, "claimed": m.claimed_at}
            for m in messages
            if m.claimed_at is not None
        ]
        if not params:
            return

        def run(conn: Connection) -> None:
            for p in params:
                self._sql.run(conn, _UNCLAIM, p)

        await self._prepared_write(run, one_statement=len(params) == 1)

    async def mark_by_platform_id(self, channel: str, platform_id: str, status: Delivery) -> bool:
        """A platform's delivery report for the reply it gave this id, moving it forward
        only (see _REPORTED_AFTER). True if it changed the reply."""
        return await self._reported(channel, MessageRow.platform_id == platform_id, status)

    async def mark_reported(
        self, channel: str, message_id: int, platform_id: str, status: Delivery
    ) -> bool:
        """A platform's delivery report for one of our replies named by its own id (Twilio's
        status callback carries it, for each part of a reply sent as several messages),
        moving it forward only (see _REPORTED_AFTER). True if it changed the reply.

        The report's own id (a part's SID) must be one of those the reply was given: on
        SQLite the id of a deleted message (erased, past retention) is given again to a new
        one, and a late report for the old reply must not mark the new one."""
        parts = literal(",") + MessageRow.platform_id + literal(",")
        which = and_(
            MessageRow.id == message_id, parts.contains(f",{platform_id},", autoescape=True)
        )
        return await self._reported(channel, which, status)

    async def mark_refused_reported(
        self, channel: str, message_id: int, platform_id: str
    ) -> str | None:
        """A platform's later report that one of our replies it took was refused until the
        person writes again (WhatsApp's 24 hours, reported after the send): marked
        UNREACHABLE if it was still only sent, its claim given up (the person's next message
        sends it again). The conversation's id if it was so marked, else None."""
        parts = literal(",") + MessageRow.platform_id + literal(",")

        def run(conn: Connection) -> str | None:
            found = conn.execute(
                update(MessageRow)
                .where(
                    MessageRow.id == message_id,
                    parts.contains(f",{platform_id},", autoescape=True),
                    MessageRow.channel == channel,
                    MessageRow.direction == Direction.OUT.value,
                    MessageRow.status == Delivery.SENT.value,
                )
                .values(status=Delivery.UNREACHABLE.value, claimed_at=None)
                .returning(MessageRow.conversation_id)
            ).first()
            return None if found is None else str(found.conversation_id)

        return await self._write(run)

    async def awaiting_platform_id(self, channel: str, message_id: int) -> bool:
        """Whether this reply on this channel is still being sent: not yet given the
        platform's id (a report for it may have come first, see channels/twilio.py)."""

        def run(conn: Connection) -> bool:
            found = conn.execute(
                select(MessageRow.id).where(
                    MessageRow.id == message_id,
                    MessageRow.channel == channel,
                    MessageRow.direction == Direction.OUT.value,
                    MessageRow.status == Delivery.PENDING.value,
                    MessageRow.platform_id.is_(None),
                )
            )
            return found.first() is not None

        return await self._read(run)

    async def _reported(self, channel: str, which: ColumnElement[bool], status: Delivery) -> bool:
        earlier = [s.value for s in _REPORTED_AFTER.get(status, ())]
        if not earlier:
            return False

        def run(conn: Connection) -> bool:
            result = conn.execute(
                update(MessageRow)
                .where(
                    which,
                    MessageRow.channel == channel,
                    MessageRow.direction == Direction.OUT.value,
                    MessageRow.status.in_(earlier),
                )
                .values(status=status.value)
            )
            return bool(result.rowcount)

        return await self._write(run)

    async def undelivered(
        self,
        statuses: Sequence[Delivery],
        *,
        conversation_id: str | None = None,
        created: tuple[datetime, datetime] | None = None,
    ) -> list[StoredMessage]:
        """Messages in these states, oldest first: of one conversation, or created between
        two times, if given."""

        def run(session: Session) -> list[StoredMessage]:
            query = select(MessageRow).where(MessageRow.status.in_([s.value for s in statuses]))
            if conversation_id is not None:
                query = query.where(MessageRow.conversation_id == conversation_id)
            if created is not None:
                query = query.where(MessageRow.created_at.between(*created))
            return [_message(r) for r in session.scalars(query.order_by(MessageRow.id))]

        return await self._read(_orm(run))

    # -- handoffs --------------------------------------------------------------------------

    async def open_handoff(self, record: HandoffRecord) -> None:
        def run(session: Session) -> None:
            existing = session.scalar(
                select(HandoffRow).where(
                    HandoffRow.conversation_id == record.conversation_id,
                    HandoffRow.ended_at.is_(None),
                )
            )
            if existing is not None:
                existing.priority = min(existing.priority, record.priority)
                return
            session.add(
                HandoffRow(
                    conversation_id=record.conversation_id,
                    queue=record.queue,
                    language=record.language,
                    channel=record.channel,
                    priority=record.priority,
                    reason=record.reason,
                    joined_at=record.joined_at,
                )
            )

        await self._write(_orm(run))

    async def update_handoff(self, conversation_id: str, **values: object) -> None:
        def run(conn: Connection) -> None:
            conn.execute(
                update(HandoffRow)
                .where(HandoffRow.conversation_id == conversation_id, HandoffRow.ended_at.is_(None))
                .values(**values)
            )

        await self._write(run)

    async def open_handoffs(self) -> list[HandoffRecord]:
        def run(session: Session) -> list[HandoffRecord]:
            rows = session.scalars(
                select(HandoffRow).where(HandoffRow.ended_at.is_(None)).order_by(HandoffRow.id)
            )
            return [
                HandoffRecord(
                    r.conversation_id,
                    r.queue,
                    r.language,
                    r.channel,
                    r.priority,
                    r.reason,
                    _aware(r.joined_at),
                    r.claimed_by,
                )
                for r in rows
            ]

        return await self._read(_orm(run))

    async def idle_conversations(self, cutoff: datetime) -> list[str]:
        """Open conversations owned by the bot with no activity since `cutoff`."""

        def run(conn: Connection) -> list[str]:
            rows = conn.scalars(
                select(ConversationRow.id).where(
                    ~ConversationRow.closed,
                    ConversationRow.owner == Owner.BOT.value,
                    ConversationRow.updated_at < cutoff,
                )
            )
            return list(rows)

        return await self._read(run)

    # -- erasure and retention -------------------------------------------------------------

    async def purge(self, cutoff: datetime) -> dict[str, int]:
        """Retention: delete conversations (with their messages and handoffs) last touched
        before `cutoff`, and forget reply addresses of contacts not seen since then."""

        def run(conn: Connection) -> dict[str, int]:
            old = list(
                conn.scalars(select(ConversationRow.id).where(ConversationRow.updated_at < cutoff))
            )
            messages = 0
            for start in range(0, len(old), 500):
                chunk = old[start : start + 500]
                result = conn.execute(
                    delete(MessageRow).where(MessageRow.conversation_id.in_(chunk))
                )
                messages += int(result.rowcount or 0)
                conn.execute(delete(HandoffRow).where(HandoffRow.conversation_id.in_(chunk)))
                conn.execute(delete(ConversationRow).where(ConversationRow.id.in_(chunk)))
            forgotten = conn.execute(
                update(ContactRow)
                .where(ContactRow.last_seen_at < cutoff, ContactRow.sealed_address.is_not(None))
                .values(sealed_address=None)
            )
            conn.execute(
                delete(ContactRow).where(
                    ContactRow.last_seen_at < cutoff,
                    ~select(ConversationRow.id)
                    .where(ConversationRow.contact_key == ContactRow.key)
                    .exists(),
                )
            )
            return {
                "conversations": len(old),
                "messages": messages,
                "addresses": int(forgotten.rowcount or 0),
            }

        return await self._write(run)

    # -- continuing on another channel -----------------------------------------------------

    async def save_handover_code(
        self, conversation_id: str, code_hash: str, expires_at: datetime, now: datetime
    ) -> None:
        """Keep a code word's hash for the conversation, replacing any earlier one (and
        clearing out every expired code)."""

        def run(session: Session) -> None:
            session.execute(
                delete(HandoverRow).where(
                    (HandoverRow.conversation_id == conversation_id)
                    | (HandoverRow.expires_at < now)
                )
            )
            session.add(
                HandoverRow(
                    code_hash=code_hash, conversation_id=conversation_id, expires_at=expires_at
                )
            )

        await self._write(_orm(run))

    async def take_handover_code(self, code_hash: str, now: datetime) -> str | None:
        """The open conversation a code word belongs to, if the code is still valid. A code
        works once: it is used up here, whatever the outcome."""

        def run(session: Session) -> str | None:
            row = session.get(HandoverRow, code_hash)
            if row is None:
                return None
            conversation_id, expires_at = row.conversation_id, _aware(row.expires_at)
            session.delete(row)
            if expires_at <= now:
                return None
            conv = session.get(ConversationRow, conversation_id)
            if conv is None or conv.closed:
                return None
            return conversation_id

        return await self._write(_orm(run))

    async def adopt(
        self,
        conversation_id: str,
        arrived_id: str,
        now: datetime,
        carry: Callable[[Conversation, Conversation], bool] | None = None,
    ) -> None:
        """Carry a conversation over to the contact and channel of another one (where the
        person has just arrived with a code word): the arrival's messages join the older
        transcript and the arrival is closed. `carry(arrived, conv)` may change the older
        conversation's risk level and answers from what the arrival holds (True if it did):
        saved in the same transaction, so nothing the arrival knew is lost with it."""

        def run(session: Session) -> None:
            conv = session.get(ConversationRow, conversation_id)
            arrived = session.get(ConversationRow, arrived_id)
            if conv is None or arrived is None:
                raise NotFound("no such conversation")
            if carry is not None:
                carried = _conversation(conv)
                if carry(_conversation(arrived), carried):
                    conv.risk_level = carried.risk_level
                    conv.answers = carried.answers
            session.execute(
                update(MessageRow)
                .where(MessageRow.conversation_id == arrived_id)
                .values(conversation_id=conversation_id)
            )
            session.execute(
                update(HandoffRow)
                .where(HandoffRow.conversation_id == conversation_id, HandoffRow.ended_at.is_(None))
                .values(channel=arrived.channel)
            )
            conv.contact_key = arrived.contact_key
            conv.channel = arrived.channel
            conv.last_inbound_at = arrived.last_inbound_at
            conv.updated_at = now
            # The arrival is closed, not deleted: anything already attached to it (a call-back,
            # a referral) stays where it is, and retention deletes it in time.
            arrived.closed = True
            arrived.updated_at = now

        await self._write(_orm(run))

    async def chat_message_ids(self, contact_key: str) -> tuple[list[str], list[str]]:
        """The platform's ids of every message in the contact's conversations: what was sent
        (platform_id) and what was received (external_id), for tidying a chat on erasure."""

        def run(conn: Connection) -> tuple[list[str], list[str]]:
            rows = conn.execute(
                select(MessageRow.direction, MessageRow.platform_id, MessageRow.external_id)
                .join(ConversationRow, ConversationRow.id == MessageRow.conversation_id)
                .where(ConversationRow.contact_key == contact_key)
                .order_by(MessageRow.id)
            )
            sent: list[str] = []
            received: list[str] = []
            for direction, platform_id, external_id in rows:
                if direction == Direction.OUT.value and platform_id:
                    sent.append(platform_id)
                elif direction == Direction.IN.value and external_id:
                    received.append(external_id)
            return sent, received

        return await self._read(run)

    async def erase_contact(self, contact_key: str) -> dict[str, int]:
        """Delete everything held about one contact: conversations, messages, address."""

        def run(conn: Connection) -> dict[str, int]:
            conv_ids = list(
                conn.scalars(
                    select(ConversationRow.id).where(ConversationRow.contact_key == contact_key)
                )
            )
            messages = conn.scalar(
                select(func.count())
                .select_from(MessageRow)
                .where(MessageRow.conversation_id.in_(conv_ids))
            )
            if conv_ids:
                conn.execute(delete(MessageRow).where(MessageRow.conversation_id.in_(conv_ids)))
                conn.execute(delete(HandoffRow).where(HandoffRow.conversation_id.in_(conv_ids)))
                conn.execute(delete(ConversationRow).where(ConversationRow.id.in_(conv_ids)))
            conn.execute(delete(ContactRow).where(ContactRow.key == contact_key))
            return {"conversations": len(conv_ids), "messages": int(messages or 0)}

        return await self._write(run)
