"""What one small read costs through each layer: `python -m bench.read_cost`.

Reads one conversation by its id from a SQLite file, in one thread, four ways: with an ORM
Session's get() (what SqlStore did before 3384752, there through aiosqlite), with a
prebuilt statement on a connection checked out of the pool each time, with a prebuilt
statement on a connection kept open (what SqlStore's threads do now), and with the standard
library's driver alone. Prints the median microseconds per read of each."""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.tree import isolate

TREE = isolate()

from bench.server import pin  # noqa: E402


def timed(fn: Callable[[], Any], reads: int) -> float:
    fn()
    samples = []
    for _ in range(reads):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return sorted(samples)[len(samples) // 2] * 1e6


async def main(args: argparse.Namespace) -> None:
    from sqlalchemy import bindparam, select
    from sqlalchemy.orm import Session

    from helpline.storage import SqlStore
    from helpline.storage.engine import READ_ONLY, create_sqlite_thread_engine
    from helpline.storage.migrate import upgrade
    from helpline.storage.models import ConversationRow

    path = Path(tempfile.mkdtemp(prefix="read-cost-")) / "helpline.db"
    url = f"sqlite+aiosqlite:///{path}"
    store = SqlStore(url)
    await upgrade(store.engine)
    conv_id, _ = await store.ensure_conversation(
        contact_key="k" * 64, channel="web", sealed_address=None, language="en"
    )
    await store.close()

    engine = create_sqlite_thread_engine(url, connections=2).execution_options(**{READ_ONLY: True})
    table = ConversationRow.__table__
    prebuilt = select(table).where(table.c.id == bindparam("conv_id"))

    def orm() -> Any:
        with Session(engine) as session, session.begin():
            return session.get(ConversationRow, conv_id)

    def pooled() -> Any:
        with engine.connect() as conn, conn.begin():
            return conn.execute(prebuilt, {"conv_id": conv_id}).first()

    held = engine.connect()

    def kept() -> Any:
        with held.begin():
            return held.execute(prebuilt, {"conv_id": conv_id}).first()

    raw = sqlite3.connect(path, isolation_level=None)

    def driver() -> Any:
        raw.execute("BEGIN")
        row = raw.execute("SELECT * FROM conversations WHERE id = ?", (conv_id,)).fetchone()
        raw.execute("COMMIT")
        return row

    for name, fn in (
        ("ORM Session.get", orm),
        ("prebuilt, connection from the pool", pooled),
        ("prebuilt, connection kept open", kept),
        ("sqlite3 driver alone", driver),
    ):
        print(f"{name:42} {timed(fn, args.reads):7.0f} us")
    held.close()
    raw.close()
    engine.dispose()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--reads", type=int, default=2000)
    p.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    a = p.parse_args()
    pin(a.cpu)
    asyncio.run(main(a))
