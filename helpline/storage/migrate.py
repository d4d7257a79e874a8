"""Apply Alembic migrations programmatically (at start-up and by `run.py migrate`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision; safe to call from several processes at once
    on PostgreSQL (the first takes an advisory lock, the others wait)."""
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.exec_driver_sql("SELECT pg_advisory_lock(804273)")
        try:
            await conn.run_sync(_upgrade)
            await conn.commit()
        finally:
            if conn.dialect.name == "postgresql":
                await conn.exec_driver_sql("SELECT pg_advisory_unlock(804273)")
                await conn.commit()
