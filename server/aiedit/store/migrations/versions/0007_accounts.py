"""Hosted accounts: people's email, name, password hash, age confirmation and analytics opt-out on
users; account page sessions; support messages; aggregate per-feature usage counts.

Revision ID: 0007_accounts
Revises: 0006_credits
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_accounts"
down_revision = "0006_credits"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("email", sa.String(254), nullable=True))
        batch.add_column(sa.Column("display_name", sa.String(100), nullable=True))
        batch.add_column(sa.Column("password_hash", sa.String(200), nullable=True))
        batch.add_column(sa.Column("age_confirmed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("analytics_opt_out", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.create_unique_constraint("uq_users_email", ["email"])
    op.create_table(
        "account_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user", sa.String(64), sa.ForeignKey("users.name", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_account_sessions_user", "account_sessions", ["user"])
    op.create_index("ix_account_sessions_expires_at", "account_sessions", ["expires_at"])
    op.create_table(
        "support_messages",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user", sa.String(64), sa.ForeignKey("users.name", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("job_id", sa.String(32), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_support_messages_user", "support_messages", ["user"])
    op.create_index("ix_support_messages_created_at", "support_messages", ["created_at"])
    op.create_table(
        "feature_counts",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("feature", sa.String(32), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("feature_counts")
    op.drop_index("ix_support_messages_created_at", table_name="support_messages")
    op.drop_index("ix_support_messages_user", table_name="support_messages")
    op.drop_table("support_messages")
    op.drop_index("ix_account_sessions_expires_at", table_name="account_sessions")
    op.drop_index("ix_account_sessions_user", table_name="account_sessions")
    op.drop_table("account_sessions")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_email", type_="unique")
        for column in ("analytics_opt_out", "age_confirmed_at", "password_hash",
                       "display_name", "email"):
            batch.drop_column(column)
