"""Shared fixtures: the real Redis and PostgreSQL on this machine, isolated per test.

In CI (CI=true) a missing server fails the test; elsewhere it is skipped with the reason.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from handoff import accounts
from helpline.content import DEFAULT_ROOT, Content

REDIS_URL = os.environ.get("HELPLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_DSN = os.environ.get("HELPLINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ROOT = Path(__file__).resolve().parent.parent


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def need_service(name: str, host: str, port: int) -> None:
    if _port_open(host, port):
        return
    message = f"{name} is not answering on {host}:{port} (start it: see .ci/run)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """A Redis URL; keys written under the `redis_prefix` fixture are removed afterwards."""
    need_service("Redis", "127.0.0.1", 6379)
    yield REDIS_URL


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A random key prefix for one test; every key under it is deleted at the end."""
    import redis.asyncio as redis

    prefix = f"test-{secrets.token_hex(6)}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """An SQLAlchemy asyncpg URL for a fresh, empty database, dropped afterwards."""
    need_service("PostgreSQL", "127.0.0.1", 5432)
    import asyncpg

    name = f"helpline_t_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    yield f"{base}/{name}"
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def sqlite_migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite database the migrations built from empty, once per test process."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from helpline.storage.migrate import upgrade

    path = tmp_path_factory.mktemp("migrated") / "helpline.db"

    async def build() -> None:
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(build())
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_migrated: Path) -> str:
    """A database of this test's own at the newest schema, as the service finds its file after
    the first start: a copy of `sqlite_migrated` (building the schema takes a tenth of a second
    on SQLite, and most tests start the app; PostgreSQL tests still build it from empty, as do
    the migration tests that ask for one)."""
    shutil.copyfile(sqlite_migrated, tmp_path / "helpline.db")
    return f"sqlite+aiosqlite:///{tmp_path / 'helpline.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Every store test runs on SQLite and on the real PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(scope="session", autouse=True)
def content_read_once() -> Iterator[None]:
    """Each test starts the whole app, which reads and checks every file under content/ (about
    a fifth of a second). The same files make the same Content, which nothing changes once
    loaded, so each test process reads the service's own folder once. A test's own folder
    (a copy it edits) is read each time, and its errors are never kept."""
    load = Content.load.__func__  # type: ignore[attr-defined]
    kept: list[Content] = []

    def load_once(cls: type[Content], root: Path = DEFAULT_ROOT) -> Content:
        if root != DEFAULT_ROOT:
            return load(cls, root)  # type: ignore[no-any-return]
        if not kept:
            kept.append(load(cls, root))
        return kept[0]

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(Content, "load", classmethod(load_once))
        yield


# The service's own password hasher, before the fixture below swaps it (test_accounts checks
# that what it stores costs what it should).
SERVICE_HASHER = accounts._hasher


@pytest.fixture(scope="session", autouse=True)
def quick_password_hashes() -> Iterator[None]:
    """argon2 at the service's cost takes a seventh of a second of CPU a hash or a check, on
    purpose; the tests add and log in hundreds of accounts. Here hashes are argon2id at its
    lowest cost: the same answers (a wrong password fails, what is stored is not the
    password) in a fraction of the time."""
    quick = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(accounts, "_hasher", quick)
        yield
