"""jobs: schedule anchor, next firing, success and error counts

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("anchor", sa.Float(), nullable=True))
        batch.add_column(sa.Column("next_due", sa.Float(), nullable=True))
        batch.add_column(sa.Column("next_index", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("success_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("error_count", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_success", sa.Float(), nullable=True))
        batch.add_column(sa.Column("last_error", sa.Float(), nullable=True))
        batch.create_index("ix_jobs_next_due", ["next_due"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_next_due")
        for column in (
            "last_error",
            "last_success",
            "error_count",
            "success_count",
            "next_index",
            "next_due",
            "anchor",
        ):
            batch.drop_column(column)
