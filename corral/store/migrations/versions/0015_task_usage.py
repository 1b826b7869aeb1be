"""task_usage: the accounting of deleted work

Deleting a job (or a service) deletes its tasks, and with them what ``corral usage`` counted of
them. Their attempts that ran or ended are kept here, as accounting reads them.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

BigInt = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "task_usage",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("owner", sa.String(100), nullable=False),
        sa.Column("owner_group", sa.String(100), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("cpus", sa.Float(), nullable=False),
        sa.Column("mem", BigInt, nullable=False),
        sa.Column("gpus", BigInt, nullable=False),
        sa.Column("started_at", sa.Float()),
        sa.Column("finished_at", sa.Float()),
        sa.Column("preempted_by", sa.String(200)),
    )


def downgrade() -> None:
    op.drop_table("task_usage")
