"""The schedule loop: fires scheduled jobs when their next firing is due.

The decisions (what to run, what to skip and why, when next) are the pure ``decide`` of
``corral.spec.firings``; this loop reads the due jobs from the store, applies the decisions in
one transaction per job, and sleeps until the next firing or until a job changes. Consecutive
skips of one job for one reason are kept as one ``run_skipped`` event whose count grows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from corral.master.applier import Applier
from corral.master.arming import skip_event
from corral.master.state import Change, ClusterState
from corral.spec.firings import Skip, SkipKind, decide
from corral.spec.jobs import JobSpec
from corral.spec.schedules import Firing, parse_schedule
from corral.store.store import Refusal
from corral.waits import wait_event

log = logging.getLogger(__name__)

DISABLED = "job disabled: its schedule waits until the job is enabled"
BUSY = "previous run still running"
REARM = "apply the job again (with a valid schedule) to re-arm it"
RETRY = 1.0  # seconds before a pass the store refused is tried again


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


@dataclass(frozen=True, slots=True)
class _Streak:
    """The newest skip record of a job: later skips of its kind join it."""

    anchor: float  # a job redefined since counts afresh
    event_id: int
    skip: Skip


class ScheduleLoop:
    """Starts the runs of scheduled jobs."""

    def __init__(self, state: ClusterState, applier: Applier, tick: float = 30.0) -> None:
        self.state = state
        self.applier = applier
        self.tick = tick  # a safety net: changes wake the loop, it never needs to poll
        # Since when a master fires schedules: firings before it were missed (run_forever
        # sets it when this master starts firing).
        self.up_since = state.clock.now()
        self._streaks: dict[str, _Streak] = {}

    def fire_due(self) -> int:
        """Handle every job whose firing is due now; answers how many runs started."""
        now = self.state.clock.now()
        started = 0
        for row in self.state.store.due_jobs(now):
            spec = self.state.specs.get(row["name"])
            if spec is None or spec.schedule is None:
                continue
            try:
                started += self._handle(row, spec, now)
            except Refusal:
                raise  # the store's, not the job's: the next pass tries again
            except Exception as e:  # one bad job must neither stop every schedule nor spin
                log.exception("the schedule of job %s failed", row["name"])
                self._park(row, now, f"its schedule could not be handled ({e}); {REARM}")
        return started

    def _park(self, row: Mapping[Any, Any], now: float, why: str) -> None:
        """Stop the job's timer, recording why; applying the job again arms it again."""
        due = Firing(index=row["next_index"], at=_dt(row["next_due"]))
        with self.state.change() as ch:
            self._record_skips(ch, row, [Skip.span(SkipKind.FAILED, due, due, why)], now)
            ch.tx.update_job(row["name"], next_due=None)

    def _handle(self, row: Mapping[Any, Any], spec: JobSpec, now: float) -> int:
        due = Firing(index=row["next_index"], at=_dt(row["next_due"]))
        nxt: Firing | None
        if spec.disabled:
            # Parked rather than woken at every firing; enabling the job (a changed spec)
            # arms it again from then.
            run, skipped, nxt = None, [Skip.span(SkipKind.DISABLED, due, due, DISABLED)], None
        else:
            assert spec.schedule is not None
            decision = decide(
                parse_schedule(spec.schedule, spec.timezone),
                _dt(row["anchor"]),
                due,
                _dt(now),
                missed=spec.missed,
                epsilon=spec.epsilon,
                up_since=_dt(self.up_since),
            )
            run, skipped, nxt = decision.run, list(decision.skipped), decision.next_due
            busy = any(j == spec.name for j, _ in self.state.runs)
            if run is not None and busy and not spec.concurrent:
                skipped.append(Skip.span(SkipKind.BUSY, run, run, BUSY))
                run = None
        with self.state.change() as ch:
            self._record_skips(ch, row, skipped, now)
            ch.tx.update_job(
                spec.name,
                next_due=None if nxt is None else nxt.at.timestamp(),
                next_index=row["next_index"] if nxt is None else nxt.index,
            )
            if run is not None:
                # A run ends the streak: skips after it are a new record.
                ch.after(lambda: self._end_streak(spec.name))
                self.applier.start_run(ch, spec, row["owner"], row["runs"] + 1, now)
        return int(run is not None)

    def _end_streak(self, job: str) -> None:
        self._streaks.pop(job, None)

    def _record_skips(
        self, ch: Change, row: Mapping[Any, Any], skipped: Sequence[Skip], now: float
    ) -> None:
        """One event per span; a span of the kind of the job's newest skip record replaces
        that record with the two joined, so a job skipping every second stays one event."""
        job, tx = row["name"], ch.tx
        streak = self._streaks.get(job)
        if streak is not None and streak.anchor != row["anchor"]:
            streak = None  # the job was redefined since: its skips count afresh
        for skip in skipped:
            joined = skip
            if streak is not None and streak.skip.kind is skip.kind:
                tx.delete_event(streak.event_id)
                joined = streak.skip.then(skip)
            tx.add_event(**skip_event(job, joined, now))
            tx.flush()  # for the id the next span of this kind replaces
            streak = _Streak(row["anchor"], tx.events[-1]["id"], joined)
        if streak is not None:
            newest = streak
            ch.after(lambda: self._streaks.__setitem__(job, newest))

    async def run_forever(self) -> None:
        """Fire what is due, then sleep until the next firing or a change of any job."""
        self.up_since = self.state.clock.now()
        while True:
            timeout = self.tick
            try:
                await self.state.write(self.fire_due)
                earliest = await asyncio.to_thread(self.state.store.earliest_due)
                if earliest is not None:
                    timeout = max(0.0, min(timeout, earliest - self.state.clock.now()))
            except Refusal as e:  # the store is back soon: try again then
                log.warning("schedule pass failed: %s", e)
                timeout = min(timeout, RETRY)
            except Exception:  # one bad job must not stop every schedule
                log.exception("schedule pass failed")
            await wait_event(self.state.timers, timeout)
            self.state.timers.clear()
