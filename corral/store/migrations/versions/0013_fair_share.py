"""fair share: a weight and quotas (cpus, mem, gpus, running tasks) per user and per group; each
owner's decayed usage, kept by the master so that a restart does not forget who ran what

Existing users and groups get weight 1 and no quota: scheduling is as it was.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

BigInt = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    for table in ("users", "groups"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("weight", sa.Float(), nullable=False, server_default="1"))
            batch.add_column(sa.Column("quota_millicpus", BigInt, nullable=True))
            batch.add_column(sa.Column("quota_mem", BigInt, nullable=True))
            batch.add_column(sa.Column("quota_gpus", BigInt, nullable=True))
            batch.add_column(sa.Column("quota_tasks", BigInt, nullable=True))
    op.create_table(
        "fair_share_usage",
        sa.Column("owner", sa.String(100), primary_key=True),
        sa.Column("millicpu_seconds", sa.Float(), nullable=False),
        sa.Column("mem_seconds", sa.Float(), nullable=False),
        sa.Column("disk_seconds", sa.Float(), nullable=False),
        sa.Column("gpu_seconds", sa.Float(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("fair_share_usage")
    for table in ("users", "groups"):
        with op.batch_alter_table(table) as batch:
            for column in ("quota_tasks", "quota_gpus", "quota_mem", "quota_millicpus", "weight"):
                batch.drop_column(column)
