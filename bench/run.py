"""One command for issue 7's measurements: `python -m bench.run` (loopback only, bounded in
time, prints a table). Each figure is measured beside a raw aiohttp server in the same run and
reported as a ratio, so it holds on any machine. See docs/performance.md.

The server and the load generator are separate processes; on a machine with two or more
cores the server is pinned to CPU 0 and the load generator to CPU 1 (PostgreSQL and Redis,
when used, are not pinned)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench import load
from bench.server import pin, raise_fd_limit
from bench.stats import median
from bench.tree import has_risk, tree_path

BENCH_ROOT = Path(__file__).resolve().parent.parent
PG_DSN = os.environ.get("HELPLINE_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("HELPLINE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SERVER_CPU = None if os.environ.get("BENCH_NOPIN") else (0 if (os.cpu_count() or 1) >= 2 else None)
CLIENT_CPU = 1 if (os.cpu_count() or 1) >= 2 else None
RISK_TEXT = "I'm going to kill myself tonight, I've got the tablets here"


@dataclass
class Running:
    base: str
    pid: int
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def server(
    mode: str, *extra: str, loop: str = "asyncio", log: Path | None = None
) -> Iterator[Running]:
    """Start bench/server.py in its own process; stop it (SIGTERM, then kill) afterwards."""
    cmd = [sys.executable, "-m", "bench.server", mode, "--loop", loop, "--deadline", "900"]
    if SERVER_CPU is not None:
        cmd += ["--cpu", str(SERVER_CPU)]
    cmd += list(extra)
    err = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        cmd, cwd=BENCH_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {mode} server did not start (see {log})")
        info = json.loads(line)
        yield Running(f"http://127.0.0.1:{info['port']}", info["pid"], proc)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log:
            err.close()  # type: ignore[union-attr]


class Backend:
    """Where the full service keeps its data for one run: SQLite in a temporary folder, or
    a temporary PostgreSQL database plus a random Redis prefix (both removed afterwards)."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind = kind
        self.workdir = workdir
        self.pg_name = f"helpline_bench_{secrets.token_hex(4)}"
        self.prefix = f"bench-{secrets.token_hex(4)}:"

    def __enter__(self) -> list[str]:
        data = Path(tempfile.mkdtemp(dir=self.workdir, prefix=f"{self.kind}-"))
        args = ["--data-dir", str(data)]
        if self.kind == "sqlite":
            return args
        asyncio.run(_pg(f'CREATE DATABASE "{self.pg_name}"'))
        base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        return args + [
            "--database-url",
            f"{base}/{self.pg_name}",
            "--redis-url",
            REDIS_URL,
            "--redis-prefix",
            self.prefix,
        ]

    def __exit__(self, *exc: object) -> None:
        if self.kind == "sqlite":
            return
        asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)'))
        asyncio.run(_redis_forget(self.prefix))


async def _pg(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _redis_forget(prefix: str) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


# -- the report ----------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    baseline: str
    helpline: str
    ratio: str
    target: str
    met: str


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "NO")


def table(rows: list[Row]) -> str:
    head = Row("scenario", "raw aiohttp", "helpline", "ratio", "target", "met")
    cells = [head, *rows]
    widths = [max(len(getattr(r, f)) for r in cells) for f in Row.__dataclass_fields__]
    lines = []
    for i, r in enumerate(cells):
        values = [getattr(r, f) for f in Row.__dataclass_fields__]
        lines.append(" | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)))
        if i == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return "\n".join(lines)


# -- scenarios -----------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="helpline-bench-"))
        self.log = self.workdir / "servers.log"
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.echo_us_per_message: list[float] = []

    def repeat(self, measure: Callable[[], dict[str, float]]) -> dict[str, float]:
        runs = [measure() for _ in range(self.args.runs)]
        return {k: median([r[k] for r in runs]) for k in runs[0]}

    def echo(self) -> contextlib.AbstractContextManager[Running]:
        return server("echo", loop=self.args.loop, log=self.log)

    def full(self, backend: list[str]) -> contextlib.AbstractContextManager[Running]:
        return server("full", *backend, loop=self.args.loop, log=self.log)

    def chat(self, kind: str, conversations: int) -> None:
        seconds = self.args.seconds

        def once() -> dict[str, float]:
            with self.echo() as echo:
                e = asyncio.run(load.chat_load(echo.base, conversations, seconds))
            with Backend(kind, self.workdir) as backend, self.full(backend) as full:
                f = asyncio.run(load.chat_load(full.base, conversations, seconds))
            if conversations == 200:
                self.echo_us_per_message.append(1e6 / e.rate)
            return {
                "echo_rate": e.rate,
                "echo_p99": e.p99_ms,
                "rate": f.rate,
                "p50": f.p50_ms,
                "p99": f.p99_ms,
                "ratio": f.rate / e.rate,
                "lost": f.lost + e.lost,
            }

        m = self.repeat(once)
        ok = None
        if kind == "sqlite" and conversations == 200:
            ok = m["ratio"] >= 0.25 and m["p99"] < 50 and m["lost"] == 0
        self.rows.append(
            Row(
                f"web chat {kind}, C={conversations}: msg/s; p50/p99 ms",
                f"{m['echo_rate']:.0f}/s; p99 {m['echo_p99']:.1f}",
                f"{m['rate']:.0f}/s; {m['p50']:.1f}/{m['p99']:.1f}",
                f"{m['ratio']:.0%}",
                ">=25%, p99<50ms" if ok is not None else "",
                verdict(ok) + (f" ({m['lost']:.0f} lost)" if m["lost"] else ""),
            )
        )

    def handoff(self, kind: str) -> None:
        text = RISK_TEXT if has_risk(tree_path()) else "adviser"
        if text == "adviser":
            self.notes.append(
                "helpline/risk.py is not in the measured tree: hand-off was triggered by "
                "asking for an adviser, not by a risk message."
            )

        def once() -> dict[str, float]:
            with self.echo() as echo:
                e = asyncio.run(load.chat_load(echo.base, 200, self.args.seconds))
            with Backend(kind, self.workdir) as backend, self.full(backend) as full:
                f, samples, missed = asyncio.run(
                    load.handoff_under_load(full.base, 200, self.args.seconds, text)
                )
            return {
                "echo_p99": e.p99_ms,
                "p50": 1000 * load.percentile(samples, 50),
                "p99": 1000 * load.percentile(samples, 99),
                "n": len(samples),
                "missed": missed,
                "load_p99": f.p99_ms,
            }

        m = self.repeat(once)
        ok = m["p99"] < 100 and m["missed"] == 0
        self.rows.append(
            Row(
                f"hand-off {kind} under C=200 ({m['n']:.0f} samples): p50/p99 ms",
                f"echo p99 {m['echo_p99']:.1f}",
                f"{m['p50']:.1f}/{m['p99']:.1f}",
                f"{m['p99'] / m['echo_p99']:.0f}x" if m["echo_p99"] else "-",
                "p99<100ms",
                verdict(ok) + (f" ({m['missed']:.0f} missed)" if m["missed"] else ""),
            )
        )

    def burst(self, kind: str) -> None:
        people, within = self.args.burst, 10.0

        def once() -> dict[str, float]:
            with self.echo() as echo:
                e = asyncio.run(load.burst(echo.base, people, within))
            with Backend(kind, self.workdir) as backend, self.full(backend) as full:
                f = asyncio.run(load.burst(full.base, people, within))
            return {
                "echo_p99": e.p99_ms,
                "p50": f.p50_ms,
                "p99": f.p99_ms,
                "welcomed": f.welcomed,
                "spread": f.spread,
            }

        m = self.repeat(once)
        ok = m["welcomed"] == people
        self.rows.append(
            Row(
                f"burst {kind}: {people} arrive in {within:.0f}s; wait p50/p99 ms",
                f"p99 {m['echo_p99']:.1f}",
                f"{m['p50']:.0f}/{m['p99']:.0f}; {m['welcomed']:.0f} welcomed",
                f"{m['p99'] / m['echo_p99']:.0f}x",
                "all welcomed",
                verdict(ok),
            )
        )

    def idle(self) -> None:
        count = self.args.idle

        def once() -> dict[str, float]:
            with self.echo() as echo:
                _, e = asyncio.run(load.idle(echo.base, echo.pid, count))
            with Backend("sqlite", self.workdir) as backend, self.full(backend) as full:
                opened, f = asyncio.run(load.idle(full.base, full.pid, count))
            return {"echo": e, "full": f, "opened": opened}

        m = self.repeat(once)
        ok = m["full"] < 30 * 1024 and m["opened"] == count
        self.rows.append(
            Row(
                f"idle web chats: {count} open, memory per connection",
                f"{m['echo'] / 1024:.1f} KiB",
                f"{m['full'] / 1024:.1f} KiB",
                f"{m['full'] / m['echo']:.1f}x",
                "<30 KB",
                verdict(ok),
            )
        )

    def risk(self) -> None:
        if not has_risk(tree_path()):
            self.notes.append("risk screening cost: helpline/risk.py is not in the measured tree.")
            return
        cmd = [sys.executable, "-m", "bench.risk_cost"]
        if SERVER_CPU is not None:
            cmd += ["--cpu", str(SERVER_CPU)]
        out = subprocess.run(cmd, cwd=BENCH_ROOT, capture_output=True, check=True, timeout=300)
        r = json.loads(out.stdout)
        echo = median(self.echo_us_per_message) if self.echo_us_per_message else float("nan")
        self.rows.append(
            Row(
                f"risk screening, {r['messages']} labelled messages: us/message (median, p99)",
                f"echo {echo:.0f} us/msg",
                f"{r['median_us']:.0f} (p99 {r['p99_us']:.0f})",
                f"{r['median_us'] / echo:.0%}",
                "<200 us",
                verdict(r["median_us"] < 200),
            )
        )

    def sms(self, kind: str) -> None:
        if not (tree_path() / "channels" / "twilio.py").exists():
            self.notes.append("SMS webhooks: channels/twilio.py is not in the measured tree yet.")
            return
        from bench import sms

        m = self.repeat(lambda: sms.measure(self, kind))
        ok = m["ratio"] >= 0.30 and m["bad"] == 0
        self.rows.append(
            Row(
                f"SMS webhooks {kind}, {sms.PHONES} phones: requests/s",
                f"{m['echo']:.0f}/s",
                f"{m['full']:.0f}/s",
                f"{m['ratio']:.0%}",
                ">=30%",
                verdict(ok) + (f" ({m['bad']:.0f} refused)" if m["bad"] else ""),
            )
        )

    def close(self) -> None:
        if self.args.keep:
            print(f"server logs and data kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


SCENARIOS = ("chat", "handoff", "burst", "idle", "risk", "sms")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("scenarios", nargs="*", choices=(*SCENARIOS, []), default=list(SCENARIOS))
    p.add_argument("--backends", default="sqlite,postgres", help="sqlite,postgres")
    p.add_argument("--conversations", default="200,1000")
    p.add_argument("--seconds", type=float, default=10.0, help="measured window per run")
    p.add_argument("--runs", type=int, default=3, help="runs per figure (median reported)")
    p.add_argument("--burst", type=int, default=2000)
    p.add_argument("--idle", type=int, default=10000)
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    p.add_argument("--keep", action="store_true", help="keep server logs and data")
    p.add_argument("--quick", action="store_true", help="1 run, 5 s, smaller counts")
    args = p.parse_args(argv)
    if args.quick:
        args.runs, args.seconds, args.burst, args.idle = 1, 5.0, 500, 2000
    raise_fd_limit()
    pin(CLIENT_CPU)
    bench = Bench(args)
    started = time.perf_counter()
    backends = [b for b in args.backends.split(",") if b]
    try:
        for scenario in args.scenarios or SCENARIOS:
            if scenario == "chat":
                for kind in backends:
                    for c in args.conversations.split(","):
                        bench.chat(kind, int(c))
            elif scenario in ("handoff", "burst", "sms"):
                for kind in backends:
                    getattr(bench, scenario)(kind)
            else:
                getattr(bench, scenario)()
            print(f"[{time.perf_counter() - started:5.0f}s] {scenario} done", file=sys.stderr)
    finally:
        bench.close()
        print(describe(args))
        print(table(bench.rows))
        for note in bench.notes:
            print(f"note: {note}")
    return 0


def describe(args: argparse.Namespace) -> str:
    pinning = (
        f"server on CPU {SERVER_CPU}, load generator on CPU {CLIENT_CPU}"
        if SERVER_CPU is not None
        else "not pinned (one CPU)"
    )
    return (
        f"tree {tree_path()} | {os.cpu_count()} CPUs, {pinning} | loop {args.loop} | "
        f"median of {args.runs} run(s), {args.seconds:.0f} s windows"
    )


if __name__ == "__main__":
    sys.exit(main())
