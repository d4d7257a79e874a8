"""How many PostgreSQL statements and Redis commands a web chat message costs:
`python -m bench.roundtrips` (PostgreSQL + Redis only).

Starts the full service on a temporary database, opens a few chats, then sends a few
messages and counts what reached the servers meanwhile: Redis's own command counts
(`INFO commandstats`) and PostgreSQL's statements, logged for that database alone
(`ALTER DATABASE ... SET log_statement = 'all'`) and read back from the server's log file,
which must be readable (--pg-log). Not a timing: what a message asks of the servers."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from bench import load, run

LOG = "/var/log/postgresql/postgresql-15-main.log"


async def _commands(client: object) -> dict[str, int]:
    info = await client.info("commandstats")  # type: ignore[attr-defined]
    return {name: stats["calls"] for name, stats in info.items()}


async def drive(base: str, log: Path, chats: int, messages: int) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(run.REDIS_URL)
    async with load.session() as http:
        opened = await load.open_many(http, base, chats)
        for chat in opened:
            await chat.turn("menu")  # the chat is open and greeted
        await asyncio.sleep(1)
        before, size = await _commands(client), log.stat().st_size
        sent = 0
        for n in range(messages):
            for chat in opened:
                await chat.turn(load.CYCLE[n % len(load.CYCLE)])
                sent += 1
        await asyncio.sleep(1)
        after = await _commands(client)
    await client.aclose()
    text = log.read_bytes()[size:].decode(errors="replace")
    redis_calls = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    redis_calls.pop("cmdstat_info", None)
    statements = Counter(
        s.split()[0].rstrip(";").upper()
        for s in re.findall(r"(?:statement|execute [^:]*): (.*)", text)
    )
    print(f"{sent} web chat messages (PostgreSQL + Redis)")
    print(f"PostgreSQL statements a message: {sum(statements.values()) / sent:.1f}")
    for kind, count in statements.most_common():
        print(f"  {kind:10} {count / sent:5.1f}")
    print(f"Redis commands a message: {sum(redis_calls.values()) / sent:.1f}")
    for name, count in sorted(redis_calls.items(), key=lambda item: -item[1]):
        print(f"  {name.removeprefix('cmdstat_'):10} {count / sent:5.1f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pg-log", type=Path, default=Path(LOG))
    p.add_argument("--chats", type=int, default=5)
    p.add_argument("--messages", type=int, default=4, help="per chat")
    p.add_argument("--commit", default=None, help="count for this commit (see bench.run)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        if args.commit:
            os.environ["HELPLINE_BENCH_TREE"] = str(run.export(args.commit, Path(workdir)))
        backend = run.Backend("postgres", Path(workdir))
        server_args = backend.__enter__()
        try:
            setting = f"ALTER DATABASE \"{backend.pg_name}\" SET log_statement = 'all'"
            subprocess.run(["psql", run.PG_DSN, "-qc", setting], check=True)
            with run.server("full", *server_args, log=Path(workdir) / "server.log") as full:
                asyncio.run(drive(full.base, args.pg_log, args.chats, args.messages))
        finally:
            backend.__exit__()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
