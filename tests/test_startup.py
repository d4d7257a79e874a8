"""Starting the service: a mistake in the settings or a dependency out of reach stops it with
one line naming the setting (never a traceback, never a password); a channel out of reach
does not stop the rest."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml

from helpline.app import log_channels
from helpline.errors import ConfigError
from run import build
from tests.loopback import loopback
from tests.support import SECRET, running, settings_for

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "hunter2-not-shown"  # noqa: S105 - must never appear in the output


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(cwd: Path, *args: str, timeout: float = 30, **env: str) -> subprocess.CompletedProcess[str]:
    """run.py as an operator runs it, in cwd, with only these HELPLINE_* settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HELPLINE_")}
    clean.update({f"HELPLINE_{k.upper()}": v for k, v in env.items()})
    clean["PYTHONPATH"] = str(ROOT)
    return subprocess.run(  # noqa: S603 - our own script
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_line_naming(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("helpline:")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert "Web chat" not in result.stdout


# -- the secret and the data folder -----------------------------------------------------------


@pytest.mark.parametrize("shared", ["redis", "postgres"])
def test_instances_sharing_data_refuse_to_start_without_a_secret(
    tmp_path: Path, shared: str
) -> None:
    if shared == "redis":
        result = run(tmp_path, "migrate", redis_url="redis://127.0.0.1:6379/0")
    else:
        url = f"postgresql+asyncpg://postgres:{PASSWORD}@127.0.0.1:5432/test"
        result = run(tmp_path, "migrate", database_url=url)
    assert_one_line_naming(result, "HELPLINE_SECRET_KEY")
    assert not (tmp_path / "data" / "dev-secret").exists()


def test_a_laptop_on_sqlite_still_gets_a_development_secret(tmp_path: Path) -> None:
    result = run(tmp_path, "migrate")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "dev-secret").exists()


def test_a_data_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result = run(tmp_path, "migrate", data_dir=str(tmp_path / "file" / "data"))
    assert_one_line_naming(result, "HELPLINE_DATA_DIR")


def test_telegram_poll_without_a_token_is_one_line_naming_it(tmp_path: Path) -> None:
    result = run(tmp_path, "telegram", "poll")
    assert_one_line_naming(result, "HELPLINE_TELEGRAM_TOKEN")


@pytest.mark.parametrize("command", ["check-content", "diagrams"])
def test_commands_that_need_no_secret_make_none(tmp_path: Path, command: str) -> None:
    data = tmp_path / "data"
    result = run(tmp_path, command, data_dir=str(data), timeout=120)
    assert result.returncode == 0, result.stderr
    assert not (data / "dev-secret").exists()


def test_serve_creates_the_data_folder_and_says_where_once_listening(tmp_path: Path) -> None:
    data = tmp_path / "new" / "data"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HELPLINE_")}
    clean |= {
        "PYTHONPATH": str(ROOT),
        "HELPLINE_SECRET_KEY": SECRET,
        "HELPLINE_DATA_DIR": str(data),
        "HELPLINE_PORT": "0",
    }
    proc = subprocess.Popen(  # noqa: S603 - our own script
        [sys.executable, str(ROOT / "run.py"), "serve"],
        cwd=tmp_path,
        env=clean,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until listening, or EOF if it died
        assert line.startswith("Web chat:"), proc.stderr.read() if proc.stderr else line
        url = line.split()[-1].rstrip("/")
        assert url.rsplit(":", 1)[1] != "0"
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=5):
            pass  # listening when it said so
        assert (data / "helpline.db").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


# -- bad settings and dependencies out of reach ----------------------------------------------


def test_a_database_that_does_not_exist_is_named(tmp_path: Path, pg_url: str) -> None:
    url = pg_url.replace("postgres@", f"postgres:{PASSWORD}@").rsplit("/", 1)[0] + "/nosuchdb"
    result = run(tmp_path, "serve", database_url=url, secret_key=SECRET, port="0")
    assert_one_line_naming(result, "HELPLINE_DATABASE_URL", "nosuchdb")


def test_a_database_server_out_of_reach_is_named(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://postgres:{PASSWORD}@127.0.0.1:{closed_port()}/test"
    result = run(tmp_path, "serve", database_url=url, secret_key=SECRET, port="0")
    assert_one_line_naming(result, "HELPLINE_DATABASE_URL", "cannot be reached")


def test_a_database_host_that_does_not_exist_is_named(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://postgres:{PASSWORD}@no-such-host.invalid:5432/test"
    result = run(tmp_path, "serve", database_url=url, secret_key=SECRET, port="0")
    assert_one_line_naming(result, "HELPLINE_DATABASE_URL", "no-such-host.invalid")


def test_a_file_that_is_not_sqlite_is_named(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "helpline.db").write_text("not a database " * 100)
    result = run(tmp_path, "serve", secret_key=SECRET, port="0")
    assert_one_line_naming(result, "HELPLINE_DATA_DIR", "not an SQLite database")


def test_a_database_from_a_newer_release_is_named(tmp_path: Path) -> None:
    assert run(tmp_path, "migrate", secret_key=SECRET).returncode == 0
    with sqlite3.connect(tmp_path / "data" / "helpline.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    result = run(tmp_path, "serve", secret_key=SECRET, port="0")
    assert_one_line_naming(result, "HELPLINE_DATA_DIR", "newer than this code")


def test_redis_out_of_reach_is_named_once_without_its_password(tmp_path: Path) -> None:
    port = closed_port()
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    result = run(tmp_path, "serve", redis_url=url, secret_key=SECRET, port="0")
    assert_one_line_naming(result, "HELPLINE_REDIS_URL", f"127.0.0.1:{port}")
    assert "reconnecting" not in result.stderr


def test_a_missing_content_folder_is_named(tmp_path: Path) -> None:
    result = run(tmp_path, "serve", secret_key=SECRET, port="0", content_dir="nowhere")
    assert_one_line_naming(result, "HELPLINE_CONTENT_DIR", "content folder not found")


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"public_url": "https://help.example.org/chat"}, "HELPLINE_PUBLIC_URL"),
        ({"telegram_secret": "abc"}, "HELPLINE_TELEGRAM_TOKEN"),
        ({"telegram_token": "1:x", "telegram_secret": "not allowed!"}, "HELPLINE_TELEGRAM_SECRET"),
        ({"idle_minutes": "5", "idle_warning_minutes": "5"}, "HELPLINE_IDLE_WARNING_MINUTES"),
    ],
)
def test_a_mistake_in_the_settings_stops_the_start(
    tmp_path: Path, settings: dict[str, str], named: str
) -> None:
    result = run(tmp_path, "serve", secret_key=SECRET, port="0", **settings)
    assert_one_line_naming(result, named)


def test_a_public_url_with_only_a_trailing_slash_is_fine(tmp_path: Path) -> None:
    result = run(tmp_path, "migrate", secret_key=SECRET, public_url="https://help.example.org/")
    assert result.returncode == 0, result.stderr


# -- Telegram at start -----------------------------------------------------------------------


async def test_telegram_out_of_reach_does_not_stop_the_web_chat(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(
        sqlite_url,
        tmp_path,
        telegram_token="123456:TEST-token_abc",
        telegram_api_base=f"http://127.0.0.1:{closed_port()}",
    )
    with caplog.at_level(logging.WARNING):
        async with (
            running(settings, serve=True) as (_app, _fake, url),
            aiohttp.ClientSession() as http,
            http.get(f"{url}/") as resp,
        ):
            assert resp.status == 200
    assert any("Telegram cannot be reached" in r.getMessage() for r in caplog.records)


async def test_a_wrong_telegram_token_is_named(sqlite_url: str, tmp_path: Path) -> None:
    async with loopback(bot_token="123456:RIGHT-token") as lb:
        settings = settings_for(
            sqlite_url, tmp_path, telegram_token="123456:WRONG-token", telegram_api_base=lb.url
        )
        with pytest.raises(ConfigError, match="HELPLINE_TELEGRAM_TOKEN"):
            async with running(settings):
                pass


# -- channels on and off ---------------------------------------------------------------------

SID = "AC" + "0" * 32


@pytest.mark.parametrize(
    ("twilio", "heard"),
    [
        ({"twilio_account_sid": SID, "twilio_auth_token": "t"}, "no sender"),
        ({"twilio_from": "+447700900000"}, "HELPLINE_TWILIO_AUTH_TOKEN"),
        (
            {
                "twilio_account_sid": SID,
                "twilio_auth_token": "t",
                "twilio_from": "+447700900000",
                "public_url": "http://help.example.org",
            },
            "not https",
        ),
    ],
)
def test_a_twilio_setting_that_leaves_a_channel_off_or_unsafe_is_logged(
    sqlite_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    twilio: dict[str, str],
    heard: str,
) -> None:
    with caplog.at_level(logging.INFO):
        build(settings_for(sqlite_url, tmp_path, **twilio))
    assert any(heard in r.getMessage() for r in caplog.records), caplog.text


def test_the_channels_on_are_logged_once_by_name(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(
        sqlite_url,
        tmp_path,
        twilio_account_sid=SID,
        twilio_auth_token="t",
        twilio_whatsapp_from="+447700900000",
    )
    with caplog.at_level(logging.INFO):
        log_channels(build(settings))
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("channels on")]
    assert said == ["channels on: web, whatsapp"]


# -- commands ----------------------------------------------------------------------------------


def test_a_programme_account_needs_a_programme_in_the_directory(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        "user",
        "add",
        "pat",
        "--role",
        "programme",
        "--programme",
        "nonexistent",
        secret_key=SECRET,
        new_password="a long enough password",
    )
    assert_one_line_naming(result, "nonexistent", "drive")
    ok = run(
        tmp_path,
        "user",
        "add",
        "pat",
        "--role",
        "programme",
        "--programme",
        "drive",
        secret_key=SECRET,
        new_password="a long enough password",
    )
    assert ok.returncode == 0, ok.stderr


def test_closing_a_programme_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        "hours",
        "close",
        "--from",
        "2026-12-24T13:00",
        "--to",
        "2026-12-27T09:00",
        "--queue",
        "programme:nosuch",
        secret_key=SECRET,
    )
    assert_one_line_naming(result, "nosuch", "drive")


def test_weekly_hours_for_a_programme_that_does_not_exist_are_refused(tmp_path: Path) -> None:
    result = run(
        tmp_path, "hours", "weekly", "programme:nosuch", "--mon", "09:00-17:00", secret_key=SECRET
    )
    assert_one_line_naming(result, "nosuch", "drive")


def test_an_hour_past_midnight_is_not_a_time_of_day(tmp_path: Path) -> None:
    result = run(tmp_path, "hours", "weekly", "helpline", "--mon", "25:00-26:00", secret_key=SECRET)
    assert_one_line_naming(result, "not a time of day")
    assert "ends before it starts" not in result.stderr


def test_a_capacity_that_is_not_a_number_is_a_command_error(tmp_path: Path) -> None:
    result = run(tmp_path, "user", "capacity", "alice", "abc", secret_key=SECRET)
    assert result.returncode == 2
    assert_one_line_naming(result, "not a whole number")


def _broken_phrase_list(tmp_path: Path) -> Path:
    """An operator's copy of content/ with a phrase of the risk screen mistyped."""
    root = tmp_path / "content"
    shutil.copytree(ROOT / "content", root)
    path = root / "risk" / "en.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["reasons"]["weapon"].append("knife(")
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return root


@pytest.mark.parametrize("command", ["check-content", "serve"])
def test_a_broken_risk_phrase_list_stops_the_service_before_anyone_writes(
    tmp_path: Path, command: str
) -> None:
    # It used to pass check-content and start, then fail at the first person's message.
    root = _broken_phrase_list(tmp_path)
    result = run(tmp_path, command, secret_key=SECRET, port="0", content_dir=str(root))
    assert_one_line_naming(result, "en.yaml", "weapon")
