"""Lists at scale: a run's task counts kept per state; tasks numbered in creation order (seq) with
an index per filter ending in it; an index of the newest failures and one of jobs newest first

Counting a run's tasks cost a scan of them on every view of the run (a second per list call at
100,000 tasks), and a page of tasks sorted every task of its filter. Existing runs get their
counts from their tasks here; existing tasks their seq in creation order.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

STATES = (
    "PENDING",
    "STAGING",
    "STARTING",
    "RUNNING",
    "FINISHED",
    "FAILED",
    "KILLED",
    "LOST",
    "ERROR",
)
FAILURES = sa.text("state IN ('FAILED', 'LOST', 'ERROR')")
BigInt = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
SEQ_INDEXES = {
    "ix_tasks_job_seq": ["job", "seq"],
    "ix_tasks_run_seq": ["job", "run", "seq"],
    "ix_tasks_state_seq": ["state", "seq"],
    "ix_tasks_agent_seq": ["agent_id", "seq"],
    "ix_tasks_owner_seq": ["owner", "seq"],
}
OLD_INDEXES = {
    "ix_tasks_job_run": ["job", "run"],
    "ix_tasks_state": ["state"],
    "ix_tasks_agent": ["agent_id"],
}


def _count_column(state: str) -> str:
    return f"n_{state.lower()}"


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        for state in STATES:
            column = sa.Column(_count_column(state), BigInt, nullable=False, server_default="0")
            batch.add_column(column)
    for state in STATES:
        op.execute(
            f"UPDATE runs SET {_count_column(state)} = (SELECT count(*) FROM tasks "
            "WHERE tasks.job = runs.job AND tasks.run = runs.number AND tasks.latest "
            f"AND tasks.state = '{state}')"
        )
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("seq", BigInt, nullable=True))
    bind = op.get_bind()
    order = "ORDER BY created_at, job, run, slot, attempt"
    ids = bind.execute(sa.text(f"SELECT id FROM tasks {order}")).scalars().all()
    if ids:
        bind.execute(
            sa.text("UPDATE tasks SET seq = :seq WHERE id = :id"),
            [{"seq": n, "id": i} for n, i in enumerate(ids, 1)],
        )
    with op.batch_alter_table("tasks") as batch:
        batch.alter_column("seq", existing_type=BigInt, nullable=False)
    for name in OLD_INDEXES:
        op.drop_index(name, table_name="tasks")
    op.create_index("ix_tasks_seq", "tasks", ["seq"], unique=True)
    for name, columns in SEQ_INDEXES.items():
        op.create_index(name, "tasks", columns)
    op.create_index(
        "ix_tasks_failures",
        "tasks",
        ["finished_at"],
        sqlite_where=FAILURES,
        postgresql_where=FAILURES,
    )
    op.create_index("ix_jobs_created", "jobs", [sa.text("created_at DESC"), "name"])


def downgrade() -> None:
    op.drop_index("ix_jobs_created", table_name="jobs")
    op.drop_index("ix_tasks_failures", table_name="tasks")
    for name in SEQ_INDEXES:
        op.drop_index(name, table_name="tasks")
    op.drop_index("ix_tasks_seq", table_name="tasks")
    for name, columns in OLD_INDEXES.items():
        op.create_index(name, "tasks", columns)
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("seq")
    with op.batch_alter_table("runs") as batch:
        for state in STATES:
            batch.drop_column(_count_column(state))
