"""Fencing: a master writes only while its epoch leads. Once a newer master took the lead, every
write transaction of the older one is refused whole, however late it comes."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.store.store import Fenced, Store

NOW = 1_800_000_000.0


def stores(tmp_path: Path) -> tuple[Store, Store]:
    first = Store.in_dir(tmp_path)
    first.migrate()
    return first, Store.in_dir(tmp_path)


def test_each_master_that_takes_the_lead_gets_the_next_epoch(tmp_path: Path) -> None:
    old, new = stores(tmp_path)
    assert old.take_lead("m1", NOW) == 1
    assert new.take_lead("m2", NOW) == 2
    assert (old.epoch, new.epoch) == (1, 2)


def test_a_replaced_master_can_write_nothing_and_its_transaction_leaves_no_trace(
    tmp_path: Path,
) -> None:
    old, new = stores(tmp_path)
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


def test_a_store_that_never_took_the_lead_is_not_fenced(tmp_path: Path) -> None:
    tool, leader = stores(tmp_path)
    leader.take_lead("m1", NOW)
    with tool.tx() as tx:  # migrations and offline tools write without an epoch
        tx.add_token("tool", "admin", "admin", NOW)
    assert tool.token_user("tool") is not None
