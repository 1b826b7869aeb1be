"""Store rows and live records to the API's views."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from corral.master.queries import Queries
from corral.master.view import AgentInfo
from corral.scheduler.model import Resources
from corral.spec import limits
from corral.spec.firings import upcoming
from corral.spec.jobs import JobSpec
from corral.spec.schedules import Firing, Schedule, parse_schedule
from corral.spec.states import TaskState
from corral.spec.views import (
    AgentView,
    EventView,
    FiringView,
    GpuView,
    JobView,
    ResourcesView,
    RunView,
    SkipView,
    TaskEventView,
    TaskView,
)

Row = Mapping[Any, Any]  # store rows (RowMapping) and plain dicts alike


def ts(value: float | None) -> datetime | None:
    """Seconds since the epoch to an aware UTC datetime."""
    return None if value is None else datetime.fromtimestamp(value, UTC)


def at(value: float) -> datetime:
    """Seconds since the epoch (known to be set) to an aware UTC datetime."""
    return datetime.fromtimestamp(value, UTC)


def resources_view(r: Resources) -> ResourcesView:
    """Core units (millicpus) to user units."""
    return ResourcesView(cpus=r.millicpus / 1000, mem=r.mem, disk=r.disk, gpus=r.gpus)


def task_view(q: Queries, row: Row, events: Sequence[Row] | None = None) -> TaskView:
    """A task row, with the live reason why it waits if it is pending."""
    launch = row["launch"]
    reason = row["reason"]
    live = q.live_task(row["id"])
    if live is not None and live.state is TaskState.PENDING and live.waiting:
        reason = f"waiting: {live.waiting}"
    return TaskView(
        id=row["id"],
        job=row["job"],
        run=row["run"],
        slot=row["slot"],
        index=row["idx"],
        attempt=row["attempt"],
        state=TaskState(live.state if live is not None else row["state"]),
        reason=reason,
        exit_code=row["exit_code"],
        agent_id=row["agent_id"],
        hostname=q.hostname(row["agent_id"]),
        ports=row["ports"] or [],
        gpus=row.get("devices") or [],
        command=launch.get("command"),
        shell=launch.get("shell"),
        resources=ResourcesView(
            cpus=launch["cpus"],
            mem=launch["mem"],
            disk=launch.get("disk", 0),
            gpus=launch.get("gpus", 0),
        ),
        created_at=at(row["created_at"]),
        started_at=ts(row["started_at"]),
        finished_at=ts(row["finished_at"]),
        not_before=ts(row["not_before"]),
        healthy=row.get("healthy"),
        health=row.get("health"),
        preempted_by=row.get("preempted_by"),
        requeues=row.get("requeues") or 0,
        waiting=live.waiting or None
        if live is not None and live.state is TaskState.PENDING
        else None,
        events=None
        if events is None
        else [
            TaskEventView(
                id=e["id"],
                time=at(e["time"]),
                state=TaskState(e["state"]),
                reason=e["reason"],
                agent_id=e["agent_id"],
            )
            for e in events
        ],
    )


def run_view(q: Queries, row: Row) -> RunView:
    """A run with its task counts per state."""
    counts = q.run_counts(row)
    return RunView(
        job=row["job"],
        number=row["number"],
        state=row["state"],
        created_at=at(row["created_at"]),
        finished_at=ts(row["finished_at"]),
        total=row["total"],
        counts={TaskState(k): v for k, v in counts.items()},
    )


def job_view(q: Queries, row: Row, *, detail: bool = False, upcoming: int = 0) -> JobView:
    """A job and its newest run; in ``detail``, with its newest skip record and its next
    ``upcoming`` firings too (left out of lists, which must stay cheap)."""
    spec = JobSpec.stored(row["spec"])
    with limits.reading_stored():  # the view checks its spec again: as stored, not as new
        return view_of_job(q, row, spec, detail=detail, upcoming=upcoming)


def view_of_job(q: Queries, row: Row, spec: JobSpec, *, detail: bool, upcoming: int) -> JobView:
    """The ``JobView`` of a job whose spec was read."""
    last = q.run(row["name"], row["runs"]) if row["runs"] else None
    return JobView(
        name=row["name"],
        owner=row["owner"],
        group=row["owner_group"],
        spec=spec,
        created_at=at(row["created_at"]),
        updated_at=at(row["updated_at"]),
        runs=row["runs"],
        last_run=None if last is None else run_view(q, last),
        success_count=row["success_count"],
        error_count=row["error_count"],
        last_success=ts(row["last_success"]),
        last_error=ts(row["last_error"]),
        next_run=ts(row["next_due"]),
        upcoming=firing_views(spec, row, upcoming if detail else 0),
        last_skip=skip_view(q.last_skip(row["name"])) if detail else None,
        remaining=remaining(spec, row),
        children=q.children(row["name"]),
    )


def _schedule_of(spec: JobSpec) -> Schedule | None:
    """The job's schedule; None without one, or for a stored one today's rules refuse (its
    timer is parked with the reason)."""
    if spec.schedule is None:
        return None
    try:
        return parse_schedule(spec.schedule, spec.timezone)
    except ValueError:
        return None


def firing_views(spec: JobSpec, row: Row, n: int) -> list[FiringView]:
    """The next ``n`` firings of a job from its next due one (none when it is not armed)."""
    schedule = _schedule_of(spec)
    if n <= 0 or schedule is None or row["next_due"] is None:
        return []
    due = Firing(row["next_index"], at(row["next_due"]))
    return [
        FiringView(
            at=f.at, local=f.at.astimezone(schedule.zone), index=f.index if f.index >= 0 else None
        )
        for f in upcoming(schedule, at(row["anchor"]), due, n)
    ]


def remaining(spec: JobSpec, row: Row) -> int | None:
    """How many firings an ISO schedule with a count has left, as Chronos counts them down."""
    schedule = _schedule_of(spec)
    count = None if schedule is None else schedule.count
    if count is None:
        return None
    if row["next_index"] is None:
        return 0  # nothing was ever due: the schedule was over when the job was defined
    # next_index is the firing to handle next, or the last one handled once nothing is due.
    return max(0, count - int(row["next_index"]) - (row["next_due"] is None))


def skip_view(event: Row | None) -> SkipView | None:
    """The newest ``run_skipped`` event of a job."""
    if event is None:
        return None
    data = event["data"] or {}
    return SkipView(
        time=at(event["time"]),
        reason=event["reason"],
        count=data.get("count", 1),
        first=_iso(data.get("first")),
        last=_iso(data.get("last")),
    )


def _iso(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def agent_view(agent: AgentInfo, holders: Mapping[int, str] | None = None) -> AgentView:
    """A live agent record; ``holders`` maps the index of each GPU held to its task."""
    held = holders or {}
    return AgentView(
        id=agent.id,
        hostname=agent.hostname,
        state=agent.state,
        connected=agent.connected,
        total=resources_view(agent.total),
        used=resources_view(agent.used),
        attributes=dict(agent.attributes),
        drivers=sorted(agent.drivers),
        registered_at=at(agent.registered_at),
        last_heartbeat=ts(agent.last_heartbeat),
        cgroups=agent.cgroups,
        gpus=[
            GpuView(index=g.index, model=g.model, memory=g.memory, task=held.get(g.index))
            for g in agent.gpus
        ],
    )


def event_view(row: Row) -> EventView:
    """An event row."""
    return EventView(
        id=row["id"],
        time=at(row["time"]),
        type=row["type"],
        job=row.get("job"),
        run=row.get("run"),
        task_id=row.get("task_id"),
        agent_id=row.get("agent_id"),
        state=row.get("state"),
        reason=row.get("reason") or "",
        data=row.get("data") or {},
    )
