"""Logging set-up: plain or JSON lines. Log records carry references, never addresses or text."""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

from aiohttp.http_exceptions import BadHttpMessage
from pythonjsonlogger.json import JsonFormatter


def setup_logging(level: str = "INFO", as_json: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        handler.setFormatter(
            SafeJsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", timestamp=True)
        )
    else:
        handler.setFormatter(PlainFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
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


# aiohttp's server logs a request it could not handle (a malformed one, or a handler that
# raised) as "Error handling request from <client IP>": the address is dropped.
SERVER_LOGGERS = ("aiohttp.server", "aiohttp.web", "aiohttp.websocket")


class WithoutClientAddress(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Error handling request"):
            record.msg, record.args = "Error handling request", ()
            exc = record.exc_info[1] if record.exc_info else None
            if isinstance(exc, BadHttpMessage):
                # A request that is not HTTP (a bad request line, a header too long or with
                # a control character, a broken chunk): anyone can send one as often as
                # they like, and it is no fault here. One short line of its kind, not an
                # ERROR with a traceback each time. A handler's own failure stays an ERROR.
                record.msg = f"a malformed request was refused ({type(exc).__name__})"
                record.exc_info, record.exc_text = None, None
                if record.levelno > logging.WARNING:
                    record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


# aiohttp-remotes (HELPLINE_TRUSTED_PROXIES) logs a request refused for not coming through
# the proxy with the addresses it saw, in its message and as extra fields.
PROXY_LOGGER = "aiohttp_remotes"
_STANDARD = {*logging.LogRecord("", 0, "", 0, "", (), None).__dict__, "message", "asctime"}


class WithoutProxyAddresses(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        what = str(record.msg).split(":")[0].split("%")[0].strip()
        record.msg, record.args = f"a request was refused by the proxy check ({what})", ()
        for key in [k for k in record.__dict__ if k not in _STANDARD]:
            del record.__dict__[key]
        return True


def safe_traceback(ei: Any) -> str:
    """A logged exception as where it happened and what kind it was, never its text: an
    exception's message can hold what a person sent (a malformed request's header line, a
    database error's failing row, a platform error quoting a number). The operating
    system's errors keep theirs ("Connection refused", a server's address), and a group of
    exceptions names the kinds inside it."""
    lines: list[str] = []
    exc: BaseException | None = ei[1]
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        frames = traceback.format_list(traceback.extract_tb(exc.__traceback__))
        lines[:0] = [
            "Traceback (most recent call last):\n",
            *frames,
            f"{_kind(exc)}: {exc}\n" if isinstance(exc, OSError) else f"{_kind(exc)}\n",
        ]
        cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        if cause is not None:
            lines[:0] = ["\nThe above led to:\n"]
        exc = cause
    return "".join(lines).rstrip("\n")


def _kind(exc: BaseException) -> str:
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    if isinstance(exc, BaseExceptionGroup):
        inner = ", ".join(sorted({_kind(e) for e in exc.exceptions}))
        kind += f" of {inner}"
    return kind + (" (its text is not logged)" if not isinstance(exc, OSError) else "")


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # Another handler may have formatted the record first, and logging reuses the text
        # it left (with the exception's message): formatted again, the safe way.
        record.exc_text = None
        try:
            return super().format(record)
        finally:
            record.exc_text = None

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        return safe_traceback(ei)


class SafeJsonFormatter(JsonFormatter):
    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        return safe_traceback(ei)


_FILTER = WithoutClientAddress()
_PROXY_FILTER = WithoutProxyAddresses()


def quiet_libraries() -> None:
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    proxy = logging.getLogger(PROXY_LOGGER)
    if _PROXY_FILTER not in proxy.filters:
        proxy.addFilter(_PROXY_FILTER)
