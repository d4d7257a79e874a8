"""How far the web chat target of issue 7 is from what the service cannot do without:
`python -m bench.floor [--runs 3] [--conversations 200] [--commit REF]`.

Drives, with the same client and one after the other in each round, the raw aiohttp echo
and servers that add to it, with no framework, only what every web chat message must
cost: the risk screen (helpline's own, over the message), and SQLite writes of the message
before it is answered, of its reply, and of the reply sent (the standard library's sqlite3
in one writer thread, as the service's). Then the echo with the service's own store doing
what a turn has it do (arrival, turn read, turn save, reply sent) and nothing else of the
service, and last the full service on SQLite. Each figure is a median over the rounds, and
each ratio is to the same round's echo.

The bare servers say whether item 1's target (25% of the echo) is within reach of any
design in this language and these libraries; the service's store alone says how much of
the distance to it is the store's."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from bench import load
from bench.run import CLIENT_CPU, Backend, export, server
from bench.server import pin, raise_fd_limit
from bench.stats import median

SERVERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("echo", "raw aiohttp echo", ()),
    ("bare", "echo + risk screen", ("--screen",)),
    ("bare", "echo + 3 SQLite writes", ("--store",)),
    ("bare", "echo + screen + 3 writes", ("--screen", "--store")),
    ("bare", "echo + the service's store", ("--service-store",)),
    ("full", "full service, SQLite", ()),
)


async def _measure(base: str, conversations: int, seconds: float) -> load.ChatResult:
    async with asyncio.timeout(180):
        return await load.chat_load(base, conversations, seconds)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--conversations", type=int, default=200)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--commit", default=None, help="measure this commit's service and screen")
    args = p.parse_args()
    raise_fd_limit()
    pin(CLIENT_CPU)
    workdir = Path(tempfile.mkdtemp(prefix="helpline-floor-"))
    if args.commit:
        os.environ["HELPLINE_BENCH_TREE"] = str(export(args.commit, workdir))
    figures: dict[str, list[tuple[float, float, float, float]]] = {n: [] for _, n, _ in SERVERS}
    try:
        for round_ in range(args.runs):
            echo_rate = 0.0
            for mode, name, flags in SERVERS:
                data = Path(tempfile.mkdtemp(dir=workdir))
                extra = [f"{f}={data}" if f.endswith("store") else f for f in flags]
                log = workdir / "servers.log"
                with contextlib.ExitStack() as stack:
                    if mode == "full":
                        extra = stack.enter_context(Backend("sqlite", workdir))
                    s = stack.enter_context(server(mode, *extra, log=log))
                    r = asyncio.run(_measure(s.base, args.conversations, args.seconds))
                echo_rate = r.rate if mode == "echo" else echo_rate
                figures[name].append((r.rate, r.p50_ms, r.p99_ms, r.rate / echo_rate))
                print(f"round {round_ + 1}: {name}: {r.rate:.0f} msg/s, {r.lost} lost", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"\nC={args.conversations}, {args.runs} round(s) of {args.seconds:.0f} s, server on "
        f"CPU 0, load generator on CPU 1; medians"
    )
    print(f"{'server':28} {'msg/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'of echo':>8}")
    for _, name, _ in SERVERS:
        rate, p50, p99, ratio = (median([f[i] for f in figures[name]]) for i in range(4))
        print(f"{name:28} {rate:7.0f} {p50:7.1f} {p99:7.1f} {ratio:8.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
