"""Marathon's apps and tasks: create, read, change (partial PUT, PATCH, rollback), restart,
scale, kill tasks, versions, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from corral.api.callers import new_work_owner
from corral.api.marathon import (
    PREFIX,
    Embed,
    Force,
    MarathonRoute,
    MasterDep,
    app_id_of,
    app_of,
    deploy_answer,
    read_body,
)
from corral.api.marathon_render import (
    Versions,
    app_json,
    is_task,
    marathon_tasks,
    task_json,
    tasks_text,
    wants_text,
)
from corral.master.master import Conflict, Master, NotFound
from corral.master.view import ServiceInfo, TaskInfo
from corral.spec.marathon import (
    MarathonInvalid,
    app_to_spec,
    keep_native_fields,
    merge_app,
    spec_to_app,
)
from corral.spec.services import ServiceSpec
from corral.spec.states import TaskState

router = APIRouter(prefix=PREFIX, route_class=MarathonRoute, include_in_schema=False)


# --- apps


def _labels_match(spec: ServiceSpec, selector: str) -> bool:
    for term in selector.split(","):
        term = term.strip()
        if "!=" in term:
            k, v = (s.strip() for s in term.split("!=", 1))
            if spec.labels.get(k) == v:
                return False
        elif "==" in term:
            k, v = (s.strip() for s in term.split("==", 1))
            if spec.labels.get(k) != v:
                return False
        elif term and term not in spec.labels:
            return False
    return True


@router.get("/apps")
def list_apps(
    master: MasterDep,
    cmd: str | None = None,
    id: str | None = None,
    label: str | None = None,
    embed: Embed = None,
) -> dict[str, Any]:
    """Apps, filtered by command and id substrings and a label selector."""
    wanted = set(embed or [])
    apps = []
    for rec in master.queries.services():
        sid = rec.id
        if cmd is not None and cmd not in (
            rec.spec.task.shell or " ".join(rec.spec.task.command or [])
        ):
            continue
        if id is not None and id not in sid:
            continue
        if label is not None and not _labels_match(rec.spec, label):
            continue
        doc = app_json(
            master.queries,
            rec,
            tasks="apps.tasks" in wanted or "app.tasks" in wanted,
            failure="apps.lastTaskFailure" in wanted or "app.lastTaskFailure" in wanted,
            stats="apps.taskStats" in wanted or "app.taskStats" in wanted,
        )
        apps.append(doc)
    return {"apps": apps}


@router.post("/apps")
async def createapp_of(request: Request, master: MasterDep, force: Force = False) -> Response:
    """Create an app; answers it, with its deployment."""
    spec = app_to_spec(await read_body(request))
    if master.queries.service_exists(spec.id):
        raise Conflict(f"An app with id [{spec.id}] already exists.")
    owner, group = new_work_owner(request, None)  # Marathon's JSON names no owner
    dep = master.services.deploy([spec], owner, group=group, force=force)
    doc = app_json(master.queries, master.queries.service_of(spec.id), tasks=True, failure=False)
    return JSONResponse(
        doc,
        201,
        headers={"Location": f"{PREFIX}/apps{spec.id}", "Marathon-Deployment-Id": dep.id},
    )


@router.get("/apps/{app_id:path}/tasks")
def app_tasks(app_id: str, request: Request, master: MasterDep) -> Any:
    """The live tasks of an app (its running tasks' addresses with ``Accept: text/plain``)."""
    rec = app_of(master, app_id)
    if wants_text(request.headers.get("accept")):
        return PlainTextResponse(tasks_text(master.queries, [rec]))
    q = master.queries
    versions = Versions(q)
    return {"tasks": [task_json(q, t, versions) for t in marathon_tasks(q, rec.id)]}


async def _kill(
    master: Master, tasks: list[TaskInfo], scale: bool, force: bool
) -> Response | dict[str, Any]:
    versions = Versions(master.queries)
    before = {t.id: task_json(master.queries, t, versions) for t in tasks}
    await master.kill_service_tasks([t.id for t in tasks], scale, force)
    if scale:
        sids = {t.job for t in tasks}
        deps = [d for d in master.queries.running_deployments() if d.affected & sids]
        if deps:
            newest = max(deps, key=lambda d: d.created_at)
            return deploy_answer(newest)
    return {"tasks": list(before.values())}


@router.delete("/apps/{app_id:path}/tasks/{task_id}")
async def kill_app_task(
    app_id: str,
    task_id: str,
    master: MasterDep,
    scale: bool = False,
    wipe: bool = False,
    force: Force = False,
) -> Any:
    """Kill one task; it is replaced unless ``scale``."""
    rec = app_of(master, app_id)
    task = master.queries.live_task(task_id)
    if task is None or task.job != rec.id or not is_task(task):
        raise NotFound(f"Task '{task_id}' does not exist")
    answer = await _kill(master, [task], scale, force)
    if isinstance(answer, dict):
        return {"task": answer["tasks"][0]}
    return answer


@router.delete("/apps/{app_id:path}/tasks")
async def kill_app_tasks(
    app_id: str,
    master: MasterDep,
    host: str | None = None,
    scale: bool = False,
    wipe: bool = False,
    force: Force = False,
) -> Any:
    """Kill the tasks of an app (on one host, if given)."""
    rec = app_of(master, app_id)
    tasks = [
        t
        for t in marathon_tasks(master.queries, rec.id)
        if host is None or master.queries.hostname(t.agent_id) == host
    ]
    return await _kill(master, tasks, scale, force)


@router.post("/apps/{app_id:path}/restart")
def restartapp_of(app_id: str, master: MasterDep, force: Force = False) -> Response:
    """Replace every task, rolling."""
    return deploy_answer(master.services.restart(app_of(master, app_id).id, force))


@router.get("/apps/{app_id:path}/versions/{version}")
def app_version(app_id: str, version: str, master: MasterDep) -> dict[str, Any]:
    """The app as it was at ``version``."""
    sid = app_of(master, app_id).id
    row = master.queries.service_version(sid, version)
    if row is None:
        raise NotFound(f"App '{sid}' does not exist in version {version}")
    spec = ServiceSpec.stored(row["spec"])
    return spec_to_app(spec, version=row["version"], config_version=row["version"])


@router.get("/apps/{app_id:path}/versions")
def app_versions(app_id: str, master: MasterDep) -> dict[str, list[str]]:
    """The versions of an app, newest first."""
    sid = app_of(master, app_id).id
    return {"versions": [r["version"] for r in master.queries.service_versions(sid)]}


@router.get("/apps/{app_id:path}")
def getapp_of(app_id: str, master: MasterDep, embed: Embed = None) -> dict[str, Any]:
    """One app, with its tasks, deployments and last failure (and ``embed=app.taskStats``)."""
    stats = "app.taskStats" in (embed or [])
    return {"app": app_json(master.queries, app_of(master, app_id), tasks=True, stats=stats)}


async def _update(request: Request, master: Master, app_id: str, force: bool) -> Response:
    sid = app_id_of(app_id)
    body = await read_body(request)
    if not isinstance(body, dict):
        raise MarathonInvalid([{"path": "/", "errors": ["an app must be a JSON object"]}])
    body = {**body, "id": body.get("id", sid)}
    rec = master.queries.service(sid)
    if rec is not None and set(body) == {"id", "version"}:
        return deploy_answer(_roll_back(master, rec, str(body["version"]), force))
    if rec is not None:
        current = spec_to_app(rec.spec, version=rec.version, config_version=rec.config_version)
        body = merge_app(current, body)
    spec = app_to_spec(body)
    if rec is not None:  # what Marathon JSON cannot say (owner, placement...) stays as it was
        spec = keep_native_fields(spec, rec.spec)
    if spec.id != sid:
        raise MarathonInvalid(
            [{"path": "/id", "errors": [f"id {spec.id} differs from the URL's {sid}"]}]
        )
    owner, group = (rec.owner, "") if rec is not None else new_work_owner(request, None)
    dep = master.services.deploy([spec], owner, group=group, force=force)
    return deploy_answer(dep, 200 if rec is not None else 201)


def _roll_back(master: Master, rec: ServiceInfo, version: str, force: bool) -> Any:
    """Marathon's rollback: a PUT of only ``{"version": ...}`` deploys that version again."""
    row = master.queries.service_version(rec.id, version)
    if row is None:
        raise NotFound(f"App '{rec.id}' does not exist in version {version}")
    spec = ServiceSpec.stored(row["spec"])
    return master.services.deploy([spec], rec.owner, force=force)


@router.put("/apps/{app_id:path}")
async def putapp_of(
    app_id: str, request: Request, master: MasterDep, force: Force = False
) -> Response:
    """Create or change an app; fields not given keep their values (scaling sends only
    ``instances``)."""
    return await _update(request, master, app_id, force)


@router.patch("/apps/{app_id:path}")
async def patchapp_of(
    app_id: str, request: Request, master: MasterDep, force: Force = False
) -> Response:
    """Change the given fields of an app."""
    app_of(master, app_id)
    return await _update(request, master, app_id, force)


@router.delete("/apps/{app_id:path}")
def deleteapp_of(app_id: str, master: MasterDep, force: Force = False) -> Response:
    """Delete an app; its tasks are killed."""
    return deploy_answer(master.services.delete(app_of(master, app_id).id, force))


# --- tasks


@router.get("/tasks")
def list_tasks(request: Request, master: MasterDep, status: str | None = None) -> Any:
    """Live tasks of every app; ``status`` is running, staging or delayed (none: an instance
    waiting for its backoff is not a task yet, it is in ``/v2/queue``). With
    ``Accept: text/plain``, the running tasks' addresses per app, as Marathon lists them."""
    if wants_text(request.headers.get("accept")):
        return PlainTextResponse(tasks_text(master.queries, master.queries.services()))
    wanted: dict[str | None, set[TaskState] | None] = {
        None: None,
        "running": {TaskState.RUNNING},
        "staging": {TaskState.STAGING, TaskState.STARTING},
        "delayed": set(),
    }
    if status not in wanted:
        raise HTTPException(400, f"status must be running, staging or delayed, not {status!r}")
    states = wanted[status]
    q = master.queries
    versions = Versions(q)
    tasks = [
        task_json(q, t, versions)
        for t in q.service_tasks()
        if is_task(t) and (states is None or t.state in states)
    ]
    return {"tasks": tasks}


@router.post("/tasks/delete")
async def delete_tasks(
    request: Request,
    master: MasterDep,
    scale: bool = False,
    wipe: bool = False,
    force: Force = False,
) -> Any:
    """Kill the tasks whose ids are given as ``{"ids": [...]}``."""
    body = await read_body(request)
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise MarathonInvalid([{"path": "/ids", "errors": ["must be a list of task ids"]}])
    tasks = []
    for tid in ids:
        task = master.queries.live_task(tid)
        if task is None or not task.service or not is_task(task):
            raise NotFound(f"Task '{tid}' does not exist")
        tasks.append(task)
    return await _kill(master, tasks, scale, force)
