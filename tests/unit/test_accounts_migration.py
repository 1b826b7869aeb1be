"""Migration 0009 on a store written before accounts existed: the first admin token stays
valid, its user becomes an admin account in the group "users", and existing work is counted to
its owner's group; on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from corral.master.accounts import AccountOps, Caller
from corral.spec.accounts import Role
from corral.store.store import MIGRATIONS, Store, hash_token
from tests.api.conftest import FixedClock

OLD_TOKEN = "the-token-corral-up-printed-before-accounts"
# The tables as revision 0008 has them.
TOKENS = sa.table("tokens", *map(sa.column, ("hash", "user", "role", "created_at")))
JOBS = sa.table(
    "jobs",
    *map(sa.column, ("name", "owner", "spec", "runs", "created_at", "updated_at")),
    *map(sa.column, ("success_count", "error_count")),
)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store with no schema yet, on each backend."""
    if request.param == "sqlite":
        store = Store.in_dir(tmp_path)
        yield store
        store.close()
        return
    server = request.getfixturevalue("postgres")
    name = server.new_database(migrated=False)
    store = Store(server.url(name))
    yield store
    store.close()
    server.drop_database(name)


def upgrade(store: Store, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def test_the_first_admin_token_stays_valid_and_its_user_becomes_an_account(
    empty_store: Store,
) -> None:
    upgrade(empty_store, "0008")
    with empty_store.engine.begin() as conn:
        conn.execute(
            TOKENS.insert().values(
                hash=hash_token(OLD_TOKEN), user="admin", role="admin", created_at=1.0
            )
        )
        for name, owner in (("mine", "admin"), ("theirs", "someone")):
            conn.execute(
                JOBS.insert().values(
                    name=name,
                    owner=owner,
                    spec="{}",
                    runs=0,
                    created_at=1.0,
                    updated_at=1.0,
                    success_count=0,
                    error_count=0,
                )
            )
    empty_store.migrate()
    accounts = AccountOps(empty_store, FixedClock())
    caller = accounts.authenticate(OLD_TOKEN)
    assert isinstance(caller, Caller) and (caller.name, caller.role) == ("admin", Role.ADMIN)
    with empty_store.engine.connect() as conn:
        users = conn.execute(sa.text("SELECT name, role, primary_group FROM users")).all()
        rows = conn.execute(sa.text("SELECT name, owner_group FROM jobs")).all()
    groups = {str(name): str(group) for name, group in rows}
    assert [tuple(u) for u in users] == [("admin", "admin", "users")]
    assert groups == {"mine": "users", "theirs": ""}  # "someone" is no account
