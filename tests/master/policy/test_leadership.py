"""The lease: a master takes the lead when nobody holds a running lease, renews while it leads
and may, follows a running lease of another, and steps down when another took the lead or its
own time to renew ran out (by its monotonic clock, whatever the store's clock says)."""

from __future__ import annotations

import pytest

from corral.master.policy.leadership import (
    Decision,
    Lease,
    Me,
    Now,
    held_until,
    lapsed,
    lease_decision,
    renew_every,
)

D = Decision
T = 1_800_000_000.0  # the store's clock
ME = "m1:100:aaaa"
OTHER = "m2:200:bbbb"


def lease(
    holder: str = OTHER, epoch: int = 7, expires_at: float = T + 1, gone: bool = False
) -> Lease:
    return Lease(epoch, holder, f"http://{holder.split(':')[0]}:8080", expires_at, gone)


@pytest.mark.parametrize(
    ("row", "me", "now", "decision"),
    [
        pytest.param(None, Me(ME), Now(T, 10), D.TAKE, id="nobody ever led: take the lead"),
        pytest.param(
            lease(expires_at=T - 0.1),
            Me(ME),
            Now(T, 10),
            D.TAKE,
            id="another's lease expired: take the lead",
        ),
        pytest.param(
            lease(expires_at=T),
            Me(ME),
            Now(T, 10),
            D.TAKE,
            id="a lease ends at its expiry: taken at that very time",
        ),
        pytest.param(
            lease(expires_at=T + 0.5),
            Me(ME),
            Now(T, 10),
            D.FOLLOW,
            id="another's lease runs: follow it",
        ),
        pytest.param(
            lease(expires_at=T + 0.5, gone=True),
            Me(ME),
            Now(T, 10),
            D.TAKE,
            id="our own process killed and started again: no need to wait for its lease",
        ),
        pytest.param(
            lease(holder=ME, expires_at=T + 0.5),
            Me(ME),
            Now(T, 10),
            D.TAKE,
            id="a lease of ours we stepped down from: taken again, at the next epoch",
        ),
        pytest.param(
            lease(holder=ME),
            Me(ME, 7, held_until=11),
            Now(T, 10),
            D.RENEW,
            id="we lead and have time left: renew",
        ),
        pytest.param(
            lease(holder=ME, expires_at=T - 5),
            Me(ME, 7, held_until=11),
            Now(T, 10),
            D.RENEW,
            id="the store's clock alone does not make a leader step down",
        ),
        pytest.param(
            lease(holder=ME),
            Me(ME, 7, held_until=11),
            Now(T, 11),
            D.STEP_DOWN,
            id="our time to renew ran out by our monotonic clock: step down",
        ),
        pytest.param(
            lease(holder=OTHER, epoch=8),
            Me(ME, 7, held_until=11),
            Now(T, 10),
            D.STEP_DOWN,
            id="another took the lead at a newer epoch: step down",
        ),
        pytest.param(
            None,
            Me(ME, 7, held_until=11),
            Now(T, 10),
            D.STEP_DOWN,
            id="the lease row is gone: step down",
        ),
        pytest.param(
            lease(holder=OTHER, epoch=7),
            Me(ME, 7, held_until=11),
            Now(T, 10),
            D.STEP_DOWN,
            id="our epoch held by another process: step down",
        ),
    ],
)
def test_lease_decision(row: Lease | None, me: Me, now: Now, decision: Decision) -> None:
    assert lease_decision(row, me, now) is decision


def test_a_leader_acts_for_less_than_its_lease_counted_from_before_it_asked() -> None:
    # Renewed by a transaction begun at 100 with a 2 s lease: the store's lease ends no earlier
    # than 102, and we stop acting at 101.6, before any other master may take over.
    assert held_until(100.0, 2.0) == pytest.approx(101.6)
    me = Me(ME, 3, held_until(100.0, 2.0))
    assert not lapsed(me, 101.5)
    assert lapsed(me, 101.6)
    assert not lapsed(Me(ME), 1e9), "a follower has no time to run out"


def test_the_lease_is_renewed_three_times_per_lease_and_looked_at_every_second_at_most() -> None:
    assert renew_every(2.0) == renew_every(2.0, leading=False) == pytest.approx(2.0 / 3)
    assert renew_every(10.0) == pytest.approx(10.0 / 3)
    assert renew_every(10.0, leading=False) == 1.0


def test_a_frozen_leader_woken_after_its_lease_steps_down_before_looking_at_the_store() -> None:
    me = Me(ME, 3, held_until(100.0, 2.0))
    # Frozen at 100.5 for ten seconds: the store still names us (no other master ran), yet
    # we may have missed a takeover, so we step down; and take the lead again at the next look.
    assert lease_decision(lease(holder=ME, epoch=3), me, Now(T + 10, 110.5)) is D.STEP_DOWN
    assert lease_decision(lease(holder=ME, epoch=3), Me(ME), Now(T + 10, 110.6)) is D.TAKE
