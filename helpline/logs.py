"""Logging set-up: plain or JSON lines. Log records carry references, never addresses or text."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter


def setup_logging(level: str = "INFO", as_json: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        handler.setFormatter(
            JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", timestamp=True)
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet_libraries()


# Library loggers that, at DEBUG or INFO, echo what people wrote (SQL parameters), phone
# numbers in URLs (Twilio) or bot tokens (Telegram). They stay at WARNING whatever the level.
CHATTY = (
    "aiosqlite",
    "transitions",  # every state change at INFO, several lines a turn
    "sqlalchemy.engine",
    "sqlalchemy.pool",
    "asyncpg",
    "twilio",
    "twilio.http_client",
    "httpx",
    "httpcore",
    "telegram",
    "telegram.ext",
    "aiohttp.access",
    "aiohttp.client",
    "redis",
)


def quiet_libraries() -> None:
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)
