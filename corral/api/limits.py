"""Limits of the HTTP surface: request bodies are bounded, and errors found outside a route (a
body too large, a store that is full) are answered in the format of the API asked.

A body is refused by its ``Content-Length`` before any of it is read; a body sent without one
(chunked) is counted as it arrives and refused once it passes the limit.
"""

from __future__ import annotations

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from corral.api import chronos, marathon

# Kubernetes' API server takes 3 MiB; a Marathon group of many apps, or a long job array
# spec, fits well under this, and one request can no longer fill the master's memory or store.
MAX_BODY_BYTES = 4 * 1024 * 1024


def error_answer(path: str, status: int, message: str) -> JSONResponse:
    """An error in the format of the API ``path`` belongs to: Chronos' ``{"message", "status"}``,
    Marathon's ``{"message"}``, the native ``{"detail"}``."""
    if chronos.is_chronos_path(path):
        return chronos.chronos_error(status, message)
    if marathon.is_marathon_path(path):
        return marathon.marathon_error(status, message)
    return JSONResponse({"detail": message}, status_code=status)


class BodyTooLarge(HTTPException):
    """The body sent so far is over the limit.

    An ``HTTPException``, so that a route reading the body answers it through the app's
    handlers (in its API's format) instead of as a body it could not parse.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large(limit))


def too_large(limit: int) -> str:
    """Why a body is refused."""
    return f"the request body is larger than the limit of {limit} bytes"


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is answered 413 and not read on."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(path, scope, receive, send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if started:  # an answer is under way: nothing better to do than end the connection
                raise
            await self._refuse(path, scope, receive, send)

    async def _refuse(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        await error_answer(path, 413, too_large(self.limit))(scope, receive, send)
