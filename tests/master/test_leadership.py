"""Masters sharing a store through their leases (each backend, a clock of each master's own
that moves only when told): one leads, the others follow it; a leader whose time to renew ran
out by its own clock steps down and writes nothing more; a lease ended on a clean stop is
taken at once; a leader that another replaced finds out at its next look and steps down."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from corral.master.leadership import Change, Leadership
from corral.master.policy.leadership import Decision
from corral.store.schema import jobs
from corral.store.store import Fenced, Store


class Clock:
    """A monotonic clock that moves only when told (the lease's times are the store's)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t


def master(url: str, name: str, lease: float = 30.0) -> tuple[Leadership, Clock]:
    clock = Clock()
    return Leadership(Store(url), clock, f"http://{name}:8080", lease), clock


@pytest.fixture
def pair(store_url: str) -> Iterator[tuple[tuple[Leadership, Clock], tuple[Leadership, Clock]]]:
    migrating = Store(store_url)
    migrating.migrate()
    migrating.close()
    first, second = master(store_url, "m1"), master(store_url, "m2")
    yield first, second
    first[0].store.close()
    second[0].store.close()


def changes(leadership: Leadership) -> list[Change]:
    out = []
    while not leadership.changes.empty():
        out.append(leadership.changes.get_nowait())
    return out


def write(store: Store) -> None:
    with store.tx() as tx:
        tx.conn.execute(jobs.delete().where(jobs.c.name == "nothing"))


def test_the_first_master_leads_and_the_other_follows_it(pair: tuple) -> None:  # type: ignore[type-arg]
    (m1, _), (m2, _) = pair
    assert m1.look() is Decision.TAKE
    assert m2.look() is Decision.FOLLOW
    assert (m1.leading, m2.leading) == (True, False)
    assert m1.leader_url == m2.leader_url == "http://m1:8080"
    assert changes(m1) == [Change(1)] and changes(m2) == []
    assert m1.look() is Decision.RENEW
    write(m1.store)
    with pytest.raises(Fenced, match="does not lead"):
        write(m2.store)


def test_a_leader_whose_time_to_renew_ran_out_steps_down_and_writes_nothing(pair: tuple) -> None:  # type: ignore[type-arg]
    (m1, clock), _ = pair
    m1.look()
    clock.t += 30 * 0.8  # no renewal for 80% of the lease, by its own clock
    m1.check("the store did not answer")
    assert not m1.leading
    assert changes(m1) == [Change(1), Change(None, "the store did not answer")]
    with pytest.raises(Fenced):
        write(m1.store)


def test_a_lease_ended_on_a_clean_stop_is_taken_at_once_and_the_old_leader_is_fenced(
    pair: tuple,  # type: ignore[type-arg]
) -> None:
    (m1, _), (m2, _) = pair
    m1.look()
    stale = Store(m1.store.url)  # what a frozen m1 would still write with
    stale.epoch = m1.store.epoch
    m1.stop()
    assert m2.look() is Decision.TAKE
    assert m2.store.epoch == 2 and m2.leader_url == "http://m2:8080"
    with pytest.raises(Fenced, match="epoch 2 leads now"):
        write(stale)
    stale.close()


def test_a_leader_replaced_meanwhile_steps_down_at_its_next_look(pair: tuple) -> None:  # type: ignore[type-arg]
    (m1, _), (m2, _) = pair
    m1.look()
    m2.store.take_lead("forced", 0.0)  # as if m1's lease had run out unseen
    assert m1.look() is Decision.STEP_DOWN
    assert not m1.leading
    assert changes(m1)[-1].epoch is None
    with pytest.raises(Fenced):
        write(m1.store)
