"""run.py's commands as an operator runs them: each says which database it changed (never its
password), and a mistake is one line naming what to set (exit 2), never a traceback."""

from __future__ import annotations

from pathlib import Path

from tests.support import SECRET
from tests.test_startup import PASSWORD, run

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
