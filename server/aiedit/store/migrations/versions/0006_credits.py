"""Hosted mode credits: accounts (one per user, an opaque id that outlives the user as an
anonymous holder of ledger rows), the append-only credit ledger, and Stripe events already
handled (webhook idempotency).

Revision ID: 0006_credits
Revises: 0005_studio
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_credits"
down_revision = "0005_studio"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "user",
            sa.String(64),
            sa.ForeignKey("users.name", name="fk_accounts_user", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("plan", sa.String(64), nullable=True),
        sa.Column("stripe_customer", sa.String(255), nullable=True),
        sa.Column("stripe_subscription", sa.String(255), nullable=True),
        sa.Column("daily_credit_limit", sa.Integer(), nullable=True),
        sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("suspended_reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("flagged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("flag_reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("user", name="uq_accounts_user"),
    )
    op.create_index("ix_accounts_stripe_customer", "accounts", ["stripe_customer"])
    op.create_table(
        "ledger",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "account_id",
            sa.String(32),
            sa.ForeignKey("accounts.id", name="fk_ledger_account", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("job_id", sa.String(32), nullable=True),
        sa.Column("ref", sa.String(255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("meta", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("job_id", "kind", name="uq_ledger_job_kind"),
    )
    op.create_index("ix_ledger_account_id", "ledger", ["account_id"])
    op.create_index("ix_ledger_created_at", "ledger", ["created_at"])
    op.create_index("ix_ledger_ref", "ledger", ["ref"])
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("stripe_events")
    op.drop_index("ix_ledger_ref", table_name="ledger")
    op.drop_index("ix_ledger_created_at", table_name="ledger")
    op.drop_index("ix_ledger_account_id", table_name="ledger")
    op.drop_table("ledger")
    op.drop_index("ix_accounts_stripe_customer", table_name="accounts")
    op.drop_table("accounts")
