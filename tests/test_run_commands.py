"""run.py's commands as an operator runs them: each says which database it changed (never its
password), and a mistake is one line naming what to set (exit 2), never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.support import SECRET
from tests.test_startup import PASSWORD, ROOT, assert_one_line_naming, run

NEW_PASSWORD = "a long enough password"  # noqa: S105 - a test account's


def test_adding_an_account_says_it_went_into_the_local_sqlite_database(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        "user",
        "add",
        "bob",
        "--role",
        "adviser",
        secret_key=SECRET,
        new_password=NEW_PASSWORD,
    )
    assert result.returncode == 0, result.stderr
    assert "Added bob (adviser) to SQLite at data/helpline.db" in result.stdout


def test_adding_an_account_names_the_postgresql_database_without_its_password(
    tmp_path: Path, pg_url: str
) -> None:
    url = pg_url.replace("postgres@", f"postgres:{PASSWORD}@")
    result = run(
        tmp_path,
        "user",
        "add",
        "bob",
        "--role",
        "adviser",
        secret_key=SECRET,
        new_password=NEW_PASSWORD,
        database_url=url,
    )
    assert result.returncode == 0, result.stderr
    database = pg_url.rsplit("/", 1)[1]
    assert "Added bob (adviser) to postgresql+asyncpg://postgres:***@" in result.stdout
    assert database in result.stdout
    assert PASSWORD not in result.stdout + result.stderr


def test_hours_and_purge_name_the_database_they_changed(tmp_path: Path) -> None:
    closed = run(
        tmp_path,
        "hours",
        "close",
        "--from",
        "2026-12-24T13:00",
        "--to",
        "2026-12-27T09:00",
        secret_key=SECRET,
    )
    assert closed.returncode == 0, closed.stderr
    assert "in SQLite at data/helpline.db" in closed.stdout
    purged = run(tmp_path, "purge", secret_key=SECRET)
    assert purged.returncode == 0, purged.stderr
    assert "from SQLite at data/helpline.db" in purged.stdout


def test_adding_an_account_with_no_terminal_and_no_password_says_what_to_set(
    tmp_path: Path,
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HELPLINE_")}
    clean |= {"PYTHONPATH": str(ROOT), "HELPLINE_SECRET_KEY": SECRET}
    result = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, str(ROOT / "run.py"), "user", "add", "bob", "--role", "adviser"],
        cwd=tmp_path,
        env=clean,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        start_new_session=True,  # no controlling terminal for getpass to open
    )
    assert result.returncode == 2
    assert_one_line_naming(result, "no terminal", "HELPLINE_NEW_PASSWORD")


def test_a_port_in_use_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run(tmp_path, "serve", secret_key=SECRET, port=port)
    assert result.returncode == 2
    assert_one_line_naming(result, "HELPLINE_HOST/HELPLINE_PORT", f"127.0.0.1:{port}")


def test_a_host_that_does_not_exist_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    result = run(tmp_path, "serve", secret_key=SECRET, port="0", host="no-such-host.invalid")
    assert result.returncode == 2
    assert_one_line_naming(result, "HELPLINE_HOST/HELPLINE_PORT", "no-such-host.invalid")
