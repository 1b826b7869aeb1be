"""What to do about a schedule's firings, as pure functions: which one runs, which are skipped
and why, and which come next.

Nothing here reads the clock: callers pass ``now``, the job's *anchor* (when it was defined) and,
for the loop, ``up_since`` (since when a master has been running). Skipped firings come as
:class:`Skip` spans, one per reason with a count, so that a million skipped firings are one
record, never one per firing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from corral.spec.schedules import Firing, Schedule

__all__ = ["DEFAULT_EPSILON", "Decision", "Skip", "SkipKind", "arm", "decide", "upcoming"]

# How late a firing may be when a job is defined and gives no epsilon: Chronos' --task_epsilon.
DEFAULT_EPSILON = 60.0
_US = timedelta(microseconds=1)


class SkipKind(StrEnum):
    """Why firings were not run; consecutive skips of one kind make one record."""

    LATE = "late"  # later than epsilon (or due too long before the job was defined)
    MISSED = "missed"  # fell due while no master ran, and missed="skip" drops such firings
    SUPERSEDED = "superseded"  # an older firing of a backlog: only the latest one runs
    DISABLED = "disabled"  # the job is disabled
    BUSY = "busy"  # the previous run still runs and the job is not concurrent
    FAILED = "failed"  # the schedule could not be handled (a stored spec no longer valid...)


@dataclass(frozen=True, slots=True)
class Skip:
    """Consecutive firings from ``first`` to ``last`` that were not run, for one reason."""

    kind: SkipKind
    first: Firing
    last: Firing
    count: int | None  # None for a span of cron firings, which are not numbered
    reason: str

    @classmethod
    def span(cls, kind: SkipKind, first: Firing, last: Firing, reason: str) -> Skip:
        """The firings from ``first`` to ``last``, counted when the schedule numbers them."""
        if first == last:
            count: int | None = 1
        else:
            count = last.index - first.index + 1 if first.index >= 0 else None
        return cls(kind, first, last, count, reason)

    def then(self, later: Skip) -> Skip:
        """This span and the ``later`` one of the same kind as one span, with its reason."""
        count = None if self.count is None or later.count is None else self.count + later.count
        return Skip(later.kind, self.first, later.last, count, later.reason)


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do about the firings that came due: run one, skip the rest, wait for the next."""

    run: Firing | None  # the firing to run now (at most one: never a burst)
    skipped: tuple[Skip, ...]  # the firings not run, by reason (at most one span here)
    next_due: Firing | None  # the oldest firing left to handle (None: exhausted)


def arm(schedule: Schedule, anchor: datetime, *, epsilon: float | None = None) -> Decision:
    """The first firing to handle for a job defined at ``anchor``.

    As Chronos does, the latest firing at or before ``anchor`` is still due when it is late by
    at most ``epsilon`` seconds (default 60): a start a few seconds in the past runs. When it is
    later, it is skipped (older firings were never the job's) and the next one is due.
    """
    latest = schedule.latest_at_or_before(anchor, anchor)
    following = schedule.first_at_or_after(anchor, anchor + _US)
    if latest is None:
        return Decision(None, (), following)
    grace = DEFAULT_EPSILON if epsilon is None else epsilon
    late = (anchor - latest.at).total_seconds()
    if late <= grace:
        return Decision(None, (), latest)
    why = f"due {_secs(late)}s before the job was defined, more than epsilon {_secs(grace)}s"
    return Decision(None, (Skip.span(SkipKind.LATE, latest, latest, why),), following)


def decide(
    schedule: Schedule,
    anchor: datetime,
    due: Firing,
    now: datetime,
    *,
    missed: str = "run-once",
    epsilon: float | None = None,
    up_since: datetime | None = None,
) -> Decision:
    """Handle every firing in ``[due.at, now]``: run the latest unless it is too late.

    ``due`` is the oldest firing not handled yet. The latest firing runs and the older ones are
    skipped as superseded, unless the latest is later than ``epsilon`` seconds (None: no limit),
    or ``missed="skip"`` and it fell due after ``anchor`` but before ``up_since``, while no
    master ran: then all are skipped. A ``due`` still in the future decides nothing.
    """
    if missed not in ("run-once", "skip"):
        raise ValueError(f"missed must be 'run-once' or 'skip', not {missed!r}")
    if due.at > now:
        return Decision(None, (), due)
    next_due = schedule.first_at_or_after(anchor, now + _US)
    latest = schedule.latest_at_or_before(anchor, now)
    if latest is None or latest.at < due.at:
        latest = due  # `due` is a firing by contract; trust it over a disagreeing anchor
    late = (now - latest.at).total_seconds()
    limit = math.inf if epsilon is None else epsilon
    if late > limit:
        most = (now - due.at).total_seconds()
        by = _secs(late) if latest == due else f"{_secs(late)}s to {_secs(most)}"
        why = f"late by {by}s, more than epsilon {_secs(limit)}s"
        return Decision(None, (Skip.span(SkipKind.LATE, due, latest, why),), next_due)
    if missed == "skip" and up_since is not None and anchor <= latest.at < up_since:
        why = (
            f"missed while no master ran (one runs since {up_since.isoformat()}); "
            "missed='skip' drops such firings"
        )
        return Decision(None, (Skip.span(SkipKind.MISSED, due, latest, why),), next_due)
    before = schedule.latest_at_or_before(anchor, latest.at - _US)
    if before is None or before.at < due.at:
        return Decision(latest, (), next_due)
    why = f"missed; the latest firing, {latest.at.isoformat()}, ran once instead"
    return Decision(latest, (Skip.span(SkipKind.SUPERSEDED, due, before, why),), next_due)


def upcoming(schedule: Schedule, anchor: datetime, start: Firing | None, n: int) -> list[Firing]:
    """``start`` and the firings after it, ``n`` at most (fewer when the schedule ends)."""
    out: list[Firing] = []
    f = start
    while f is not None and len(out) < n:
        out.append(f)
        f = schedule.first_at_or_after(anchor, f.at + _US)
    return out


def _secs(seconds: float) -> str:
    return f"{seconds:.3f}".rstrip("0").rstrip(".")
