"""Fencing: a master writes only while its epoch leads. Once a newer master took the lead, every
write transaction of the older one is refused whole, however late it comes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from corral.store.store import Fenced, Store

NOW = 1_800_000_000.0


@pytest.fixture
def stores(store_url: str) -> Iterator[tuple[Store, Store]]:
    """Two masters' stores on one database (each backend)."""
    first, second = Store(store_url), Store(store_url)
    first.migrate()
    yield first, second
    first.close()
    second.close()


def test_each_master_that_takes_the_lead_gets_the_next_epoch(stores: tuple[Store, Store]) -> None:
    old, new = stores
    assert old.take_lead("m1", NOW) == 1
    assert new.take_lead("m2", NOW) == 2
    assert (old.epoch, new.epoch) == (1, 2)


def test_a_replaced_master_can_write_nothing_and_its_transaction_leaves_no_trace(
    stores: tuple[Store, Store],
) -> None:
    old, new = stores
    old.take_lead("m1", NOW)
    with old.tx() as tx:
        tx.add_token("before", "admin", "admin", NOW)
    new.take_lead("m2", NOW)
    with pytest.raises(Fenced, match=r"epoch 1\) is no longer the leader: epoch 2 leads now"):
        with old.tx() as tx:
            tx.add_token("after", "admin", "admin", NOW)
    assert old.token_user("before") is not None
    assert old.token_user("after") is None
    with new.tx() as tx:  # the leader writes on
        tx.add_token("leader", "admin", "admin", NOW)
    assert new.token_user("leader") is not None


def test_a_store_that_never_took_the_lead_is_not_fenced(stores: tuple[Store, Store]) -> None:
    tool, leader = stores
    leader.take_lead("m1", NOW)
    with tool.tx() as tx:  # migrations and offline tools write without an epoch
        tx.add_token("tool", "admin", "admin", NOW)
    assert tool.token_user("tool") is not None
