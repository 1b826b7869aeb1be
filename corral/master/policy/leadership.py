"""Leadership: whether this master takes the lead, renews its lease, follows another, or steps
down. The lease lives in the store's leadership row (its times on the store's clock); how long
this master may still act as leader is measured on its own monotonic clock."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# A leader that has not renewed its lease within this part of it steps down: before the lease
# ends in the store, so it stops acting before another master may take over.
STEP_DOWN_AT = 0.8


class Decision(StrEnum):
    """What a master does with the lease."""

    TAKE = "take"  # nobody holds a running lease: take the next epoch
    RENEW = "renew"  # we lead and still may: extend the lease
    FOLLOW = "follow"  # another master's lease runs: follow it
    STEP_DOWN = "step_down"  # we led, but another took the lead or our time ran out


@dataclass(frozen=True, slots=True)
class Lease:
    """The leadership row as the store has it."""

    epoch: int
    holder: str  # the leading process: host:pid:instance
    url: str  # where the leader answers
    expires_at: float  # on the store's clock
    # The holder was this master's process (same host and URL), which no longer exists.
    holder_gone: bool = False


@dataclass(frozen=True, slots=True)
class Me:
    """This master, as the decision sees it."""

    holder: str
    epoch: int | None = None  # the epoch we lead with; None: we do not lead
    held_until: float = 0.0  # monotonic time by which we must have renewed (when leading)


@dataclass(frozen=True, slots=True)
class Now:
    """The time on the store's clock (the lease's) and on this master's monotonic clock."""

    wall: float
    mono: float


def lease_decision(row: Lease | None, me: Me, now: Now) -> Decision:
    """What to do with the lease ``row`` (None: no master ever led) at ``now``."""
    if me.epoch is not None:
        if now.mono >= me.held_until:
            return Decision.STEP_DOWN  # too late to renew: another master may lead already
        if row is None or row.epoch != me.epoch or row.holder != me.holder:
            return Decision.STEP_DOWN
        return Decision.RENEW
    if row is None or row.holder == me.holder or row.holder_gone or now.wall >= row.expires_at:
        return Decision.TAKE
    return Decision.FOLLOW


def held_until(renew_started: float, lease: float) -> float:
    """The monotonic time until which a lease renewed (or taken) by a transaction begun at
    ``renew_started`` lets us act: it ended in the store no earlier than ``lease`` later."""
    return renew_started + lease * STEP_DOWN_AT


def lapsed(me: Me, mono: float) -> bool:
    """Whether a leader's time ran out (it could not renew, or not in time)."""
    return me.epoch is not None and mono >= me.held_until


def renew_every(lease: float, leading: bool = True) -> float:
    """How often a leader renews its lease (a third of it) and a follower looks at it (as
    often, at least every second: a lease ended on a clean stop is taken within a second)."""
    return lease / 3 if leading else min(lease / 3, 1.0)
