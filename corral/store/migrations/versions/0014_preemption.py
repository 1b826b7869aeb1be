"""tasks: who preempted a task (preempted_by), and how many earlier attempts of its slot were
preempted (requeues)

A preempted task ends KILLED and its slot is requeued as a new attempt; the attempt's row says
who preempted it, for its history and for accounting (an outcome of its own), and the next
attempt counts the requeue so that a preemption does not use up one of the job's retries.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

BigInt = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("preempted_by", sa.String(200), nullable=True))
        batch.add_column(sa.Column("requeues", BigInt, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("requeues")
        batch.drop_column("preempted_by")
