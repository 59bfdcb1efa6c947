"""Prompt block list (terms an admin refuses in prompts) and refused attempts per account.

Revision ID: 0008_blocklist
Revises: 0007_accounts
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_blocklist"
down_revision = "0007_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blocked_terms",
        sa.Column("key", sa.String(80), primary_key=True),
        sa.Column("term", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "prompt_refusals",
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("prompt_refusals")
    op.drop_table("blocked_terms")
