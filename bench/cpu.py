"""Where the server's CPU goes, thread by thread, under the web chat load:
`python -m bench.cpu [--backend sqlite|postgres] [--conversations 200]`.

Starts the full service as bench.run does (pinned to CPU 0 on a machine with two or more
cores), drives C conversations with the same client, and reads each of the server's threads'
CPU time from /proc/<pid>/task/*/stat over a window in the middle of the load (Linux only).
Prints each thread's share of a core and its CPU time per message answered in that window."""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from bench import load, run


def thread_seconds(pid: int) -> dict[int, tuple[str, float, float]]:
    """CPU seconds used so far by each thread of a process, in user space and in the kernel,
    with its name."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[int, tuple[str, float, float]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        except OSError:
            continue  # the thread ended
        fields = stat.rpartition(")")[2].split()
        found[int(tid)] = (name, int(fields[11]) / ticks, int(fields[12]) / ticks)
    return found


async def measure(base: str, pid: int, conversations: int, window: float) -> None:
    chat = asyncio.create_task(load.chat_load(base, conversations, window + 4, warmup=2.0))
    await asyncio.sleep(4)  # the chats are open and the load is steady
    before, started = thread_seconds(pid), time.perf_counter()
    await asyncio.sleep(window)
    after, elapsed = thread_seconds(pid), time.perf_counter() - started
    result = await chat
    print(
        f"{conversations} conversations: {result.rate:.0f} msg/s, p50 {result.p50_ms:.0f} ms, "
        f"p99 {result.p99_ms:.0f} ms; server threads over {elapsed:.1f} s:"
    )
    total = kernel = 0.0
    for tid, (name, user, system) in sorted(after.items()):
        _, user_before, system_before = before.get(tid, (name, 0.0, 0.0))
        used, in_kernel = user + system - user_before - system_before, system - system_before
        total, kernel = total + used, kernel + in_kernel
        if used > 0:
            label = "event loop" if tid == pid else f"{name} ({tid})"
            print(
                f"  {label:28} {100 * used / elapsed:5.1f}% of a core, "
                f"{1e6 * used / elapsed / result.rate:6.0f} us a message "
                f"({1e6 * in_kernel / elapsed / result.rate:4.0f} in the kernel)"
            )
    print(
        f"  {'all':28} {100 * total / elapsed:5.1f}% of a core, "
        f"{1e6 * total / elapsed / result.rate:6.0f} us a message "
        f"({1e6 * kernel / elapsed / result.rate:4.0f} in the kernel)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--conversations", type=int, default=200)
    p.add_argument("--seconds", type=float, default=5.0, help="measured window")
    p.add_argument("--commit", default=None, help="measure this commit (see bench.run)")
    args = p.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="helpline-cpu-"))
    if args.commit:
        os.environ["HELPLINE_BENCH_TREE"] = str(run.export(args.commit, workdir))
    with run.Backend(args.backend, workdir) as backend, run.server("full", *backend) as full:
        asyncio.run(measure(full.base, full.pid, args.conversations, args.seconds))


if __name__ == "__main__":
    main()
