"""PostgreSQL: every integer column 64-bit, as SQLite's INTEGER always is

A run number, an event id or a sequence number past 2^31 fits a SQLite store; on PostgreSQL an
INTEGER column refused it (and a lookup of one answered an error instead of nothing). SQLite is
left as it is.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    inspector = sa.inspect(bind)
    for table in inspector.get_table_names():
        if table == "alembic_version":
            continue
        for column in inspector.get_columns(table):
            if type(column["type"]) is sa.INTEGER:
                op.alter_column(
                    table, column["name"], type_=sa.BigInteger(), existing_type=sa.Integer()
                )
    # The sequences behind SERIAL columns (events.id) stop at 2^31 - 1 unless widened too.
    narrow = bind.execute(
        sa.text(
            "SELECT sequencename FROM pg_sequences "
            "WHERE schemaname = current_schema() AND data_type = 'integer'::regtype"
        )
    )
    for (sequence,) in narrow.all():
        op.execute(f'ALTER SEQUENCE "{sequence}" AS bigint')


def downgrade() -> None:
    """Nothing: narrowing back could fail on values only 64 bits hold."""
