"""lease: the leadership row gets the leader's URL, when it last renewed and when its lease ends

A master leads only while its lease runs; another takes the lead once it has expired. Existing
rows (a single master of an older version) get a lease that has already ended.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leadership") as batch:
        batch.add_column(sa.Column("url", sa.String(500), nullable=False, server_default=""))
        batch.add_column(sa.Column("renewed_at", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("expires_at", sa.Float(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("leadership") as batch:
        batch.drop_column("expires_at")
        batch.drop_column("renewed_at")
        batch.drop_column("url")
