"""Services, tasks and deployments in the JSON Marathon's clients read."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from corral.api.marathon_stats import task_stats
from corral.api.service_render import counts_of
from corral.master.queries import Queries
from corral.master.service_tasks import version_of
from corral.master.view import DeploymentInfo, ServiceInfo, TaskInfo
from corral.spec.marathon import app_status, service_ports, spec_to_app, task_failure
from corral.spec.services import HealthCheckStatus
from corral.spec.states import TaskState


class Versions:
    """The version string of each configuration of a service, read once per request."""

    def __init__(self, q: Queries) -> None:
        self.q = q
        self._known: dict[tuple[str, int], str] = {}

    def of(self, task: TaskInfo) -> str:
        """The version a task runs."""
        rec = self.q.service(task.job)
        if rec is not None and rec.config == task.run:
            return rec.config_version
        key = (task.job, task.run)
        if key not in self._known:
            for row in self.q.service_versions(task.job):
                self._known.setdefault((task.job, row["config"]), row["version"])
        return self._known.get(key, "")


def is_task(task: TaskInfo) -> bool:
    """Whether Marathon shows ``task`` as a task: an instance still waiting to be placed is
    not one (Marathon lists it in ``/v2/queue`` only)."""
    return task.state is not TaskState.PENDING


def marathon_tasks(q: Queries, service_id: str) -> list[TaskInfo]:
    """The tasks of a service Marathon shows, oldest first."""
    return [t for t in q.live_tasks_of(service_id) if is_task(t)]


def task_json(q: Queries, task: TaskInfo, versions: Versions) -> dict[str, Any]:
    """A live task as Marathon shows it."""
    ports = list(task.ports)
    rec = q.service(task.job)
    known = service_ports(rec.spec) if rec is not None else []
    doc: dict[str, Any] = {
        "id": task.id,
        "appId": task.job,
        "host": q.hostname(task.agent_id) or "",
        "ports": ports,
        # One per port: clients pair them by index (the marathon client's list_endpoints).
        "servicePorts": [known[i] if i < len(known) else 0 for i in range(len(ports))],
        "stagedAt": version_of(task.created_at),
        "startedAt": None if task.started_at is None else version_of(task.started_at),
        "version": versions.of(task),
        "state": f"TASK_{task.state.value}",
        "slaveId": task.agent_id,
        "ipAddresses": [],
    }
    if task.checks is not None:
        doc["healthCheckResults"] = [
            _check_result(task.id, status) for status in task.checks if status.alive is not None
        ]
    elif task.healthy is not None:
        # Records come with the agent's next report (this master started since the last):
        # meanwhile, the verdict the store kept.
        doc["healthCheckResults"] = [
            {
                "alive": task.healthy,
                "consecutiveFailures": 0 if task.healthy else 1,
                "firstSuccess": None,
                "lastFailure": None,
                "lastSuccess": None,
                "lastFailureCause": None if task.healthy else task.health,
                "taskId": task.id,
                "instanceId": task.id,
            }
        ]
    return doc


def _check_result(task_id: str, status: HealthCheckStatus) -> dict[str, Any]:
    """One of a task's ``healthCheckResults``: a health check's record, times as Marathon's."""

    def when(t: float | None) -> str | None:
        return None if t is None else version_of(t)

    return {
        "alive": status.alive,
        "consecutiveFailures": status.consecutive_failures,
        "firstSuccess": when(status.first_success),
        "lastFailure": when(status.last_failure),
        "lastSuccess": when(status.last_success),
        "lastFailureCause": status.last_failure_cause,
        "taskId": task_id,
        "instanceId": task_id,
    }


def wants_text(accept: str | None) -> bool:
    """Whether a client asks for Marathon's text/plain listing rather than JSON."""
    kinds = {part.split(";")[0].strip() for part in (accept or "").split(",")}
    return "text/plain" in kinds and "application/json" not in kinds


def tasks_text(q: Queries, recs: Iterable[ServiceInfo]) -> str:
    """Marathon's text/plain listing of running tasks, as haproxy-marathon-bridge reads it:
    for each app and each of its service ports a line ``<app>\t<service port>\t`` followed
    by ``<host>:<host port>\t`` per running task; an app without ports has one line of
    ``<app>\t \t`` followed by ``<host>\t`` per task. ``<app>`` is its id with ``_`` for
    ``/`` (``lab_portal``); addresses are sorted."""
    lines = []
    for rec in recs:
        name = rec.id.strip("/").replace("/", "_")
        running = []
        for task in q.live_tasks_of(rec.id):
            if task.state is TaskState.RUNNING:
                running.append((q.hostname(task.agent_id) or "", list(task.ports)))
        known = service_ports(rec.spec)
        if not known:
            lines.append(f"{name}\t \t" + "".join(f"{h}\t" for h, _ in sorted(running)))
        for i, port in enumerate(known):
            where = sorted(f"{h}:{ports[i] if i < len(ports) else 0}" for h, ports in running)
            lines.append(f"{name}\t{port}\t" + "".join(f"{w}\t" for w in where))
    return "".join(f"{line}\n" for line in lines)


def app_json(
    q: Queries, rec: ServiceInfo, *, tasks: bool, failure: bool = True, stats: bool = False
) -> dict[str, Any]:
    """An app with its status fields; ``tasks`` embeds its live tasks, ``failure`` the last
    task that ended when it should not have, ``stats`` its ``taskStats``."""
    doc = spec_to_app(rec.spec, version=rec.version, config_version=rec.config_version)
    live = marathon_tasks(q, rec.id)
    wanted = [t for t in live if not t.kill_requested]
    counts = counts_of(wanted)
    if stats:
        doc["taskStats"] = task_stats(rec, wanted, q.now())
    versions = Versions(q)
    row = q.service_row(rec.id) if failure else None
    last = None if row is None else row["last_failure"]
    doc.update(
        app_status(
            tasks_running=counts.running,
            tasks_staged=counts.staged,
            tasks_healthy=counts.healthy,
            tasks_unhealthy=counts.unhealthy,
            deployments=q.locks(rec.id),
            tasks=[task_json(q, t, versions) for t in live] if tasks else None,
            last_task_failure=None
            if not last
            else task_failure(
                app_id=rec.id,
                task_id=last["task_id"],
                state=last["state"],
                message=last["reason"],
                timestamp=version_of(last["time"]),
                version=rec.config_version,
                host=last.get("host", ""),
                agent_id=last.get("agent_id") or "",
            ),
        )
    )
    return doc


def deployment_json(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A deployment (a row, or a live record's row) as Marathon lists it."""
    steps = [{"actions": [dict(a) for a in step]} for step in row["steps"]]
    current = min(row["current_step"], len(steps) - 1) if steps else 0
    return {
        "id": row["id"],
        "version": row["version"],
        "affectedApps": sorted({a["app"] for step in row["steps"] for a in step}),
        "affectedPods": [],
        "steps": steps,
        "currentActions": [
            {**a, "readinessCheckResults": []} for a in (steps[current]["actions"] if steps else [])
        ],
        "currentStep": min(row["current_step"] + 1, len(steps)),
        "totalSteps": len(steps),
    }


def deployment_result(dep: DeploymentInfo) -> dict[str, str]:
    """What Marathon answers to a change: the deployment started, and the new version."""
    return {"deploymentId": dep.id, "version": dep.version}
