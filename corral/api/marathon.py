"""Marathon's v2 REST API over services: what its routes share (errors in Marathon's shape,
reading bodies, finding apps), and info, leader, deployments and queue. Apps and tasks are in
``marathon_apps.py``, groups in ``marathon_groups.py``, the event stream in
``marathon_events.py``.

Routes translate Marathon JSON to service specs and back; the master's ``ServiceOps`` acts.
Errors are answered in Marathon's shape, ``{"message": ..., "details": [...]}``, whatever the
rest of the app does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from http import HTTPStatus
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from corral import __version__
from corral.api.callers import master_of
from corral.api.marathon_offers import offers_summary
from corral.api.marathon_render import (
    app_json,
    deployment_json,
    deployment_result,
)
from corral.api.service_render import running_deployment_row
from corral.master.admission import Refused
from corral.master.master import Conflict, Master, NotFound, Unavailable
from corral.master.services import Locked
from corral.master.view import DeploymentInfo, ServiceInfo
from corral.spec.marathon import MarathonInvalid, error_body
from corral.spec.marathon_errors import SpecPaths
from corral.spec.services import normalize_service_id

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
PREFIX = "/v2"


def is_marathon_path(path: str) -> bool:
    """Whether a request path belongs to the Marathon API."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def marathon_error(status: int, message: str, **extra: Any) -> JSONResponse:
    """An error as Marathon answers it."""
    return JSONResponse({"message": message, **extra}, status)


def routing_error(exc: StarletteHTTPException) -> JSONResponse:
    """A path or method the API does not have (404, 405), as Marathon answers it."""
    answer = marathon_error(
        exc.status_code, f"HTTP {exc.status_code} {HTTPStatus(exc.status_code).phrase}"
    )
    answer.headers.update(exc.headers or {})
    return answer


def _refused_details(e: Refused) -> list[dict[str, Any]]:
    paths = SpecPaths()  # native fields at the Marathon paths they come from (task.gpus: /gpus)
    return [{"path": paths.path(r.loc), "errors": [r.msg]} for r in e.refusals]


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
            except InvalidJson as e:
                details = [{"path": "/", "errors": [f"Invalid JSON: {e}"]}]
                return marathon_error(400, "Invalid JSON", details=details)
            except Refused as e:
                return marathon_error(422, "Object is not valid", details=_refused_details(e))
            except Locked as e:
                return marathon_error(409, str(e), deployments=[{"id": d} for d in e.deployments])
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


MasterDep = Annotated[Master, Depends(master_of)]  # as the caller may read it
Force = Annotated[bool, Query()]
Embed = Annotated[list[str] | None, Query()]

# Marathon documents its own API: its routes stay out of the native OpenAPI document.
router = APIRouter(prefix=PREFIX, route_class=MarathonRoute, include_in_schema=False)


class InvalidJson(Exception):
    """A body that is not JSON: Marathon answers 400, not the 422 of a wrong app."""


async def read_body(request: Request) -> Any:
    """The request's JSON; ``InvalidJson`` if it is not JSON."""
    raw = await request.body()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidJson(str(e)) from None
    except RecursionError:
        raise InvalidJson("nested too deeply") from None


def app_id_of(raw: str) -> str:
    """An app id from a URL, normalized; an id that cannot exist is an unknown app."""
    try:
        return normalize_service_id(raw)
    except ValueError:
        raise NotFound(f"App '/{raw.strip('/')}' does not exist") from None


def app_of(master: Master, raw: str) -> ServiceInfo:
    """The app a URL names; ``NotFound`` in Marathon's words."""
    sid = app_id_of(raw)
    rec = master.queries.service(sid)
    if rec is None:
        raise NotFound(f"App '{sid}' does not exist")
    return rec


def deploy_answer(dep: DeploymentInfo, status: int = 200) -> JSONResponse:
    """Marathon's answer to a change: the deployment id and version, also as a header."""
    return JSONResponse(deployment_result(dep), status, headers={"Marathon-Deployment-Id": dep.id})


# --- info


@router.get("/info")
def info(request: Request) -> dict[str, Any]:
    """What Marathon says of itself; clients read ``version`` and ``leader``."""
    master = master_of(request)
    host = _netloc(master.leader_url) or request.url.netloc
    return {
        "name": "corral",
        "version": "1.10.0",
        "buildref": __version__,
        "elected": master.leading,
        "leader": host,
        "frameworkId": "corral",
        "marathon_config": {"master": "corral", "hostname": request.url.hostname},
        "zookeeper_config": {},
        "http_config": {"http_port": request.url.port},
        "event_subscriber": None,
    }


@router.get("/leader")
def leader(request: Request) -> Response:
    """The leading master's host:port, as Marathon answers it (404 while none leads)."""
    master = master_of(request)
    if master.leader_url is None:
        return marathon_error(404, "There is no leader")
    return JSONResponse({"leader": _netloc(master.leader_url) or request.url.netloc})


def _netloc(url: str | None) -> str:
    """The host:port of a master's URL."""
    return urlsplit(url).netloc if url else ""


# --- deployments


@router.get("/deployments")
def list_deployments(master: MasterDep) -> list[dict[str, Any]]:
    """Running deployments."""
    deps = master.queries.running_deployments()
    return [deployment_json(running_deployment_row(d)) for d in deps]


@router.delete("/deployments/{deployment_id}")
def cancel_deployment(deployment_id: str, master: MasterDep, force: Force = False) -> Response:
    """Roll a deployment back (answers the rollback), or with ``force`` stop it where it is."""
    if master.queries.running_deployment(deployment_id) is None:
        raise NotFound(f"DeploymentPlan {deployment_id} does not exist")
    back = master.services.cancel(deployment_id, force)
    if back is None:
        return Response(status_code=202)
    return deploy_answer(back)


# --- queue


@router.get("/queue")
def queue(master: MasterDep) -> dict[str, Any]:
    """Apps with tasks waiting to be placed, how many, their backoff, and why they wait."""
    q = master.queries
    now = q.now()
    items = []
    for rec in q.services():
        waiting = q.waiting_tasks_of(rec.id)
        if not waiting:
            continue
        left = max(0.0, (rec.delay_until or 0.0) - now)
        reasons = [t.waiting for t in waiting if t.waiting]
        items.append(
            {
                "app": app_json(q, rec, tasks=False, failure=False),
                "count": len(waiting),
                # Whole seconds, as Marathon counts them (a Duration's toSeconds).
                "delay": {"timeLeftSeconds": int(left), "overdue": left == 0},
                "since": rec.version,
                "processedOffersSummary": offers_summary(
                    reasons[0] if reasons else "", len(q.agents())
                ),
                "lastUnusedOffers": [],
            }
        )
    return {"queue": items}


@router.delete("/queue/{app_id:path}/delay", status_code=204)
def reset_delay(app_id: str, master: MasterDep) -> Response:
    """Forget an app's restart backoff: its next task starts at once."""
    master.services.reset_delay(app_of(master, app_id).id)
    return Response(status_code=204)
