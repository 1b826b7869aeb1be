"""A scheduled job's timer columns when it is (re)defined, and skipped firings as events.

The decisions are the pure ``arm`` and ``decide`` of ``corral.spec.firings``; this module only
turns them into store columns and ``run_skipped`` event rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from corral.spec.firings import Skip, arm
from corral.spec.jobs import JobSpec
from corral.spec.schedules import parse_schedule


def timing(spec: JobSpec, now: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The schedule columns of a job (re)defined at ``now`` (its anchor and the first firing
    to handle) and the events of the firing it skips, if its start is past by over epsilon."""
    if spec.schedule is None:
        return {"anchor": None, "next_due": None, "next_index": None}, []
    anchor = datetime.fromtimestamp(now, UTC)
    armed = arm(parse_schedule(spec.schedule, spec.timezone), anchor, epsilon=spec.epsilon)
    first = armed.next_due
    columns = {
        "anchor": now,
        "next_due": None if first is None else first.at.timestamp(),
        "next_index": None if first is None else first.index,
    }
    return columns, [skip_event(spec.name, s, now) for s in armed.skipped]


def skip_event(job: str, skip: Skip, now: float) -> dict[str, Any]:
    """The ``run_skipped`` event of a span of skipped firings."""
    return {
        "time": now,
        "type": "run_skipped",
        "job": job,
        "reason": skip.reason,
        "data": {
            "kind": skip.kind.value,
            "count": skip.count,
            "first": skip.first.at.isoformat(),
            "last": skip.last.at.isoformat(),
            "index": skip.first.index,
        },
    }
