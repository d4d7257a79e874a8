"""Settings: read once from HELPLINE_* environment variables and command-line options,
validated, and passed down. Nothing else reads the environment."""

from __future__ import annotations

import difflib
import ipaddress
import logging
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import AnyHttpUrl, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from helpline.errors import ConfigError
from helpline.storage.engine import is_sqlite

log = logging.getLogger(__name__)


class Settings(BaseSettings):
    """Every setting the service reads; each can be set as HELPLINE_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="HELPLINE_", extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8080, ge=0, le=65535, description="port to listen on")
    data_dir: Path = Field(
        Path("data"), description="folder for the SQLite database and dev secret"
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL, e.g. postgresql+asyncpg://user@host/db (default: SQLite)"
    )
    redis_url: str | None = Field(
        None, description="redis://host:6379/0 for several instances (default: in-process)"
    )
    redis_prefix: str = Field("helpline:", description="prefix for every Redis key")
    secret_key: str | None = Field(
        None, min_length=32, description="secret for contact hashing and address sealing"
    )
    public_url: AnyHttpUrl | None = Field(
        None, description="public base URL behind a proxy, used to check webhook signatures"
    )
    content_dir: Path | None = Field(None, description="folder of the content files")
    trusted_proxies: str | None = Field(
        None,
        description="the reverse proxy's addresses or networks, comma-separated: the client "
        "address (for rate limits) is then read from its X-Forwarded-For, and requests that "
        "did not come through it are refused",
    )
    exit_url: str = Field(
        "https://www.bbc.co.uk/weather", description="neutral page the quick exit goes to"
    )
    frame_ancestors: str = Field(
        "'self'",
        description="sites allowed to embed the chat widget (CSP frame-ancestors), separated "
        "by spaces or commas; keep 'self' in the list for the helpline's own pages",
    )
    idle_minutes: int = Field(30, ge=1, description="close a quiet bot conversation after this")
    idle_warning_minutes: int = Field(
        5, ge=1, description="warn a quiet web chat this many minutes before closing it"
    )
    retention_days: int = Field(30, ge=1, description="delete transcripts after this many days")
    adviser_capacity: int = Field(
        3, ge=1, le=20, description="conversations an adviser holds at once, unless set per adviser"
    )
    audit_retention_days: int = Field(
        730, ge=30, description="keep the console's audit log this many days"
    )
    wait_offer_minutes: int = Field(
        10, ge=1, description="offer a call-back or other help to someone waiting this long"
    )
    messages_per_minute: int = Field(
        20, ge=1, description="messages one contact may send per minute before a calm refusal"
    )
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    log_json: bool = Field(False, description="write logs as JSON lines")
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_whatsapp_from: str | None = None
    twilio_api_base: str | None = None
    telegram_token: str | None = None
    telegram_secret: str | None = None
    telegram_api_base: str | None = None
    cookie_secure: bool | None = Field(
        None, description="Secure flag on console cookies (default: on when public URL is https)"
    )

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        value = value.upper()
        if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value

    @field_validator("exit_url")
    @classmethod
    def _exit(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http:// or https:// address")
        return value

    @field_validator("frame_ancestors")
    @classmethod
    def _ancestors(cls, value: str) -> str:
        # Pasted into the Content-Security-Policy as it is: a ';' or a line break would end
        # the directive (or the header), and a comma is not a separator there.
        if any(c in value for c in ";\r\n"):
            raise ValueError(
                "must be sites separated by spaces or commas, with no ';' or line break"
            )
        sources = value.replace(",", " ").split()
        if not sources:
            raise ValueError("must name at least one site (or 'none' for no embedding at all)")
        return " ".join(sources)

    @field_validator("database_url")
    @classmethod
    def _database(cls, value: str | None) -> str | None:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str | None) -> str | None:
        if not value:
            return None
        for item in value.split(","):
            try:
                ipaddress.ip_network(item.strip())  # strictly, as aiohttp-remotes reads it
            except ValueError:
                raise ValueError(f"{item.strip()!r} is not an IP address or network") from None
        return value

    @field_validator("public_url")
    @classmethod
    def _public(cls, value: AnyHttpUrl | None) -> AnyHttpUrl | None:
        # Browsers send an Origin without a path: a base with one would refuse every chat.
        if value is not None and (value.path or "/") != "/":
            raise ValueError(
                "must be the site's address with no path (https://help.example.org), "
                "as browsers send it"
            )
        if value is not None and (value.query or value.fragment):
            raise ValueError("must have no query or fragment")
        return value

    @field_validator("telegram_secret")
    @classmethod
    def _telegram_secret(cls, value: str | None) -> str | None:
        # Telegram accepts only these characters (1-256 of them) in a webhook's secret token.
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", value):
            raise ValueError("must be 1 to 256 characters from A-Z, a-z, 0-9, _ and -")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.idle_warning_minutes >= self.idle_minutes:
            raise ValueError(
                f"HELPLINE_IDLE_WARNING_MINUTES ({self.idle_warning_minutes}) must be less than "
                f"HELPLINE_IDLE_MINUTES ({self.idle_minutes})"
            )
        if self.telegram_secret and not self.telegram_token:
            raise ValueError("HELPLINE_TELEGRAM_SECRET is set but HELPLINE_TELEGRAM_TOKEN is not")
        return self

    @property
    def shared(self) -> bool:
        """Whether instances may share this deployment's data (PostgreSQL or Redis)."""
        return bool(self.redis_url) or not is_sqlite(self.db_url)

    @property
    def proxies(self) -> list[str]:
        return [item.strip() for item in (self.trusted_proxies or "").split(",") if item.strip()]

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'helpline.db').resolve()}"

    @property
    def database_shown(self) -> str:
        """The database, as a command says which one it changed: its password masked."""
        if self.database_url is None:
            return f"SQLite at {self.data_dir / 'helpline.db'}"
        url = make_url(self.database_url)
        if is_sqlite(self.database_url):
            return f"SQLite at {url.database}"
        return url.render_as_string(hide_password=True)

    @property
    def secret(self) -> str:
        if self.secret_key is None:
            raise ConfigError("HELPLINE_SECRET_KEY is not set (call with_dev_secret first)")
        return self.secret_key

    @property
    def base_url(self) -> str:
        if self.public_url:
            return str(self.public_url).rstrip("/")
        return f"http://{self.host}:{self.port}"


def load_settings(overrides: Mapping[str, Any] | None = None) -> Settings:
    """Environment first, command-line overrides on top; a bad value names the setting."""
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(_problem(err) for err in exc.errors())
        raise ConfigError(f"invalid settings: {problems}") from None


def _problem(err: Any) -> str:
    message = str(err["msg"]).removeprefix("Value error, ")
    if not err["loc"]:  # a check across settings: its message names them
        return message
    return f"HELPLINE_{'_'.join(str(p) for p in err['loc']).upper()}: {message}"


# HELPLINE_* variables that are read but are not settings: the new password for `user add`
# and `user password`, and the tests' and benchmarks' own (HELPLINE_TEST_*, HELPLINE_BENCH_*).
NOT_SETTINGS = ("HELPLINE_NEW_PASSWORD",)
NOT_SETTINGS_PREFIXES = ("HELPLINE_TEST_", "HELPLINE_BENCH_")


def start_warnings(settings: Settings, environ: Mapping[str, str] | None = None) -> list[str]:
    """What to warn about at start: settings that are accepted but would quietly split a
    deployment. Names settings only, never their values."""
    found = []
    names = [f"HELPLINE_{name.upper()}" for name in Settings.model_fields]
    for given in sorted(os.environ if environ is None else environ):
        name = given.upper()
        if not name.startswith("HELPLINE_") or name in names or name in NOT_SETTINGS:
            continue
        if name.startswith(NOT_SETTINGS_PREFIXES):
            continue
        close = difflib.get_close_matches(name, names, n=1)
        meant = f" (did you mean {close[0]}?)" if close else ""
        found.append(f"{given} is not a setting and is ignored{meant}")
    # A warning, not a refusal: one instance on SQLite with Redis is how the tests run the
    # Redis queue, locks and hub without PostgreSQL.
    if settings.redis_url and is_sqlite(settings.db_url):
        found.append(
            "HELPLINE_REDIS_URL is set but the database is SQLite (HELPLINE_DATABASE_URL is "
            "unset or an SQLite URL): instances sharing this Redis would each keep their own "
            "conversations, accounts and messages. Several instances need "
            "HELPLINE_DATABASE_URL set to one PostgreSQL as well"
        )
    return found


def warn_at_start(settings: Settings) -> None:
    for warning in start_warnings(settings):
        log.warning("%s", warning)


def ensure_data_dir(settings: Settings) -> None:
    """The data folder, created if missing: SQLite (the default database) and the development
    secret live there."""
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"HELPLINE_DATA_DIR: cannot create {settings.data_dir} ({exc.strerror or exc})"
        ) from None


def with_dev_secret(settings: Settings) -> Settings:
    """No secret configured: generate one once and keep it in the data folder, loudly. Only
    for one instance on SQLite: instances sharing PostgreSQL or Redis would each make their
    own and could not read each other's stored addresses, so there it is an error."""
    if settings.secret_key:
        return settings
    if settings.shared:
        raise ConfigError(
            "HELPLINE_SECRET_KEY is not set: it is required with PostgreSQL or Redis "
            "(every instance must use the same one); at least 32 characters"
        )
    path = settings.data_dir / "dev-secret"
    ensure_data_dir(settings)
    try:
        if not path.exists():
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        secret = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(
            f"HELPLINE_DATA_DIR: cannot keep the development secret in {path} "
            f"({exc.strerror or exc})"
        ) from None
    log.warning(
        "HELPLINE_SECRET_KEY is not set: using a development secret kept in %s. "
        "Set HELPLINE_SECRET_KEY in production; changing it later makes stored addresses "
        "unreadable and returning people unrecognised.",
        path,
    )
    return settings.model_copy(update={"secret_key": secret})
