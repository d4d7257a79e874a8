"""Storage: SQLAlchemy models and the SqlStore that the engine talks to."""

from helpline.storage.store import Accepted, SqlStore

__all__ = ["Accepted", "SqlStore"]
