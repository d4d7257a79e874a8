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
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

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
SCENARIO_LIMIT = 180.0  # seconds: no single measurement may take longer
IDLE_LIMIT = 600.0  # except opening 10,000 idle chats on the full service
T = TypeVar("T")


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
        self.runs: dict[str, list[dict[str, float]]] = {}
        self.started = time.perf_counter()

    def repeat(
        self, name: str, measure: Callable[[], dict[str, float]], runs: int | None = None
    ) -> dict[str, float]:
        """Median of each figure over several runs (each run measures its own baseline, so
        ratios are per run, then the median taken); every run is kept for --json."""
        done: list[dict[str, float]] = []
        for _ in range(runs or self.args.runs):
            if done and self.out_of_time():
                self.notes.append(f"{name}: out of time budget after {len(done)} run(s)")
                break
            done.append(measure())
        self.runs[name] = done
        return {k: median([r[k] for r in done]) for k in done[0]}

    def out_of_time(self) -> bool:
        return time.perf_counter() - self.started > self.args.budget

    def run_async(self, coro: Coroutine[Any, Any, T], limit: float = SCENARIO_LIMIT) -> T:
        """One measurement, never longer than `limit` seconds."""

        async def bounded() -> T:
            async with asyncio.timeout(limit):
                return await coro

        return asyncio.run(bounded())

    def echo(self) -> contextlib.AbstractContextManager[Running]:
        return server("echo", loop=self.args.loop, log=self.log)

    def full(self, backend: list[str], *extra: str) -> contextlib.AbstractContextManager[Running]:
        return server("full", *backend, *extra, loop=self.args.loop, log=self.log)

    def chat(self, kind: str, conversations: int) -> None:
        seconds = self.args.seconds

        def once() -> dict[str, float]:
            with self.echo() as echo:
                e = self.run_async(load.chat_load(echo.base, conversations, seconds))
            with Backend(kind, self.workdir) as backend, self.full(backend) as full:
                f = self.run_async(load.chat_load(full.base, conversations, seconds))
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

        m = self.repeat(f"chat {kind} C={conversations}", once)
        ok = None
        if kind == "sqlite" and conversations == 200:
            ok = m["ratio"] >= 0.25 and m["p99"] < 50 and m["lost"] == 0
        self.rows.append(
            Row(
                f"web chat {kind}, C={conversations}: msg/s; p50/p99 ms",
                f"{m['echo_rate']:.0f}/s; p99 {m['echo_p99']:.1f}",
                f"{m['rate']:.0f}/s; {m['p50']:.1f}/{m['p99']:.1f}",
                f"{m['ratio']:.1%}",
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
        adviser = ("bench-adviser", "bench-" + secrets.token_hex(12))

        def once() -> dict[str, float]:
            with self.echo() as echo:
                e = self.run_async(load.chat_load(echo.base, 200, self.args.seconds))
            with (
                Backend(kind, self.workdir) as backend,
                self.full(backend, "--adviser", ":".join(adviser)) as full,
            ):
                h = self.run_async(
                    load.handoff_under_load(full.base, 200, self.args.seconds, text, adviser)
                )
            return {
                "echo_p99": e.p99_ms,
                "p50": 1000 * load.percentile(h.console, 50),
                "p99": 1000 * load.percentile(h.console, 99),
                "hub_p50": 1000 * load.percentile(h.hub, 50),
                "hub_p99": 1000 * load.percentile(h.hub, 99),
                "n": len(h.console),
                "missed": h.missed,
                "load_rate": h.load.rate,
                "load_p99": h.load.p99_ms,
            }

        m = self.repeat(f"handoff {kind}", once)
        ok = m["p99"] < 100 and m["missed"] == 0
        self.rows.append(
            Row(
                f"hand-off {kind} under C=200 ({m['n']:.0f} samples): console p50/p99 ms "
                f"(hub event p99)",
                f"echo p99 {m['echo_p99']:.1f}",
                f"{m['p50']:.0f}/{m['p99']:.0f} ({m['hub_p99']:.0f})",
                f"{m['p99'] / m['echo_p99']:.0f}x" if m["echo_p99"] else "-",
                "p99<100ms",
                verdict(ok) + (f" ({m['missed']:.0f} missed)" if m["missed"] else ""),
            )
        )

    def burst(self, kind: str) -> None:
        people, within = self.args.burst, 10.0

        def once() -> dict[str, float]:
            with self.echo() as echo:
                e = self.run_async(load.burst(echo.base, people, within))
            with Backend(kind, self.workdir) as backend, self.full(backend) as full:
                f = self.run_async(load.burst(full.base, people, within))
            return {
                "echo_p99": e.p99_ms,
                "p50": f.p50_ms,
                "p99": f.p99_ms,
                "welcomed": f.welcomed,
                "spread": f.spread,
            }

        m = self.repeat(f"burst {kind}", once)
        ok = m["welcomed"] == people
        self.rows.append(
            Row(
                f"burst {kind}: {people} arrive in {within:.0f}s; wait for the welcome "
                f"p50/p99 ms (inf: not welcomed within {load.BURST_PATIENCE:.0f} s)",
                f"p99 {m['echo_p99']:.1f}",
                f"{m['p50']:.0f}/{m['p99']:.0f}; {m['welcomed']:.0f} welcomed",
                f"{m['p99'] / m['echo_p99']:.0f}x" if math.isfinite(m["p99"]) else "-",
                "all welcomed",
                verdict(ok),
            )
        )

    def idle(self) -> None:
        count = self.args.idle

        def once() -> dict[str, float]:
            with self.echo() as echo:
                _, e, e_half = self.run_async(load.idle(echo.base, echo.pid, count))
            with Backend("sqlite", self.workdir) as backend, self.full(backend) as full:
                # The full service opens a few dozen chats a second on this kind of machine.
                opened, f, f_half = self.run_async(
                    load.idle(full.base, full.pid, count), IDLE_LIMIT
                )
            return {
                "echo": e,
                "echo_half": e_half,
                "full": f,
                "full_half": f_half,
                "opened": opened,
            }

        # Memory hardly varies with the machine's load, and opening 10,000 chats is slow:
        # one run unless --idle-runs says otherwise.
        m = self.repeat("idle", once, runs=self.args.idle_runs)
        worst = max(m["full"], m["full_half"])
        ok = worst < 30 * 1000 and m["opened"] == count
        self.rows.append(
            Row(
                f"idle web chats: {count} open ({m['opened']:.0f} opened), memory per "
                "connection: all (second half)",
                f"{m['echo'] / 1024:.1f} KiB ({m['echo_half'] / 1024:.1f})",
                f"{m['full'] / 1024:.1f} KiB ({m['full_half'] / 1024:.1f})",
                f"{worst / max(m['echo'], m['echo_half']):.1f}x",
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

        def once() -> dict[str, float]:
            out = subprocess.run(cmd, cwd=BENCH_ROOT, capture_output=True, check=True, timeout=300)
            r: dict[str, float] = json.loads(out.stdout)
            return r

        r = self.repeat("risk", once)
        echo = median(self.echo_us_per_message) if self.echo_us_per_message else float("nan")
        self.rows.append(
            Row(
                f"risk screening, {r['messages']:.0f} labelled messages: us/message, mean "
                "(median, p99; first sight)",
                f"echo {echo:.0f} us/msg",
                f"{r['mean_us']:.0f} ({r['median_us']:.0f}, {r['p99_us']:.0f}; "
                f"{r['cold_mean_us']:.0f})",
                f"{r['mean_us'] / echo:.0%}",
                "<200 us",
                verdict(r["mean_us"] < 200),
            )
        )

    def start(self, kind: str) -> None:
        """Not one of issue 7's items: how long from starting a process to its listening,
        which a rolling restart or a new instance waits for each time (and every test of
        run.py waits for). The echo's own start is the baseline; the service is timed on a
        new, empty database (its first start, the migrations included) and again on that
        database (a restart)."""

        def once() -> dict[str, float]:
            began = time.perf_counter()
            with server("echo", log=self.log):
                echo = time.perf_counter() - began
            with Backend(kind, self.workdir) as extra:
                began = time.perf_counter()
                with server("full", *extra, log=self.log):
                    first = time.perf_counter() - began
                began = time.perf_counter()
                with server("full", *extra, log=self.log):
                    again = time.perf_counter() - began
            return {
                "echo_ms": echo * 1000,
                "first_ms": first * 1000,
                "again_ms": again * 1000,
                "ratio": again / echo,
            }

        m = self.repeat(f"start {kind}", once)
        self.rows.append(
            Row(
                f"Start-up {kind}: ms to listening, first start / restart",
                f"{m['echo_ms']:.0f} ms",
                f"{m['first_ms']:.0f} / {m['again_ms']:.0f} ms",
                f"{m['ratio']:.1f}x (restart)",
                "-",
                "-",
            )
        )

    def sms(self, kind: str) -> None:
        if not (tree_path() / "channels" / "twilio.py").exists():
            self.notes.append("SMS webhooks: channels/twilio.py is not in the measured tree yet.")
            return
        from bench import sms

        m = self.repeat(f"sms {kind}", lambda: sms.measure(self, kind))
        ok = m["ratio"] >= 0.30 and m["bad"] == 0 and m["lost"] == 0
        problems = ", ".join(f"{m[k]:.0f} {k}" for k in ("bad", "lost") if m[k])
        self.rows.append(
            Row(
                f"SMS webhooks {kind}, {sms.PHONES} phones: answered/s; p50/p99 ms to last reply",
                f"{m['echo']:.0f}/s; p99 {m['echo_p99']:.1f}",
                f"{m['full']:.0f}/s; {m['p50']:.0f}/{m['p99']:.0f}",
                f"{m['ratio']:.1%}",
                ">=30%",
                verdict(ok) + (f" ({problems})" if problems else ""),
            )
        )

    def close(self) -> None:
        if self.args.keep:
            print(f"server logs and data kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


# Cheapest and most telling first, so a spent --budget skips the slow ones.
SCENARIOS = ("chat", "risk", "sms", "handoff", "burst", "idle", "start")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("scenarios", nargs="*", choices=(*SCENARIOS, []), default=[])
    p.add_argument("--backends", default="sqlite,postgres", help="sqlite,postgres")
    p.add_argument("--conversations", default="200,1000")
    p.add_argument("--seconds", type=float, default=8.0, help="measured window per run")
    p.add_argument("--runs", type=int, default=3, help="runs per figure (median reported)")
    p.add_argument("--burst", type=int, default=2000)
    p.add_argument("--idle", type=int, default=10000)
    p.add_argument("--idle-runs", type=int, default=1, help="runs of the idle scenario")
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    p.add_argument(
        "--commit",
        default=None,
        help="measure this commit (git archive into a temporary folder) instead of the "
        "working tree, so edits in progress cannot change or break the figures",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=1200.0,
        help="seconds; once spent, further runs and scenarios are skipped (and noted)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write every run's figures here")
    p.add_argument("--keep", action="store_true", help="keep server logs and data")
    p.add_argument("--quick", action="store_true", help="1 run, 5 s, smaller counts")
    args = p.parse_args(argv)
    if args.quick:
        args.runs, args.seconds, args.burst, args.idle = 1, 5.0, 500, 2000
    raise_fd_limit()
    pin(CLIENT_CPU)
    bench = Bench(args)
    if args.commit:
        os.environ["HELPLINE_BENCH_TREE"] = str(export(args.commit, bench.workdir))
    started = bench.started
    backends = [b for b in args.backends.split(",") if b]
    try:
        for scenario in args.scenarios or SCENARIOS:
            if bench.out_of_time():
                bench.notes.append(f"{scenario}: skipped, the time budget was spent")
                continue
            try:
                if scenario == "chat":
                    for kind in backends:
                        for c in args.conversations.split(","):
                            bench.chat(kind, int(c))
                elif scenario in ("handoff", "burst", "sms", "start"):
                    for kind in backends:
                        getattr(bench, scenario)(kind)
                else:
                    getattr(bench, scenario)()
            except Exception as exc:  # one failed scenario must not lose the others' figures
                bench.notes.append(f"{scenario}: failed ({type(exc).__name__}: {exc})")
            print(f"[{time.perf_counter() - started:5.0f}s] {scenario} done", file=sys.stderr)
    finally:
        bench.close()
        print(describe(args))
        print(table(bench.rows))
        for note in bench.notes:
            print(f"note: {note}")
        if args.json:
            args.json.write_text(
                json.dumps({"describe": describe(args), "runs": bench.runs}, indent=1)
            )
    return 0


def export(commit: str, workdir: Path) -> Path:
    """The committed tree of `commit`, unpacked into a fresh folder."""
    tree = workdir / "tree"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit], cwd=BENCH_ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def describe(args: argparse.Namespace) -> str:
    pinning = (
        f"server on CPU {SERVER_CPU}, load generator on CPU {CLIENT_CPU}"
        if SERVER_CPU is not None
        else "not pinned (one CPU)"
    )
    what = f"commit {args.commit}" if args.commit else f"tree {tree_path()}"
    return (
        f"{what} | {os.cpu_count()} CPUs, {pinning} | loop {args.loop} | "
        f"median of {args.runs} run(s), {args.seconds:.0f} s windows"
    )


if __name__ == "__main__":
    sys.exit(main())
