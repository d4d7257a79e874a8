"""who is sending a reply: a claim taken in the database before a reply is sent

A reply stored but not yet sent is sent again by whichever instance finds it (at start, in
housekeeping, at the conversation's next turn), under the conversation's lock. When the lock's
lease lapsed, two instances could both find it and both send it. Each now claims it first, in
one conditional update, and sends only what it claimed; a claim lapses, so a reply whose
instance died is still sent.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("claimed_at")
