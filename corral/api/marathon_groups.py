"""Marathon's groups: apps nested by their id paths; a group's apps deploy in the order of
their dependencies, a PUT makes the group exactly what the body says (or, with only
``scaleBy``, scales every app of it), and its versions are those its apps changed at."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request, Response

from corral.api.callers import new_work_owner
from corral.api.marathon import (
    PREFIX,
    Embed,
    Force,
    MarathonRoute,
    MasterDep,
    deploy_answer,
    read_body,
)
from corral.api.marathon_render import app_json
from corral.master.master import Conflict, Master, NotFound
from corral.master.service_tasks import version_of
from corral.master.view import ServiceInfo
from corral.spec.marathon import (
    MarathonInvalid,
    group_to_specs,
    specs_to_group,
)
from corral.spec.services import MAX_INSTANCES, ServiceSpec, normalize_service_id

router = APIRouter(prefix=PREFIX, route_class=MarathonRoute, include_in_schema=False)


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
def root_group(master: MasterDep, embed: Embed = None) -> dict[str, Any]:
    """The root group: every app, nested by path."""
    return _group(master, "/", set(embed or []))


def _records(master: Master, gid: str) -> list[ServiceInfo]:
    recs = [r for r in master.queries.services() if _under(gid, r.id)]
    if gid != "/" and not recs:
        raise NotFound(f"Group '{gid}' does not exist")
    return recs


def _group(master: Master, gid: str, embed: set[str]) -> dict[str, Any]:
    """The group's JSON; ``embed`` adds to each app its tasks, counts, last task failure and
    task statistics (``group.apps.tasks``, ``.counts``, ``.lastTaskFailure``, ``.taskStats``)."""
    recs = _records(master, gid)
    version = max((r.version for r in recs), default=version_of(master.queries.now()))

    def render(spec: ServiceSpec) -> dict[str, Any]:
        return app_json(
            master.queries,
            master.queries.service_of(spec.id),
            tasks="group.apps.tasks" in embed,
            failure="group.apps.lastTaskFailure" in embed,
            stats="group.apps.taskStats" in embed,
        )

    return specs_to_group(gid, [r.spec for r in recs], version=version, render=render)


async def _deploy_group(
    request: Request, master: Master, gid: str, force: bool, creating: bool
) -> Response:
    body = await read_body(request)
    if not isinstance(body, dict):
        raise MarathonInvalid([{"path": "/", "errors": ["a group must be a JSON object"]}])
    if not creating and body.get("scaleBy") is not None:  # Marathon ignores the rest then
        return _scale(master, gid, body["scaleBy"], force)
    if not creating and set(body) - {"id"} == {"version"}:
        # Read as a group, it would be one without apps: every app would be deleted.
        raise MarathonInvalid(
            [("/version", "rolling a group back is not supported: roll back each app")]
        )
    body = {**body, "id": body.get("id", gid)}
    specs = group_to_specs(body, current=[r.spec for r in master.queries.services()])
    target = normalize_service_id(body["id"]) if str(body["id"]).strip("/") else "/"
    existing = [sid for sid in master.queries.service_ids() if _under(target, sid)]
    if creating and existing:
        raise Conflict(f"Group {target} is already created. Use PUT to change this group.")
    keep = {s.id for s in specs}
    remove = [] if creating else [sid for sid in existing if sid not in keep]
    owner, group = new_work_owner(request, None)  # of the apps it creates; others keep theirs
    dep = master.services.deploy(specs, owner, group=group, remove=remove, force=force)
    return deploy_answer(dep, 201 if creating else 200)


@router.post("/groups")
async def create_group(request: Request, master: MasterDep, force: Force = False) -> Response:
    """Create a group of apps; apps start in the order of their dependencies."""
    return await _deploy_group(request, master, "/", force, creating=True)


def _scale(master: Master, gid: str, factor: Any, force: bool) -> Response:
    """Marathon's ``scaleBy``: every app of the group gets ``ceil(instances * factor)``."""
    if isinstance(factor, bool) or not isinstance(factor, int | float) or not factor > 0:
        raise MarathonInvalid([("/scaleBy", "must be a number greater than 0")])
    recs = _records(master, gid)
    specs = [
        r.spec.model_copy(update={"instances": math.ceil(r.spec.instances * factor)}) for r in recs
    ]
    if any(s.instances > MAX_INSTANCES for s in specs):
        raise MarathonInvalid([("/scaleBy", f"scales an app past {MAX_INSTANCES} instances")])
    return deploy_answer(master.services.deploy(specs, recs[0].owner, force=force))


@router.get("/groups/{group_id:path}/versions")
def group_versions(group_id: str, master: MasterDep) -> list[str]:
    """The versions of a group, newest first: those at which any of its apps changed."""
    versions = {
        row["version"]
        for rec in _records(master, _group_id(group_id))
        for row in master.queries.service_versions(rec.id)
    }
    return sorted(versions, reverse=True)


@router.get("/groups/{group_id:path}")
def get_group(group_id: str, master: MasterDep, embed: Embed = None) -> dict[str, Any]:
    """A group with its apps and subgroups."""
    return _group(master, _group_id(group_id), set(embed or []))


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
    sids = [sid for sid in master.queries.service_ids() if _under(gid, sid)]
    if not sids:
        raise NotFound(f"Group '{gid}' does not exist")
    return deploy_answer(master.services.deploy([], "", remove=sids, force=force))
