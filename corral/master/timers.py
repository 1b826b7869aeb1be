"""The schedule loop: fires scheduled jobs when their next firing is due.

The decisions (what to run, what to skip and why, when next) are the pure ``decide`` of
``corral.spec.schedules``; this loop reads the due jobs from the store, applies the decisions in
one transaction per job, and sleeps until the next firing or until a job changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from corral.master.jobs import JobOps
from corral.master.state import ClusterState
from corral.spec.jobs import JobSpec
from corral.spec.schedules import Decision, Firing, decide, parse_schedule

log = logging.getLogger(__name__)


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class ScheduleLoop:
    """Starts the runs of scheduled jobs."""

    def __init__(self, state: ClusterState, jobs: JobOps, tick: float = 30.0) -> None:
        self.state = state
        self.jobs = jobs
        self.tick = tick  # a safety net: changes wake the loop, it never needs to poll

    def fire_due(self) -> int:
        """Handle every job whose firing is due now; answers how many runs started."""
        now = self.state.clock.now()
        started = 0
        for row in self.state.store.due_jobs(now):
            spec = self.state.specs.get(row["name"])
            if spec is None or spec.schedule is None:
                continue
            started += self._handle(row, spec, now)
        return started

    def _handle(self, row: Mapping[Any, Any], spec: JobSpec, now: float) -> int:
        assert spec.schedule is not None
        schedule = parse_schedule(spec.schedule, spec.timezone)
        due = Firing(index=row["next_index"], at=_dt(row["next_due"]))
        decision = decide(
            schedule, _dt(row["anchor"]), due, _dt(now), missed=spec.missed, epsilon=spec.epsilon
        )
        run_now, why_not = decision.run is not None, ""
        if run_now and spec.disabled:
            run_now, why_not = False, "job disabled"
        elif run_now and not spec.concurrent and any(j == spec.name for j, _ in self.state.runs):
            run_now, why_not = False, "previous run still running"
        with self.state.change() as ch:
            self._record_skips(ch.tx, spec.name, decision, why_not, now)
            nxt = decision.next_due
            ch.tx.update_job(
                spec.name,
                next_due=None if nxt is None else nxt.at.timestamp(),
                next_index=None if nxt is None else nxt.index,
            )
            if run_now:
                self.jobs.begin_run(ch, spec, row["owner"], row["runs"] + 1, now)
        return int(run_now)

    @staticmethod
    def _record_skips(tx: Any, job: str, decision: Decision, why_not: str, now: float) -> None:
        skipped = list(decision.skipped)
        if why_not and decision.run is not None:
            skipped.append((decision.run, why_not))
        tx.add_events(
            [
                {
                    "time": now,
                    "type": "run_skipped",
                    "job": job,
                    "reason": reason,
                    "data": {"scheduled": firing.at.isoformat(), "index": firing.index},
                }
                for firing, reason in skipped
            ]
        )

    async def run_forever(self) -> None:
        """Fire what is due, then sleep until the next firing or a change of any job."""
        while True:
            try:
                self.fire_due()
            except Exception:  # one bad job must not stop every schedule
                log.exception("schedule pass failed")
            earliest = self.state.store.earliest_due()
            timeout = self.tick
            if earliest is not None:
                timeout = max(0.0, min(timeout, earliest - self.state.clock.now()))
            try:
                await asyncio.wait_for(self.state.timers.wait(), timeout)
            except TimeoutError:
                pass
            self.state.timers.clear()
