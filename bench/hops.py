"""What one web chat turn asks of the store: statements and thread hops per store operation,
and each operation's median time, alone (no other load in this process).

`python -m bench.hops` (add HELPLINE_BENCH_TREE=<path> to measure another tree, as far back as
16fe818). A hop is a round trip from the event loop to a database thread and back: every await
on aiosqlite (older trees: several per statement) or every operation handed to the store's
own SQLite threads (since 3384752: one per operation; since 2531198 writes queue for one
writer thread, which commits the writes queued together in one transaction). Under load each
hop also waits for the event loop's next turn and for the GIL."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.tree import isolate

TREE = isolate()

import aiosqlite.core  # noqa: E402
from sqlalchemy import event  # noqa: E402

from bench.server import pin  # noqa: E402

HOPS: Counter[str] = Counter()
STATEMENTS: Counter[str] = Counter()
_current = ["-"]
_execute = aiosqlite.core.Connection._execute


async def _counted(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
    HOPS[_current[0]] += 1
    return await _execute(self, fn, *args, **kwargs)


def _count_executor_hops(loop: asyncio.AbstractEventLoop) -> None:
    submit = loop.run_in_executor

    def counted(executor: Any, fn: Any, *args: Any) -> Any:
        HOPS[_current[0]] += 1
        return submit(executor, fn, *args)

    loop.run_in_executor = counted  # type: ignore[method-assign]


async def main(args: argparse.Namespace) -> None:
    from helpline.domain import Delivery, Reply, utcnow
    from helpline.privacy import Privacy, new_token
    from helpline.storage import SqlStore
    from helpline.storage.migrate import upgrade

    aiosqlite.core.Connection._execute = _counted  # type: ignore[method-assign]
    folder = Path(tempfile.mkdtemp(prefix="hops-"))
    store = SqlStore(args.database_url or f"sqlite+aiosqlite:///{folder / 'helpline.db'}")
    await upgrade(store.engine)

    def _statement(*_: Any) -> None:
        STATEMENTS[_current[0]] += 1

    for engine in (store.engine.sync_engine, getattr(store, "_threads", None)):
        engine = getattr(engine, "engine", engine)
        if engine is not None:
            event.listen(engine, "before_cursor_execute", _statement)
    _count_executor_hops(asyncio.get_running_loop())
    writer = getattr(getattr(store, "_threads", None), "writer", None)
    if hasattr(writer, "submit"):  # since 2531198: SQLite writes queue for one writer thread
        submit = writer.submit

        def counted_write(fn: Any) -> Any:
            HOPS[_current[0]] += 1
            return submit(fn)

        writer.submit = counted_write

    privacy = Privacy("bench-secret-" + "x" * 40)
    timings: dict[str, list[float]] = {}

    async def op(name: str, coro: Any) -> Any:
        _current[0] = name
        started = time.perf_counter()
        try:
            return await coro
        finally:
            timings.setdefault(name, []).append(time.perf_counter() - started)
            _current[0] = "-"

    async def sent(messages: Any) -> None:
        # Web chat gives sent replies no id of its own: one write for all (older trees: each).
        if hasattr(store, "mark_sent"):
            await op("mark_sent", store.mark_sent([m.id for m in messages]))
        else:
            for m in messages:
                await op("mark", store.mark(m.id, Delivery.SENT))

    for _ in range(args.turns):
        token = new_token()
        key = privacy.contact_key("web", token)
        sealed = privacy.seal(token, key)
        # What Engine.open and WebChat._history do for a new chat ...
        conv_id, _ = await op(
            "ensure_conversation",
            store.ensure_conversation(
                contact_key=key, channel="web", sealed_address=sealed, language="en"
            ),
        )
        conv = await op("conversation", store.conversation(conv_id))
        welcome = await op("save_turn", store.save_turn(conv, [], [Reply("w", ("x", "y"))]))
        await sent(welcome)
        # ... and what Engine.accept / Engine.process / Engine.deliver do for one message.
        await op(
            "accept_inbound",
            store.accept_inbound(
                contact_key=key,
                channel="web",
                sealed_address=sealed,
                text="menu",
                external_id=f"{key[:24]}:{new_token()}",
                received_at=utcnow(),
            ),
        )
        if hasattr(store, "pending_turn"):
            # (a 2-tuple before 30 November's late afternoon, with the unsent replies after)
            pending, conv = (await op("pending_turn", store.pending_turn(conv_id)))[:2]
        else:
            pending = await op("pending_inbound", store.pending_inbound(conv_id))
            conv = await op("conversation", store.conversation(conv_id))
        stored = await op(
            "save_turn",
            store.save_turn(conv, [m.id for m in pending], [Reply("a", ("b", "c")), Reply("d")]),
        )
        await sent(stored)
        await op("open_conversation", store.open_conversation(key))
        await op("transcript", store.transcript(conv_id))
    await store.close()
    calls = Counter({name: len(t) for name, t in timings.items()})
    head = ("store operation", "calls/turn", "statements", "hops", "us each")
    print(f"{head[0]:22} {head[1]:>10} {head[2]:>10} {head[3]:>6} {head[4]:>8}")
    for name, n in calls.items():
        each = sorted(timings[name])[len(timings[name]) // 2] * 1e6
        print(
            f"{name:22} {n / args.turns:10.0f} {STATEMENTS[name] / n:10.1f} "
            f"{HOPS[name] / n:6.1f} {each:8.0f}"
        )
    total_hops = sum(HOPS[k] for k in calls) / args.turns
    total_statements = sum(STATEMENTS[k] for k in calls) / args.turns
    print(f"per new chat + one message: {total_statements:.0f} statements, {total_hops:.0f} hops")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--turns", type=int, default=300)
    p.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    p.add_argument("--database-url", default=None, help="an empty PostgreSQL database instead")
    a = p.parse_args()
    pin(a.cpu)
    asyncio.run(main(a))
