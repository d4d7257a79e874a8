"""Alembic migrations, shared by SQLite and PostgreSQL."""
