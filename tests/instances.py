"""Start real service processes (python run.py) for tests of several instances."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from tests.conftest import ROOT
from tests.support import SECRET


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Instance:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers run, as when a machine dies."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


async def start_instance(env: dict[str, str], log: Path) -> Instance:
    port = free_port()
    full = {**os.environ, **env, "HELPLINE_PORT": str(port), "HELPLINE_HOST": "127.0.0.1"}
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: ASYNC220 - started once, then polled over HTTP
            [sys.executable, str(ROOT / "run.py")], env=full, stdout=out, stderr=out, cwd=ROOT
        )
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            if process.poll() is not None:
                raise RuntimeError(f"instance exited: {log.read_text()[-2000:]}")
            try:
                async with http.get(f"{url}/readyz") as resp:
                    if resp.status == 200:
                        return Instance(process, url, log)
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    process.kill()
    raise RuntimeError("instance did not become ready")


@asynccontextmanager
async def instances(
    n: int, database_url: str, redis_url: str, prefix: str, tmp: Path
) -> AsyncIterator[list[Instance]]:
    env = {
        "HELPLINE_DATABASE_URL": database_url,
        "HELPLINE_REDIS_URL": redis_url,
        "HELPLINE_REDIS_PREFIX": prefix,
        "HELPLINE_SECRET_KEY": SECRET,
        "HELPLINE_DATA_DIR": str(tmp),
        "HELPLINE_LOG_LEVEL": "DEBUG",
    }
    started: list[Instance] = []
    try:
        for i in range(n):
            started.append(await start_instance(env, tmp / f"instance-{i}.log"))
        yield started
    finally:
        for inst in started:
            inst.stop()
