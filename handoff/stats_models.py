"""Tables of the anonymous statistics: counts rolled up before retention deletes transcripts,
and a marker of which live conversations are already in those counts."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from helpline.storage.models import Base


class StatsCountRow(Base):
    """How many conversations had one value of one dimension in one month (Europe/London).
    Only a dimension, a value from a small fixed set and a count: nothing leads to a person."""

    __tablename__ = "stats_counts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    month: Mapped[str] = mapped_column(String(7))  # "2026-11"
    dimension: Mapped[str] = mapped_column(String(24))
    value: Mapped[str] = mapped_column(String(160))
    count: Mapped[int] = mapped_column(Integer)

    __table_args__ = (UniqueConstraint("month", "dimension", "value", name="uq_stats_counts_cell"),)


class StatsCountedRow(Base):
    """A conversation already added to stats_counts, so that a second instance (or a purge
    that failed half way) cannot count it twice. The row goes when the conversation goes."""

    __tablename__ = "stats_counted"

    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
