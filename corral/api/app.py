"""The FastAPI application: routers, authentication, and the mapping of domain errors to
HTTP answers."""

from __future__ import annotations

import json

from fastapi import Depends, FastAPI, Request, Response, WebSocket
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection

from corral import __version__
from corral.api import (
    accounts,
    channel,
    chronos,
    events,
    marathon,
    marathon_apps,
    marathon_events,
    marathon_groups,
    ops,
    services,
    task_exec,
    ui,
    usage,
    v1,
)
from corral.api.callers import Settings
from corral.api.guard import Authorization, check_body
from corral.api.leader import LeaderRouting, close_refused
from corral.api.limits import BodyLimit, error_answer
from corral.master.admission import Refused
from corral.master.master import Conflict, Master, NotFound, Unavailable
from corral.store.store import Fenced, StoreFull, StoreUnavailable


def create_app(
    master: Master, *, auth_required: bool = True, private_reads: bool = False
) -> FastAPI:
    """The whole HTTP surface of a master. Every route is authorized by the rules of
    ``corral.api.authz``; with ``private_reads``, users read only their own work."""
    app = FastAPI(
        title="Corral",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        dependencies=[Depends(check_body)],
    )
    app.state.master = master
    app.state.authz = Settings(master, auth_required, private_reads)
    # Added first, so it runs last: only authorized requests get as far as their body.
    # Starlette runs the middleware added last first.
    app.add_middleware(BodyLimit)
    app.add_middleware(Authorization)
    # Outermost: a follower hands calls to the leader before anything else looks at them.
    app.add_middleware(LeaderRouting)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Response:
        # FastAPI's answer, but ASCII-escaped: the input it echoes may hold lone surrogates,
        # which no UTF-8 encoder accepts.
        body = json.dumps({"detail": jsonable_encoder(exc.errors())}, ensure_ascii=True)
        return Response(body, status_code=422, media_type="application/json")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        # An unknown path or method under /v2 is answered in Marathon's shape, as its
        # clients read errors.
        if marathon.is_marathon_path(request.url.path):
            return marathon.routing_error(exc)
        return await http_exception_handler(request, exc)

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc.args[0])}, status_code=404)

    @app.exception_handler(Conflict)
    async def conflict(_: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(Refused)
    async def refused(_: Request, exc: Refused) -> JSONResponse:
        # The shape of FastAPI's validation errors, so clients read both the same way.
        detail = [{"loc": ["body", *r.loc], "msg": r.msg, "type": "refused"} for r in exc.refusals]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(StoreFull)
    @app.exception_handler(StoreUnavailable)
    @app.exception_handler(Fenced)
    async def store_refused(
        conn: HTTPConnection, exc: StoreFull | StoreUnavailable | Fenced
    ) -> JSONResponse | None:
        # Not a bug of the request, nor of the server's code: say why, as each API's
        # clients read errors (a full disk to free; a database to bring back; a newer master
        # to ask instead).
        if isinstance(conn, WebSocket):
            await close_refused(conn, exc)
            return None
        return error_answer(conn.url.path, 503, str(exc))

    @app.exception_handler(Unavailable)
    async def unavailable(_: Request, exc: Unavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    for module in (
        ops,
        accounts,
        v1,
        services,
        events,
        channel,
        task_exec,
        usage,
        ui,
        marathon,
        marathon_apps,
        marathon_groups,
        marathon_events,
    ):
        app.include_router(module.router)
    for prefix in chronos.PREFIXES:
        app.include_router(chronos.router, prefix=prefix)
    return app
