"""``/v2/events``: Corral's events of services as Marathon's event stream.

Each stored event becomes the Marathon events its clients wait for (a task's new state is a
``status_update_event`` and an ``instance_changed_event``); ``event_type`` filters them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from corral.api.events import follow
from corral.api.marathon import PREFIX, MarathonRoute
from corral.master.master import Master
from corral.master.service_tasks import version_of
from corral.spec.marathon import spec_to_app

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


def _task_facts(master: Master, task_id: str, job: str) -> tuple[list[int], str]:
    """A task's host ports and the app version it runs, from its row: the app may be deleted
    by the time its tasks' events go out, and a rolling upgrade runs two versions at once."""
    row = master.store.task(task_id) if task_id else None
    if row is not None:
        env = (row["launch"] or {}).get("env") or {}
        if "MARATHON_APP_VERSION" in env:
            return list(row["ports"] or []), str(env["MARATHON_APP_VERSION"])
    rec = master.services.services.get(job)
    return [], rec.config_version if rec is not None else ""


def marathon_events(master: Master, ev: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Marathon events one stored event stands for (none for batch work)."""
    kind, job = ev["type"], ev.get("job") or ""
    stamp = version_of(ev["time"])
    data: Mapping[str, Any] = ev.get("data") or {}
    base = {"timestamp": stamp}
    if kind == "task_state" and job.startswith("/") and ev.get("state") != "PENDING":
        agent = master.state.agents.get(ev.get("agent_id") or "")
        host = agent.hostname if agent is not None else ""
        ports, version = _task_facts(master, ev["task_id"], job)
        return [
            {
                **base,
                "eventType": "status_update_event",
                "slaveId": ev.get("agent_id"),
                "taskId": ev["task_id"],
                "taskStatus": f"TASK_{ev['state']}",
                "message": ev.get("reason") or "",
                "appId": job,
                "host": host,
                "ipAddresses": [],
                "ports": ports,
                "version": version,
            },
            {
                **base,
                "eventType": "instance_changed_event",
                "instanceId": ev["task_id"],
                "slaveId": ev.get("agent_id"),
                "condition": CONDITIONS.get(ev["state"], ev["state"]),
                "host": host,
                "runSpecId": job,
                "runSpecVersion": version,
            },
        ]
    if kind == "task_health":
        _, version = _task_facts(master, ev["task_id"], job)
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
        rec = master.services.services.get(job)
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
        async for ev in follow(sub, request):
            if ev is None:
                yield "\n"  # Marathon's keep-alive is an empty line
                continue
            for out in marathon_events(master, ev):
                if not types or out["eventType"] in types:
                    yield f"event: {out['eventType']}\ndata: {json.dumps(out)}\n\n"
    finally:
        master.bus.unsubscribe(sub)


def _attached(master: Master, request: Request) -> dict[str, Any]:
    client = request.client.host if request.client is not None else ""
    return {
        "eventType": "event_stream_attached",
        "timestamp": version_of(master.state.clock.now()),
        "remoteAddress": client,
    }


@router.get("/events", response_class=StreamingResponse)
async def events(
    request: Request, event_type: Annotated[list[str] | None, Query()] = None
) -> StreamingResponse:
    """Server-sent events in Marathon's shapes; ``event_type`` (repeatable) filters them."""
    master: Master = request.app.state.master
    return StreamingResponse(
        _stream(master, set(event_type or []), request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
