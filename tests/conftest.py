"""Shared fixtures: the real Redis and PostgreSQL on this machine, isolated per test.

In CI (CI=true) a missing server fails the test; elsewhere it is skipped with the reason.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

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


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'helpline.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Every store test runs on SQLite and on the real PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))
