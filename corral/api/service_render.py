"""Live service and deployment records to the API's views."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from corral.api.render import at, ts
from corral.master.queries import Queries
from corral.master.view import DeploymentInfo, ServiceInfo, TaskInfo
from corral.spec.services import ServiceSpec
from corral.spec.states import TaskState
from corral.spec.views import (
    DeploymentAction,
    DeploymentView,
    FailureView,
    ServiceCounts,
    ServiceVersionView,
    ServiceView,
)


def counts_of(tasks: Iterable[TaskInfo]) -> ServiceCounts:
    """Live tasks by condition, Marathon's way: staged until running; healthy and unhealthy
    by the last check."""
    c = ServiceCounts()
    for t in tasks:
        if t.state is TaskState.RUNNING:
            c.running += 1
            c.healthy += t.healthy is True
            c.unhealthy += t.healthy is False
        else:
            c.staged += 1
    return c


def service_view(q: Queries, rec: ServiceInfo) -> ServiceView:
    """A service with its live state."""
    row = q.service_row(rec.id)
    tasks = q.live_tasks_of(rec.id)
    waiting = sorted({t.waiting for t in tasks if t.state is TaskState.PENDING and t.waiting})
    failure = None if row is None else row["last_failure"]
    return ServiceView(
        id=rec.id,
        owner=rec.owner,
        group="" if row is None else row["owner_group"],
        spec=rec.spec,
        version=rec.version,
        config=rec.config,
        config_version=rec.config_version,
        created_at=at(rec.created_at),
        updated_at=at(rec.created_at if row is None else row["updated_at"]),
        counts=counts_of(t for t in tasks if not t.kill_requested),
        deployments=q.locks(rec.id),
        delay_until=ts(rec.delay_until) if rec.delay_until and rec.delay_until > q.now() else None,
        last_failure=None if not failure else _failure(failure),
        waiting="; ".join(waiting) or None,
    )


def _failure(doc: Mapping[str, Any]) -> FailureView:
    return FailureView(
        time=at(doc["time"]),
        task_id=doc["task_id"],
        state=TaskState(doc["state"]),
        reason=doc["reason"],
    )


def version_view(row: Mapping[Any, Any]) -> ServiceVersionView:
    """One stored version of a service."""
    return ServiceVersionView(
        version=row["version"],
        config=row["config"],
        created_at=at(row["created_at"]),
        spec=ServiceSpec.stored(row["spec"]),
    )


def deployment_view(row: Mapping[Any, Any]) -> DeploymentView:
    """A deployment row (running or ended)."""
    steps = [
        [DeploymentAction(action=a["action"], service=a["app"]) for a in step]
        for step in row["steps"]
    ]
    return DeploymentView(
        id=row["id"],
        version=row["version"],
        state=row["state"],
        services=sorted({a.service for step in steps for a in step}),
        steps=steps,
        current_step=min(row["current_step"] + 1, len(steps)),
        created_at=at(row["created_at"]),
        finished_at=ts(row["finished_at"]),
        reason=row["reason"],
    )


def running_deployment_row(dep: DeploymentInfo) -> dict[str, Any]:
    """A live deployment record in the shape of its row."""
    return {
        "id": dep.id,
        "version": dep.version,
        "state": "RUNNING",
        "steps": dep.steps,
        "current_step": dep.current_step,
        "created_at": dep.created_at,
        "finished_at": None,
        "reason": "",
    }
