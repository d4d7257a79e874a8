"""Run helpline: `python run.py` serves it; `python run.py --help` lists every option."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import os
import re
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from aiohttp import web

import channels
import flows
import handoff
from handoff.locks_redis import RedisLocks
from handoff.queue_memory import MemoryQueue
from handoff.queue_redis import RedisQueue
from helpline import risk
from helpline.app import REDIS, SETTINGS, Plugin, create_app, log_channels, open_store
from helpline.config import (
    Settings,
    ensure_data_dir,
    load_settings,
    warn_at_start,
    with_dev_secret,
)
from helpline.domain import utcnow
from helpline.errors import ConfigError, HelplineError
from helpline.flowkit import FlowSpec
from helpline.logs import setup_logging
from helpline.ports import Hub
from helpline.proxy import warn_if_unproxied

PLUGINS: tuple[Plugin, ...] = (*channels.PLUGINS, *handoff.PLUGINS)


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
        screen_for=risk.screen_for,
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
    sub.add_parser("diagrams", help="draw every journey as a diagram into docs/flows/")
    user = sub.add_parser("user", help="manage console accounts").add_subparsers(
        dest="user_command", metavar="ACTION", required=True
    )
    add = user.add_parser(
        "add", help="add an account; password from HELPLINE_NEW_PASSWORD or a prompt"
    )
    add.add_argument("name")
    add.add_argument(
        "--role", required=True, choices=("adviser", "supervisor", "programme", "admin")
    )
    add.add_argument("--programme", help="programme id (for programme staff)")
    add.add_argument(
        "--capacity",
        type=int,
        help="conversations held at once (default HELPLINE_ADVISER_CAPACITY)",
    )
    capacity = user.add_parser(
        "capacity", help="set how many conversations an adviser holds at once ('default' resets)"
    )
    capacity.add_argument("name")
    capacity.add_argument("conversations", help="a number from 1 to 20, or 'default'")
    user.add_parser("list", help="list accounts")
    for action, text in (
        ("disable", "disable an account and end its sessions"),
        ("password", "set a new password (HELPLINE_NEW_PASSWORD or a prompt); ends its sessions"),
        ("totp", "turn on a second factor (supervisor, admin); ends its sessions, prints its URI"),
    ):
        user.add_parser(action, help=text).add_argument("name")
    _hours_parser(sub)
    telegram = sub.add_parser("telegram", help="Telegram set-up").add_subparsers(
        dest="telegram_command", metavar="ACTION", required=True
    )
    telegram.add_parser("set-webhook", help="register HELPLINE_PUBLIC_URL/channels/telegram")
    telegram.add_parser("poll", help="serve, fetching Telegram updates by polling (development)")
    return p


NO_SECRET_NEEDED = ("check-content", "diagrams")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    given: dict[str, Any] = {k: v for k, v in vars(args).items() if k in Settings.model_fields}
    command = args.command or "serve"
    try:
        settings = load_settings(given)
        setup_logging(settings.log_level, settings.log_json)
        warn_at_start(settings)
        if command == "diagrams":
            from flows.diagrams import write_diagrams

            for path in write_diagrams():
                print(f"wrote {path}")
            return 0
        if command not in NO_SECRET_NEEDED:
            settings = with_dev_secret(settings)
            if settings.database_url is None:
                ensure_data_dir(settings)
        if command == "migrate":
            asyncio.run(_migrate(settings))
            print(f"The database schema of {settings.database_shown} is up to date.")
            return 0
        if command == "user":
            return asyncio.run(_user(settings, args))
        if command == "hours":
            return asyncio.run(_hours(settings, args))
        if command == "telegram" and args.telegram_command == "set-webhook":
            from channels.telegram import set_webhook

            print(asyncio.run(set_webhook(settings)))
            return 0
        if command == "purge":
            counts = asyncio.run(_purge(settings))
            print(
                f"Deleted {counts['conversations']} conversations, {counts['messages']} "
                f"messages and {counts['addresses']} reply addresses older than "
                f"{settings.retention_days} days from {settings.database_shown}."
            )
            return 0
        app = build(settings)
        if command == "check-content":
            print("Content is complete in English and Welsh.")
            return 0
        log_channels(app)
        warn_if_unproxied(settings)
        if command == "telegram":  # poll
            if not settings.telegram_token:
                raise ConfigError("telegram poll needs HELPLINE_TELEGRAM_TOKEN")
            asyncio.run(_poll(app, settings))
            return 0
        with _cannot_listen(settings):
            web.run_app(
                app,
                host=settings.host,
                port=settings.port,
                access_log=None,
                print=lambda text: _listening(settings, text),
            )
        return 0
    except HelplineError as exc:
        print(f"helpline: {exc}", file=sys.stderr)
        return 2


# What binding the listening socket fails with when the address or port is the mistake.
_LISTEN_ERRORS = (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES)


@contextlib.contextmanager
def _cannot_listen(settings: Settings) -> Iterator[None]:
    """A host that does not resolve, is not this machine's, or a port in use or not allowed:
    one line naming the settings, not a traceback."""
    try:
        yield
    except OSError as exc:
        if not isinstance(exc, socket.gaierror) and exc.errno not in _LISTEN_ERRORS:
            raise
        reason = os.strerror(exc.errno) if exc.errno in _LISTEN_ERRORS else exc.strerror
        raise ConfigError(
            f"HELPLINE_HOST/HELPLINE_PORT: cannot listen on {settings.host}:{settings.port} "
            f"({reason or exc})"
        ) from None


def _listening(settings: Settings, aiohttp_text: str) -> None:
    """Printed once the service is listening (aiohttp calls this after the sites start, with
    its own line naming the address: the one to show when the port was chosen by the system)."""
    base = settings.base_url
    if not settings.port and (found := re.search(r"Running on (http://\S+)", aiohttp_text)):
        base = found.group(1)
    print(f"Web chat:        {base}/", flush=True)
    print(f"Adviser console: {base}/console", flush=True)


async def _poll(app: web.Application, settings: Settings) -> None:
    from channels.telegram import poll

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        with _cannot_listen(settings):
            await web.TCPSite(runner, settings.host, settings.port).start()
        print(f"Web chat: {settings.base_url}/  (Telegram by polling; Ctrl+C to stop)")
        await poll(app)
    finally:
        await runner.cleanup()


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise HelplineError(f"not a whole number: {text!r}") from None


def _new_password() -> str:
    import getpass

    given = os.environ.get("HELPLINE_NEW_PASSWORD")
    if given:
        return given
    try:
        first = getpass.getpass("New password: ")
        again = getpass.getpass("Again: ")
    except EOFError:  # no terminal, and nothing on standard input
        print(file=sys.stderr)  # after the prompt getpass left unfinished
        raise HelplineError(
            "no terminal to ask for the password: set HELPLINE_NEW_PASSWORD"
        ) from None
    if first != again:
        raise HelplineError("the passwords do not match")
    return first


@contextlib.asynccontextmanager
async def _hub(settings: Settings) -> AsyncIterator[Hub | None]:
    """The running instances' hub, for a command to tell them of a change at once: Redis's,
    when there is one. Without Redis the service runs in its own process, out of reach."""
    if not settings.redis_url:
        yield None
        return
    import redis.asyncio as redis

    from helpline.hub import RedisHub

    client = redis.Redis.from_url(settings.redis_url)
    try:
        yield RedisHub(client, settings.redis_prefix)
    finally:
        await client.aclose()


async def _user(settings: Settings, args: argparse.Namespace) -> int:
    """Console accounts. Disabling, a new password or a second factor end the account's
    sessions; running instances close its live consoles at once through Redis when there is
    one, otherwise within a minute (each checks its session every minute)."""
    from handoff import accounts

    store = await open_store(settings)
    db = settings.database_shown
    try:
        action = args.user_command
        if action == "add":
            await accounts.add_user(
                store,
                args.name,
                args.role,
                _new_password(),
                programme=args.programme,
                capacity=args.capacity,
                programmes=_programme_ids(settings),
            )
            print(f"Added {args.name} ({args.role}) to {db}.")
        elif action == "list":
            print(f"Accounts in {db}:", file=sys.stderr)  # on stderr: stdout is the list
            for u in await accounts.list_users(store):
                state = "disabled" if u.disabled else "active"
                extra = f" programme={u.programme}" if u.programme else ""
                print(f"{u.name}\t{u.role}\t{state}{extra}")
        elif action == "disable":
            async with _hub(settings) as hub:
                await accounts.disable_user(store, args.name, hub=hub)
            print(f"Disabled {args.name} in {db}.")
        elif action == "password":
            password = _new_password()
            async with _hub(settings) as hub:
                await accounts.set_password(store, args.name, password, hub=hub)
            print(f"Password changed for {args.name} in {db}.")
        elif action == "capacity":
            value = None if args.conversations == "default" else _whole(args.conversations)
            await accounts.set_capacity(store, args.name, value)
            print(f"Capacity of {args.name} in {db}: {value or 'the default'}.")
        elif action == "totp":
            async with _hub(settings) as hub:
                print(await accounts.enable_totp(store, args.name, hub=hub))
        return 0
    finally:
        await store.close()


def _hours_parser(sub: Any) -> None:
    hours = sub.add_parser(
        "hours", help="opening hours set without editing files (as on the admin page)"
    ).add_subparsers(dest="hours_command", metavar="ACTION", required=True)
    hours.add_parser("list", help="list closures and weekly hours set here, with their ids")
    close = hours.add_parser("close", help="close a queue, or every queue, for a while")
    close.add_argument("--from", dest="start", required=True, help="UK time: 2026-12-24T13:00")
    close.add_argument("--to", dest="end", required=True, help="UK time: 2026-12-27T09:00")
    close.add_argument("--queue", help="helpline, family or programme:<id> (default: every one)")
    close.add_argument("--reason", default="", help="for staff only")
    hours.add_parser(
        "open", help="remove a closure or weekly change by its id (see list)"
    ).add_argument("id", type=int)
    weekly = hours.add_parser(
        "weekly", help="new weekly hours for a queue; days not given keep their current hours"
    )
    weekly.add_argument("queue", help="default, helpline, family, programme or programme:<id>")
    for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"):
        weekly.add_argument(f"--{day}", help='e.g. "09:00-13:00,14:00-17:00", or "closed"')


async def _hours(settings: Settings, args: argparse.Namespace) -> int:
    """The admin page's opening hours from the command line; running instances pick the
    change up at once through Redis when there is one, otherwise within a minute."""
    from handoff import hours_overrides

    store = await open_store(settings)
    try:
        if args.hours_command == "list":
            found = await hours_overrides.overrides(store, now=utcnow())
            # Which database, on stderr: stdout stays the list, for scripts.
            shown = settings.database_shown
            print(f"Closures and weekly hours set in {shown}:", file=sys.stderr)
            for override in found:
                print(override.describe())
            if not found:
                print("No closures or weekly hours are set outside the content files.")
            return 0
        changed = await _hours_change(settings, store, args)
    finally:
        await store.close()
    async with _hub(settings) as hub:
        if hub is not None:
            await hub.publish(hours_overrides.TOPIC, {"type": "hours", "id": changed})
    return 0


async def _hours_change(settings: Settings, store: Any, args: argparse.Namespace) -> int:
    from handoff import hours_overrides as ho
    from helpline.content import DEFAULT_ROOT
    from helpline.hours import DAYS, OpeningHours
    from helpline.hours import FILE as HOURS_FILE

    actor, now, db = "run.py", utcnow(), settings.database_shown
    if args.hours_command in ("close", "weekly"):
        _check_queue(settings, args.queue)
    if args.hours_command == "close":
        changed = await ho.add_closure(
            store,
            starts_at=ho.parse_local(args.start),
            ends_at=ho.parse_local(args.end),
            queue=args.queue,
            name=args.reason,
            by=actor,
            now=now,
        )
        print(f"Closure {changed} added in {db}.")
        return changed
    if args.hours_command == "open":
        gone = await ho.remove(store, args.id, by=actor)
        print(f"Removed {gone.kind} {gone.id} from {db}.")
        return gone.id
    root = settings.content_dir or DEFAULT_ROOT
    base = OpeningHours.load(root) if (root / HOURS_FILE).exists() else None
    current = ho.merged(base, await ho.overrides(store, now=now)) or ho.ALWAYS_OPEN
    week: dict[str, str | list[str]] = dict(ho.weekly_text(current.hours_for(args.queue)))
    week.update({d: getattr(args, d) for d in DAYS if getattr(args, d) is not None})
    changed = await ho.set_weekly(store, queue=args.queue, weekly=week, by=actor, now=now)
    print(f"Weekly hours {changed} set for {args.queue} in {db}.")
    return changed


def _programme_ids(settings: Settings) -> list[str]:
    """The programmes in the directory (content/directory/programmes.yaml)."""
    from helpline.content import DEFAULT_ROOT
    from helpline.directory import Directory

    root = settings.content_dir or DEFAULT_ROOT
    if not (root / "directory").is_dir():
        return []
    return [p.id for p in Directory.load(root).programmes]


def _check_queue(settings: Settings, queue: str | None) -> None:
    if queue and queue.startswith("programme:"):
        known = _programme_ids(settings)
        if queue.removeprefix("programme:") not in known:
            raise HelplineError(
                f"there is no programme {queue.removeprefix('programme:')!r} in the directory; "
                f"the programmes are: {', '.join(sorted(known)) or 'none'}"
            )


async def _purge(settings: Settings) -> dict[str, int]:
    """The same retention the running service applies every minute, hooks included."""
    from helpline.app import purge

    runner = web.AppRunner(build(settings), handle_signals=False)
    await runner.setup()
    try:
        return await purge(runner.app)
    finally:
        await runner.cleanup()


async def _migrate(settings: Settings) -> None:
    store = await open_store(settings)
    await store.close()


if __name__ == "__main__":
    sys.exit(main())
