"""Migration 0013 on a store written before weights and quotas: existing users and groups get
weight 1 and no quota, so scheduling goes on as it was, and decayed usage can be kept; on SQLite
and on PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

from corral.master.accounts import AccountQueries
from corral.master.fairshare import FairShare, Settings
from corral.scheduler.model import Resources
from corral.spec.accounts import Quota
from corral.store.store import Store
from tests.unit.test_accounts_migration import empty_store, upgrade

__all__ = ["empty_store"]  # the fixture, for pytest

USERS = sa.table("users", *map(sa.column, ("name", "role", "primary_group", "created_at")))
GROUPS = sa.table("groups", *map(sa.column, ("name", "created_at")))


def test_existing_accounts_get_weight_one_and_no_quota(empty_store: Store) -> None:
    upgrade(empty_store, "0012")
    with empty_store.engine.begin() as conn:
        conn.execute(GROUPS.insert().values(name="physics", created_at=1.0))
        conn.execute(
            USERS.insert().values(
                name="alice", role="user", primary_group="physics", created_at=1.0
            )
        )
    empty_store.migrate()
    accounts = AccountQueries(empty_store, lambda: 2.0)
    alice = accounts.user("alice")
    assert alice is not None and (alice.weight, alice.quota) == (1.0, Quota())
    physics = accounts.group("physics")
    assert physics is not None and (physics.weight, physics.quota) == (1.0, Quota())
    settings = Settings.read(empty_store)
    assert (settings.weights, settings.quotas, settings.group_quotas) == ({}, {}, {})
    assert settings.owner_groups == {"alice": "physics"}

    kept = FairShare(empty_store, half_life=3600.0)
    kept.track(10.0, {"alice": Resources(1000)})
    kept.track(3610.0, {})
    kept.save(3610.0)
    again = FairShare(empty_store, half_life=3600.0)
    again.load()
    assert again.ledger.usage == kept.ledger.usage and again.ledger.at == 3610.0
