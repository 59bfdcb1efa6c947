"""An index for the fair order: each queued job's owner was last served when (the newest
started_at of the owner's jobs), looked up for every queued job whenever a worker picks the
next job or a client asks its queue position. Without it each lookup read all of the owner's
jobs still kept (46 ms for 50 queued among 20,000 kept on PostgreSQL, 1.5 ms with it).

Revision ID: 0009_fair_order_index
Revises: 0008_blocklist
"""

from alembic import op

revision = "0009_fair_order_index"
down_revision = "0008_blocklist"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_owner_started", "jobs", ["owner", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_owner_started", table_name="jobs")
