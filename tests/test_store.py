"""The SQLite store's writer thread: a failure is reported at once, never left waiting."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from helpline.domain import utcnow
from helpline.storage import SqlStore


async def _accept(store: SqlStore, n: int) -> object:
    return await store.accept_inbound(
        contact_key=f"{n:064d}",
        channel="test",
        sealed_address=None,
        text="hello",
        external_id=None,
        received_at=utcnow(),
    )


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
