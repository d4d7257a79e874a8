"""How far item 1 of issue 7 (web chat) is from the least the service must do:
`python -m bench.floor [--runs 3] [--conversations 200] [--commit REF]`.

Drives, with the same client and one after the other in each round, the raw aiohttp echo
and servers that add to it only part of the service's work, with no framework (bench/bare.py):
the risk screen (helpline's own); the three writes a web chat message needs at the least
(the message before it is answered; the turn's save: the conversation's state, the message
handled, the reply; the reply sent), on the standard library's sqlite3 in one writer thread
as the service's, with the service's indexes and constraints but no reads; both; the
service's own store doing a turn's four operations and nothing else; and last the full
service on SQLite. Each figure is a median over the rounds, each ratio the median of each
round's own ratio to its echo. The bare servers are a ceiling for any design that does
this work in Python with these libraries, not a measure of one; the service's store alone
shows how much of the distance to the target is the store's."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from bench import load
from bench.run import CLIENT_CPU, SERVER_CPU, Backend, export, server
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
    figures: dict[str, list[tuple[float, ...]]] = {n: [] for _, n, _ in SERVERS}
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
                figures[name].append((r.rate, r.p50_ms, r.p99_ms, r.rate / echo_rate, r.lost))
                print(f"round {round_ + 1}: {name}: {r.rate:.0f} msg/s, {r.lost} lost", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    pinned = (
        f"server on CPU {SERVER_CPU}, load generator on CPU {CLIENT_CPU}"
        if SERVER_CPU is not None
        else "not pinned"
    )
    print(f"\nC={args.conversations}, {args.runs} round(s) of {args.seconds:.0f} s, {pinned}")
    print("medians over the rounds; 'of echo' is the median of each round's own ratio")
    print(f"{'server':28} {'msg/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'of echo':>8} {'lost':>5}")
    for _, name, _ in SERVERS:
        rate, p50, p99, ratio = (median([f[i] for f in figures[name]]) for i in range(4))
        lost = sum(f[4] for f in figures[name])
        print(f"{name:28} {rate:7.0f} {p50:7.1f} {p99:7.1f} {ratio:8.1%} {lost:5.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
