"""Database engines for SQLite (embedded default) and PostgreSQL, set up as TECH-NOTES advises."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# Execution option marking a read-only session: on SQLite it begins with a plain (deferred)
# BEGIN, so readers run beside the one writer, as WAL allows, instead of queueing for the lock.
READ_ONLY = "helpline_read_only"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


# PostgreSQL connections each instance keeps open, and how many more it may open for a
# moment. The pool must hold what the engine's admission lets run at once (POSTGRES_TURNS)
# plus the console's and housekeeping's: connections opened beyond the pool are closed again
# as soon as they are given back, and under load that meant opening a connection (a new
# server process) for a good part of the turns (docs/performance.md). A turn holds one
# (SqlStore.unit), and a second for a moment if an effect opens a session of its own (a
# call-back request): with 8 turns the pool always leaves turns able to finish.
POOL_SIZE = 20
POOL_OVERFLOW = 5

# Turns the engine runs at once on each backend (SqlStore.turns_at_once). On SQLite more at
# once share each commit of the one writer, so a message costs fewer commits: 8 answered 5%
# fewer web chat messages and 13% fewer texts a second than 16. On PostgreSQL more at once
# only share the event loop with more others: the same rate, but with 16 a risk message took
# half as long again to reach an adviser's console under load (docs/performance.md).
SQLITE_TURNS = 16
POSTGRES_TURNS = 8


def create_engine(url: str, *, pool_size: int = POOL_SIZE) -> AsyncEngine:
    if is_sqlite(url):
        engine = create_async_engine(url, hide_parameters=True)
        _sqlite_setup(engine.sync_engine)
        return engine
    # hide_parameters: a failed statement's error must not carry message text or sealed
    # addresses into a log.
    engine = create_async_engine(
        url,
        hide_parameters=True,
        pool_recycle=1800,
        pool_size=pool_size,
        max_overflow=POOL_OVERFLOW,
    )
    event.listen(engine.sync_engine.pool, "checkout", _still_open)
    return engine


def _still_open(_dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    """A pooled PostgreSQL connection the server has closed (a restart, a fail-over, an
    administrator ending sessions) is replaced before it is handed out. asyncpg notices the
    closed socket by itself, so this asks no question of the server: SQLAlchemy's
    pool_pre_ping cost three round trips (BEGIN, an empty query, ROLLBACK) on every checkout,
    two checkouts a message (docs/performance.md). So is one still inside a transaction
    (which only a store operation cut short could leave: see store._run_on_asyncpg)."""
    driver = record.driver_connection
    if driver.is_closed():
        raise DisconnectionError("the server closed this connection")
    if in_transaction(driver):
        raise DisconnectionError("a connection came back inside a transaction")


def in_transaction(driver: Any) -> bool:
    """Whether an asyncpg connection is inside a transaction, by the server's account or
    by asyncpg's own (which marks one before its BEGIN is sent: cancelled then, it never
    ends it, and every later transaction on it would be a savepoint of that one)."""
    return bool(driver.is_in_transaction() or getattr(driver, "_top_xact", None) is not None)


def create_sqlite_thread_engine(url: str, *, connections: int) -> Engine:
    """The same SQLite file through the standard library's driver, for store operations run
    whole in a worker thread (see SqlStore): one thread hop per operation instead of several
    per statement through aiosqlite."""
    engine = create_sync_engine(
        make_url(url).set(drivername="sqlite"),
        hide_parameters=True,
        pool_size=connections,
        max_overflow=0,
        connect_args={"check_same_thread": False},
    )
    _sqlite_setup(engine)
    return engine


def _sqlite_setup(sync_engine: Engine) -> None:
    @event.listens_for(sync_engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        # The driver's own transaction handling is switched off so that BEGIN IMMEDIATE below
        # takes the write lock up front: read-then-write transactions otherwise deadlock into
        # "database is locked" under concurrency.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        for pragma in (
            "journal_mode=WAL",
            "foreign_keys=ON",
            "busy_timeout=10000",
            "synchronous=NORMAL",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(sync_engine, "handle_error")
    def _cancelled_is_no_disconnect(context: Any) -> None:
        # A task cancelled while its statement runs (the console's live page closing during
        # its queue snapshot) is taken by SQLAlchemy for a lost connection: it closes the
        # connection without closing the cursor. SQLite then keeps that connection's
        # transaction, and its write lock, until the garbage collector frees the half-read
        # cursor: every write meanwhile failed after the 10 s busy timeout ("database is
        # locked"). The connection is sound (aiosqlite runs its calls in order on its own
        # thread), so it is treated as an ordinary error: cursor closed, rolled back.
        if isinstance(context.original_exception, asyncio.CancelledError):
            context.is_disconnect = False

    @event.listens_for(sync_engine, "begin")
    def _begin(conn: Any) -> None:
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
