"""ix_events_skips: a job's newest run_skipped event found by index, not by a scan of the log

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ONLY_SKIPS = sa.text("type = 'run_skipped'")


def upgrade() -> None:
    op.create_index(
        "ix_events_skips",
        "events",
        ["job", "id"],
        sqlite_where=_ONLY_SKIPS,
        postgresql_where=_ONLY_SKIPS,
    )


def downgrade() -> None:
    op.drop_index("ix_events_skips", table_name="events")
