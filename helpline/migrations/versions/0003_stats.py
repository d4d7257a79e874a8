"""anonymous statistics kept through retention, and admin overrides of opening hours

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "stats_counts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("dimension", sa.String(length=24), nullable=False),
        sa.Column("value", sa.String(length=160), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stats_counts")),
        sa.UniqueConstraint("month", "dimension", "value", name="uq_stats_counts_cell"),
    )
    op.create_table(
        "stats_counted",
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_stats_counted_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("conversation_id", name=op.f("pk_stats_counted")),
    )
    op.create_table(
        "hours_overrides",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("queue", sa.String(length=80), nullable=True),
        sa.Column("starts_at", TZ, nullable=True),
        sa.Column("ends_at", TZ, nullable=True),
        sa.Column("weekly", sa.JSON(), nullable=True),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hours_overrides")),
    )
    with op.batch_alter_table("hours_overrides") as batch:
        batch.create_index(batch.f("ix_hours_overrides_ends_at"), ["ends_at"])


def downgrade() -> None:
    with op.batch_alter_table("hours_overrides") as batch:
        batch.drop_index(batch.f("ix_hours_overrides_ends_at"))
    op.drop_table("hours_overrides")
    op.drop_table("stats_counted")
    op.drop_table("stats_counts")
