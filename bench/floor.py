"""How far items 1 (web chat) and 2 (SMS) of issue 7 are from the least the service must do:
`python -m bench.floor [--sms] [--runs 3] [--conversations 200] [--commit REF]`.

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
shows how much of the distance to the target is the store's.

With --sms, the same for texts (bench.sms's 50 phones, signed webhooks): the raw aiohttp
handler answering TwiML; the same checking the signature with the twilio package's
RequestValidator and screening; then storing the three writes too, the reply in the TwiML
answer; then the same with the reply sent as the service sends it, through the twilio
package's REST client to the stand-in after an empty TwiML answer; then the full service."""

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
from bench.sms import PHONES, TOKEN, TwilioStandIn, free_port, signer
from bench.stats import median

SERVERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("echo", "raw aiohttp echo", ()),
    ("bare", "echo + risk screen", ("--screen",)),
    ("bare", "echo + 3 SQLite writes", ("--store",)),
    ("bare", "echo + screen + 3 writes", ("--screen", "--store")),
    ("bare", "echo + the service's store", ("--service-store",)),
    ("full", "full service, SQLite", ()),
)


SMS_SERVERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("echo", "raw aiohttp TwiML", ()),
    ("bare", "+ signature + screen", ("--screen", "--sms-inline")),
    ("bare", "+ 3 writes, reply in TwiML", ("--screen", "--store", "--sms-inline")),
    ("bare", "+ 3 writes, reply by REST", ("--screen", "--store", "--twilio-api-base")),
    ("full", "full service, SQLite", ()),
)


async def _measure(base: str, conversations: int, seconds: float) -> load.ChatResult:
    async with asyncio.timeout(180):
        return await load.chat_load(base, conversations, seconds)


async def _measure_sms(mode: str, extra: list[str], seconds: float, log: Path) -> load.SmsResult:
    """One SMS server under bench.sms's load. A server that replies through the REST API
    gets the Twilio stand-in, and an exchange ends when its reply reaches it."""
    if mode == "echo" or "--sms-inline" in extra:
        with server(mode, *extra, log=log) as s:
            url = f"{s.base}/sms"
            async with asyncio.timeout(180):
                return await load.sms_load(url, signer(url), PHONES, seconds)
    async with TwilioStandIn() as twilio:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        url = f"{base}/channels/twilio/sms" if mode == "full" else f"{base}/sms"
        args = [a for a in extra if a != "--twilio-api-base"]
        args += ["--port", str(port), "--twilio-api-base", twilio.base, "--twilio-token", TOKEN]
        if mode == "full":
            args += ["--public-url", base]
        running = server(mode, *args, log=log)
        running.__enter__()
        try:
            async with asyncio.timeout(180):
                return await load.sms_load(url, signer(url), PHONES, seconds, twilio.expect)
        finally:
            # Stopped off the loop: the stand-in must keep answering the server's last sends.
            await asyncio.get_running_loop().run_in_executor(
                None, running.__exit__, None, None, None
            )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--conversations", type=int, default=200)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--commit", default=None, help="measure this commit's service and screen")
    p.add_argument("--sms", action="store_true", help="texts (item 2) instead of web chat")
    args = p.parse_args()
    raise_fd_limit()
    pin(CLIENT_CPU)
    workdir = Path(tempfile.mkdtemp(prefix="helpline-floor-"))
    if args.commit:
        os.environ["HELPLINE_BENCH_TREE"] = str(export(args.commit, workdir))
    servers = SMS_SERVERS if args.sms else SERVERS
    figures: dict[str, list[tuple[float, ...]]] = {n: [] for _, n, _ in servers}
    try:
        for round_ in range(args.runs):
            echo_rate = 0.0
            for mode, name, flags in servers:
                data = Path(tempfile.mkdtemp(dir=workdir))
                extra = [f"{f}={data}" if f.endswith("store") else f for f in flags]
                log = workdir / "servers.log"
                with contextlib.ExitStack() as stack:
                    if mode == "full":
                        extra = [*stack.enter_context(Backend("sqlite", workdir)), *extra]
                    r: load.ChatResult | load.SmsResult
                    if args.sms:
                        r = asyncio.run(_measure_sms(mode, extra, args.seconds, log))
                        p50 = 1000 * load.percentile(r.latencies, 50)
                        p99 = 1000 * load.percentile(r.latencies, 99)
                    else:
                        s = stack.enter_context(server(mode, *extra, log=log))
                        r = asyncio.run(_measure(s.base, args.conversations, args.seconds))
                        p50, p99 = r.p50_ms, r.p99_ms
                echo_rate = r.rate if mode == "echo" else echo_rate
                # A text refused (403 for a signature that does not match) counts as lost.
                lost = r.lost + (r.bad if isinstance(r, load.SmsResult) else 0)
                figures[name].append((r.rate, p50, p99, r.rate / echo_rate, lost))
                print(f"round {round_ + 1}: {name}: {r.rate:.0f} msg/s, {lost} lost", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    pinned = (
        f"server on CPU {SERVER_CPU}, load generator on CPU {CLIENT_CPU}"
        if SERVER_CPU is not None
        else "not pinned"
    )
    who = f"{PHONES} phones" if args.sms else f"C={args.conversations}"
    print(f"\n{who}, {args.runs} round(s) of {args.seconds:.0f} s, {pinned}")
    print("medians over the rounds; 'of echo' is the median of each round's own ratio")
    print(f"{'server':28} {'msg/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'of echo':>8} {'lost':>5}")
    for _, name, _ in servers:
        rate, p50, p99, ratio = (median([f[i] for f in figures[name]]) for i in range(4))
        lost = sum(f[4] for f in figures[name])
        print(f"{name:28} {rate:7.0f} {p50:7.1f} {p99:7.1f} {ratio:8.1%} {lost:5.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
