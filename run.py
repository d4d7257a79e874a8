"""Run helpline: `python run.py` serves it; `python run.py --help` lists every option."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from aiohttp import web

import channels
import flows
from handoff.locks_redis import RedisLocks
from handoff.queue_memory import MemoryQueue
from handoff.queue_redis import RedisQueue
from helpline import risk
from helpline.app import REDIS, SETTINGS, Plugin, create_app
from helpline.config import Settings, load_settings, with_dev_secret
from helpline.domain import utcnow
from helpline.errors import HelplineError
from helpline.flowkit import FlowSpec
from helpline.logs import setup_logging

PLUGINS: tuple[Plugin, ...] = (*channels.PLUGINS,)


def build(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utcnow,
    plugins: Sequence[Plugin] = PLUGINS,
    journeys: Sequence[FlowSpec] = flows.ALL,
) -> web.Application:
    """The whole service: core, journeys, channels and console, wired for these settings."""
    return create_app(
        settings,
        flows=journeys,
        plugins=plugins,
        memory_queue=lambda app: MemoryQueue(),
        redis_queue=lambda app: RedisQueue(app[REDIS], app[SETTINGS].redis_prefix),
        redis_locks=lambda app: RedisLocks(app[REDIS], app[SETTINGS].redis_prefix),
        screen=risk.assess,
        clock=clock,
    )


def _options(parser: argparse.ArgumentParser) -> None:
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        help_text = (field.description or name.replace("_", " ")) + f" [HELPLINE_{name.upper()}]"
        if field.annotation is bool or field.annotation == (bool | None):
            parser.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            parser.add_argument(flag, dest=name, default=None, help=help_text)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run.py",
        description="helpline: anonymous help for people worried about their own behaviour. "
        "Every option can also be set as an environment variable, shown in brackets.",
    )
    _options(p)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", help="run the service (the default)")
    sub.add_parser("migrate", help="bring the database schema up to date, then exit")
    sub.add_parser("check-content", help="load and check every content file, then exit")
    sub.add_parser(
        "purge", help="apply retention now: delete transcripts and addresses older than the period"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    given: dict[str, Any] = {k: v for k, v in vars(args).items() if k in Settings.model_fields}
    try:
        settings = load_settings(given)
        setup_logging(settings.log_level, settings.log_json)
        settings = with_dev_secret(settings)
        command = args.command or "serve"
        if command == "migrate":
            asyncio.run(_migrate(settings))
            print("The database schema is up to date.")
            return 0
        if command == "purge":
            counts = asyncio.run(_purge(settings))
            print(
                f"Deleted {counts['conversations']} conversations, {counts['messages']} "
                f"messages and {counts['addresses']} reply addresses older than "
                f"{settings.retention_days} days."
            )
            return 0
        app = build(settings)
        if command == "check-content":
            print("Content is complete in English and Welsh.")
            return 0
    except HelplineError as exc:
        print(f"helpline: {exc}", file=sys.stderr)
        return 2
    base = settings.base_url if settings.port else f"http://{settings.host}"
    print(f"Web chat:        {base}/", flush=True)
    print(f"Adviser console: {base}/console", flush=True)
    web.run_app(app, host=settings.host, port=settings.port, access_log=None, print=None)
    return 0


async def _purge(settings: Settings) -> dict[str, int]:
    from datetime import timedelta

    from helpline.storage import SqlStore
    from helpline.storage.migrate import upgrade

    store = SqlStore(settings.db_url)
    try:
        await upgrade(store.engine)
        return await store.purge(utcnow() - timedelta(days=settings.retention_days))
    finally:
        await store.close()


async def _migrate(settings: Settings) -> None:
    from helpline.storage import SqlStore
    from helpline.storage.migrate import upgrade

    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = SqlStore(settings.db_url)
    try:
        await upgrade(store.engine)
    finally:
        await store.close()


if __name__ == "__main__":
    sys.exit(main())
