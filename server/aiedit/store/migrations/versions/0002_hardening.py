"""Hardening: a hash of each job's request (an Idempotency-Key reused with another body is
refused) and an index for counting an owner's queued jobs (queue caps).

Revision ID: 0002_hardening
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_hardening"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("request_hash", sa.String(64), nullable=True))
    op.create_index("ix_jobs_owner_state", "jobs", ["owner", "state"])


def downgrade() -> None:
    op.drop_index("ix_jobs_owner_state", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("request_hash")
