"""Marathon's groups: apps nested by their id paths; a group's apps deploy in the order of
their dependencies, and a PUT makes the group exactly what the body says."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from corral.api.marathon import (
    PREFIX,
    Force,
    MarathonRoute,
    MasterDep,
    deploy_answer,
    read_body,
)
from corral.api.marathon_render import app_json
from corral.master.master import Conflict, Master, NotFound
from corral.master.service_tasks import version_of
from corral.spec.marathon import (
    MarathonInvalid,
    group_to_specs,
    specs_to_group,
)
from corral.spec.services import normalize_service_id

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
    body = await read_body(request)
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
    return deploy_answer(dep, 201 if creating else 200)


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
    return deploy_answer(master.services.deploy([], "", remove=sids, force=force))
