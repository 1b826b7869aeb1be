"""services, their versions and deployments; task health

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("healthy", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("health", sa.Text(), nullable=True))
    op.create_table(
        "services",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("owner", sa.String(100), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("config", sa.Integer(), nullable=False),
        sa.Column("config_version", sa.String(40), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("next_slot", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("delay_until", sa.Float(), nullable=True),
        sa.Column("last_failure", sa.JSON(), nullable=True),
    )
    op.create_table(
        "service_versions",
        sa.Column("service", sa.String(100), primary_key=True),
        sa.Column("version", sa.String(40), primary_key=True),
        sa.Column("config", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("current_step", sa.Integer(), nullable=False),
        sa.Column("previous", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
    )
    op.create_index("ix_deployments_state", "deployments", ["state"])


def downgrade() -> None:
    op.drop_index("ix_deployments_state", "deployments")
    op.drop_table("deployments")
    op.drop_table("service_versions")
    op.drop_table("services")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("health")
        batch.drop_column("healthy")
