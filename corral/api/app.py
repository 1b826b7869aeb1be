"""The FastAPI application: routers, authentication, and the mapping of domain errors to
HTTP answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from corral import __version__
from corral.api import channel, events, ops, v1
from corral.api.auth import CHALLENGE, Authenticator
from corral.master.admission import Refused
from corral.master.master import Conflict, Master, NotFound, Unavailable

OPEN_PATHS = frozenset({"/health", "/ping", "/metrics"})


def create_app(master: Master, *, auth_required: bool = True) -> FastAPI:
    """The whole HTTP surface of a master."""
    app = FastAPI(
        title="Corral",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.master = master
    app.state.auth = Authenticator(master.store, auth_required)

    @app.middleware("http")
    async def authenticate(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path in OPEN_PATHS:
            return await call_next(request)
        user = app.state.auth.user(request.headers.get("authorization"))
        if user is None:
            return JSONResponse(
                {"detail": "a valid token is required (Authorization: Bearer TOKEN)"},
                status_code=401,
                headers={"WWW-Authenticate": CHALLENGE},
            )
        request.state.user = user
        return await call_next(request)

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

    @app.exception_handler(Unavailable)
    async def unavailable(_: Request, exc: Unavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    for module in (ops, v1, events, channel):
        app.include_router(module.router)
    return app
