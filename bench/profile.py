"""Profile the full service's web chat path under load: `python -m bench.profile`.

Starts the full service (SQLite by default) as bench.run does, drives C conversations with
the same client, and samples the server with py-spy (`pip install py-spy`) or, without it,
cProfile. Prints where the event loop's thread spends its time; the raw profile is kept."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench import load, run

GROUPS = (
    ("selectors.py", "idle: waiting in epoll"),
    ("aiosqlite", "aiosqlite: handing calls to its thread and back"),
    ("sqlalchemy", "SQLAlchemy (ORM, Core, asyncio adaption)"),
    ("asyncio/", "asyncio event loop"),
    ("aiohttp", "aiohttp"),
    ("helpline/", "helpline, channels, handoff, flows"),
    ("channels/", "helpline, channels, handoff, flows"),
    ("handoff/", "helpline, channels, handoff, flows"),
    ("flows/", "helpline, channels, handoff, flows"),
    ("transitions", "transitions"),
    ("asyncpg", "asyncpg"),
    ("redis", "redis-py"),
)


def group(frame: str) -> str:
    """Which library a sampled frame belongs to, from its file name."""
    where = frame.rpartition("(")[2]
    return next((name for key, name in GROUPS if key in where), "other")


def summarise(raw: Path, top: int) -> str:
    """py-spy's raw (collapsed) stacks -> shares of the event loop thread's samples."""
    own: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if "MainThread" not in frames[0]:
            continue
        n = int(count)
        total += n
        own[frames[-1]] += n
        groups[group(frames[-1])] += n
        for frame in {re.sub(r":\d+\)$", ")", f) for f in frames[1:]}:
            inclusive[frame] += n
    lines = [f"event loop thread: {total} samples (idle included: waiting in epoll)"]
    lines.append("-- own time by library")
    lines += [f"{100 * n / total:5.1f}%  {g}" for g, n in groups.most_common()]
    lines.append("-- own time")
    lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines.append("-- including callees (helpline, channels, storage, drivers)")
    wanted = re.compile(
        r"helpline/|channels/|handoff/|flows/|aiosqlite|asyncpg|redis|sqlalchemy/orm/session"
    )
    lines += [
        f"{100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common() if wanted.search(f)
    ][:top]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--conversations", type=int, default=200)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--commit", default=None, help="profile this commit (see bench.run)")
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "helpline-profile")
    p.add_argument("--top", type=int, default=30)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="helpline-profile-"))
    if args.commit:
        os.environ["HELPLINE_BENCH_TREE"] = str(run.export(args.commit, workdir))
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    use_spy = Path(spy).exists()
    stats = args.out / "server.cprofile"
    extra = [] if use_spy else ["--cprofile", str(stats)]
    try:
        with (
            run.Backend(args.backend, workdir) as backend,
            run.server("full", *backend, *extra, log=workdir / "server.log") as full,
        ):
            sampler = None
            raw = args.out / "server.pyspy.txt"
            if use_spy:
                window = args.seconds + 2.0  # the load's warm-up included
                sampler = subprocess.Popen(
                    [spy, "record", "--pid", str(full.pid), "--duration", str(int(window)),
                     "--rate", "200", "--format", "raw", "--idle", "--threads",
                     "--nonblocking", "-o", str(raw)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
            result = asyncio.run(load.chat_load(full.base, args.conversations, args.seconds))
            if sampler is not None:
                sampler.wait(timeout=120)
        print(
            f"{args.backend}, C={args.conversations}: {result.rate:.0f} msg/s, "
            f"p50 {result.p50_ms:.0f} ms, p99 {result.p99_ms:.0f} ms, {result.lost} lost"
        )
        if use_spy:
            print(summarise(raw, args.top))
            print(f"raw stacks: {raw} (flamegraph.pl or speedscope read them)")
        else:
            import pstats

            pstats.Stats(str(stats)).sort_stats("tottime").print_stats(args.top)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
