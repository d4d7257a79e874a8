"""Settings an operator can get wrong without noticing: each is refused with one line naming
it, or warned about once at start, without an address or a password in the warning."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from helpline.config import Settings, load_settings, start_warnings
from helpline.errors import ConfigError
from helpline.proxy import warn_if_unproxied
from tests.support import SECRET
from tests.test_startup import run


def warnings_in(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# -- behind a proxy without HELPLINE_TRUSTED_PROXIES ------------------------------------------


def test_a_public_url_without_trusted_proxies_warns_once_that_limits_are_shared(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=SECRET, public_url="https://help.example.org")
    with caplog.at_level(logging.WARNING):
        warn_if_unproxied(settings)
    [warning] = warnings_in(caplog)
    assert "HELPLINE_TRUSTED_PROXIES" in warning
    assert "new web chats" in warning
    assert "help.example.org" not in warning


@pytest.mark.parametrize(
    "given",
    [{}, {"public_url": "https://help.example.org", "trusted_proxies": "127.0.0.1"}],
)
def test_no_proxy_warning_without_a_public_url_or_with_trusted_proxies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, given: dict[str, str]
) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=SECRET, **given)
    with caplog.at_level(logging.WARNING):
        warn_if_unproxied(settings)
    assert warnings_in(caplog) == []


# -- settings that split a deployment without a word ------------------------------------------


def test_redis_with_sqlite_is_warned_about_naming_both_settings(tmp_path: Path) -> None:
    # A warning, not a refusal: the tests run the Redis queue over SQLite on purpose.
    settings = Settings(data_dir=tmp_path, secret_key=SECRET, redis_url="redis://:pw@r:6379/0")
    [warning] = start_warnings(settings, {})
    assert "HELPLINE_REDIS_URL" in warning
    assert "HELPLINE_DATABASE_URL" in warning
    assert "pw" not in warning


def test_redis_with_postgresql_is_not_warned_about(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        secret_key=SECRET,
        redis_url="redis://r:6379/0",
        database_url="postgresql+asyncpg://helpline@db/helpline",
    )
    assert start_warnings(settings, {}) == []


def test_a_misspelt_setting_is_named_with_the_one_meant(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=SECRET)
    environ = {"HELPLINE_DATABSE_URL": "postgresql+asyncpg://helpline:pw@db/helpline"}
    [warning] = start_warnings(settings, environ)
    assert "HELPLINE_DATABSE_URL" in warning
    assert "HELPLINE_DATABASE_URL" in warning
    assert "pw" not in warning


def test_variables_that_are_not_settings_but_are_read_are_not_warned_about(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=SECRET)
    environ = {
        "HELPLINE_NEW_PASSWORD": "x",
        "HELPLINE_TEST_PG_DSN": "x",
        "HELPLINE_TEST_REDIS_URL": "x",
        "HELPLINE_TEST_CHROMIUM": "x",
        "HELPLINE_BENCH_TREE": "x",
        "HELPLINE_PORT": "8081",
        "helpline_log_level": "INFO",
        "OTHER_THING": "x",
    }
    assert start_warnings(settings, environ) == []


def test_a_misspelt_setting_is_logged_when_a_command_runs(tmp_path: Path) -> None:
    result = run(tmp_path, "migrate", secret_key=SECRET, databse_url="postgresql+asyncpg://x/y")
    assert result.returncode == 0, result.stderr
    assert "HELPLINE_DATABSE_URL" in result.stderr


# -- the sites allowed to embed the chat -------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("'self' https://www.example.org", "'self' https://www.example.org"),
        ("'self', https://www.example.org", "'self' https://www.example.org"),
        (
            "https://a.example.org,https://b.example.org",
            "https://a.example.org https://b.example.org",
        ),
    ],
)
def test_frame_ancestors_may_be_separated_by_spaces_or_commas(
    tmp_path: Path, given: str, kept: str
) -> None:
    assert load_settings({"data_dir": tmp_path, "frame_ancestors": given}).frame_ancestors == kept


@pytest.mark.parametrize(
    "given", ["'self'; script-src *", "'self'\nhttps://a.example.org", "", " , "]
)
def test_frame_ancestors_that_would_break_the_policy_are_refused(
    tmp_path: Path, given: str
) -> None:
    with pytest.raises(ConfigError, match="HELPLINE_FRAME_ANCESTORS"):
        load_settings({"data_dir": tmp_path, "frame_ancestors": given})
