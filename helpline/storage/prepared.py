"""How the store's hot statements run: compiled once by SQLAlchemy and run on the driver's own
connection (SQLite's cursor in a thread, asyncpg's connection on the event loop)."""

from __future__ import annotations

import contextlib
import re
from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, cast

import asyncpg
from sqlalchemy import Connection, Executable
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, ReturnsRows
from sqlalchemy.types import TypeEngine
from sqlalchemy.util import await_only

Params = Mapping[str, Any]
_REQUIRED = object()
# Execution option of a statement whose every value is a named bindparam() of its own (a
# statement with data-modifying WITH parts): compiled without column keys, which would add
# SET and VALUES entries to every INSERT and UPDATE in it.
EXPLICIT = "helpline_explicit"


class _Compiled:
    """Each statement compiled once for a dialect, per set of parameter names."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._cache: dict[tuple[int, tuple[str, ...]], tuple[Executable, Prepared]] = {}

    def _prepared(self, stmt: Executable, params: Params) -> Prepared:
        key = (id(stmt), tuple(params))
        found = self._cache.get(key)
        if found is not None and found[0] is stmt:
            return found[1]
        prepared = Prepared(stmt, self._dialect, tuple(params))
        self._cache[key] = (stmt, prepared)
        return prepared

    def first(self, conn: Connection, stmt: Executable, params: Params) -> Any:
        raise NotImplementedError

    def scalar(self, conn: Connection, stmt: Executable, params: Params) -> Any:
        row = self.first(conn, stmt, params)
        return None if row is None else row[0]

    def inserted_ids(self, conn: Connection, stmt: Executable, rows: Sequence[Params]) -> list[Any]:
        """The ids `stmt` (an INSERT returning the new id) gives each row, one row at a time."""
        return [self.scalar(conn, stmt, row) for row in rows]


class SqliteStatements(_Compiled):
    """Statements compiled once for SQLite and run on the driver's cursor of the
    connection's current transaction. Driver errors come out as SQLAlchemy's own exceptions
    (an IntegrityError is an IntegrityError either way), with their parameters hidden.

    On SQLite a statement's SQL takes microseconds and SQLAlchemy's execution layer
    (parameter processing, result set-up, events, caches) several times as much: one read of
    a conversation took 174-190 µs through a kept connection and 20 µs through the driver
    alone (`python -m bench.read_cost`). This keeps SQLAlchemy where it is good (the SQL is
    Core statements compiled by its SQLite dialect, and values go through each column type's
    own processors, so rows are stored exactly as the ORM stores them) and skips it for
    running them. Both kinds of statements answer the same calls, so each store operation is
    written once."""

    def _execute(self, conn: Connection, stmt: Executable, params: Params) -> Any:
        prepared = self._prepared(stmt, params)
        sql, values = prepared.bind(params)
        driver = conn.connection.driver_connection
        try:
            return prepared, driver.execute(sql, values)  # type: ignore[union-attr]
        except self._dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(
                sql, values, exc, self._dialect.loaded_dbapi.Error,
                hide_parameters=True, dialect=self._dialect,
            ) from exc  # fmt: skip

    def rows(self, conn: Connection, stmt: Executable, params: Params) -> list[Any]:
        prepared, cursor = self._execute(conn, stmt, params)
        return [prepared.row(raw) for raw in cursor.fetchall()]

    def first(self, conn: Connection, stmt: Executable, params: Params) -> Any:
        prepared, cursor = self._execute(conn, stmt, params)
        raw = cursor.fetchone()
        cursor.close()
        return None if raw is None else prepared.row(raw)

    def run(self, conn: Connection, stmt: Executable, params: Params) -> None:
        self._execute(conn, stmt, params)[1].close()


class AsyncpgStatements(_Compiled):
    """Statements compiled once for PostgreSQL and run on asyncpg's own connection, from a
    store operation running in SQLAlchemy's greenlet (Connection.run_sync). The store starts
    and ends the transaction on that connection itself (SqlStore._prepared_write): SQLAlchemy
    never begins one, because nothing runs through it.

    A write in a transaction took 604-742 µs of CPU through SQLAlchemy's execution layer and
    its asyncio adaption, 400 µs in asyncpg's own transaction, and 175 µs with no transaction
    (`python -m bench.pg_layers`, docs/performance.md). asyncpg's errors come out as SQLAlchemy's
    (IntegrityError for a unique key, OperationalError otherwise), parameters hidden."""

    def _fetch(self, conn: Connection, stmt: Executable, params: Params) -> tuple[Prepared, Any]:
        prepared = self._prepared(stmt, params)
        sql, values = prepared.bind(params)
        driver = conn.connection.driver_connection
        with translated(sql):
            records = await_only(driver.fetch(sql, *values))  # type: ignore[union-attr]
        return prepared, records

    def rows(self, conn: Connection, stmt: Executable, params: Params) -> list[Any]:
        prepared, records = self._fetch(conn, stmt, params)
        return [prepared.row(record) for record in records]

    def first(self, conn: Connection, stmt: Executable, params: Params) -> Any:
        prepared, records = self._fetch(conn, stmt, params)
        return prepared.row(records[0]) if records else None

    def run(self, conn: Connection, stmt: Executable, params: Params) -> None:
        self._fetch(conn, stmt, params)


@contextlib.contextmanager
def translated(sql: str) -> Iterator[None]:
    """asyncpg's errors as SQLAlchemy's, with the statement but not its parameters."""
    try:
        yield
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError(sql, None, exc, hide_parameters=True) from exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise OperationalError(sql, None, exc, hide_parameters=True) from exc


Processor = Callable[[Any], Any] | None


class Prepared:
    """One Core statement compiled for SQLite with the parameter names it is given: its SQL,
    how to turn a parameter mapping into the driver's positional values (each through its
    type's bind processor) and a driver row into a named row (each through its column type's
    result processor). An expanding parameter (`IN`) gets a placeholder per value."""

    def __init__(self, stmt: Executable, dialect: Dialect, keys: tuple[str, ...]) -> None:
        explicit = stmt.get_execution_options().get(EXPLICIT, False)
        compiled = cast(
            SQLCompiler,
            cast(ClauseElement, stmt).compile(
                dialect=dialect, column_keys=None if explicit else list(keys)
            ),
        )
        if compiled.insert_prefetch or compiled.update_prefetch:
            # Python-side column defaults are SQLAlchemy's execution layer's job.
            raise ValueError("a prepared statement must be given every column it sets")
        self._template = compiled.string
        self._binds: list[tuple[str, Processor, Any, bool]] = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            if bind.callable is not None:
                raise ValueError("a prepared statement cannot hold a value computed per call")
            fixed = _REQUIRED if bind.required or name in keys else bind.effective_value
            self._binds.append(
                (
                    name,
                    _impl(bind.type, dialect).bind_processor(dialect),
                    fixed,
                    bool(bind.expanding),
                )
            )
        self._expanding = any(expanding for *_, expanding in self._binds)
        # PostgreSQL's $1, $2...: the compiled numbers skip the expanding parameters, which
        # are numbered when their counts are known (see _sql).
        self._numbered = dialect.paramstyle in ("numeric", "numeric_dollar")
        self._sql_by_count: dict[tuple[int, ...], str] = {}
        columns = list(stmt.exported_columns) if isinstance(stmt, ReturnsRows) else []
        named = namedtuple("Row", [c.key for c in columns], rename=True)  # type: ignore[misc]
        self._make: Callable[[Iterable[Any]], Any] = named._make
        self._results = [_impl(c.type, dialect).result_processor(dialect, None) for c in columns]
        self._plain = not any(self._results)

    def bind(self, params: Params) -> tuple[str, list[Any]]:
        values: list[Any] = []
        counts: list[int] = []
        for name, process, fixed, expanding in self._binds:
            value = params[name] if fixed is _REQUIRED else fixed
            if expanding:
                many = [process(v) for v in value] if process else list(value)
                counts.append(len(many))
                values.extend(many)
            else:
                values.append(process(value) if process else value)
        if not self._expanding:
            return self._template, values
        return self._sql(tuple(counts)), values

    def _sql(self, counts: tuple[int, ...]) -> str:
        sql = self._sql_by_count.get(counts)
        if sql is None:
            sql = self._numbered_sql(counts) if self._numbered else self._qmark_sql(counts)
            self._sql_by_count[counts] = sql
        return sql

    def _qmark_sql(self, counts: tuple[int, ...]) -> str:
        sql = self._template
        names = iter(n for n, _, _, expanding in self._binds if expanding)
        for name, count in zip(names, counts, strict=True):
            sql = sql.replace(f"__[POSTCOMPILE_{name}]", ", ".join("?" * count) or "NULL")
        return sql

    def _numbered_sql(self, counts: tuple[int, ...]) -> str:
        renumbered: dict[int, int] = {}  # the compiled number of each plain parameter -> its own
        expanded: dict[str, str] = {}
        counted = iter(counts)
        compiled = given = 1
        for name, _, _, expanding in self._binds:
            if expanding:
                count = next(counted)
                expanded[name] = ", ".join(f"${n}" for n in range(given, given + count)) or "NULL"
                given += count
            else:
                renumbered[compiled] = given
                compiled += 1
                given += 1
        sql = re.sub(r"\$(\d+)", lambda m: f"${renumbered[int(m.group(1))]}", self._template)
        for name, placeholders in expanded.items():
            sql = sql.replace(f"__[POSTCOMPILE_{name}]", placeholders)
        return sql

    def row(self, raw: Sequence[Any]) -> Any:
        if self._plain:
            return self._make(raw)
        return self._make(
            process(value) if process and value is not None else value
            for process, value in zip(self._results, raw, strict=True)
        )


def _impl(type_: TypeEngine[Any], dialect: Dialect) -> TypeEngine[Any]:
    """The type as this dialect implements it (SQLite's DATETIME stores strings, say)."""
    return type_.dialect_impl(dialect)
