"""Marathon's v2 REST API over services: apps, tasks, deployments, groups, queue, info.

Routes translate Marathon JSON to service specs and back; the master's ``ServiceOps`` acts.
Errors are answered in Marathon's shape, ``{"message": ..., "details": [...]}``, whatever the
rest of the app does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from corral import __version__
from corral.api.marathon_render import (
    Versions,
    app_json,
    deployment_json,
    deployment_result,
    task_json,
)
from corral.api.service_render import running_deployment_row
from corral.master.admission import Refused
from corral.master.master import Conflict, Master, NotFound, Unavailable
from corral.master.records import LiveTask
from corral.master.service_tasks import ServiceRecord, version_of
from corral.spec.marathon import (
    MarathonInvalid,
    app_to_spec,
    error_body,
    group_to_specs,
    keep_native_fields,
    merge_app,
    spec_to_app,
    specs_to_group,
)
from corral.spec.services import ServiceSpec, normalize_service_id
from corral.spec.states import TaskState

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
PREFIX = "/v2"


def is_marathon_path(path: str) -> bool:
    """Whether a request path belongs to the Marathon API."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def marathon_error(status: int, message: str, **extra: Any) -> JSONResponse:
    """An error as Marathon answers it."""
    return JSONResponse({"message": message, **extra}, status)


def _refused_details(e: Refused) -> list[dict[str, Any]]:
    return [{"path": "/" + "/".join(str(p) for p in r.loc), "errors": [r.msg]} for r in e.refusals]


class MarathonRoute(APIRoute):
    """A route answering domain errors the Marathon way."""

    def get_route_handler(self) -> Handler:
        """The route's handler, wrapped to translate errors into Marathon answers."""
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except MarathonInvalid as e:
                return JSONResponse(error_body(e), 422)
            except Refused as e:
                return marathon_error(422, "Object is not valid", details=_refused_details(e))
            except Conflict as e:
                return marathon_error(409, str(e))
            except NotFound as e:
                return marathon_error(404, str(e.args[0]) if e.args else "not found")
            except Unavailable as e:
                return marathon_error(503, str(e))
            except RequestValidationError as e:
                details = [
                    {
                        "path": "/" + "/".join(str(p) for p in err["loc"][1:]),
                        "errors": [err["msg"]],
                    }
                    for err in e.errors()
                ]
                return marathon_error(400, "Invalid parameters", details=details)
            except HTTPException as e:
                return marathon_error(e.status_code, str(e.detail))

        return answer


def _master(request: Request) -> Master:
    master: Master = request.app.state.master
    return master


MasterDep = Annotated[Master, Depends(_master)]
Force = Annotated[bool, Query()]
Embed = Annotated[list[str] | None, Query()]

# Marathon documents its own API: its routes stay out of the native OpenAPI document.
router = APIRouter(prefix=PREFIX, route_class=MarathonRoute, include_in_schema=False)


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MarathonInvalid([{"path": "/", "errors": [f"Invalid JSON: {e}"]}]) from None
    except RecursionError:
        raise MarathonInvalid(
            [{"path": "/", "errors": ["Invalid JSON: nested too deeply"]}]
        ) from None


def _app_id(raw: str) -> str:
    try:
        return normalize_service_id(raw)
    except ValueError:
        raise NotFound(f"App '/{raw.strip('/')}' does not exist") from None


def _app(master: Master, raw: str) -> ServiceRecord:
    sid = _app_id(raw)
    rec = master.services.services.get(sid)
    if rec is None:
        raise NotFound(f"App '{sid}' does not exist")
    return rec


def _deploy_answer(dep: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(deployment_result(dep), status, headers={"Marathon-Deployment-Id": dep.id})


# --- info


@router.get("/info")
def info(request: Request) -> dict[str, Any]:
    """What Marathon says of itself; clients read ``version`` and ``leader``."""
    host = request.url.netloc
    return {
        "name": "corral",
        "version": "1.10.0",
        "buildref": __version__,
        "elected": True,
        "leader": host,
        "frameworkId": "corral",
        "marathon_config": {"master": "corral", "hostname": request.url.hostname},
        "zookeeper_config": {},
        "http_config": {"http_port": request.url.port},
        "event_subscriber": None,
    }


@router.get("/leader")
def leader(request: Request) -> dict[str, str]:
    """The leading master: always this one until several masters share a store."""
    return {"leader": request.url.netloc}


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
    for sid, rec in sorted(master.services.services.items()):
        if cmd is not None and cmd not in (
            rec.spec.task.shell or " ".join(rec.spec.task.command or [])
        ):
            continue
        if id is not None and id not in sid:
            continue
        if label is not None and not _labels_match(rec.spec, label):
            continue
        doc = app_json(
            master,
            rec,
            tasks="apps.tasks" in wanted or "app.tasks" in wanted,
            failure="apps.lastTaskFailure" in wanted or "app.lastTaskFailure" in wanted,
        )
        apps.append(doc)
    return {"apps": apps}


@router.post("/apps")
async def create_app(request: Request, master: MasterDep, force: Force = False) -> Response:
    """Create an app; answers it, with its deployment."""
    spec = app_to_spec(await _body(request))
    if spec.id in master.services.services:
        raise Conflict(f"An app with id [{spec.id}] already exists.")
    dep = master.services.deploy([spec], spec.owner or request.state.user, force=force)
    doc = app_json(master, master.services.get(spec.id), tasks=True, failure=False)
    return JSONResponse(
        doc,
        201,
        headers={"Location": f"{PREFIX}/apps{spec.id}", "Marathon-Deployment-Id": dep.id},
    )


@router.get("/apps/{app_id:path}/tasks")
def app_tasks(app_id: str, master: MasterDep) -> dict[str, Any]:
    """The live tasks of an app."""
    rec = _app(master, app_id)
    versions = Versions(master)
    return {"tasks": [task_json(master, t, versions) for t in _live(master, rec.id)]}


def _live(master: Master, sid: str) -> list[LiveTask]:
    tasks = [t for t in master.state.tasks.values() if t.job == sid]
    return sorted(tasks, key=lambda t: (t.created_at, t.id))


async def _kill(
    master: Master, tasks: list[LiveTask], scale: bool, force: bool
) -> Response | dict[str, Any]:
    versions = Versions(master)
    before = {t.id: task_json(master, t, versions) for t in tasks}
    await master.kill_service_tasks([t.id for t in tasks], scale, force)
    if scale:
        sids = {t.job for t in tasks}
        deps = [d for d in master.services.deployments.values() if d.affected & sids]
        if deps:
            newest = max(deps, key=lambda d: d.created_at)
            return _deploy_answer(newest)
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
    rec = _app(master, app_id)
    task = master.state.tasks.get(task_id)
    if task is None or task.job != rec.id:
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
    rec = _app(master, app_id)
    tasks = [
        t
        for t in _live(master, rec.id)
        if host is None
        or getattr(master.state.agents.get(t.agent_id or ""), "hostname", None) == host
    ]
    return await _kill(master, tasks, scale, force)


@router.post("/apps/{app_id:path}/restart")
def restart_app(app_id: str, master: MasterDep, force: Force = False) -> Response:
    """Replace every task, rolling."""
    return _deploy_answer(master.services.restart(_app(master, app_id).id, force))


@router.get("/apps/{app_id:path}/versions/{version}")
def app_version(app_id: str, version: str, master: MasterDep) -> dict[str, Any]:
    """The app as it was at ``version``."""
    sid = _app(master, app_id).id
    row = master.store.service_version(sid, version)
    if row is None:
        raise NotFound(f"App '{sid}' does not exist in version {version}")
    spec = ServiceSpec.model_validate(row["spec"])
    return spec_to_app(spec, version=row["version"], config_version=row["version"])


@router.get("/apps/{app_id:path}/versions")
def app_versions(app_id: str, master: MasterDep) -> dict[str, list[str]]:
    """The versions of an app, newest first."""
    sid = _app(master, app_id).id
    return {"versions": [r["version"] for r in master.store.service_versions(sid)]}


@router.get("/apps/{app_id:path}")
def get_app(app_id: str, master: MasterDep, embed: Embed = None) -> dict[str, Any]:
    """One app, with its tasks, deployments and last failure."""
    return {"app": app_json(master, _app(master, app_id), tasks=True)}


async def _update(request: Request, master: Master, app_id: str, force: bool) -> Response:
    sid = _app_id(app_id)
    body = await _body(request)
    if not isinstance(body, dict):
        raise MarathonInvalid([{"path": "/", "errors": ["an app must be a JSON object"]}])
    body = {**body, "id": body.get("id", sid)}
    rec = master.services.services.get(sid)
    if rec is not None and set(body) == {"id", "version"}:
        return _deploy_answer(_roll_back(master, rec, str(body["version"]), force))
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
    owner = rec.owner if rec is not None else request.state.user
    dep = master.services.deploy([spec], owner, force=force)
    return _deploy_answer(dep, 200 if rec is not None else 201)


def _roll_back(master: Master, rec: ServiceRecord, version: str, force: bool) -> Any:
    """Marathon's rollback: a PUT of only ``{"version": ...}`` deploys that version again."""
    row = master.store.service_version(rec.id, version)
    if row is None:
        raise NotFound(f"App '{rec.id}' does not exist in version {version}")
    spec = ServiceSpec.model_validate(row["spec"])
    return master.services.deploy([spec], rec.owner, force=force)


@router.put("/apps/{app_id:path}")
async def put_app(
    app_id: str, request: Request, master: MasterDep, force: Force = False
) -> Response:
    """Create or change an app; fields not given keep their values (scaling sends only
    ``instances``)."""
    return await _update(request, master, app_id, force)


@router.patch("/apps/{app_id:path}")
async def patch_app(
    app_id: str, request: Request, master: MasterDep, force: Force = False
) -> Response:
    """Change the given fields of an app."""
    _app(master, app_id)
    return await _update(request, master, app_id, force)


@router.delete("/apps/{app_id:path}")
def delete_app(app_id: str, master: MasterDep, force: Force = False) -> Response:
    """Delete an app; its tasks are killed."""
    return _deploy_answer(master.services.delete(_app(master, app_id).id, force))


# --- tasks


@router.get("/tasks")
def list_tasks(master: MasterDep, status: str | None = None) -> dict[str, Any]:
    """Live tasks of every app; ``status`` is running, staging or delayed."""
    wanted = {
        None: None,
        "running": {TaskState.RUNNING},
        "staging": {TaskState.STAGING, TaskState.STARTING},
        "delayed": {TaskState.PENDING},
    }
    if status not in wanted:
        raise HTTPException(400, f"status must be running, staging or delayed, not {status!r}")
    states = wanted[status]
    versions = Versions(master)
    tasks = [
        task_json(master, t, versions)
        for t in sorted(master.state.tasks.values(), key=lambda t: (t.job, t.created_at))
        if t.service and (states is None or t.state in states)
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
    body = await _body(request)
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise MarathonInvalid([{"path": "/ids", "errors": ["must be a list of task ids"]}])
    tasks = []
    for tid in ids:
        task = master.state.tasks.get(tid)
        if task is None or not task.service:
            raise NotFound(f"Task '{tid}' does not exist")
        tasks.append(task)
    return await _kill(master, tasks, scale, force)


# --- deployments


@router.get("/deployments")
def list_deployments(master: MasterDep) -> list[dict[str, Any]]:
    """Running deployments."""
    deps = sorted(master.services.deployments.values(), key=lambda d: d.created_at)
    return [deployment_json(running_deployment_row(d)) for d in deps]


@router.delete("/deployments/{deployment_id}")
def cancel_deployment(deployment_id: str, master: MasterDep, force: Force = False) -> Response:
    """Roll a deployment back (answers the rollback), or with ``force`` stop it where it is."""
    if deployment_id not in master.services.deployments:
        raise NotFound(f"DeploymentPlan {deployment_id} does not exist")
    back = master.services.cancel(deployment_id, force)
    if back is None:
        return Response(status_code=202)
    return _deploy_answer(back)


# --- groups


def _under(group: str, sid: str) -> bool:
    return group == "/" or sid == group or sid.startswith(group.rstrip("/") + "/")


def _group_id(raw: str) -> str:
    if not raw.strip("/"):
        return "/"
    try:
        return normalize_service_id(raw)
    except ValueError:
        raise NotFound(f"Group '/{raw.strip('/')}' does not exist") from None


@router.get("/groups")
def root_group(master: MasterDep) -> dict[str, Any]:
    """The root group: every app, nested by path."""
    return _group(master, "/")


def _group(master: Master, gid: str) -> dict[str, Any]:
    recs = [r for sid, r in sorted(master.services.services.items()) if _under(gid, sid)]
    if gid != "/" and not recs:
        raise NotFound(f"Group '{gid}' does not exist")
    version = max((r.version for r in recs), default=version_of(master.state.clock.now()))
    return specs_to_group(
        gid,
        [r.spec for r in recs],
        version=version,
        render=lambda s: app_json(master, master.services.services[s.id], tasks=False),
    )


async def _deploy_group(
    request: Request, master: Master, gid: str, force: bool, creating: bool
) -> Response:
    body = await _body(request)
    if not isinstance(body, dict):
        raise MarathonInvalid([{"path": "/", "errors": ["a group must be a JSON object"]}])
    body = {**body, "id": body.get("id", gid)}
    specs = group_to_specs(body)
    target = normalize_service_id(body["id"]) if str(body["id"]).strip("/") else "/"
    existing = [sid for sid in master.services.services if _under(target, sid)]
    if creating and existing:
        raise Conflict(f"Group {target} is already created. Use PUT to change this group.")
    keep = {s.id for s in specs}
    remove = [] if creating else [sid for sid in existing if sid not in keep]
    dep = master.services.deploy(specs, request.state.user, remove=remove, force=force)
    return _deploy_answer(dep, 201 if creating else 200)


@router.post("/groups")
async def create_group(request: Request, master: MasterDep, force: Force = False) -> Response:
    """Create a group of apps; apps start in the order of their dependencies."""
    return await _deploy_group(request, master, "/", force, creating=True)


@router.get("/groups/{group_id:path}")
def get_group(group_id: str, master: MasterDep) -> dict[str, Any]:
    """A group with its apps and subgroups."""
    return _group(master, _group_id(group_id))


@router.put("/groups/{group_id:path}")
async def put_group(
    group_id: str, request: Request, master: MasterDep, force: Force = False
) -> Response:
    """Make a group what the body says: apps it leaves out are deleted."""
    return await _deploy_group(request, master, _group_id(group_id), force, creating=False)


@router.post("/groups/{group_id:path}")
async def create_subgroup(
    group_id: str, request: Request, master: MasterDep, force: Force = False
) -> Response:
    """Create a group under ``group_id``."""
    return await _deploy_group(request, master, _group_id(group_id), force, creating=True)


@router.delete("/groups/{group_id:path}")
def delete_group(group_id: str, master: MasterDep, force: Force = False) -> Response:
    """Delete every app of a group."""
    gid = _group_id(group_id)
    sids = [sid for sid in master.services.services if _under(gid, sid)]
    if not sids:
        raise NotFound(f"Group '{gid}' does not exist")
    return _deploy_answer(master.services.deploy([], "", remove=sids, force=force))


# --- queue


@router.get("/queue")
def queue(master: MasterDep) -> dict[str, Any]:
    """Apps with tasks waiting to be placed, how many, their backoff, and why they wait."""
    now = master.state.clock.now()
    items = []
    for sid, rec in sorted(master.services.services.items()):
        waiting = [
            t
            for t in master.state.tasks.values()
            if t.job == sid and t.state is TaskState.PENDING and not t.kill_requested
        ]
        if not waiting:
            continue
        left = max(0.0, (rec.delay_until or 0.0) - now)
        reasons = sorted({t.waiting for t in waiting if t.waiting})
        items.append(
            {
                "app": app_json(master, rec, tasks=False, failure=False),
                "count": len(waiting),
                "delay": {"timeLeftSeconds": round(left, 3), "overdue": left == 0},
                "since": rec.version,
                "processedOffersSummary": {
                    "rejectSummaryLastOffers": [{"reason": r} for r in reasons]
                },
                "lastUnusedOffers": [],
            }
        )
    return {"queue": items}


@router.delete("/queue/{app_id:path}/delay", status_code=204)
def reset_delay(app_id: str, master: MasterDep) -> Response:
    """Forget an app's restart backoff: its next task starts at once."""
    master.services.reset_delay(_app(master, app_id).id)
    return Response(status_code=204)
