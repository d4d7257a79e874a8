"""adviser console: users, sessions, audit log, referrals, call-backs, safeguarding

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def _conversation_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["conversation_id"],
        ["conversations.id"],
        name=op.f(f"fk_{table}_conversation_id_conversations"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "console_users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("programme", sa.String(length=80), nullable=True),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("totp_secret", sa.String(length=64), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_users")),
        sa.UniqueConstraint("name", name=op.f("uq_console_users_name")),
    )
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("last_seen_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["console_users.id"],
            name=op.f("fk_console_sessions_user_id_console_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sessions")),
    )
    with op.batch_alter_table("console_sessions") as batch:
        batch.create_index(batch.f("ix_console_sessions_user_id"), ["user_id"])
        batch.create_index(batch.f("ix_console_sessions_expires_at"), ["expires_at"])

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log") as batch:
        batch.create_index(batch.f("ix_audit_log_at"), ["at"])
        batch.create_index(batch.f("ix_audit_log_actor"), ["actor"])
        batch.create_index(batch.f("ix_audit_log_conversation_id"), ["conversation_id"])

    op.create_table(
        "referrals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("reference", sa.String(length=12), nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("programme_id", sa.String(length=80), nullable=False),
        sa.Column("shared", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("updated_by", sa.String(length=80), nullable=True),
        _conversation_fk("referrals"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referrals")),
        sa.UniqueConstraint("reference", name=op.f("uq_referrals_reference")),
    )
    with op.batch_alter_table("referrals") as batch:
        batch.create_index(batch.f("ix_referrals_conversation_id"), ["conversation_id"])
        batch.create_index(batch.f("ix_referrals_programme_id"), ["programme_id"])

    op.create_table(
        "callbacks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("window", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("updated_by", sa.String(length=80), nullable=True),
        _conversation_fk("callbacks"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callbacks")),
    )
    with op.batch_alter_table("callbacks") as batch:
        batch.create_index(batch.f("ix_callbacks_conversation_id"), ["conversation_id"])
        batch.create_index(batch.f("ix_callbacks_status"), ["status"])

    op.create_table(
        "safeguarding",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("raised_by", sa.String(length=80), nullable=False),
        sa.Column("concern", sa.Text(), nullable=False),
        sa.Column("raised_at", TZ, nullable=False),
        sa.Column("signed_off_by", sa.String(length=80), nullable=True),
        sa.Column("signed_off_at", TZ, nullable=True),
        sa.Column("decision", sa.Text(), nullable=True),
        _conversation_fk("safeguarding"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_safeguarding")),
    )
    with op.batch_alter_table("safeguarding") as batch:
        batch.create_index(batch.f("ix_safeguarding_conversation_id"), ["conversation_id"])
        batch.create_index(batch.f("ix_safeguarding_signed_off_at"), ["signed_off_at"])


def downgrade() -> None:
    for table, indexes in (
        ("safeguarding", ("conversation_id", "signed_off_at")),
        ("callbacks", ("conversation_id", "status")),
        ("referrals", ("conversation_id", "programme_id")),
        ("audit_log", ("at", "actor", "conversation_id")),
        ("console_sessions", ("user_id", "expires_at")),
    ):
        with op.batch_alter_table(table) as batch:
            for column in indexes:
                batch.drop_index(batch.f(f"ix_{table}_{column}"))
        op.drop_table(table)
    op.drop_table("console_users")
