"""Counts of finished jobs that outlive the jobs (monotonic /metrics counters).

Revision ID: 0004_job_stats
Revises: 0003_admin_sessions
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_job_stats"
down_revision = "0003_admin_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_stats",
        sa.Column("operation", sa.String(32), primary_key=True),
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("state", sa.String(16), primary_key=True),
        sa.Column("code", sa.String(64), primary_key=True),
        sa.Column("bucket", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("job_stats")
