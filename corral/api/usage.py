"""Accounting: ``GET /api/v1/usage``, what each user or group used over a window of time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query

from corral.api.callers import master_of
from corral.master.master import Master
from corral.master.usage import Usage, total
from corral.spec.views import UsageRowView, UsageView

router = APIRouter(prefix="/api/v1")
DEFAULT_WINDOW = timedelta(days=1)  # the window when no start is given: the last day
Instant = Annotated[
    datetime | None,
    Query(description="ISO 8601 (UTC unless it says otherwise) or seconds since the epoch."),
]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _row(usage: Usage) -> UsageRowView:
    return UsageRowView(
        name=usage.name,
        cpu_hours=usage.cpu_hours,
        mem_gib_hours=usage.mem_gib_hours,
        gpu_hours=usage.gpu_hours,
        tasks=dict(usage.tasks),
    )


@router.get("/usage")
def get_usage(
    master: Annotated[Master, Depends(master_of)],
    since: Instant = None,
    until: Instant = None,
    by: Literal["user", "group"] = "user",
) -> UsageView:
    """What each user (or group) used from ``since`` until ``until`` (default: the last day
    until now): cpu-hours, mem-GiB-hours, gpu-hours, and the tasks that ended, by outcome.
    Where reads are private, a user reads their own usage only."""
    queries = master.queries
    end = _utc(until) if until is not None else datetime.fromtimestamp(queries.now(), UTC)
    start = _utc(since) if since is not None else end - DEFAULT_WINDOW
    if start >= end:
        raise HTTPException(400, f"since ({start.isoformat()}) must be before until")
    rows = queries.usage(start.timestamp(), end.timestamp(), by)
    return UsageView(
        since=start, until=end, by=by, rows=[_row(r) for r in rows], total=_row(total(rows))
    )
