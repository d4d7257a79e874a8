"""a conversation's messages found by conversation and status

A turn's read of a conversation's unanswered messages, and a new message's check of whether
earlier ones still wait, asked for conversation_id and status together. With an index on each
alone, SQLite's planner took the status one: every unanswered message of every conversation,
each looked up in the table to see whose it was, so the reads grew with the number of people
writing at once. One index on both finds a conversation's unanswered messages directly, and
serves reads by conversation alone as the old one did.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_messages_conversation_status"), "messages", ["conversation_id", "status"]
    )
    op.drop_index(op.f("ix_messages_conversation_id"), table_name="messages")


def downgrade() -> None:
    op.create_index(op.f("ix_messages_conversation_id"), "messages", ["conversation_id"])
    op.drop_index(op.f("ix_messages_conversation_status"), table_name="messages")
