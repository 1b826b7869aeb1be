"""retired_jobs: the newest run number of deleted jobs, so task ids never repeat

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retired_jobs",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("runs", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("retired_jobs")
