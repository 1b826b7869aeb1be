"""accounts: users, groups, memberships; tokens get an id, a name, an expiry, a revocation and
their last use; jobs and services record their owner's group; an index finds who created a
job or service name

Every token stays valid: its user becomes an account of the token's role, in the group "users".

Revision ID: 0009
Revises: 0008
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

DEFAULT_GROUP = "users"
RANK = {"viewer": 1, "user": 2, "admin": 3}
CREATED = "type IN ('job_created', 'service_created')"


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("primary_group", sa.String(100), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "groups",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "group_members",
        sa.Column("group_name", sa.String(100), primary_key=True),
        sa.Column("user_name", sa.String(100), primary_key=True),
    )
    op.create_index("ix_group_members_user", "group_members", ["user_name"])
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("id", sa.String(16), nullable=True))
        batch.add_column(sa.Column("name", sa.String(200), nullable=False, server_default=""))
        batch.add_column(sa.Column("expires_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("revoked_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("last_used_at", sa.Float(), nullable=True))
    for table in ("jobs", "services"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("owner_group", sa.String(100), nullable=False, server_default="")
            )
    _accounts_of_tokens(op.get_bind())
    with op.batch_alter_table("tokens") as batch:
        batch.alter_column("id", existing_type=sa.String(16), nullable=False)
    op.create_index("ix_tokens_id", "tokens", ["id"], unique=True)
    op.create_index("ix_tokens_user", "tokens", ["user"])
    op.create_index(
        "ix_events_created",
        "events",
        ["job", "id"],
        sqlite_where=sa.text(CREATED),
        postgresql_where=sa.text(CREATED),
    )


def _accounts_of_tokens(conn: sa.Connection) -> None:
    """Give every token an id, make its user an account, and count existing work to the
    owner's group. Plain SQLAlchemy Core: the same on SQLite and PostgreSQL."""
    tokens = sa.table(
        "tokens",
        sa.column("hash", sa.String),
        sa.column("id", sa.String),
        sa.column("user", sa.String),
        sa.column("role", sa.String),
        sa.column("created_at", sa.Float),
    )
    users = sa.table(
        "users",
        sa.column("name", sa.String),
        sa.column("role", sa.String),
        sa.column("primary_group", sa.String),
        sa.column("created_at", sa.Float),
    )
    groups = sa.table("groups", sa.column("name", sa.String), sa.column("created_at", sa.Float))
    members = sa.table(
        "group_members", sa.column("group_name", sa.String), sa.column("user_name", sa.String)
    )
    found: dict[str, tuple[str, float]] = {}  # user -> (highest role, first token's time)
    rows = conn.execute(sa.select(tokens.c.hash, tokens.c.user, tokens.c.role, tokens.c.created_at))
    for hash_, user, role, created in rows.all():
        conn.execute(tokens.update().where(tokens.c.hash == hash_).values(id=secrets.token_hex(6)))
        best, first = found.get(user, (role, created))
        if RANK.get(role, 0) > RANK.get(best, 0):
            best = role
        found[user] = (best, min(first, created))
    if not found:
        return
    since = min(created for _, created in found.values())
    conn.execute(groups.insert().values(name=DEFAULT_GROUP, created_at=since))
    for user, (role, created) in sorted(found.items()):
        conn.execute(
            users.insert().values(
                name=user, role=role, primary_group=DEFAULT_GROUP, created_at=created
            )
        )
        conn.execute(members.insert().values(group_name=DEFAULT_GROUP, user_name=user))
    for table in ("jobs", "services"):
        work = sa.table(table, sa.column("owner", sa.String), sa.column("owner_group", sa.String))
        conn.execute(
            work.update().where(work.c.owner.in_(sorted(found))).values(owner_group=DEFAULT_GROUP)
        )


def downgrade() -> None:
    op.drop_index("ix_events_created", "events")
    op.drop_index("ix_tokens_user", "tokens")
    op.drop_index("ix_tokens_id", "tokens")
    for table in ("services", "jobs"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("owner_group")
    with op.batch_alter_table("tokens") as batch:
        for column in ("last_used_at", "revoked_at", "expires_at", "name", "id"):
            batch.drop_column(column)
    op.drop_table("group_members")
    op.drop_table("groups")
    op.drop_table("users")
