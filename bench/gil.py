"""What a call that lets go of the interpreter costs the event loop's thread while another
thread is busy in Python, as the SQLite store's writer and readers are under load:
`python -m bench.gil [--seconds 1]`.

Times, in one thread, a few calls the service makes on its event loop that release the
interpreter lock (a random nonce from the kernel, a send on a socket, a SQLite query), first
alone and then with a second thread running Python code without pause. A thread that gives up
the lock must wait to take it back: up to the interpreter's switch interval (5 ms by default)
when the other thread does not give it up itself. Prints microseconds per call, medians of
five windows. --switch-ms sets another switch interval first."""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sqlite3
import statistics
import sys
import threading
import time
from collections.abc import Callable


def _per_call(fn: Callable[[], object], seconds: float) -> float:
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return (time.perf_counter() - start) / calls * 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=0.2, help="length of each window")
    p.add_argument("--switch-ms", type=float, default=None, help="sys.setswitchinterval, in ms")
    args = p.parse_args()
    if args.switch_ms is not None:
        sys.setswitchinterval(args.switch_ms / 1000)
    left, right = socket.socketpair()
    right.setblocking(False)

    def send() -> None:
        left.send(b"x" * 64)
        with contextlib.suppress(BlockingIOError):
            right.recv(65536)

    db = sqlite3.connect(":memory:", check_same_thread=False)
    calls: dict[str, Callable[[], object]] = {
        "os.urandom(12)": lambda: os.urandom(12),
        "socket send + recv": send,
        "sqlite3 SELECT 1": lambda: db.execute("SELECT 1").fetchone(),
        "pure Python (no release)": lambda: sum(range(20)),
    }
    busy = threading.Event()

    def spin() -> None:
        n = 0
        while busy.is_set():
            n += 1

    print(f"switch interval {sys.getswitchinterval() * 1000:g} ms; microseconds a call")
    print(f"{'call':26} {'alone':>9} {'busy thread beside':>19}")
    for name, fn in calls.items():
        alone = statistics.median(_per_call(fn, args.seconds) for _ in range(5))
        busy.set()
        spinner = threading.Thread(target=spin)
        spinner.start()
        try:
            shared = statistics.median(_per_call(fn, args.seconds) for _ in range(5))
        finally:
            busy.clear()
            spinner.join()
        print(f"{name:26} {alone:9.1f} {shared:19.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
