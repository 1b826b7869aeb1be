"""``/v2/events``: Corral's events of services as Marathon's event stream.

Each stored event becomes the Marathon events its clients wait for (a task's new state is a
``status_update_event`` and an ``instance_changed_event``, a kill for failed health checks also
an ``unhealthy_instance_kill_event``, a failed check a ``failed_health_check_event``);
``event_type`` filters them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from corral.api.callers import master_of
from corral.api.events import follow
from corral.api.marathon import PREFIX, MarathonRoute
from corral.master.master import Master
from corral.master.service_tasks import version_of
from corral.spec.marathon import health_check_json, spec_to_app
from corral.spec.services import HealthCheckSpec, is_unhealthy_kill

router = APIRouter(prefix=PREFIX, route_class=MarathonRoute, include_in_schema=False)
# Marathon's instance conditions for Corral's task states.
CONDITIONS = {
    "STAGING": "Staging",
    "STARTING": "Starting",
    "RUNNING": "Running",
    "FINISHED": "Finished",
    "FAILED": "Failed",
    "KILLED": "Killed",
    "LOST": "Gone",
    "ERROR": "Error",
}


def _plan(data: Mapping[str, Any], version: str) -> dict[str, Any]:
    steps = data.get("steps") or [[{"action": "", "app": s} for s in data.get("services", [])]]
    empty = {"id": "/", "apps": [], "groups": [], "dependencies": [], "version": version}
    return {
        "id": data["id"],
        "version": data.get("version", version),
        "original": empty,
        "target": empty,
        "steps": [{"actions": list(step)} for step in steps],
    }


@dataclass(frozen=True)
class _TaskFacts:
    """What a task's events say of it, from its row: the app may be deleted by the time its
    tasks' events go out, and a rolling upgrade runs two versions at once."""

    ports: list[int]
    version: str
    checks: list[dict[str, Any]]  # the health checks it runs, as launched


def _task_facts(master: Master, task_id: str, job: str) -> _TaskFacts:
    row = master.queries.task_row(task_id) if task_id else None
    if row is not None:
        launch = row["launch"] or {}
        env = launch.get("env") or {}
        if "MARATHON_APP_VERSION" in env:
            ports = list(row["ports"] or [])
            return _TaskFacts(ports, str(env["MARATHON_APP_VERSION"]), launch["health_checks"])
    rec = master.queries.service(job)
    return _TaskFacts([], rec.config_version if rec is not None else "", [])


def _task_events(
    master: Master, ev: Mapping[str, Any], base: dict[str, Any]
) -> list[dict[str, Any]]:
    """A task's new state: a status update and an instance change, and, for a task killed for
    failing its health checks, Marathon's event of that kill."""
    job, task_id, state = ev["job"], ev["task_id"], ev["state"]
    host = master.queries.hostname(ev.get("agent_id")) or ""
    facts = _task_facts(master, task_id, job)
    out = [
        {
            **base,
            "eventType": "status_update_event",
            "slaveId": ev.get("agent_id"),
            "taskId": task_id,
            "taskStatus": f"TASK_{state}",
            "message": ev.get("reason") or "",
            "appId": job,
            "host": host,
            "ipAddresses": [],
            "ports": facts.ports,
            "version": facts.version,
        },
        {
            **base,
            "eventType": "instance_changed_event",
            "instanceId": task_id,
            "slaveId": ev.get("agent_id"),
            "condition": CONDITIONS.get(state, state),
            "host": host,
            "runSpecId": job,
            "runSpecVersion": facts.version,
        },
    ]
    if state == "KILLED" and is_unhealthy_kill(ev.get("reason") or ""):
        out.append(
            {
                **base,
                "eventType": "unhealthy_instance_kill_event",
                "appId": job,
                "taskId": task_id,
                "instanceId": task_id,
                "version": facts.version,
                "reason": ev["reason"],
                "host": host,
                "slaveId": ev.get("agent_id"),
            }
        )
    return out


def _check_failed(master: Master, ev: Mapping[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """One failed health check of a task, with the check as the app defines it."""
    facts = _task_facts(master, ev["task_id"], ev["job"])
    index = (ev.get("data") or {}).get("check", 0)
    check = facts.checks[index] if index < len(facts.checks) else None
    return {
        **base,
        "eventType": "failed_health_check_event",
        "appId": ev["job"],
        "taskId": ev["task_id"],
        "instanceId": ev["task_id"],
        "version": facts.version,
        "healthCheck": None
        if check is None
        else health_check_json(HealthCheckSpec.model_validate(check)),
    }


def marathon_events(master: Master, ev: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Marathon events one stored event stands for (none for batch work)."""
    kind, job = ev["type"], ev.get("job") or ""
    stamp = version_of(ev["time"])
    data: Mapping[str, Any] = ev.get("data") or {}
    base = {"timestamp": stamp}
    if kind == "task_state" and job.startswith("/") and ev.get("state") != "PENDING":
        return _task_events(master, ev, base)
    if kind == "task_check_failed" and job.startswith("/"):
        return [_check_failed(master, ev, base)]
    if kind == "task_health":
        version = _task_facts(master, ev["task_id"], job).version
        return [
            {
                **base,
                "eventType": "health_status_changed_event",
                "appId": job,
                "taskId": ev["task_id"],
                "instanceId": ev["task_id"],
                "version": version,
                "alive": bool(data.get("healthy")),
            }
        ]
    if kind == "deployment_started":
        plan = _plan(data, stamp)
        first = plan["steps"][0] if plan["steps"] else {"actions": []}
        return [{**base, "eventType": "deployment_info", "plan": plan, "currentStep": first}]
    if kind == "deployment_step":
        actions = {"actions": list(data.get("actions", []))}
        plan = {**_plan({"id": data["id"], "steps": [data.get("actions", [])]}, stamp)}
        return [
            {**base, "eventType": "deployment_step_success", "plan": plan, "currentStep": actions}
        ]
    if kind == "deployment_finished":
        kind_out = "deployment_success" if ev.get("state") == "SUCCEEDED" else "deployment_failed"
        return [{**base, "eventType": kind_out, "id": data["id"], "plan": _plan(data, stamp)}]
    if kind in ("service_created", "service_updated"):
        rec = master.queries.service(job)
        app = (
            None
            if rec is None
            else spec_to_app(rec.spec, version=rec.version, config_version=rec.config_version)
        )
        return [
            {
                **base,
                "eventType": "api_post_event",
                "clientIp": "",
                "uri": f"/v2/apps{job}",
                "appDefinition": app,
            }
        ]
    if kind == "service_deleted":
        return [{**base, "eventType": "app_terminated_event", "appId": job}]
    return []


async def _stream(master: Master, types: set[str], request: Request) -> AsyncIterator[str]:
    sub = master.bus.subscribe()
    try:
        hello = _attached(master, request)
        yield f"event: event_stream_attached\ndata: {json.dumps(hello)}\n\n"
        async for live in follow(sub, request):
            if live is None:
                yield "\n"  # Marathon's keep-alive is an empty line
                continue
            chunk = [
                f"event: {out['eventType']}\ndata: {json.dumps(out)}\n\n"
                for ev in live
                if master.queries.sees_event(ev)
                for out in marathon_events(master, ev)
                if not types or out["eventType"] in types
            ]
            if chunk:
                yield "".join(chunk)
    finally:
        master.bus.unsubscribe(sub)


def _attached(master: Master, request: Request) -> dict[str, Any]:
    client = request.client.host if request.client is not None else ""
    return {
        "eventType": "event_stream_attached",
        "timestamp": version_of(master.queries.now()),
        "remoteAddress": client,
    }


@router.get("/events", response_class=StreamingResponse)
async def events(
    request: Request, event_type: Annotated[list[str] | None, Query()] = None
) -> StreamingResponse:
    """Server-sent events in Marathon's shapes, of what the caller may read; ``event_type``
    (repeatable) filters them."""
    master = master_of(request)
    return StreamingResponse(
        _stream(master, set(event_type or []), request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
