"""What one small write costs on PostgreSQL through each layer: `python -m bench.pg_layers`.

Updates one row of a scratch table, many times, five ways: in a transaction through
SQLAlchemy's execution layer and its asyncio adaption (with an expanding IN, and with a
plain equality: what SqlStore did before aaf3f3b), the same without run_sync, in a
transaction of asyncpg's own (what SqlStore's writes do now), and in no transaction on
asyncpg (what its single statements do now). Prints the CPU time of this process per write;
PostgreSQL's own time is on its side of the socket."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.run import PG_DSN
from bench.server import pin


async def _cpu(fn: Callable[[], Awaitable[Any]], writes: int) -> float:
    for _ in range(30):
        await fn()
    started = time.process_time()
    for _ in range(writes):
        await fn()
    return (time.process_time() - started) / writes * 1e6


async def main(args: argparse.Namespace) -> None:
    import asyncpg
    from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, update
    from sqlalchemy.ext.asyncio import create_async_engine

    name = f"helpline_layers_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    engine = create_async_engine(f"{base}/{name}")
    metadata = MetaData()
    table = Table("t", metadata, Column("id", Integer, primary_key=True), Column("status", String))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(table.insert(), [{"id": i, "status": "new"} for i in range(100)])
        in_ = update(table).where(table.c.id.in_(bindparam("ids", expanding=True)))
        equal = update(table).where(table.c.id == bindparam("i"))
        sql = "UPDATE t SET status = $1::VARCHAR WHERE t.id = ANY($2::INTEGER[])"
        async with engine.connect() as conn:
            driver: Any = (await conn.get_raw_connection()).driver_connection

            async def sa_in() -> None:
                async with conn.begin():
                    await conn.run_sync(lambda c: c.execute(in_, {"ids": [5], "status": "sent"}))

            async def sa_equal() -> None:
                async with conn.begin():
                    await conn.run_sync(lambda c: c.execute(equal, {"i": 5, "status": "sent"}))

            async def sa_direct() -> None:
                async with conn.begin():
                    await conn.execute(equal, {"i": 5, "status": "sent"})

            async def asyncpg_transaction() -> None:
                async with driver.transaction():
                    await driver.fetch(sql, "sent", [5])

            async def asyncpg_alone() -> None:
                await driver.fetch(sql, "sent", [5])

            for label, fn in (
                ("SQLAlchemy transaction, run_sync, expanding IN", sa_in),
                ("SQLAlchemy transaction, run_sync, =", sa_equal),
                ("SQLAlchemy transaction, execute, =", sa_direct),
                ("asyncpg transaction", asyncpg_transaction),
                ("asyncpg, no transaction", asyncpg_alone),
            ):
                print(f"{label:50} {await _cpu(fn, args.writes):6.0f} us CPU a write")
    finally:
        await engine.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--writes", type=int, default=1000)
    p.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    a = p.parse_args()
    pin(a.cpu)
    asyncio.run(main(a))
