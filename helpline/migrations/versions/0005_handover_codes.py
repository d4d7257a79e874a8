"""code words for continuing a conversation on another channel

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "handover_codes",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_handover_codes_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_handover_codes")),
    )
    op.create_index(
        op.f("ix_handover_codes_conversation_id"), "handover_codes", ["conversation_id"]
    )
    op.create_index(op.f("ix_handover_codes_expires_at"), "handover_codes", ["expires_at"])


def downgrade() -> None:
    op.drop_table("handover_codes")
