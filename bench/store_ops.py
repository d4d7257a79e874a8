"""What each of a message's store operations costs: `python -m bench.store_ops`.

Runs the store's hot operations on their own, one after another, against a fresh PostgreSQL
database (or SQLite with --backend sqlite), the way a web chat message uses them: its arrival
in an open conversation, the turn's read, the turn's save (one reply, the message marked
handled) and the reply marked sent, all inside SqlStore.unit() as the engine runs a turn.
Prints the CPU time of this process and the wall time per operation (medians of --rounds
rounds). On PostgreSQL the wall time includes waiting for the server; the CPU time is what
the service's one event loop pays.

To measure a commit rather than the working tree, export it and point at it:
`git worktree add /tmp/before <commit>` then
`HELPLINE_BENCH_TREE=/tmp/before python -m bench.store_ops`."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.tree import isolate

TREE = isolate()

from bench.run import PG_DSN  # noqa: E402
from bench.server import pin  # noqa: E402


async def _timed(fn: Callable[[], Awaitable[Any]], ops: int) -> tuple[float, float]:
    """CPU and wall microseconds per call of `fn`, over `ops` calls."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(ops):
        await fn()
    return (
        (time.process_time() - cpu) / ops * 1e6,
        (time.perf_counter() - wall) / ops * 1e6,
    )


async def measure(url: str, rounds: int, ops: int) -> dict[str, list[tuple[float, float]]]:
    from helpline.domain import Reply, utcnow
    from helpline.storage import SqlStore
    from helpline.storage.migrate import upgrade

    store = SqlStore(url)
    results: dict[str, list[tuple[float, float]]] = {}
    try:
        await upgrade(store.engine)
        key = "k" * 64
        first = await store.accept_inbound(
            contact_key=key,
            channel="web",
            sealed_address=None,
            text="hello",
            external_id=None,
            received_at=utcnow(),
        )
        conv_id = first.conversation_id
        state: dict[str, Any] = {}

        async def arrival() -> None:
            state["accepted"] = await store.accept_inbound(
                contact_key=key,
                channel="web",
                sealed_address=None,
                text="menu",
                external_id=None,
                received_at=utcnow(),
            )

        async def turn_read() -> None:
            state["pending"], state["conv"] = (await store.pending_turn(conv_id))[:2]

        async def turn_save() -> None:
            handled = [m.id for m in state["pending"]]
            state["stored"] = await store.save_turn(
                state["conv"], handled, [Reply("Here is the menu.")]
            )

        async def sent() -> None:
            await store.mark_sent([m.id for m in state["stored"]])

        steps = (
            ("arrival", arrival),
            ("turn: read", turn_read),
            ("turn: save", turn_save),
            ("reply sent", sent),
        )
        for _ in range(rounds):
            # Each step `ops` times in a row, in a message's order: the arrivals leave that
            # many messages waiting, which the reads then find; so the read is timed on one
            # message waiting, as in a turn, by reading again after the first save.
            for name, fn in steps:
                async with store.unit():
                    if name == "turn: read":
                        await turn_read()
                        await turn_save()  # the waiting messages answered
                        await arrival()
                    results.setdefault(name, []).append(await _timed(fn, ops))
    finally:
        await store.close()
    return results


async def main(args: argparse.Namespace) -> None:
    import asyncpg

    if args.backend == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="store-ops-"))
        url = f"sqlite+aiosqlite:///{folder / 'helpline.db'}"
        results = await measure(url, args.rounds, args.ops)
    else:
        name = f"helpline_ops_{secrets.token_hex(4)}"
        admin = await asyncpg.connect(PG_DSN)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
            results = await measure(f"{base}/{name}", args.rounds, args.ops)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    print(f"{args.backend}, tree {TREE}: medians of {args.rounds} rounds of {args.ops}")
    print(f"{'operation':14} {'CPU us':>8} {'wall us':>8}")
    total_cpu = 0.0
    for name, samples in results.items():
        cpu = statistics.median(s[0] for s in samples)
        wall = statistics.median(s[1] for s in samples)
        total_cpu += cpu
        print(f"{name:14} {cpu:8.0f} {wall:8.0f}")
    print(f"{'a message':14} {total_cpu:8.0f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--ops", type=int, default=200)
    p.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    a = p.parse_args()
    pin(a.cpu)
    asyncio.run(main(a))
