"""The native API of services and deployments. Service ids are paths, so the routes that end
in an action are declared before the plain ``/services/{id}`` ones."""

from __future__ import annotations

import bisect
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Query, Request, Response

from corral.api import pages
from corral.api.callers import new_work_owner
from corral.api.render import task_view
from corral.api.service_render import (
    deployment_view,
    running_deployment_row,
    service_view,
    version_view,
)
from corral.api.v1 import MasterDep
from corral.master.master import Master
from corral.master.view import DeploymentInfo
from corral.spec.services import MAX_INSTANCES, ServiceSpec, normalize_service_id
from corral.spec.views import DeploymentView, ServiceVersionView, ServiceView, TaskView

router = APIRouter(prefix="/api/v1")
Force = Annotated[bool, Query(description="Cancel deployments that hold the service.")]


def _sid(raw: str) -> str:
    try:
        return normalize_service_id(raw)
    except ValueError as e:
        raise HTTPException(404, f"service {raw!r} not found: {e}") from None


def _view(dep: DeploymentInfo) -> DeploymentView:
    return deployment_view(running_deployment_row(dep))


@router.get("/services")
def list_services(master: MasterDep) -> list[ServiceView]:
    """Every service, by id."""
    return [service_view(master.queries, rec) for rec in master.queries.services()]


@router.post("/services", status_code=201)
def create_service(
    spec: ServiceSpec, master: MasterDep, request: Request, force: Force = False
) -> DeploymentView:
    """Create a service; answers the deployment that starts it."""
    if master.queries.service_exists(spec.id):
        raise HTTPException(409, f"service {spec.id!r} already exists")
    owner, group = new_work_owner(request, spec.owner)
    return _view(master.services.deploy([spec], owner, group=group))


@router.get("/deployments")
def list_deployments(
    master: MasterDep, all: Annotated[bool, Query(description="Ended ones too.")] = False
) -> list[DeploymentView]:
    """Running deployments (with ``all``, the newest 100 of any state)."""
    rows = master.queries.deployment_rows(running_only=not all)
    return [deployment_view(r) for r in rows]


@router.get("/deployments/{deployment_id}")
def get_deployment(deployment_id: str, master: MasterDep) -> DeploymentView:
    """One deployment."""
    row = master.queries.deployment_row(deployment_id)
    if row is None:
        raise HTTPException(404, f"deployment {deployment_id!r} not found")
    return deployment_view(row)


@router.delete("/deployments/{deployment_id}")
def cancel_deployment(
    deployment_id: str, master: MasterDep, response: Response, force: Force = False
) -> DeploymentView | None:
    """Cancel a deployment: roll back (answers the rollback deployment), or with ``force``
    stop where it stands (202, no body)."""
    back = master.services.cancel(deployment_id, force)
    if back is None:
        response.status_code = 202
        return None
    return _view(back)


@router.post("/services/{service_id:path}/scale")
def scale_service(
    service_id: str,
    master: MasterDep,
    instances: Annotated[int, Body(embed=True, ge=0, le=MAX_INSTANCES)],
    force: Force = False,
) -> DeploymentView:
    """Change the number of instances."""
    return _view(master.services.scale(_sid(service_id), instances, force))


@router.post("/services/{service_id:path}/restart")
def restart_service(service_id: str, master: MasterDep, force: Force = False) -> DeploymentView:
    """Replace every task, rolling, by the upgrade strategy."""
    return _view(master.services.restart(_sid(service_id), force))


@router.get("/services/{service_id:path}/versions/{version}")
def get_version(service_id: str, version: str, master: MasterDep) -> ServiceVersionView:
    """One version of a service's spec."""
    row = master.queries.service_version(_sid(service_id), version)
    if row is None:
        raise HTTPException(404, f"version {version!r} of service {service_id!r} not found")
    return version_view(row)


@router.get("/services/{service_id:path}/versions")
def list_versions(service_id: str, master: MasterDep) -> list[ServiceVersionView]:
    """The versions of a service, newest first."""
    sid = _sid(service_id)
    master.queries.service_of(sid)
    return [version_view(r) for r in master.queries.service_versions(sid)]


@router.get("/services/{service_id:path}/tasks")
def service_tasks(
    service_id: str,
    master: MasterDep,
    request: Request,
    response: Response,
    limit: pages.Limit = None,
    after: pages.After = None,
) -> list[TaskView]:
    """The live tasks of a service, by id; with ``limit``, a page (see
    ``corral.api.pages``)."""
    found, cursor = page_of_service_tasks(master, _sid(service_id), limit, after)
    pages.link_next(request, response, cursor)
    return found


def page_of_service_tasks(
    master: Master, sid: str, limit: int | None = None, after: str | None = None
) -> tuple[list[TaskView], str | None]:
    """A page of a service's live tasks by id (the cursor: the last id of the page), and
    the cursor of the next (None: the last); the rows of the page read in one query."""
    master.queries.service_of(sid)
    ids = sorted(t.id for t in master.queries.live_tasks_of(sid))
    start = 0 if after is None else bisect.bisect_right(ids, after)
    end = len(ids) if limit is None else min(len(ids), start + limit)
    rows = sorted(master.queries.task_rows_by_id(ids[start:end]), key=lambda r: str(r["id"]))
    cursor = ids[end - 1] if end < len(ids) else None
    return [task_view(master.queries, r) for r in rows], cursor


@router.delete("/services/{service_id:path}/tasks/{task_id}")
async def kill_service_task(
    service_id: str,
    task_id: str,
    master: MasterDep,
    scale: Annotated[bool, Query(description="Lower instances instead of replacing it.")] = False,
    force: Force = False,
) -> TaskView:
    """Kill one task of a service; it is replaced unless ``scale``."""
    sid = _sid(service_id)
    master.queries.service_of(sid)
    row = master.queries.task_row(task_id)
    if row is None or row["job"] != sid:
        raise HTTPException(404, f"task {task_id!r} of service {sid!r} not found")
    await master.kill_service_tasks([task_id], scale, force)
    found = master.queries.task_row(task_id)
    assert found is not None  # a service's task rows stay while the service does
    return task_view(master.queries, found)


@router.get("/services/{service_id:path}")
def get_service(service_id: str, master: MasterDep) -> ServiceView:
    """One service."""
    return service_view(master.queries, master.queries.service_of(_sid(service_id)))


@router.put("/services/{service_id:path}")
def apply_service(
    service_id: str,
    spec: ServiceSpec,
    master: MasterDep,
    request: Request,
    response: Response,
    force: Force = False,
) -> DeploymentView:
    """Create or change a service; answers its deployment (201 when created)."""
    sid = _sid(service_id)
    if spec.id != sid:
        raise HTTPException(400, f"id in the body ({spec.id!r}) differs from the URL ({sid!r})")
    existing = master.queries.service(sid)
    owner, group = new_work_owner(request, spec.owner)
    if existing is not None:  # a service stays its owner's
        owner = existing.owner
    response.status_code = 200 if existing else 201
    return _view(master.services.deploy([spec], owner, group=group, force=force))


@router.delete("/services/{service_id:path}")
def delete_service(service_id: str, master: MasterDep, force: Force = False) -> DeploymentView:
    """Delete a service and stop its tasks; answers the deployment doing it."""
    return _view(master.services.delete(_sid(service_id), force))
