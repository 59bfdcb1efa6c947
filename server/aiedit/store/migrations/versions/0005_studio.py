"""Studio mode: users (keys belong to them, limits per user), workers (heartbeat, models held)
and the worker running each job.

Revision ID: 0005_studio
Revises: 0004_job_stats
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_studio"
down_revision = "0004_job_stats"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("max_queued", sa.Integer(), nullable=True),
        sa.Column("daily_units", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "workers",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("device", sa.String(32), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("job", sa.String(32), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_workers_heartbeat_at", "workers", ["heartbeat_at"])
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("user", sa.String(64), nullable=True))
        batch.create_index("ix_api_keys_user", ["user"])
        batch.create_foreign_key(
            "fk_api_keys_user", "users", ["user"], ["name"], ondelete="CASCADE"
        )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("worker", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("worker")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_constraint("fk_api_keys_user", type_="foreignkey")
        batch.drop_index("ix_api_keys_user")
        batch.drop_column("user")
    op.drop_index("ix_workers_heartbeat_at", table_name="workers")
    op.drop_table("workers")
    op.drop_table("users")
